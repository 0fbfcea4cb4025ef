from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from offers.selectors import offer_list as select_offers


@require_safe
@permission_required("offers.view_offer", raise_exception=True)
def offer_list(request: HttpRequest) -> HttpResponse:
    return render(request, "offers/offer_list.html", {"offers": select_offers()})
