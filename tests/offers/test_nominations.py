import datetime
import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.roles import ADMINISTRATOR
from cases.models import CaseStatus, IncidentEffect, IncidentKind, Person, ResidenceStatus
from cases.services import case_transition, incident_record
from cases.workflow import TransitionRefused
from offers.models import DepartureStatus, Nomination, NominationStatus, Offer, OfferStatus
from offers.services import (
    OfferError,
    departure_mark_departed,
    departure_plan,
    nomination_record_consent,
    nomination_record_decision,
    nomination_withdraw,
    offer_nominate,
    offer_places_taken,
)
from tests.cases.test_import_admin import admin_form
from tests.factories import CaseFactory, OfferFactory, PersonFactory


def eligible_case(size: int = 2):
    return CaseFactory(status=CaseStatus.ELIGIBLE, size=size)


@pytest.mark.django_db
def test_nominating_an_eligible_case_holds_its_persons_on_the_offer(supervisor):
    offer = OfferFactory(places=10)
    case = eligible_case(size=3)
    nomination = offer_nominate(offer, case, actor=supervisor)
    case.refresh_from_db()
    assert case.status == CaseStatus.NOMINATED
    assert nomination.persons == 3
    assert offer_places_taken(offer) == 3


@pytest.mark.django_db
def test_a_case_that_is_not_eligible_cannot_be_nominated(supervisor):
    case = CaseFactory(status=CaseStatus.INTERVIEWED, size=2)
    with pytest.raises(OfferError, match="only eligible cases"):
        offer_nominate(OfferFactory(), case, actor=supervisor)
    assert not Nomination.objects.exists()


@pytest.mark.django_db
def test_a_case_has_at_most_one_live_nomination(supervisor):
    case = eligible_case()
    offer_nominate(OfferFactory(), case, actor=supervisor)
    # Even if its status were put back by hand, the live nomination stops a second one.
    case.status = CaseStatus.ELIGIBLE
    case.save()
    with pytest.raises(OfferError, match="already has a live nomination"):
        offer_nominate(OfferFactory(), case, actor=supervisor)


@pytest.mark.django_db
def test_a_nomination_beyond_the_places_left_is_refused(supervisor):
    offer = OfferFactory(places=4)
    offer_nominate(offer, eligible_case(size=3), actor=supervisor)
    late = eligible_case(size=2)
    with pytest.raises(OfferError, match="only 1 places left"):
        offer_nominate(offer, late, actor=supervisor)
    late.refresh_from_db()
    assert late.status == CaseStatus.ELIGIBLE
    assert offer_places_taken(offer) == 3


@pytest.mark.django_db
def test_the_deceased_do_not_take_a_place(supervisor):
    case = eligible_case(size=3)
    child = case.members.filter(relationship="child").order_by("pk").first()
    child.residence_status = ResidenceStatus.DECEASED
    child.save()
    assert offer_nominate(OfferFactory(), case, actor=supervisor).persons == 2


@pytest.mark.django_db
def test_a_closed_offer_takes_no_nomination(supervisor):
    with pytest.raises(OfferError, match="not open"):
        offer_nominate(OfferFactory(status=OfferStatus.CLOSED), eligible_case(), actor=supervisor)


@pytest.mark.django_db
def test_staff_cannot_nominate(staff):
    with pytest.raises(OfferError, match="not allowed"):
        offer_nominate(OfferFactory(), eligible_case(), actor=staff)


@pytest.fixture
def nominated(supervisor):
    case = eligible_case(size=2)
    return offer_nominate(OfferFactory(places=10), case, actor=supervisor)


@pytest.mark.django_db
def test_country_acceptance_and_consent_accept_the_case(nominated, supervisor):
    nomination_record_decision(nominated, actor=supervisor, accepted=True)
    nominated.case.refresh_from_db()
    assert nominated.case.status == CaseStatus.NOMINATED  # still waiting for the case's answer
    nomination_record_consent(nominated, actor=supervisor, consents=True)
    nominated.refresh_from_db()
    nominated.case.refresh_from_db()
    assert nominated.status == NominationStatus.ACCEPTED
    assert nominated.case.status == CaseStatus.ACCEPTED


@pytest.mark.django_db
def test_a_rejection_sends_the_case_back_to_the_pool_and_frees_the_places(nominated, supervisor):
    nomination_record_decision(nominated, actor=supervisor, accepted=False, reason="Quota for singles")
    nominated.refresh_from_db()
    nominated.case.refresh_from_db()
    assert nominated.status == NominationStatus.REJECTED
    assert nominated.case.status == CaseStatus.ELIGIBLE
    assert nominated.case.status_changes.first().reason == "Quota for singles"
    assert offer_places_taken(nominated.offer) == 0


@pytest.mark.django_db
def test_a_decline_by_the_case_sends_it_back_to_the_pool(nominated, supervisor):
    nomination_record_decision(nominated, actor=supervisor, accepted=True)
    nomination_record_consent(nominated, actor=supervisor, consents=False)
    nominated.case.refresh_from_db()
    assert nominated.case.status == CaseStatus.ELIGIBLE


@pytest.mark.django_db
def test_a_decision_cannot_be_recorded_twice(nominated, supervisor):
    nomination_record_decision(nominated, actor=supervisor, accepted=True)
    with pytest.raises(OfferError, match="already recorded"):
        nomination_record_decision(nominated, actor=supervisor, accepted=False)


@pytest.mark.django_db
def test_an_accepted_case_withdrawn_goes_back_to_eligible(nominated, supervisor):
    nomination_record_decision(nominated, actor=supervisor, accepted=True)
    nomination_record_consent(nominated, actor=supervisor, consents=True)
    nomination_withdraw(nominated, actor=supervisor, reason="Family reunification elsewhere")
    nominated.case.refresh_from_db()
    assert nominated.case.status == CaseStatus.ELIGIBLE


@pytest.mark.django_db
def test_closing_a_nominated_case_gives_its_places_back(nominated, supervisor):
    case_transition(nominated.case, to=CaseStatus.CLOSED, actor=supervisor, reason="Left the camp")
    nominated.refresh_from_db()
    assert nominated.status == NominationStatus.WITHDRAWN
    assert offer_places_taken(nominated.offer) == 0


@pytest.fixture
def accepted(nominated, supervisor):
    nomination_record_decision(nominated, actor=supervisor, accepted=True)
    nomination_record_consent(nominated, actor=supervisor, consents=True)
    return nominated


@pytest.fixture
def departure(accepted, supervisor):
    return departure_plan(
        accepted.offer,
        actor=supervisor,
        planned_date=datetime.date(2026, 12, 1),
        route="Flight XY 1",
        nominations=[accepted],
    )


@pytest.mark.django_db
def test_planning_a_departure_schedules_the_case_with_its_persons(departure, accepted):
    accepted.case.refresh_from_db()
    assert accepted.case.status == CaseStatus.DEPARTURE_SCHEDULED
    assert departure.manifest.count() == 2


@pytest.mark.django_db
def test_only_accepted_cases_can_go_on_a_departure(nominated, supervisor):
    with pytest.raises(OfferError, match="not accepted"):
        departure_plan(
            nominated.offer,
            actor=supervisor,
            planned_date=datetime.date(2026, 12, 1),
            route="",
            nominations=[nominated],
        )


@pytest.mark.django_db
def test_a_departure_with_an_incomplete_checklist_cannot_depart(departure, accepted, supervisor):
    departure.manifest.update(travel_document=True, medical_clearance=True)
    with pytest.raises(OfferError, match="checklist is incomplete"):
        departure_mark_departed(departure, actor=supervisor)
    accepted.case.refresh_from_db()
    assert accepted.case.status == CaseStatus.DEPARTURE_SCHEDULED


@pytest.mark.django_db
def test_a_person_relocated_by_a_departure_is_a_new_version_so_an_older_edit_is_refused(
    departure, accepted, supervisor
):
    departure.manifest.update(travel_document=True, medical_clearance=True, exit_permission=True)
    versions = dict(accepted.case.members.values_list("pk", "version"))

    departure_mark_departed(departure, actor=supervisor)

    after = dict(accepted.case.members.values_list("pk", "version"))
    assert after == {pk: version + 1 for pk, version in versions.items()}


@pytest.mark.django_db
def test_an_admin_form_opened_before_the_departure_is_refused_not_saved_over_it(
    departure, accepted, supervisor, client_for
):
    departure.manifest.update(travel_document=True, medical_clearance=True, exit_permission=True)
    person = accepted.case.members.first()
    client = client_for(ADMINISTRATOR)
    url = reverse("admin:cases_person_change", args=[person.pk])
    opened = admin_form(client, url, notes="Tent 9")  # shows the person present
    departure_mark_departed(departure, actor=supervisor)

    response = client.post(url, opened)

    assert response.status_code == 200
    assert "Someone else saved this record while you were editing it." in response.text
    person.refresh_from_db()
    assert (person.residence_status, person.notes) == (ResidenceStatus.RELOCATED, "")


@pytest.mark.django_db
def test_a_departure_marked_departed_relocates_its_cases_and_persons(departure, accepted, supervisor):
    departure.manifest.update(travel_document=True, medical_clearance=True, exit_permission=True)
    departure_mark_departed(departure, actor=supervisor)
    departure.refresh_from_db()
    accepted.refresh_from_db()
    accepted.case.refresh_from_db()
    assert departure.status == DepartureStatus.DEPARTED
    assert accepted.status == NominationStatus.RELOCATED
    assert accepted.case.status == CaseStatus.RELOCATED
    assert set(accepted.case.members.values_list("residence_status", flat=True)) == {ResidenceStatus.RELOCATED}
    # Relocated persons keep holding their places on the offer.
    assert offer_places_taken(accepted.offer) == 2


@pytest.mark.django_db
def test_a_failure_while_departing_leaves_nothing_half_done(departure, accepted, supervisor, monkeypatch):
    departure.manifest.update(travel_document=True, medical_clearance=True, exit_permission=True)
    from offers import services

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "case_transition", broken)
    with pytest.raises(RuntimeError):
        departure_mark_departed(departure, actor=supervisor)
    departure.refresh_from_db()
    accepted.refresh_from_db()
    assert departure.status == DepartureStatus.PLANNED
    assert accepted.status == NominationStatus.DEPARTURE_SCHEDULED
    assert not accepted.case.members.filter(residence_status=ResidenceStatus.RELOCATED).exists()


@pytest.mark.django_db
def test_staff_cannot_take_a_case_off_an_offer_by_closing_it(nominated, staff):
    with pytest.raises(TransitionRefused, match="taking it off the offer is for a Supervisor"):
        case_transition(nominated.case, to=CaseStatus.CLOSED, actor=staff, reason="Left the camp")
    nominated.refresh_from_db()
    nominated.case.refresh_from_db()
    assert (nominated.status, nominated.case.status) == (NominationStatus.NOMINATED, CaseStatus.NOMINATED)
    assert not nominated.case.status_changes.filter(to_status=CaseStatus.CLOSED).exists()


def _ready(departure):
    departure.manifest.update(travel_document=True, medical_clearance=True, exit_permission=True)


@pytest.mark.django_db
def test_a_case_closed_after_its_departure_was_planned_does_not_travel(supervisor):
    offer = OfferFactory(places=10)
    staying, going = eligible_case(size=2), eligible_case(size=3)
    nominations = []
    for case in (staying, going):
        nomination = offer_nominate(offer, case, actor=supervisor)
        nomination_record_decision(nomination, actor=supervisor, accepted=True)
        nomination_record_consent(nomination, actor=supervisor, consents=True)
        nominations.append(nomination)
    departure = departure_plan(
        offer, actor=supervisor, planned_date=datetime.date(2026, 12, 1), route="", nominations=nominations
    )
    _ready(departure)

    case_transition(staying, to=CaseStatus.CLOSED, actor=supervisor, reason="Moved away")

    assert departure.manifest.count() == 3
    nominations[0].refresh_from_db()
    assert (nominations[0].status, nominations[0].departure) == (NominationStatus.WITHDRAWN, None)
    departure_mark_departed(departure, actor=supervisor)
    assert set(staying.members.values_list("residence_status", flat=True)) == {ResidenceStatus.PRESENT}
    assert set(going.members.values_list("residence_status", flat=True)) == {ResidenceStatus.RELOCATED}
    assert offer_places_taken(offer) == 3


def _killed(person, staff):
    incident_record(
        actor=staff,
        site=person.site,
        kind=IncidentKind.ATTACK,
        occurred_at=timezone.now(),
        summary="Attack",
        affected=[(person, IncidentEffect.KILLED)],
    )


@pytest.mark.django_db
def test_a_person_killed_after_the_departure_was_planned_is_off_it_and_frees_a_place(
    departure, accepted, supervisor, staff
):
    _ready(departure)
    dead, alive = accepted.case.members.order_by("pk")

    _killed(dead, staff)

    assert list(departure.manifest.values_list("person", flat=True)) == [alive.pk]
    accepted.refresh_from_db()
    assert accepted.persons == offer_places_taken(accepted.offer) == 1
    departure_mark_departed(departure, actor=supervisor)
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.residence_status, alive.residence_status) == (ResidenceStatus.DECEASED, ResidenceStatus.RELOCATED)


@pytest.mark.django_db
def test_a_person_on_the_list_no_longer_present_stops_the_departure_with_what_to_do(departure, accepted, supervisor):
    _ready(departure)
    person = accepted.case.members.first()
    # An Administrator's correction in the admin, not an incident: still on the list.
    person.residence_status = ResidenceStatus.MISSING
    person.save()
    with pytest.raises(
        OfferError, match=r"No longer present, so not travelling: .*\(Missing\)\. Cancel this departure"
    ):
        departure_mark_departed(departure, actor=supervisor)
    person.refresh_from_db()
    assert person.residence_status == ResidenceStatus.MISSING
    departure.refresh_from_db()
    assert departure.status == DepartureStatus.PLANNED


@pytest.mark.django_db
def test_a_household_grown_since_its_nomination_takes_its_new_places_or_is_refused(supervisor):
    offer = OfferFactory(places=3)
    case = eligible_case(size=2)
    nomination = offer_nominate(offer, case, actor=supervisor)
    nomination_record_decision(nomination, actor=supervisor, accepted=True)
    nomination_record_consent(nomination, actor=supervisor, consents=True)
    plan = {"actor": supervisor, "planned_date": datetime.date(2026, 12, 1), "route": "", "nominations": [nomination]}
    PersonFactory(case=case, site=case.site, relationship="child")
    PersonFactory(case=case, site=case.site, relationship="child")

    # Four present now, three places: refused, nothing planned.
    with pytest.raises(OfferError, match="now has 4 persons present \\(2 when nominated\\) but the offer has only 3"):
        departure_plan(offer, **plan)
    assert not offer.departures.exists()
    nomination.refresh_from_db()
    assert (nomination.status, nomination.persons) == (NominationStatus.ACCEPTED, 2)

    # With a place more, the plan takes them all, and the nomination holds four.
    offer.places = 4
    offer.save()
    departure = departure_plan(offer, **plan)
    nomination.refresh_from_db()
    assert departure.manifest.count() == nomination.persons == offer_places_taken(offer) == 4


@pytest.mark.django_db
@pytest.mark.parametrize("decide", ["rejected", "declined", "withdrawn"])
def test_a_case_on_hold_whose_nomination_ends_returns_to_the_pool_when_released(nominated, supervisor, decide):
    case = nominated.case
    case_transition(case, to=CaseStatus.ON_HOLD, actor=supervisor, reason="Medical check")
    if decide == "rejected":
        nomination_record_decision(nominated, actor=supervisor, accepted=False)
    elif decide == "declined":
        nomination_record_consent(nominated, actor=supervisor, consents=False)
    else:
        nomination_withdraw(nominated, actor=supervisor, reason="Country closed the programme")
    case.refresh_from_db()
    assert (case.status, case.status_before_hold) == (CaseStatus.ON_HOLD, CaseStatus.ELIGIBLE)

    case_transition(case, to=CaseStatus.ELIGIBLE, actor=supervisor, reason="Check done")

    case.refresh_from_db()
    assert case.status == CaseStatus.ELIGIBLE
    offer_nominate(OfferFactory(), case, actor=supervisor)  # back in the pool


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_nominations_at_the_same_moment_never_exceed_the_places(supervisor):
    """Two transactions each see 3 places left and nominate a case of 3: one must lose."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite runs one writer at a time")
    offer = OfferFactory(places=3)
    cases = [eligible_case(size=3), eligible_case(size=3)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def nominate(case):
        try:
            barrier.wait()
            offer_nominate(Offer.objects.get(pk=offer.pk), case, actor=supervisor)
            outcomes.append("nominated")
        except OfferError as exc:
            outcomes.append(str(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=nominate, args=(case,)) for case in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes)[1] == "nominated"
    assert "only 0 places left" in sorted(outcomes)[0]
    assert offer_places_taken(offer) == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_marking_departed_waits_for_its_persons_before_taking_their_nomination(supervisor):
    """An incident takes a person, then their nomination and case; marking a departure
    departed takes its persons first too, so the two cannot deadlock: while an incident
    holds a person on the list, the departure has taken nothing an incident needs."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks")
    offer = OfferFactory(places=10)
    nomination = offer_nominate(offer, eligible_case(size=2), actor=supervisor)
    nomination_record_decision(nomination, actor=supervisor, accepted=True)
    nomination_record_consent(nomination, actor=supervisor, consents=True)
    departure = departure_plan(
        offer, actor=supervisor, planned_date=datetime.date(2026, 12, 1), route="", nominations=[nomination]
    )
    _ready(departure)
    person = nomination.case.members.first()
    holding = threading.Event()
    outcome: list[str] = []

    def incident_holding_the_person():
        try:
            with transaction.atomic():
                Person.objects.select_for_update().get(pk=person.pk)
                holding.set()
                time.sleep(1.5)  # the departure is being marked meanwhile
                try:
                    Nomination.objects.select_for_update(nowait=True).get(pk=nomination.pk)
                    outcome.append("nomination free")
                except OperationalError:
                    outcome.append("nomination taken by the departure")
        finally:
            connections.close_all()

    def depart():
        try:
            holding.wait()
            departure_mark_departed(departure, actor=supervisor)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=incident_holding_the_person), threading.Thread(target=depart)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcome == ["nomination free"]
    departure.refresh_from_db()
    assert departure.status == DepartureStatus.DEPARTED
