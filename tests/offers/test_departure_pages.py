"""Planning a departure, its manifest and readiness checklist, marking it departed."""

import datetime

import pytest
from django.urls import reverse

from cases.models import CaseStatus, ResidenceStatus
from offers.models import Departure, DeparturePerson, DepartureStatus, NominationStatus
from offers.services import (
    departure_plan,
    nomination_record_consent,
    nomination_record_decision,
    offer_nominate,
)
from tests.conftest import ROLES
from tests.factories import CaseFactory, OfferFactory

A, ST, SU, AD = ROLES

pytestmark = pytest.mark.django_db

DAY = datetime.date(2027, 2, 1)


def accepted(offer, supervisor, *, size: int = 2, case_no: str | None = None):
    extra = {"case_no": case_no} if case_no else {}
    nomination = offer_nominate(offer, CaseFactory(status=CaseStatus.ELIGIBLE, size=size, **extra), actor=supervisor)
    nomination_record_decision(nomination, actor=supervisor, accepted=True)
    return nomination_record_consent(nomination, actor=supervisor, consents=True)


@pytest.fixture
def offer():
    return OfferFactory(reference="CA-DEP", places=20)


@pytest.fixture
def departure(offer, supervisor):
    nominations = [accepted(offer, supervisor, size=3, case_no="C-ONE"), accepted(offer, supervisor, case_no="C-TWO")]
    return departure_plan(offer, actor=supervisor, planned_date=DAY, route="YUL 123", nominations=nominations)


def page_text(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def tick_all(departure) -> dict[str, list[int]]:
    ids = list(departure.manifest.values_list("pk", flat=True))
    return {"travel_document": ids, "medical_clearance": ids, "exit_permission": ids}


# --- planning ---------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 403), (SU, 200), (AD, 200)])
def test_the_plan_a_departure_page_is_for_supervisors(client_for, offer, role, status):
    assert client_for(role).get(reverse("offers:departure_plan", args=[offer.pk])).status_code == status


def test_the_plan_page_lists_only_the_accepted_cases(client_for, offer, supervisor):
    accepted(offer, supervisor, case_no="C-ACCEPTED")
    offer_nominate(offer, CaseFactory(status=CaseStatus.ELIGIBLE, size=1, case_no="C-PENDING"), actor=supervisor)
    text = page_text(client_for(SU).get(reverse("offers:departure_plan", args=[offer.pk])))
    assert "C-ACCEPTED" in text
    assert "C-PENDING" not in text


def test_the_plan_page_says_when_no_case_is_accepted_yet(client_for, offer):
    text = page_text(client_for(SU).get(reverse("offers:departure_plan", args=[offer.pk])))
    assert "No case on this offer is accepted" in text


@pytest.mark.parametrize("role", [SU, AD])
def test_a_supervisor_plans_a_departure_with_accepted_cases(client_for, offer, supervisor, role):
    nomination = accepted(offer, supervisor, size=3)
    response = client_for(role).post(
        reverse("offers:departure_plan", args=[offer.pk]),
        {"planned_date": "2027-02-01", "route": "YUL 123", "nominations": [nomination.pk]},
    )
    departure = Departure.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("offers:departure", args=[departure.pk])
    assert (departure.planned_date, departure.route) == (DAY, "YUL 123")
    assert departure.manifest.count() == 3
    nomination.refresh_from_db()
    assert nomination.status == NominationStatus.DEPARTURE_SCHEDULED
    assert nomination.case.status == CaseStatus.DEPARTURE_SCHEDULED


@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 403)])
def test_others_cannot_plan_a_departure(client_for, offer, supervisor, role, status):
    nomination = accepted(offer, supervisor)
    response = client_for(role).post(
        reverse("offers:departure_plan", args=[offer.pk]),
        {"planned_date": "2027-02-01", "nominations": [nomination.pk]},
    )
    assert response.status_code == status
    assert not Departure.objects.exists()


def test_a_case_not_yet_accepted_cannot_go_on_a_departure(client_for, offer, supervisor):
    accepted(offer, supervisor)
    pending = offer_nominate(offer, CaseFactory(status=CaseStatus.ELIGIBLE, size=1), actor=supervisor)
    response = client_for(SU).post(
        reverse("offers:departure_plan", args=[offer.pk]),
        {"planned_date": "2027-02-01", "nominations": [pending.pk]},
    )
    assert "is not one of the available choices" in page_text(response)
    assert not Departure.objects.exists()


# --- the departure page and its manifest ------------------------------------------------


@pytest.mark.parametrize("name", ["offers:departure", "offers:departure_manifest"])
@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 200), (SU, 200), (AD, 200)])
def test_the_departure_pages_answer_each_role(client_for, departure, name, role, status):
    response = client_for(role).get(reverse(name, args=[departure.pk]))
    assert response.status_code == status
    if role == A:
        assert response["Location"].startswith(reverse("login"))


def test_the_departure_page_lists_its_persons_with_their_case(client_for, departure):
    text = page_text(client_for(ST).get(reverse("offers:departure", args=[departure.pk])))
    manifest = text.split('<table class="data manifest">', 1)[1].split("</table>", 1)[0]
    assert manifest.count("<tr class=") == 5
    # grouped by case: each case's number heads its members
    assert manifest.count("case-start") == 2
    assert manifest.count("C-ONE") == 1 and manifest.count("C-TWO") == 1
    assert "YUL 123" in text
    assert "0 of 5" in text


def test_staff_see_the_checklist_but_cannot_tick_it(client_for, departure):
    text = page_text(client_for(ST).get(reverse("offers:departure", args=[departure.pk])))
    assert 'type="checkbox"' not in text
    assert reverse("offers:departure_depart", args=[departure.pk]) not in text


def test_a_supervisor_sees_the_checklist_as_checkboxes(client_for, departure):
    text = page_text(client_for(SU).get(reverse("offers:departure", args=[departure.pk])))
    assert text.count('type="checkbox"') == 15
    assert reverse("offers:departure_depart", args=[departure.pk]) in text


def test_the_printable_manifest_has_no_forms(client_for, departure):
    text = page_text(client_for(SU).get(reverse("offers:departure_manifest", args=[departure.pk])))
    assert '<form method="post" action="/offers/' not in text
    assert text.count("not-ready") == 5


@pytest.mark.parametrize("cases", [1, 6])
def test_the_departure_page_costs_the_same_queries_for_any_number_of_persons(
    client_for, offer, supervisor, django_assert_num_queries, cases
):
    nominations = [accepted(offer, supervisor, size=3) for _ in range(cases)]
    departure = departure_plan(offer, actor=supervisor, planned_date=DAY, route="", nominations=nominations)
    client = client_for(SU)
    # session, user, permissions with groups and sites,
    # the departure with its offer, its manifest with persons and cases
    with django_assert_num_queries(5):
        client.get(reverse("offers:departure", args=[departure.pk]))


# --- the readiness checklist ---------------------------------------------------------


@pytest.mark.parametrize("role", [SU, AD])
def test_a_supervisor_ticks_the_checklist(client_for, departure, role):
    first = departure.manifest.order_by("pk").first()
    response = client_for(role).post(
        reverse("offers:departure_checklist", args=[departure.pk]),
        {"travel_document": [first.pk], "exit_permission": [first.pk]},
        follow=True,
    )
    assert "Checklist saved: 1 person changed." in page_text(response)
    first.refresh_from_db()
    assert (first.travel_document, first.medical_clearance, first.exit_permission) == (True, False, True)


def test_unticking_an_item_saves_it_as_not_done(client_for, departure):
    departure.manifest.update(travel_document=True, medical_clearance=True, exit_permission=True)
    client_for(SU).post(reverse("offers:departure_checklist", args=[departure.pk]), {})
    assert not DeparturePerson.objects.filter(travel_document=True).exists()


@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 403)])
def test_others_cannot_tick_the_checklist(client_for, departure, role, status):
    response = client_for(role).post(reverse("offers:departure_checklist", args=[departure.pk]), tick_all(departure))
    assert response.status_code == status
    assert not DeparturePerson.objects.filter(travel_document=True).exists()


def test_a_person_of_another_departure_is_not_ticked(client_for, departure, offer, supervisor):
    other = departure_plan(
        offer, actor=supervisor, planned_date=DAY, route="", nominations=[accepted(offer, supervisor, size=1)]
    )
    stranger = other.manifest.get()
    response = client_for(SU).post(
        reverse("offers:departure_checklist", args=[departure.pk]), {"travel_document": [stranger.pk]}, follow=True
    )
    assert "not one of the available choices" in page_text(response)
    stranger.refresh_from_db()
    assert not stranger.travel_document


# --- marking departed ------------------------------------------------------------------


def test_a_departure_with_an_incomplete_checklist_is_refused(client_for, departure):
    client = client_for(SU)
    almost = tick_all(departure)
    almost["exit_permission"] = almost["exit_permission"][1:]
    client.post(reverse("offers:departure_checklist", args=[departure.pk]), almost)
    page = client.get(reverse("offers:departure", args=[departure.pk])).text
    assert '<button type="submit" disabled aria-describedby="not-ready">Mark departed</button>' in page
    # Posted anyway (an old page): refused by the service, with who is not ready.
    response = client.post(reverse("offers:departure_depart", args=[departure.pk]), follow=True)
    assert "The readiness checklist is incomplete for:" in page_text(response)
    departure.refresh_from_db()
    assert departure.status == DepartureStatus.PLANNED
    assert not departure.nominations.filter(case__status=CaseStatus.RELOCATED).exists()


@pytest.mark.parametrize("role", [SU, AD])
def test_marking_a_ready_departure_departed_relocates_its_cases_and_persons(client_for, departure, offer, role):
    client = client_for(role)
    client.post(reverse("offers:departure_checklist", args=[departure.pk]), tick_all(departure))
    response = client.post(reverse("offers:departure_depart", args=[departure.pk]), follow=True)
    assert "Departed: its cases and persons are now relocated." in page_text(response)
    departure.refresh_from_db()
    assert departure.status == DepartureStatus.DEPARTED
    assert {n.status for n in departure.nominations.all()} == {NominationStatus.RELOCATED}
    assert {n.case.status for n in departure.nominations.all()} == {CaseStatus.RELOCATED}
    assert {e.person.residence_status for e in departure.manifest.all()} == {ResidenceStatus.RELOCATED}
    text = page_text(client.get(reverse("offers:list")))
    row = text.split("CA-DEP", 1)[1].split("</tr>", 1)[0]
    cells = [c.split(">", 1)[1] for c in row.split("</td>")[1:7]]
    # country, places, nominated, accepted, departed, remaining
    assert cells == ["Canada", "20", "0", "0", "5", "15"]


@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 403)])
def test_others_cannot_mark_a_departure_departed(client_for, departure, role, status):
    departure.manifest.update(travel_document=True, medical_clearance=True, exit_permission=True)
    assert client_for(role).post(reverse("offers:departure_depart", args=[departure.pk])).status_code == status
    departure.refresh_from_db()
    assert departure.status == DepartureStatus.PLANNED


def test_a_departed_departure_has_no_checklist_to_tick(client_for, departure):
    client = client_for(SU)
    client.post(reverse("offers:departure_checklist", args=[departure.pk]), tick_all(departure))
    client.post(reverse("offers:departure_depart", args=[departure.pk]))
    text = page_text(client.get(reverse("offers:departure", args=[departure.pk])))
    assert 'type="checkbox"' not in text
    response = client.post(reverse("offers:departure_checklist", args=[departure.pk]), {}, follow=True)
    assert "Only a planned departure" in page_text(response)
    assert DeparturePerson.objects.filter(travel_document=False).count() == 0


# --- cancelling ----------------------------------------------------------------------


def test_a_cancelled_departure_puts_its_cases_back_to_accepted(client_for, departure, offer):
    client = client_for(SU)
    url = reverse("offers:departure_cancel", args=[departure.pk])
    assert "Give a reason." in page_text(client.post(url, {"reason": ""}, follow=True))
    page_text(client.post(url, {"reason": "Flight cancelled by the airline"}, follow=True))
    departure.refresh_from_db()
    assert departure.status == DepartureStatus.CANCELLED
    nominations = offer.nominations.select_related("case")
    assert {(n.status, n.case.status, n.departure_id) for n in nominations} == {
        (NominationStatus.ACCEPTED, CaseStatus.ACCEPTED, None)
    }
    assert nominations[0].case.status_changes.first().reason == "Flight cancelled by the airline"


@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 403)])
def test_others_cannot_cancel_a_departure(client_for, departure, role, status):
    response = client_for(role).post(reverse("offers:departure_cancel", args=[departure.pk]), {"reason": "x"})
    assert response.status_code == status
    departure.refresh_from_db()
    assert departure.status == DepartureStatus.PLANNED
