from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Paginator
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from cases import scope
from cases.models import Case
from cases.workflow import TransitionRefused
from offers import services
from offers.forms import (
    ChecklistForm,
    ConsentForm,
    DecisionForm,
    DeparturePlanForm,
    NominateForm,
    OfferForm,
    ReasonForm,
    SearchForm,
)
from offers.models import Departure, Nomination, Offer, OfferStatus
from offers.selectors import (
    allocation_proposal,
    departure_manifest,
    eligible_cases,
    offer_accepted_nominations,
    offer_allocation_decisions,
    offer_departures,
    offer_nominations,
)
from offers.selectors import (
    departure_detail as select_departure,
)
from offers.selectors import (
    offer_detail as select_offer,
)
from offers.selectors import offer_list as select_offers

ELIGIBLE_PAGE_SIZE = 25
# What a refused action raises: the offers rules, or the case workflow underneath them.
REFUSED = (services.OfferError, TransitionRefused)


def _or_404[T](select: Callable[[int], T], pk: int) -> T:
    try:
        return select(pk)
    except ObjectDoesNotExist as exc:
        raise Http404 from exc


def _form_errors(request: HttpRequest, form: Form) -> None:
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, str(error))


def _offer_url(offer_id: int, *, anchor: str = "", query: dict[str, Any] | None = None) -> str:
    url = reverse("offers:detail", args=[offer_id])
    if query:
        url += "?" + urlencode(query)
    return url + (f"#{anchor}" if anchor else "")


@require_safe
@permission_required("offers.view_offer", raise_exception=True)
def offer_list(request: HttpRequest) -> HttpResponse:
    return render(request, "offers/offer_list.html", {"offers": select_offers()})


@require_safe
@permission_required("offers.view_offer", raise_exception=True)
def offer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    offer = _or_404(select_offer, pk)
    sites = scope.sites_of(request.user)
    context: dict[str, Any] = {
        "offer": offer,
        "nominations": offer_nominations(offer, sites),
        "departures": offer_departures(offer, sites),
    }
    if request.user.has_perm("offers.view_allocationdecision"):
        context["decisions"] = offer_allocation_decisions(offer, sites)
    if offer.status == OfferStatus.OPEN and request.user.has_perm("offers.add_nomination"):
        search = SearchForm(request.GET)
        q = search.cleaned_data["q"] if search.is_valid() else ""
        page = Paginator(eligible_cases(case_no=q, sites=sites), ELIGIBLE_PAGE_SIZE).get_page(request.GET.get("page"))
        context.update(can_nominate=True, search=search, q=q, eligible=page, query=urlencode({"q": q}) if q else "")
    return render(request, "offers/offer_detail.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required("offers.add_offer", raise_exception=True)
def offer_create(request: HttpRequest) -> HttpResponse:
    form = OfferForm(request.POST or None)
    if form.is_valid():
        try:
            offer = services.offer_create(actor=request.user, fields=form.cleaned_data)
        except services.OfferError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Offer %(offer)s created.") % {"offer": offer.reference})
            return redirect("offers:detail", pk=offer.pk)
    return render(request, "offers/offer_form.html", {"form": form, "offer": None})


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required("offers.change_offer", raise_exception=True)
def offer_edit(request: HttpRequest, pk: int) -> HttpResponse:
    offer = _or_404(select_offer, pk)
    form = OfferForm(request.POST or None, instance=offer)
    if form.is_valid():
        try:
            services.offer_update(offer, actor=request.user, changes=form.changes())
        except services.OfferError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Offer %(offer)s saved.") % {"offer": offer.reference})
            return redirect("offers:detail", pk=offer.pk)
    return render(request, "offers/offer_form.html", {"form": form, "offer": offer})


@permission_required("offers.add_nomination", raise_exception=True)
@require_POST
def offer_nominate(request: HttpRequest, pk: int) -> HttpResponse:
    offer = _or_404(select_offer, pk)
    form = NominateForm(request.POST, sites=scope.sites_of(request.user))
    if not form.is_valid():
        _form_errors(request, form)
    else:
        nominated, refused = services.offer_nominate_many(offer, form.cleaned_data["cases"], actor=request.user)
        if nominated:
            messages.success(
                request,
                ngettext(
                    "%(n)d case nominated: %(cases)s.",
                    "%(n)d cases nominated: %(cases)s.",
                    len(nominated),
                )
                % {"n": len(nominated), "cases": ", ".join(str(n.case) for n in nominated)},
            )
        for case, reason in refused:
            messages.error(request, _("%(case)s was not nominated: %(reason)s") % {"case": case, "reason": reason})
    q = request.POST.get("q", "").strip()
    return redirect(_offer_url(offer.pk, anchor="nominate", query={"q": q} if q else None))


def _on_nomination(
    request: HttpRequest, pk: int, form_class: type[Form], act: Callable[[Nomination, dict[str, Any]], str]
) -> HttpResponse:
    """Validate the form, run one nominations service through `act`, say what happened
    (the service's refusal, or `act`'s message) and go back to the nomination."""
    nomination = scope.get_or_404(request, Nomination.objects.select_related("case"), "case__site", pk=pk)
    form = form_class(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
    else:
        try:
            done = act(nomination, form.cleaned_data)
        except REFUSED as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, done)
    return redirect(_offer_url(nomination.offer_id, anchor=f"nomination-{nomination.pk}"))


@permission_required("offers.change_nomination", raise_exception=True)
@require_POST
def nomination_decision(request: HttpRequest, pk: int) -> HttpResponse:
    def act(nomination: Nomination, data: dict[str, Any]) -> str:
        accepted = data["decision"] == "accepted"
        services.nomination_record_decision(
            nomination, actor=request.user, accepted=accepted, reason=data["reason"], decided_on=data["decided_on"]
        )
        text = _("The country accepted %(case)s.") if accepted else _("The country rejected %(case)s.")
        return text % {"case": nomination.case}

    return _on_nomination(request, pk, DecisionForm, act)


@permission_required("offers.change_nomination", raise_exception=True)
@require_POST
def nomination_consent(request: HttpRequest, pk: int) -> HttpResponse:
    def act(nomination: Nomination, data: dict[str, Any]) -> str:
        consents = data["answer"] == "consents"
        services.nomination_record_consent(nomination, actor=request.user, consents=consents, reason=data["reason"])
        text = _("Case %(case)s consents.") if consents else _("Case %(case)s declines.")
        return text % {"case": nomination.case}

    return _on_nomination(request, pk, ConsentForm, act)


@permission_required("offers.change_nomination", raise_exception=True)
@require_POST
def nomination_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    def act(nomination: Nomination, data: dict[str, Any]) -> str:
        services.nomination_withdraw(nomination, actor=request.user, reason=data["reason"])
        return _("Case %(case)s withdrawn from the offer.") % {"case": nomination.case}

    return _on_nomination(request, pk, ReasonForm, act)


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required("offers.add_departure", raise_exception=True)
def departure_plan(request: HttpRequest, pk: int) -> HttpResponse:
    offer = _or_404(select_offer, pk)
    accepted = offer_accepted_nominations(offer, scope.sites_of(request.user))
    form = DeparturePlanForm(request.POST or None, nominations=accepted)
    if form.is_valid():
        try:
            departure = services.departure_plan(
                offer,
                actor=request.user,
                planned_date=form.cleaned_data["planned_date"],
                route=form.cleaned_data["route"],
                nominations=form.cleaned_data["nominations"],
            )
        except REFUSED as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Departure planned for %(date)s.") % {"date": departure.planned_date})
            return redirect("offers:departure", pk=departure.pk)
    return render(request, "offers/departure_plan.html", {"offer": offer, "form": form})


def _departure_or_404(request: HttpRequest, pk: int) -> Departure:
    """The departure, if wholly at the user's sites; else 404, logged when it exists."""
    try:
        return select_departure(pk, scope.sites_of(request.user))
    except Departure.DoesNotExist:
        raise scope.refuse(request, Departure.objects, pk=pk) from None


def _departure_context(departure: Departure) -> dict[str, Any]:
    manifest = list(departure_manifest(departure))
    ready = sum(entry.is_ready for entry in manifest)
    return {
        "departure": departure,
        "manifest": manifest,
        "cases": len({entry.person.case_id for entry in manifest}),
        "ready": ready,
        "not_ready": len(manifest) - ready,
    }


@require_safe
@permission_required("offers.view_departure", raise_exception=True)
def departure_detail(request: HttpRequest, pk: int) -> HttpResponse:
    departure = _departure_or_404(request, pk)
    return render(request, "offers/departure_detail.html", _departure_context(departure))


@require_safe
@permission_required("offers.view_departure", raise_exception=True)
def departure_manifest_print(request: HttpRequest, pk: int) -> HttpResponse:
    departure = _departure_or_404(request, pk)
    return render(request, "offers/departure_manifest.html", _departure_context(departure))


@permission_required("offers.change_departureperson", raise_exception=True)
@require_POST
def departure_checklist(request: HttpRequest, pk: int) -> HttpResponse:
    departure = _departure_or_404(request, pk)
    form = ChecklistForm(request.POST, entries=departure_manifest(departure))
    if not form.is_valid():
        _form_errors(request, form)
    else:
        try:
            changed = services.departure_checklist_update(departure, actor=request.user, checked=form.checked())
        except REFUSED as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                ngettext("Checklist saved: %(n)d person changed.", "Checklist saved: %(n)d persons changed.", changed)
                % {"n": changed},
            )
    return redirect("offers:departure", pk=departure.pk)


@permission_required("offers.change_departure", raise_exception=True)
@require_POST
def departure_depart(request: HttpRequest, pk: int) -> HttpResponse:
    departure = _departure_or_404(request, pk)
    try:
        services.departure_mark_departed(departure, actor=request.user)
    except REFUSED as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Departed: its cases and persons are now relocated."))
    return redirect("offers:departure", pk=departure.pk)


@permission_required("offers.change_departure", raise_exception=True)
@require_POST
def departure_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    departure = _departure_or_404(request, pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
    else:
        try:
            services.departure_cancel(departure, actor=request.user, reason=form.cleaned_data["reason"])
        except REFUSED as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("Departure cancelled: its cases are accepted again, ready for another."))
    return redirect("offers:departure", pk=departure.pk)


@require_safe
@permission_required("offers.add_nomination", raise_exception=True)
def allocation(request: HttpRequest, pk: int) -> HttpResponse:
    """The optimal proposal for the offer's places left, for a supervisor to accept in whole or part."""
    offer = get_object_or_404(Offer, pk=pk)
    proposal = allocation_proposal(offer, scope.sites_of(request.user))
    return render(
        request,
        "offers/allocation.html",
        {"offer": offer, "proposal": proposal, "is_open": offer.status == OfferStatus.OPEN},
    )


@permission_required("offers.add_nomination", raise_exception=True)
@require_POST
def allocation_accept(request: HttpRequest, pk: int) -> HttpResponse:
    """Nominate the proposed cases the supervisor kept; record what was overridden.

    The proposal is worked out again here rather than trusted from the form, so the
    record shows what the engine proposed at the moment of the decision.
    """
    offer = get_object_or_404(Offer, pk=pk)
    proposal = allocation_proposal(offer, scope.sites_of(request.user))
    kept = {value for value in request.POST.getlist("cases") if value.isdigit()}
    proposed = list(Case.objects.in_bulk(proposal.case_ids).values())
    proposed.sort(key=lambda case: proposal.case_ids.index(case.pk))
    chosen = [case for case in proposed if str(case.pk) in kept]
    if not chosen:
        messages.error(request, _("Choose at least one proposed case to nominate."))
        return redirect("offers:allocation", pk=offer.pk)
    try:
        decision = services.allocation_accept(
            offer,
            actor=request.user,
            proposed=proposed,
            chosen=chosen,
            places_filled=proposal.places_filled,
            total_priority=proposal.total_priority,
        )
    except REFUSED as exc:
        messages.error(request, str(exc))
        return redirect("offers:allocation", pk=offer.pk)
    if decision.nominated:
        messages.success(
            request,
            ngettext(
                "%(n)d case nominated from the proposal.",
                "%(n)d cases nominated from the proposal.",
                len(decision.nominated),
            )
            % {"n": len(decision.nominated)},
        )
    if decision.overridden:
        messages.info(
            request,
            _("Left out of the proposal by you: %(cases)s.") % {"cases": ", ".join(decision.overridden)},
        )
    for refused in decision.refused:
        messages.error(request, _("%(case)s was not nominated: %(reason)s") % refused)
    return redirect(_offer_url(offer.pk, anchor="nominations"))
