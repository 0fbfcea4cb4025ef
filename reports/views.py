from typing import Any

from django.contrib.auth.decorators import permission_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_safe

from cases.models import IncidentEffect, IncidentKind, InterviewOutcome
from cases.scope import sites_of
from offers.selectors import offer_list
from reports import charts, selectors
from reports.exports import EXPORTS, InvalidFilters, csv_stream, export_rows, xlsx_file
from reports.forms import DashboardFilterForm
from reports.models import ExportFormat
from reports.services import export_log_finish, export_log_start


@require_safe
@permission_required("reports.view_dashboard", raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    form = DashboardFilterForm(request.GET, scope=sites_of(user))
    filters = form.filters()
    departures = selectors.departures_per_week(filters)
    interviews = selectors.interviews_per_week(filters)
    population = selectors.population(filters, form.sites)
    cases = selectors.case_figures(filters, population)
    incidents = selectors.incidents_per_month(filters)
    # Counts of specific needs are shown to those who may see persons' needs.
    needs = selectors.specific_needs(filters) if user.has_perm("cases.view_specific_needs") else None
    context = {
        "form": form,
        "filters": filters,
        "headline": population.headline,
        "sites": population.sites,
        "offers": offer_list(),
        "status_counts": cases.pipeline,
        "departures": departures,
        "interviews": interviews,
        "aging": cases.aging,
        "aging_buckets": [label for label, _low, _high in selectors.AGING_BUCKETS],
        "population": population.by_sex,
        "age_bands": [label for label, _low, _high in selectors.AGE_BANDS],
        "needs": needs,
        "incidents": incidents,
        "outcomes": InterviewOutcome.choices,
        "incident_kinds": IncidentKind.choices,
        "incident_effects": IncidentEffect.choices,
        "charts": {
            "pipeline": charts.pipeline(cases.pipeline),
            "departures": charts.departures(departures),
            "relocated": charts.relocated_cumulative(departures),
            "interviews": charts.interviews(interviews),
            "aging": charts.aging(cases.aging),
            "population": charts.sex_and_age(population.by_sex),
            "needs": charts.needs(needs) if needs is not None else "",
            "incidents": charts.incidents(incidents),
        },
        "exports": EXPORTS.values(),
        "export_query": urlencode(form.export_query()),
        "can_export_sensitive": user.has_perm("cases.view_specific_needs"),
    }
    return render(request, "reports/dashboard.html", context)


@require_GET  # not HEAD: every request writes a file and a log row
@permission_required("reports.export_data", raise_exception=True)
def export(request: HttpRequest, list_name: str, fmt: str) -> HttpResponse | StreamingHttpResponse:
    """One list as CSV or XLSX, with the filters of its page; sensitive columns only when
    asked for (?sensitive=1) by a user who may see specific needs. Every export is logged."""
    export_list = EXPORTS.get(list_name)
    if export_list is None or fmt not in ExportFormat.values:
        raise Http404
    user: Any = request.user
    sensitive = request.GET.get("sensitive") == "1" and user.has_perm("cases.view_specific_needs")
    try:
        rows = export_rows(export_list, request.GET, sensitive=sensitive, sites=sites_of(user))
    except InvalidFilters as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    columns = export_list.columns_for(sensitive=sensitive)
    log = export_log_start(actor=user, list_name=list_name, fmt=fmt, filters=request.GET, sensitive=sensitive)
    filename = f"{list_name}-{timezone.localdate():%Y-%m-%d}.{fmt}"
    response: HttpResponse | StreamingHttpResponse
    if fmt == ExportFormat.CSV:
        response = StreamingHttpResponse(
            csv_stream(rows, columns, on_done=lambda count: export_log_finish(log, rows=count)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    else:
        handle, count = xlsx_file(str(export_list.title), rows, columns)
        export_log_finish(log, rows=count)
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=filename,
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    # Personal data: no copy in a shared cache.
    response["Cache-Control"] = "no-store"
    return response
