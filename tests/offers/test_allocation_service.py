import pytest

from cases.models import CaseStatus, SpecificNeed
from offers.allocation import propose
from offers.models import AllocationDecision, NominationStatus
from offers.selectors import allocation_candidates, allocation_conditions
from offers.services import allocation_accept, offer_nominate
from tests.factories import CaseFactory, OfferFactory


@pytest.mark.django_db
def test_candidates_are_the_eligible_cases_without_a_live_nomination(supervisor):
    free = CaseFactory(status=CaseStatus.ELIGIBLE, size=3)
    taken = CaseFactory(status=CaseStatus.ELIGIBLE, size=2)
    CaseFactory(status=CaseStatus.INTERVIEWED, size=2)
    offer_nominate(OfferFactory(), taken, actor=supervisor)
    need = SpecificNeed.objects.get(code="disability")
    free.members.first().specific_needs.add(need)
    [candidate] = allocation_candidates()
    assert (candidate.case_no, candidate.persons, candidate.needs) == (free.case_no, 3, ("disability",))


@pytest.mark.django_db
def test_the_offers_conditions_and_places_left_come_from_the_offer(supervisor):
    offer = OfferFactory(places=10, max_case_size=4, nationalities=["IR", "AF"])
    offer.excluded_needs.add(SpecificNeed.objects.get(code="serious_medical_condition"))
    offer_nominate(offer, CaseFactory(status=CaseStatus.ELIGIBLE, size=3), actor=supervisor)
    conditions = allocation_conditions(offer)
    assert conditions.places_left == 7
    assert conditions.max_case_size == 4
    assert conditions.nationalities == {"IR", "AF"}
    assert conditions.excluded_needs == {"serious_medical_condition"}


@pytest.mark.django_db
def test_accepting_a_proposal_in_part_nominates_the_kept_cases_and_records_the_override(supervisor):
    offer = OfferFactory(places=6)
    cases = [CaseFactory(status=CaseStatus.ELIGIBLE, size=3) for _ in range(2)]
    proposal = propose(allocation_candidates(), allocation_conditions(offer), today=cases[0].created_at.date())
    assert proposal.places_filled == 6
    decision = allocation_accept(
        offer,
        actor=supervisor,
        proposed=cases,
        chosen=cases[:1],
        places_filled=proposal.places_filled,
        total_priority=proposal.total_priority,
    )
    assert decision.nominated == [cases[0].case_no]
    assert decision.overridden == [cases[1].case_no]
    assert offer.nominations.get().status == NominationStatus.NOMINATED
    assert AllocationDecision.objects.get().actor == supervisor


@pytest.mark.django_db
def test_a_case_taken_meanwhile_is_refused_and_recorded(supervisor):
    offer = OfferFactory(places=6)
    case = CaseFactory(status=CaseStatus.ELIGIBLE, size=3)
    offer_nominate(OfferFactory(), case, actor=supervisor)  # someone was faster
    decision = allocation_accept(
        offer, actor=supervisor, proposed=[case], chosen=[case], places_filled=3, total_priority=0
    )
    assert decision.nominated == []
    assert decision.refused[0]["case"] == case.case_no
