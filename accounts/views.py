from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from cases.scope import sites_of
from cases.selectors import case_status_counts, worklist
from reports import figures


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """The landing page after login: where the cases stand, and where to go next."""
    context: dict[str, Any] = {}
    if request.user.has_perm("cases.view_case"):
        sites = sites_of(request.user)
        # On PostgreSQL from the dashboard's summary tables: counting a million persons' cases
        # took over a second.
        counts = figures.case_status_counts if figures.enabled() else case_status_counts
        context["status_counts"] = counts(sites)
        context["worklist"] = worklist(request.user, sites)
    return render(request, "accounts/home.html", context)


@login_not_required
@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """200 when the database answers, 503 when it does not (for load balancers)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
