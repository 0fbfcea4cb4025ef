import pytest
from django.test import Client
from django.urls import reverse

from cases.models import CaseStatus, SiteAssignment, SpecificNeed
from offers.models import AllocationDecision, NominationStatus
from tests.factories import CaseFactory, OfferFactory, UserFactory


@pytest.fixture
def offer_with_pool(db):
    offer = OfferFactory(places=6, max_case_size=4)
    pool = {
        "three": CaseFactory(case_no="C-THREE", status=CaseStatus.ELIGIBLE, size=3),
        "three-b": CaseFactory(case_no="C-THREE-B", status=CaseStatus.ELIGIBLE, size=3),
        "four": CaseFactory(case_no="C-FOUR", status=CaseStatus.ELIGIBLE, size=4),
        "five": CaseFactory(case_no="C-FIVE", status=CaseStatus.ELIGIBLE, size=5),
    }
    return offer, pool


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 302), ("Staff", 403), ("Supervisor", 200), ("Administrator", 200)]
)
def test_only_those_who_nominate_see_the_proposal(client_for, offer_with_pool, role, status):
    offer, _ = offer_with_pool
    assert client_for(role).get(reverse("offers:allocation", args=[offer.pk])).status_code == status


def test_the_proposal_fills_the_places_exactly_and_explains_who_was_left_out(client_for, offer_with_pool):
    offer, _ = offer_with_pool
    page = client_for("Supervisor").get(reverse("offers:allocation", args=[offer.pk]))
    proposal = page.context["proposal"]
    assert proposal.places_filled == 6
    assert {e.candidate.case_no for e in proposal.chosen} == {"C-THREE", "C-THREE-B"}
    reasons = {e.candidate.case_no: " ".join(e.reasons) for e in proposal.left_out}
    assert "larger than the offer's limit of 4 persons" in reasons["C-FIVE"]
    assert "no selection with it places 6 persons" in reasons["C-FOUR"]
    assert "C-FIVE" in page.text


def test_the_proposal_names_needs_in_words(client_for, offer_with_pool):
    offer, pool = offer_with_pool
    disability = SpecificNeed.objects.get_or_create(code="disability", defaults={"label": "Disability"})[0]
    for person in pool["three"].members.all():
        person.specific_needs.add(disability)
    offer.excluded_needs.add(disability)
    page = client_for("Supervisor").get(reverse("offers:allocation", args=[offer.pk]))
    left_out = {e.candidate.case_no: e for e in page.context["proposal"].left_out}
    assert left_out["C-THREE"].needs == "Disability ×3"
    assert "specific needs the offer cannot receive: Disability" in left_out["C-THREE"].reasons
    assert "cannot receive: Disability" in page.text


def test_accepting_part_of_the_proposal_nominates_those_and_records_the_rest(client_for, offer_with_pool, supervisor):
    offer, pool = offer_with_pool
    response = client_for("Supervisor").post(
        reverse("offers:allocation_accept", args=[offer.pk]), {"cases": [pool["three"].pk]}, follow=True
    )
    messages = [str(m) for m in response.context["messages"]]
    assert "1 case nominated from the proposal." in messages
    assert "Left out of the proposal by you: C-THREE-B." in messages
    assert offer.nominations.get().case == pool["three"]
    pool["three"].refresh_from_db()
    assert pool["three"].status == CaseStatus.NOMINATED
    decision = AllocationDecision.objects.get()
    assert decision.overridden == ["C-THREE-B"]
    assert decision.actor.username == "supervisor-test"


@pytest.mark.parametrize(("role", "shown"), [("Staff", False), ("Supervisor", True), ("Administrator", True)])
def test_the_offer_page_lists_the_suggestions_accepted_and_what_was_left_out(client_for, offer_with_pool, role, shown):
    offer, pool = offer_with_pool
    client_for("Supervisor").post(reverse("offers:allocation_accept", args=[offer.pk]), {"cases": [pool["three"].pk]})
    page = client_for(role).get(reverse("offers:detail", args=[offer.pk])).text
    assert ("Suggested cases accepted" in page) is shown
    assert ("<td>C-THREE-B</td>" in page) is shown


def test_a_supervisor_limited_to_some_sites_does_not_see_the_suggestions_of_all_sites(
    client_for, offer_with_pool, supervisor
):
    offer, pool = offer_with_pool
    client_for("Supervisor").post(reverse("offers:allocation_accept", args=[offer.pk]), {"cases": [pool["three"].pk]})
    limited = UserFactory(username="supervisor-north", role="Supervisor")
    SiteAssignment.objects.create(user=limited, site=pool["three"].site)
    client = Client()
    client.force_login(limited)
    assert "Suggested cases accepted" not in client.get(reverse("offers:detail", args=[offer.pk])).text


def test_a_case_outside_the_proposal_cannot_be_slipped_in(client_for, offer_with_pool):
    offer, pool = offer_with_pool
    client_for("Supervisor").post(
        reverse("offers:allocation_accept", args=[offer.pk]), {"cases": [pool["five"].pk, pool["three"].pk]}
    )
    assert list(offer.nominations.values_list("case__case_no", flat=True)) == ["C-THREE"]


def test_accepting_nothing_is_refused_and_writes_nothing(client_for, offer_with_pool):
    offer, _ = offer_with_pool
    response = client_for("Supervisor").post(reverse("offers:allocation_accept", args=[offer.pk]), {}, follow=True)
    assert "Choose at least one proposed case" in response.text
    assert not AllocationDecision.objects.exists()
    assert not offer.nominations.filter(status=NominationStatus.NOMINATED).exists()


def test_staff_cannot_accept_a_proposal(client_for, offer_with_pool):
    offer, pool = offer_with_pool
    response = client_for("Staff").post(
        reverse("offers:allocation_accept", args=[offer.pk]), {"cases": [pool["three"].pk]}
    )
    assert response.status_code == 403
    assert not offer.nominations.exists()


@pytest.mark.parametrize("cases", [2, 25])
def test_the_proposal_page_costs_the_same_queries_for_few_or_many_candidates(
    client_for, django_assert_num_queries, cases
):
    offer = OfferFactory(places=40)
    for _ in range(cases):
        CaseFactory(status=CaseStatus.ELIGIBLE, size=2)
    client = client_for("Supervisor")
    client.get(reverse("offers:allocation", args=[offer.pk]))  # the session is warm
    # session, user, permissions with groups and sites, the offer, places taken, needs it
    # cannot receive, eligible cases, their members present, those members' needs
    with django_assert_num_queries(9):
        client.get(reverse("offers:allocation", args=[offer.pk]))
