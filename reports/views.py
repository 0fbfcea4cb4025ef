from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from cases.selectors import case_status_counts
from offers.selectors import offer_list
from reports import selectors


@require_safe
@permission_required("reports.view_dashboard", raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "reports/dashboard.html",
        {
            "headline": selectors.headline(),
            "sites": selectors.persons_per_site(),
            "offers": offer_list(),
            "status_counts": case_status_counts(),
        },
    )
