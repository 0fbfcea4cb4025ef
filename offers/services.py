"""Nominations and departures: they drive the case through the workflow service."""

import datetime
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history

from cases.models import Case, CaseStatus, Person, ResidenceStatus
from cases.services import User, case_status_changed, case_transition, person_gone
from cases.workflow import TransitionRefused
from offers.models import (
    LIVE_NOMINATION_STATUSES,
    AllocationDecision,
    Consent,
    CountryDecision,
    Departure,
    DeparturePerson,
    DepartureStatus,
    Nomination,
    NominationStatus,
    Offer,
    OfferStatus,
)


class OfferError(Exception):
    """An offers action that cannot be done; the message says why."""


def _require(actor: User, permission: str) -> None:
    if not (actor.is_active and actor.has_perm(permission)):
        raise OfferError(_("You are not allowed to do this."))


def _travelling_members(case: Case) -> list[Person]:
    # The deceased, missing and those who left do not take a place or travel.
    return list(case.members.filter(residence_status=ResidenceStatus.PRESENT).order_by("pk"))


def offer_places_taken(offer: Offer) -> int:
    """Persons held by the offer's live nominations."""
    taken = offer.nominations.filter(status__in=LIVE_NOMINATION_STATUSES).aggregate(n=Sum("persons"))
    return taken["n"] or 0


def offer_nominate(offer: Offer, case: Case, *, actor: User, reason: str = "") -> Nomination:
    """Put an eligible case forward to an offer, within the offer's places.

    The offer row is locked first: two nominations to the same offer at the same
    moment run one after the other, and the second sees the first's persons.
    """
    _require(actor, "offers.add_nomination")
    with transaction.atomic():
        locked_offer = Offer.objects.select_for_update().get(pk=offer.pk)
        locked_case = Case.objects.select_for_update().get(pk=case.pk)
        if locked_offer.status != OfferStatus.OPEN:
            raise OfferError(_("This offer is not open for nominations."))
        if locked_case.nominations.filter(status__in=LIVE_NOMINATION_STATUSES).exists():
            raise OfferError(_("Case %(case)s already has a live nomination.") % {"case": locked_case})
        if locked_case.status != CaseStatus.ELIGIBLE:
            raise OfferError(
                _("Case %(case)s is %(status)s; only eligible cases can be nominated.")
                % {"case": locked_case, "status": locked_case.get_status_display()}
            )
        persons = len(_travelling_members(locked_case))
        if persons == 0:
            raise OfferError(_("Case %(case)s has no member present to travel.") % {"case": locked_case})
        left = locked_offer.places - offer_places_taken(locked_offer)
        if persons > left:
            raise OfferError(
                _("Case %(case)s has %(persons)d persons but the offer has only %(left)d places left.")
                % {"case": locked_case, "persons": persons, "left": left}
            )
        nomination = Nomination.objects.create(
            offer=locked_offer, case=locked_case, persons=persons, nominated_by=actor
        )
        case_transition(
            locked_case,
            to=CaseStatus.NOMINATED,
            actor=actor,
            reason=reason or _("Nominated to offer %(offer)s.") % {"offer": locked_offer.reference},
            by_nomination=True,
        )
    case.status = locked_case.status
    return nomination


def _close_nomination(nomination: Nomination, *, status: str, actor: User, reason: str) -> None:
    nomination.status = status
    nomination._change_reason = reason  # type: ignore[attr-defined]
    nomination.save()
    case = nomination.case
    if case.status in (CaseStatus.NOMINATED, CaseStatus.ACCEPTED):
        case_transition(case, to=CaseStatus.ELIGIBLE, actor=actor, reason=reason, by_nomination=True)
    elif case.status == CaseStatus.ON_HOLD and case.status_before_hold in (CaseStatus.NOMINATED, CaseStatus.ACCEPTED):
        # Released from hold, it goes back to the pool, not to a nomination that is gone.
        case.status_before_hold = CaseStatus.ELIGIBLE
        case._change_reason = reason  # type: ignore[attr-defined]
        case.save(update_fields=["status_before_hold", "updated_at"])


def _locked_nomination(nomination: Nomination) -> Nomination:
    locked = Nomination.objects.select_for_update().select_related("case", "offer").get(pk=nomination.pk)
    if locked.status not in (NominationStatus.NOMINATED, NominationStatus.ACCEPTED):
        raise OfferError(
            _("This nomination is %(status)s and can no longer be decided.") % {"status": locked.get_status_display()}
        )
    return locked


def _accept_when_agreed(nomination: Nomination, *, actor: User, reason: str) -> None:
    if (
        nomination.country_decision == CountryDecision.ACCEPTED
        and nomination.consent == Consent.CONSENTED
        and nomination.status == NominationStatus.NOMINATED
    ):
        nomination.status = NominationStatus.ACCEPTED
        nomination.save()
        case_transition(nomination.case, to=CaseStatus.ACCEPTED, actor=actor, reason=reason, by_nomination=True)


def nomination_record_decision(
    nomination: Nomination,
    *,
    actor: User,
    accepted: bool,
    reason: str = "",
    decided_on: datetime.date | None = None,
) -> Nomination:
    """The country's decision. A rejection sends the case back to the pool."""
    _require(actor, "offers.change_nomination")
    with transaction.atomic():
        locked = _locked_nomination(nomination)
        if locked.country_decision != CountryDecision.PENDING:
            raise OfferError(_("The country's decision is already recorded."))
        locked.country_decision = CountryDecision.ACCEPTED if accepted else CountryDecision.REJECTED
        locked.decision_date = decided_on or timezone.localdate()
        locked.decision_reason = reason
        if accepted:
            locked.save()
            _accept_when_agreed(locked, actor=actor, reason=reason or _("Accepted by the country; the case consents."))
        else:
            _close_nomination(
                locked,
                status=NominationStatus.REJECTED,
                actor=actor,
                reason=reason or _("Rejected by the country."),
            )
    return locked


def nomination_record_consent(nomination: Nomination, *, actor: User, consents: bool, reason: str = "") -> Nomination:
    """The case's answer. A decline sends the case back to the pool."""
    _require(actor, "offers.change_nomination")
    with transaction.atomic():
        locked = _locked_nomination(nomination)
        if locked.consent != Consent.PENDING:
            raise OfferError(_("The case's answer is already recorded."))
        locked.consent = Consent.CONSENTED if consents else Consent.DECLINED
        if consents:
            locked.save()
            _accept_when_agreed(locked, actor=actor, reason=reason or _("The case consents; accepted by the country."))
        else:
            _close_nomination(
                locked,
                status=NominationStatus.DECLINED,
                actor=actor,
                reason=reason or _("Declined by the case."),
            )
    return locked


def nomination_withdraw(nomination: Nomination, *, actor: User, reason: str) -> Nomination:
    """Take a case off an offer before departure; it goes back to the pool."""
    _require(actor, "offers.change_nomination")
    if not reason.strip():
        raise OfferError(_("Give a reason for the withdrawal."))
    with transaction.atomic():
        locked = _locked_nomination(nomination)
        _close_nomination(locked, status=NominationStatus.WITHDRAWN, actor=actor, reason=reason)
    return locked


def departure_plan(
    offer: Offer,
    *,
    actor: User,
    planned_date: datetime.date,
    route: str,
    nominations: Iterable[Nomination],
) -> Departure:
    """Plan a departure for accepted cases; their present members form the manifest."""
    _require(actor, "offers.add_departure")
    with transaction.atomic():
        # Locked like offer_nominate locks it: a household that grew takes places anew.
        locked_offer = Offer.objects.select_for_update().get(pk=offer.pk)
        departure = Departure.objects.create(offer=locked_offer, planned_date=planned_date, route=route)
        ids = [n.pk for n in nominations]
        locked = list(Nomination.objects.select_for_update().select_related("case").filter(pk__in=ids).order_by("pk"))
        if not locked:
            raise OfferError(_("Choose at least one accepted case."))
        for nomination in locked:
            if nomination.offer_id != offer.pk or nomination.status != NominationStatus.ACCEPTED:
                raise OfferError(_("Case %(case)s is not accepted on this offer.") % {"case": nomination.case})
            travelling = _travelling_members(nomination.case)
            if not travelling:
                raise OfferError(_("Case %(case)s has no member present to travel.") % {"case": nomination.case})
            if len(travelling) != nomination.persons:
                _hold_places(locked_offer, nomination, len(travelling))
            nomination.status = NominationStatus.DEPARTURE_SCHEDULED
            nomination.departure = departure
            nomination.save()
            bulk_create_with_history(
                [DeparturePerson(departure=departure, person=p) for p in travelling],
                DeparturePerson,
                default_user=actor,
            )
            case_transition(
                nomination.case,
                to=CaseStatus.DEPARTURE_SCHEDULED,
                actor=actor,
                reason=_("Departure planned for %(date)s.") % {"date": planned_date.isoformat()},
                by_nomination=True,
            )
    return departure


def _hold_places(offer: Offer, nomination: Nomination, persons: int) -> None:
    """The nomination now holds `persons` places (its case's members present changed
    since it was made), within the offer's places; the offer is locked by the caller."""
    left = offer.places - offer_places_taken(offer) + nomination.persons
    if persons > left:
        raise OfferError(
            _(
                "Case %(case)s now has %(persons)d persons present (%(nominated)d when nominated) but the offer"
                " has only %(left)d places for it."
            )
            % {"case": nomination.case, "persons": persons, "nominated": nomination.persons, "left": left}
        )
    nomination.persons = persons


def departure_mark_departed(departure: Departure, *, actor: User) -> Departure:
    """Relocate the departure's cases and persons, all or nothing."""
    _require(actor, "offers.change_departure")
    with transaction.atomic():
        locked = Departure.objects.select_for_update().get(pk=departure.pk)
        if locked.status != DepartureStatus.PLANNED:
            raise OfferError(_("Only a planned departure can be marked departed."))
        # The persons first, as an incident takes them (then their nomination, then their
        # case): the two never wait for each other in opposite orders, and the list and
        # statuses read below are those after any incident being recorded meanwhile.
        on_list = locked.manifest.values_list("person_id", flat=True)
        list(Person.objects.select_for_update().filter(pk__in=on_list).order_by("pk").values_list("pk", flat=True))
        scheduled = list(locked.nominations.select_related("case").filter(status=NominationStatus.DEPARTURE_SCHEDULED))
        # Only the persons of the cases still scheduled travel (a case closed since is off).
        cases = {nomination.case_id for nomination in scheduled}
        manifest = [entry for entry in locked.manifest.select_related("person") if entry.person.case_id in cases]
        gone = [entry.person for entry in manifest if entry.person.residence_status != ResidenceStatus.PRESENT]
        if gone:
            raise OfferError(
                _(
                    "No longer present, so not travelling: %(names)s. Cancel this departure and plan it again"
                    " without them."
                )
                % {"names": ", ".join(f"{p} ({p.get_residence_status_display()})" for p in gone)}
            )
        not_ready = [entry.person for entry in manifest if not entry.is_ready]
        if not_ready:
            raise OfferError(
                _("The readiness checklist is incomplete for: %(names)s.")
                % {"names": ", ".join(str(p) for p in not_ready)}
            )
        reason = _("Departed on %(route)s.") % {"route": locked.route or locked.planned_date.isoformat()}
        for nomination in scheduled:
            nomination.status = NominationStatus.RELOCATED
            nomination.save()
            case_transition(nomination.case, to=CaseStatus.RELOCATED, actor=actor, reason=reason, by_nomination=True)
        for entry in manifest:
            entry.person.residence_status = ResidenceStatus.RELOCATED
            # A new version: an edit form opened before the departure is refused, not
            # saved over it (with the person present again).
            entry.person.version += 1
            entry.person._change_reason = reason  # type: ignore[attr-defined]
            entry.person.save(update_fields=["residence_status", "version", "updated_at"])
        locked.status = DepartureStatus.DEPARTED
        locked.departed_at = timezone.now()
        locked.save()
    return locked


@receiver(case_status_changed)
def _withdraw_nomination_of_closed_case(
    sender: Any, case: Case, change: Any, by_nomination: bool, **kwargs: Any
) -> None:
    """A case closed by hand gives its places back to the offer, and its persons are
    off the departure planned for them."""
    if change.to_status != CaseStatus.CLOSED:
        return
    live = Nomination.objects.select_related("offer").filter(case=case, status__in=LIVE_NOMINATION_STATUSES)
    for nomination in live.exclude(status=NominationStatus.RELOCATED):
        if not change.actor.has_perm("offers.change_nomination"):
            # Staff move cases up to a nomination (DESIGN.md); taking one off an offer is
            # a Supervisor's. Raised inside case_transition's transaction: nothing is kept.
            raise TransitionRefused(
                _(
                    "Case %(case)s is on offer %(offer)s (%(status)s): taking it off the offer is for a"
                    " Supervisor. Ask one to withdraw the nomination or to close the case."
                )
                % {"case": case, "offer": nomination.offer.reference, "status": nomination.get_status_display()}
            )
        if nomination.departure_id is not None:
            _off_departure(
                DeparturePerson.objects.filter(departure_id=nomination.departure_id, person__case=case), change.reason
            )
            nomination.departure = None
        nomination.status = NominationStatus.WITHDRAWN
        nomination._change_reason = change.reason  # type: ignore[attr-defined]
        nomination.save()


def _off_departure(entries: Iterable[DeparturePerson], reason: str) -> None:
    """Take persons off a departure's list (each with its history row)."""
    for entry in entries:
        entry._change_reason = reason  # type: ignore[attr-defined]
        entry.delete()


@receiver(person_gone)
def _person_gone_stays(sender: Any, person: Person, reason: str, **kwargs: Any) -> None:
    """A person deceased or missing does not travel: off any planned departure, and
    their case's live nomination holds a place less."""
    _off_departure(DeparturePerson.objects.filter(person=person, departure__status=DepartureStatus.PLANNED), reason)
    present = len(_travelling_members(person.case))
    for nomination in Nomination.objects.filter(
        case_id=person.case_id, status__in=LIVE_NOMINATION_STATUSES, persons__gt=present
    ).exclude(status=NominationStatus.RELOCATED):
        nomination.persons = present
        nomination._change_reason = reason  # type: ignore[attr-defined]
        nomination.save(update_fields=["persons"])


def _offer_write(offer: Offer, fields: Mapping[str, Any], *, actor: User, reason: str) -> Offer:
    plain = {name: value for name, value in fields.items() if not Offer._meta.get_field(name).many_to_many}
    for name, value in plain.items():
        setattr(offer, name, value)
    offer._history_user = actor  # type: ignore[attr-defined]
    offer._change_reason = reason  # type: ignore[attr-defined]
    offer.save()
    for name, value in fields.items():
        if name not in plain:
            getattr(offer, name).set(value)
    return offer


def offer_create(*, actor: User, fields: Mapping[str, Any]) -> Offer:
    """A new offer from a country."""
    _require(actor, "offers.add_offer")
    with transaction.atomic():
        return _offer_write(Offer(), fields, actor=actor, reason=_("Offer created."))


def offer_update(offer: Offer, *, actor: User, changes: Mapping[str, Any]) -> Offer:
    """Change an offer; its places never fall below the persons its live nominations hold."""
    _require(actor, "offers.change_offer")
    with transaction.atomic():
        # Locked like offer_nominate locks it: a nomination cannot slip in while the places shrink.
        locked = Offer.objects.select_for_update().get(pk=offer.pk)
        places = changes.get("places", locked.places)
        taken = offer_places_taken(locked)
        if places < taken:
            raise OfferError(
                _("The offer's live nominations hold %(taken)d persons; its places cannot be fewer.") % {"taken": taken}
            )
        return _offer_write(locked, changes, actor=actor, reason=_("Offer changed."))


def offer_nominate_many(
    offer: Offer, cases: Iterable[Case], *, actor: User
) -> tuple[list[Nomination], list[tuple[Case, str]]]:
    """Nominate each case in turn, each in its own transaction: the ones that fit go through,
    the others come back with the reason they were refused."""
    nominated: list[Nomination] = []
    refused: list[tuple[Case, str]] = []
    for case in cases:
        try:
            nominated.append(offer_nominate(offer, case, actor=actor))
        except (OfferError, TransitionRefused) as exc:
            refused.append((case, str(exc)))
    return nominated, refused


CHECKLIST_FIELDS = ("travel_document", "medical_clearance", "exit_permission")


def departure_checklist_update(departure: Departure, *, actor: User, checked: Mapping[str, Collection[int]]) -> int:
    """Set the readiness checklist of a planned departure's manifest.

    `checked` maps each checklist field to the manifest entries (DeparturePerson ids)
    ticked for it; entries not listed are unticked. Returns how many entries changed.
    """
    _require(actor, "offers.change_departureperson")
    with transaction.atomic():
        # Locked like departure_mark_departed locks it: the checklist does not change under a departure.
        locked = Departure.objects.select_for_update().get(pk=departure.pk)
        if locked.status != DepartureStatus.PLANNED:
            raise OfferError(_("Only a planned departure's checklist can be changed."))
        changed = 0
        for entry in locked.manifest.order_by("pk"):
            values = {name: entry.pk in checked.get(name, ()) for name in CHECKLIST_FIELDS}
            if all(getattr(entry, name) == value for name, value in values.items()):
                continue
            for name, value in values.items():
                setattr(entry, name, value)
            entry._history_user = actor  # type: ignore[attr-defined]
            entry.save(update_fields=list(CHECKLIST_FIELDS))
            changed += 1
    return changed


def departure_cancel(departure: Departure, *, actor: User, reason: str) -> Departure:
    """Call off a planned departure: its cases go back to accepted, ready for another one."""
    _require(actor, "offers.change_departure")
    if not reason.strip():
        raise OfferError(_("Give a reason for the cancellation."))
    with transaction.atomic():
        locked = Departure.objects.select_for_update().get(pk=departure.pk)
        if locked.status != DepartureStatus.PLANNED:
            raise OfferError(_("Only a planned departure can be cancelled."))
        for nomination in locked.nominations.select_related("case").filter(status=NominationStatus.DEPARTURE_SCHEDULED):
            nomination.status = NominationStatus.ACCEPTED
            nomination.departure = None
            nomination._change_reason = reason  # type: ignore[attr-defined]
            nomination.save()
            case_transition(nomination.case, to=CaseStatus.ACCEPTED, actor=actor, reason=reason, by_nomination=True)
        locked.status = DepartureStatus.CANCELLED
        locked._change_reason = reason  # type: ignore[attr-defined]
        locked.save()
    return locked


def allocation_accept(
    offer: Offer,
    *,
    actor: User,
    proposed: list[Case],
    chosen: list[Case],
    places_filled: int,
    total_priority: int,
) -> AllocationDecision:
    """Nominate the cases a supervisor kept from a proposal, and record the decision:
    what was proposed, what was nominated, what was overridden and what was refused."""
    _require(actor, "offers.add_nomination")
    nominated, refused = [], []
    for case in chosen:
        try:
            offer_nominate(offer, case, actor=actor, reason=_("Nominated from an allocation proposal."))
            nominated.append(case.case_no)
        except OfferError as exc:
            refused.append({"case": case.case_no, "reason": str(exc)})
    chosen_nos = {c.case_no for c in chosen}
    return AllocationDecision.objects.create(
        offer=offer,
        actor=actor,
        proposed=[c.case_no for c in proposed],
        nominated=nominated,
        overridden=[c.case_no for c in proposed if c.case_no not in chosen_nos],
        refused=refused,
        places_filled=places_filled,
        total_priority=total_priority,
    )
