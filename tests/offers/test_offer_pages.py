"""The offer page, creating and editing offers, nominating and recording decisions."""

import pytest
from django.urls import reverse

from cases.models import Case, CaseStatus, CaseStatusChange
from offers.models import AllocationDecision, Consent, CountryDecision, Nomination, NominationStatus, Offer, OfferStatus
from offers.services import nomination_record_consent, nomination_record_decision, offer_nominate
from tests.conftest import ROLES
from tests.factories import CaseFactory, OfferFactory, UserFactory

A, ST, SU, AD = ROLES

pytestmark = pytest.mark.django_db


def eligible_case(size: int = 2, **kwargs):
    return CaseFactory(status=CaseStatus.ELIGIBLE, size=size, **kwargs)


def assert_sent_to_login(response):
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def page_text(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


# --- the offer page ---------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 200), (SU, 200), (AD, 200)])
def test_the_offer_page_answers_each_role(client_for, role, status):
    response = client_for(role).get(reverse("offers:detail", args=[OfferFactory().pk]))
    assert response.status_code == status
    if role == A:
        assert_sent_to_login(response)


def test_an_unknown_offer_is_not_found(client_for):
    assert client_for(ST).get(reverse("offers:detail", args=[999])).status_code == 404


def test_the_offer_list_links_each_offer_to_its_page(client_for):
    offer = OfferFactory(reference="CA-LINK")
    text = page_text(client_for(ST).get(reverse("offers:list")))
    assert f'href="{reverse("offers:detail", args=[offer.pk])}">CA-LINK</a>' in text


def test_the_offer_page_shows_its_figures_in_persons_and_its_nominations(client_for, supervisor):
    offer = OfferFactory(reference="CA-FIG", places=12, conditions="Households of up to 7 persons.")
    accepted = offer_nominate(offer, eligible_case(size=3, case_no="C-ACC"), actor=supervisor)
    nomination_record_decision(accepted, actor=supervisor, accepted=True)
    nomination_record_consent(accepted, actor=supervisor, consents=True)
    offer_nominate(offer, eligible_case(size=4, case_no="C-NOM"), actor=supervisor)
    text = page_text(client_for(ST).get(reverse("offers:detail", args=[offer.pk])))
    values = [chunk.split("</span>", 1)[0] for chunk in text.split('<span class="value">')[1:]]
    # places, nominated, accepted, departed, remaining
    assert values == ["12", "4", "3", "0", "5"]
    assert "Households of up to 7 persons." in text
    assert "C-ACC" in text and "C-NOM" in text


def test_staff_see_the_offer_but_no_way_to_change_it(client_for, supervisor):
    offer = OfferFactory()
    offer_nominate(offer, eligible_case(), actor=supervisor)
    eligible_case(case_no="C-WAITING")
    text = page_text(client_for(ST).get(reverse("offers:detail", args=[offer.pk])))
    assert reverse("offers:edit", args=[offer.pk]) not in text
    assert reverse("offers:nominate", args=[offer.pk]) not in text
    assert reverse("offers:departure_plan", args=[offer.pk]) not in text
    assert "nomination_decision" not in text and "/decision/" not in text
    assert "C-WAITING" not in text


def test_a_supervisor_sees_the_eligible_cases_to_nominate(client_for):
    offer = OfferFactory()
    eligible_case(case_no="C-READY")
    CaseFactory(case_no="C-INTERVIEWED", status=CaseStatus.INTERVIEWED, size=1)
    text = page_text(client_for(SU).get(reverse("offers:detail", args=[offer.pk])))
    assert reverse("offers:nominate", args=[offer.pk]) in text
    assert "C-READY" in text
    assert "C-INTERVIEWED" not in text


def test_the_eligible_cases_can_be_searched_by_case_number(client_for):
    offer = OfferFactory()
    eligible_case(case_no="KAB-001")
    eligible_case(case_no="HER-002")
    text = page_text(client_for(SU).get(reverse("offers:detail", args=[offer.pk]), {"q": "kab"}))
    assert "KAB-001" in text
    assert "HER-002" not in text


def test_the_eligible_cases_come_a_page_at_a_time(client_for):
    offer = OfferFactory()
    for n in range(30):
        eligible_case(size=1, case_no=f"P-{n:03d}")
    url = reverse("offers:detail", args=[offer.pk])
    first = page_text(client_for(SU).get(url))
    second = page_text(client_for(SU).get(url, {"page": 2}))
    assert first.count('name="cases"') == 25
    assert second.count('name="cases"') == 5
    # Paging keeps the reader at the list, and each case can be opened.
    assert 'href="?page=2#nominate"' in first
    case = Case.objects.get(case_no="P-000")
    assert f'href="{reverse("cases:detail", args=[case.pk])}"' in first


def test_paging_the_eligible_cases_keeps_the_search(client_for):
    offer = OfferFactory()
    for n in range(30):
        eligible_case(size=1, case_no=f"P-{n:03d}")
    first = page_text(client_for(SU).get(reverse("offers:detail", args=[offer.pk]), {"q": "P-0"}))
    assert 'href="?q=P-0&amp;page=2#nominate"' in first


def test_a_closed_offer_offers_no_nomination(client_for):
    offer = OfferFactory(status=OfferStatus.CLOSED)
    eligible_case(case_no="C-READY")
    text = page_text(client_for(SU).get(reverse("offers:detail", args=[offer.pk])))
    assert reverse("offers:nominate", args=[offer.pk]) not in text
    assert "not open" in text


def _fill(offer, supervisor, nominations: int) -> None:
    for _ in range(nominations):
        nomination = offer_nominate(offer, eligible_case(size=2), actor=supervisor)
        nomination_record_decision(nomination, actor=supervisor, accepted=True)
    for _ in range(nominations):
        eligible_case(size=1)
    # As many suggestions accepted, each by a user of its own.
    for n in range(nominations):
        AllocationDecision.objects.create(
            offer=offer,
            actor=UserFactory(username=f"decider-{n}", role="Supervisor"),
            proposed=["C-1"],
            nominated=["C-1"],
            places_filled=2,
            total_priority=10,
        )


@pytest.mark.parametrize("size", [1, 8])
def test_the_offer_page_costs_the_same_queries_for_any_number_of_nominations(
    client_for, supervisor, django_assert_num_queries, size
):
    offer = OfferFactory(places=100)
    _fill(offer, supervisor, size)
    client = client_for(SU)
    # session, user, permissions with groups and sites, the
    # offer with its figures, its nominations with case and departure, their principal
    # applicants, its departures with their counts, the suggestions accepted, the
    # eligible cases' count, their page, their principal applicants
    with django_assert_num_queries(11):
        page = client.get(reverse("offers:detail", args=[offer.pk])).text
    assert page.count("decider-") == size


@pytest.mark.parametrize("size", [1, 8])
def test_staff_see_the_offer_page_in_fewer_queries_without_the_eligible_cases(
    client_for, supervisor, django_assert_num_queries, size
):
    offer = OfferFactory(places=100)
    _fill(offer, supervisor, size)
    client = client_for(ST)
    # as for a supervisor, less the three queries of the eligible cases
    with django_assert_num_queries(7):
        client.get(reverse("offers:detail", args=[offer.pk]))


# --- creating and editing offers ---------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 403), (SU, 200), (AD, 200)])
def test_the_new_offer_page_is_for_supervisors(client_for, role, status):
    assert client_for(role).get(reverse("offers:new")).status_code == status


OFFER_FORM = {
    "reference": "NZ-NEW",
    "country": "NZ",
    "places": "25",
    "conditions": "Single adults and couples.",
    "deadline": "2027-03-31",
    "status": OfferStatus.OPEN,
}


@pytest.mark.parametrize("role", [SU, AD])
def test_a_supervisor_creates_an_offer(client_for, user_for, role):
    response = client_for(role).post(reverse("offers:new"), OFFER_FORM)
    offer = Offer.objects.get(reference="NZ-NEW")
    assert response.status_code == 302
    assert response["Location"] == reverse("offers:detail", args=[offer.pk])
    assert (offer.country.code, offer.places, offer.conditions) == ("NZ", 25, "Single adults and couples.")
    assert offer.history.get().history_user == user_for(role)


@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 403)])
def test_others_cannot_create_an_offer(client_for, role, status):
    assert client_for(role).post(reverse("offers:new"), OFFER_FORM).status_code == status
    assert not Offer.objects.exists()


def test_an_offer_needs_places(client_for):
    response = client_for(SU).post(reverse("offers:new"), {**OFFER_FORM, "places": "0"})
    assert response.status_code == 200
    assert not Offer.objects.exists()


@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 403), (SU, 200), (AD, 200)])
def test_the_edit_offer_page_is_for_supervisors(client_for, role, status):
    assert client_for(role).get(reverse("offers:edit", args=[OfferFactory().pk])).status_code == status


def test_a_supervisor_changes_an_offer(client_for, supervisor):
    offer = OfferFactory(places=10)
    response = client_for(SU).post(
        reverse("offers:edit", args=[offer.pk]), {**OFFER_FORM, "reference": offer.reference, "places": "40"}
    )
    assert response.status_code == 302
    offer.refresh_from_db()
    assert offer.places == 40
    assert offer.history.latest().history_user == supervisor


def test_staff_cannot_change_an_offer(client_for):
    offer = OfferFactory(places=10)
    response = client_for(ST).post(reverse("offers:edit", args=[offer.pk]), {**OFFER_FORM, "places": "40"})
    assert response.status_code == 403
    offer.refresh_from_db()
    assert offer.places == 10


def test_an_offers_places_cannot_fall_below_its_live_nominations(client_for, supervisor):
    offer = OfferFactory(places=10)
    offer_nominate(offer, eligible_case(size=6), actor=supervisor)
    response = client_for(SU).post(
        reverse("offers:edit", args=[offer.pk]), {**OFFER_FORM, "reference": offer.reference, "places": "5"}
    )
    assert "hold 6 persons" in page_text(response)
    offer.refresh_from_db()
    assert offer.places == 10


# --- nominating ---------------------------------------------------------------------


@pytest.mark.parametrize("role", [SU, AD])
def test_a_supervisor_nominates_several_cases_at_once(client_for, role):
    offer = OfferFactory(places=10)
    first, second = eligible_case(size=3), eligible_case(size=2)
    response = client_for(role).post(reverse("offers:nominate", args=[offer.pk]), {"cases": [first.pk, second.pk]})
    assert response.status_code == 302
    assert response["Location"] == reverse("offers:detail", args=[offer.pk]) + "#nominate"
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (CaseStatus.NOMINATED, CaseStatus.NOMINATED)
    assert sorted(Nomination.objects.values_list("persons", flat=True)) == [2, 3]


@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 403)])
def test_others_cannot_nominate(client_for, role, status):
    offer = OfferFactory()
    case = eligible_case()
    response = client_for(role).post(reverse("offers:nominate", args=[offer.pk]), {"cases": [case.pk]})
    assert response.status_code == status
    if role == A:
        assert_sent_to_login(response)
    assert not Nomination.objects.exists()
    case.refresh_from_db()
    assert case.status == CaseStatus.ELIGIBLE


def test_nominating_is_a_post(client_for):
    assert client_for(SU).get(reverse("offers:nominate", args=[OfferFactory().pk])).status_code == 405


def test_a_case_beyond_the_places_left_is_refused_on_the_page_and_nothing_is_written(client_for):
    offer = OfferFactory(places=4)
    big = eligible_case(size=5, case_no="C-BIG")
    response = client_for(SU).post(reverse("offers:nominate", args=[offer.pk]), {"cases": [big.pk]}, follow=True)
    text = page_text(response)
    assert "C-BIG was not nominated: Case C-BIG has 5 persons but the offer has only 4 places left." in text
    assert not Nomination.objects.exists()
    big.refresh_from_db()
    assert big.status == CaseStatus.ELIGIBLE
    assert not CaseStatusChange.objects.filter(case=big).exists()


def test_the_cases_that_fit_go_through_and_each_refusal_names_its_case(client_for, supervisor):
    offer = OfferFactory(places=5)
    fits, too_big = eligible_case(size=3, case_no="C-FITS"), eligible_case(size=3, case_no="C-LATE")
    taken = eligible_case(size=1, case_no="C-TAKEN")
    offer_nominate(OfferFactory(), taken, actor=supervisor)
    response = client_for(SU).post(
        reverse("offers:nominate", args=[offer.pk]), {"cases": [fits.pk, too_big.pk, taken.pk]}, follow=True
    )
    text = page_text(response)
    assert "1 case nominated: C-FITS." in text
    assert "C-LATE was not nominated: Case C-LATE has 3 persons but the offer has only 2 places left." in text
    assert "C-TAKEN was not nominated: Case C-TAKEN already has a live nomination." in text
    assert list(offer.nominations.values_list("case__case_no", flat=True)) == ["C-FITS"]


def test_nominating_without_choosing_a_case_says_so(client_for):
    offer = OfferFactory()
    text = page_text(client_for(SU).post(reverse("offers:nominate", args=[offer.pk]), {}, follow=True))
    assert "Choose at least one case to nominate." in text


def test_the_search_is_kept_after_nominating(client_for):
    offer = OfferFactory()
    case = eligible_case(case_no="KAB-9")
    response = client_for(SU).post(reverse("offers:nominate", args=[offer.pk]), {"cases": [case.pk], "q": "KAB"})
    assert response["Location"] == reverse("offers:detail", args=[offer.pk]) + "?q=KAB#nominate"


# --- the country's decision, the case's consent, withdrawal --------------------------


@pytest.fixture
def nomination(supervisor):
    return offer_nominate(OfferFactory(places=10), eligible_case(size=3, case_no="C-DECIDE"), actor=supervisor)


def _decide(client, nomination, **data):
    return client.post(reverse("offers:nomination_decision", args=[nomination.pk]), data, follow=True)


def _answer(client, nomination, **data):
    return client.post(reverse("offers:nomination_consent", args=[nomination.pk]), data, follow=True)


@pytest.mark.parametrize("role", [SU, AD])
def test_acceptance_and_consent_make_the_case_accepted(client_for, nomination, role):
    client = client_for(role)
    text = page_text(_decide(client, nomination, decision="accepted", decided_on="2026-01-15", reason="Approved"))
    assert "The country accepted C-DECIDE." in text
    page_text(_answer(client, nomination, answer="consents"))
    nomination.refresh_from_db()
    assert nomination.status == NominationStatus.ACCEPTED
    assert (nomination.country_decision, nomination.consent) == (CountryDecision.ACCEPTED, Consent.CONSENTED)
    assert nomination.decision_date.isoformat() == "2026-01-15"
    assert nomination.decision_reason == "Approved"
    assert nomination.case.status == CaseStatus.ACCEPTED


def test_consent_before_the_countrys_decision_waits_for_it(client_for, nomination):
    page_text(_answer(client_for(SU), nomination, answer="consents"))
    nomination.refresh_from_db()
    assert (nomination.status, nomination.consent) == (NominationStatus.NOMINATED, Consent.CONSENTED)
    assert nomination.case.status == CaseStatus.NOMINATED


def test_a_rejection_sends_the_case_back_to_the_pool(client_for, nomination):
    text = page_text(_decide(client_for(SU), nomination, decision="rejected", reason="Medical needs"))
    assert "The country rejected C-DECIDE." in text
    nomination.refresh_from_db()
    assert nomination.status == NominationStatus.REJECTED
    assert nomination.case.status == CaseStatus.ELIGIBLE
    assert nomination.case.status_changes.first().reason == "Medical needs"


def test_a_decline_sends_the_case_back_to_the_pool(client_for, nomination):
    page_text(_answer(client_for(SU), nomination, answer="declines"))
    nomination.refresh_from_db()
    assert nomination.status == NominationStatus.DECLINED
    assert nomination.case.status == CaseStatus.ELIGIBLE


def test_a_decision_already_recorded_is_refused_with_a_message(client_for, nomination):
    client = client_for(SU)
    _decide(client, nomination, decision="accepted")
    text = page_text(_decide(client, nomination, decision="rejected"))
    assert "decision is already recorded" in text
    nomination.refresh_from_db()
    assert nomination.country_decision == CountryDecision.ACCEPTED


def test_a_decision_date_in_the_future_is_refused(client_for, nomination):
    text = page_text(_decide(client_for(SU), nomination, decision="accepted", decided_on="2999-01-01"))
    assert "cannot be in the future" in text
    nomination.refresh_from_db()
    assert nomination.country_decision == CountryDecision.PENDING


def test_a_withdrawal_needs_a_reason_and_frees_the_places(client_for, nomination):
    client = client_for(SU)
    url = reverse("offers:nomination_withdraw", args=[nomination.pk])
    assert "Give a reason." in page_text(client.post(url, {"reason": ""}, follow=True))
    nomination.refresh_from_db()
    assert nomination.status == NominationStatus.NOMINATED
    page_text(client.post(url, {"reason": "Family asked to wait"}, follow=True))
    nomination.refresh_from_db()
    assert nomination.status == NominationStatus.WITHDRAWN
    assert nomination.case.status == CaseStatus.ELIGIBLE


@pytest.mark.parametrize("action", ["nomination_decision", "nomination_consent", "nomination_withdraw"])
@pytest.mark.parametrize(("role", "status"), [(A, 302), (ST, 403)])
def test_others_cannot_record_decisions(client_for, nomination, action, role, status):
    data = {"decision": "accepted", "answer": "consents", "reason": "because"}
    response = client_for(role).post(reverse(f"offers:{action}", args=[nomination.pk]), data)
    assert response.status_code == status
    nomination.refresh_from_db()
    assert nomination.status == NominationStatus.NOMINATED
    assert (nomination.country_decision, nomination.consent) == (CountryDecision.PENDING, Consent.PENDING)


@pytest.mark.parametrize("action", ["nomination_decision", "nomination_consent", "nomination_withdraw"])
def test_recording_decisions_is_a_post(client_for, nomination, action):
    assert client_for(SU).get(reverse(f"offers:{action}", args=[nomination.pk])).status_code == 405


def test_the_supervisor_sees_the_forms_to_record_decisions(client_for, nomination):
    text = page_text(client_for(SU).get(reverse("offers:detail", args=[nomination.offer_id])))
    assert reverse("offers:nomination_decision", args=[nomination.pk]) in text
    assert reverse("offers:nomination_consent", args=[nomination.pk]) in text
    assert reverse("offers:nomination_withdraw", args=[nomination.pk]) in text
