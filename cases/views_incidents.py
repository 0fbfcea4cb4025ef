"""Incident pages: the list, one incident, and recording a new one."""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from cases import scope
from cases.forms import IncidentForm
from cases.models import Incident
from cases.selectors import incident_detail as select_incident_detail
from cases.selectors import incident_list as select_incidents
from cases.services import incident_record

PAGE_SIZE = 50


@require_safe
@permission_required("cases.view_incident", raise_exception=True)
def incident_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(select_incidents(scope.sites_of(request.user)), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "cases/incident_list.html", {"page": page})


@require_safe
@permission_required("cases.view_incident", raise_exception=True)
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        incident = select_incident_detail(pk, scope.sites_of(request.user))
    except Incident.DoesNotExist:
        raise scope.refuse(request, Incident.objects, pk=pk) from None
    return render(request, "cases/incident_detail.html", {"incident": incident})


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required("cases.add_incident", raise_exception=True)
def incident_new(request: HttpRequest) -> HttpResponse:
    """Record an incident; with any unknown registration number nothing is recorded."""
    form = IncidentForm(request.POST if request.method == "POST" else None, sites=scope.sites_of(request.user))
    if not form.is_valid():
        return render(request, "cases/incident_form.html", {"form": form})
    incident = incident_record(
        actor=request.user,
        site=form.cleaned_data["site"],
        kind=form.cleaned_data["kind"],
        occurred_at=form.occurred_at(),
        summary=form.cleaned_data["summary"],
        description=form.cleaned_data["description"],
        affected=form.affected(),
    )
    messages.success(request, _("The incident is recorded."))
    return redirect("cases:incident_detail", pk=incident.pk)
