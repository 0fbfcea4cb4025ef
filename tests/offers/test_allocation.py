"""The allocation engine: optimal against brute force, conditions kept, families whole."""

import datetime
import itertools
import random

import pytest

from offers.allocation import Candidate, Conditions, greedy, propose, solve

TODAY = datetime.date(2026, 11, 26)


def candidate(i: int, persons: int, needs=(), nationality="IR", waited_days=0) -> Candidate:
    return Candidate(
        case_id=i,
        case_no=f"C-{i}",
        persons=persons,
        nationalities=frozenset({nationality}),
        needs=tuple(needs),
        eligible_since=TODAY - datetime.timedelta(days=waited_days),
    )


def brute_force(cands, conditions):
    best = (0, 0)
    for r in range(len(cands) + 1):
        for subset in itertools.combinations(cands, r):
            if any(conditions.unmet(c) for c in subset):
                continue
            persons = sum(c.persons for c in subset)
            if persons <= conditions.places_left:
                best = max(best, (persons, sum(c.priority(TODAY) for c in subset)))
    return best


@pytest.mark.parametrize("seed", range(25))
def test_the_proposal_is_as_good_as_the_best_of_every_possible_selection(seed):
    rng = random.Random(seed)
    cands = [
        candidate(
            i,
            rng.randint(1, 7),
            needs=rng.sample(["medical_condition", "disability", "survivor_of_torture"], rng.randint(0, 2)),
            nationality=rng.choice(["IR", "IR", "AF"]),
            waited_days=rng.randint(0, 400),
        )
        for i in range(11)
    ]
    conditions = Conditions(
        places_left=rng.randint(5, 25),
        max_case_size=rng.choice([None, 5]),
        nationalities=rng.choice([frozenset(), frozenset({"IR"})]),
        excluded_needs=rng.choice([frozenset(), frozenset({"disability"})]),
    )
    proposal = propose(cands, conditions, today=TODAY)
    assert (proposal.places_filled, proposal.total_priority) == brute_force(cands, conditions)
    for chosen in proposal.chosen:
        assert conditions.unmet(chosen.candidate) == []
    for c in cands:
        assert conditions.fits(c) == (conditions.unmet(c) == [])


def test_it_fills_places_exactly_where_a_greedy_pick_leaves_some_empty():
    # Greedy takes the 4 first (highest priority) and can then fit nothing: 4 of 6 places.
    cands = [candidate(1, 4, needs=["survivor_of_torture"]), candidate(2, 3), candidate(3, 3)]
    conditions = Conditions(places_left=6)
    assert sum(c.persons for c in greedy(cands, conditions, today=TODAY)) == 4
    proposal = propose(cands, conditions, today=TODAY)
    assert proposal.places_filled == 6
    assert {e.candidate.case_no for e in proposal.chosen} == {"C-2", "C-3"}


def test_with_places_equal_it_prefers_vulnerability_and_waiting():
    cands = [candidate(1, 2), candidate(2, 2, needs=["medical_condition"]), candidate(3, 2, waited_days=90)]
    proposal = propose(cands, Conditions(places_left=4), today=TODAY)
    assert {e.candidate.case_no for e in proposal.chosen} == {"C-2", "C-3"}


def test_a_family_is_never_split_even_when_that_leaves_places_empty():
    proposal = propose([candidate(1, 5)], Conditions(places_left=4), today=TODAY)
    assert proposal.chosen == []
    assert proposal.places_filled == 0
    assert "larger than the 4 places left" in proposal.left_out[0].reasons[0]


def test_it_explains_why_strong_candidates_were_left_out():
    cands = [
        candidate(1, 6, needs=["survivor_of_torture"]),  # too large for the offer
        candidate(2, 2, needs=["disability"]),  # a need the offer cannot receive
        candidate(3, 2, nationality="AF"),  # nationality not accepted
        candidate(4, 2),
    ]
    conditions = Conditions(
        places_left=4, max_case_size=5, nationalities=frozenset({"IR"}), excluded_needs=frozenset({"disability"})
    )
    proposal = propose(cands, conditions, today=TODAY)
    assert [e.candidate.case_no for e in proposal.chosen] == ["C-4"]
    reasons = {e.candidate.case_no: " ".join(e.reasons) for e in proposal.left_out}
    assert "larger than the offer's 5" in reasons["C-1"]
    assert "cannot receive: disability" in reasons["C-2"]
    assert "AF not among those accepted" in reasons["C-3"]


def test_several_offers_share_cases_without_giving_one_case_twice():
    # Case 0 (3 persons) could go to either offer; each offer has 3 places.
    pairs = [(0, 0), (0, 1), (1, 0), (2, 1)]
    chosen = solve(pairs, sizes=[3, 3, 3], priorities=[5, 1, 1], capacities=[3, 3])
    cases = [pairs[i][0] for i in chosen]
    assert sorted(cases) == sorted(set(cases))
    assert len(cases) == 2  # two offers of 3 filled with two households of 3
