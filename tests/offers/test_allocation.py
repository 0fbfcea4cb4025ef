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
    assert "larger than the offer's limit of 5 persons" in reasons["C-1"]
    assert "cannot receive: disability" in reasons["C-2"]
    assert "AF not among those accepted" in reasons["C-3"]


def test_several_offers_share_cases_without_giving_one_case_twice():
    # Case 0 (3 persons) could go to either offer; each offer has 3 places.
    pairs = [(0, 0), (0, 1), (1, 0), (2, 1)]
    chosen = solve(pairs, sizes=[3, 3, 3], priorities=[5, 1, 1], capacities=[3, 3])
    cases = [pairs[i][0] for i in chosen]
    assert sorted(cases) == sorted(set(cases))
    assert len(cases) == 2  # two offers of 3 filled with two households of 3


def brute_force_many(pairs, sizes, priorities, capacities):
    """The best (persons placed, total priority) over every way of giving each case to
    one of its offers or to none."""
    options = {}
    for case, offer in pairs:
        options.setdefault(case, [None]).append(offer)
    cases = sorted(options)
    best = (0, 0)
    for choice in itertools.product(*(options[c] for c in cases)):
        load = [0] * len(capacities)
        for case, offer in zip(cases, choice, strict=True):
            if offer is not None:
                load[offer] += sizes[case]
        if all(used <= cap for used, cap in zip(load, capacities, strict=True)):
            taken = [c for c, offer in zip(cases, choice, strict=True) if offer is not None]
            best = max(best, (sum(sizes[c] for c in taken), sum(priorities[c] for c in taken)))
    return best


@pytest.mark.parametrize("seed", range(30))
def test_several_offers_get_the_best_of_every_possible_assignment(seed):
    # Few sizes and few priorities: many cases alike, so classes and priority levels are
    # shared, and capacities that a largest-first packing sometimes cannot fill exactly.
    rng = random.Random(seed)
    n_cases, n_offers = rng.randint(4, 8), rng.randint(1, 3)
    sizes = [rng.choice([1, 2, 3, 3, 4, 5]) for _ in range(n_cases)]
    priorities = [rng.choice([0, 5, 10, 10, 30]) for _ in range(n_cases)]
    capacities = [rng.randint(0, 9) for _ in range(n_offers)]
    pairs = [(c, o) for c in range(n_cases) for o in range(n_offers) if rng.random() < 0.7]
    chosen = [pairs[i] for i in solve(pairs, sizes, priorities, capacities)]
    cases = [case for case, _offer in chosen]
    assert len(cases) == len(set(cases))  # never one case twice
    for offer, cap in enumerate(capacities):
        assert sum(sizes[case] for case, o in chosen if o == offer) <= cap
    found = (sum(sizes[c] for c in cases), sum(priorities[c] for c in cases))
    assert found == brute_force_many(pairs, sizes, priorities, capacities)


def test_when_largest_first_cannot_fill_the_places_the_solver_still_does():
    # Largest first puts the 4 in the offer of 6 and strands 2 places; 3 + 3 fill it.
    sizes, priorities, capacities = [4, 3, 3], [9, 1, 1], [6]
    pairs = [(0, 0), (1, 0), (2, 0)]
    assert sorted(pairs[i][0] for i in solve(pairs, sizes, priorities, capacities)) == [1, 2]


def test_among_cases_alike_the_higher_priority_ones_are_taken():
    # Five single persons fit both offers; two places in all: the two of highest priority.
    sizes, priorities, capacities = [1] * 5, [3, 8, 3, 8, 5], [1, 1]
    pairs = [(c, o) for c in range(5) for o in range(2)]
    chosen = [pairs[i] for i in solve(pairs, sizes, priorities, capacities)]
    assert sorted(case for case, _offer in chosen) == [1, 3]
    assert sorted(offer for _case, offer in chosen) == [0, 1]


def test_nothing_to_choose_when_no_household_fits_any_offer():
    assert solve([(0, 0), (1, 1)], sizes=[5, 4], priorities=[1, 1], capacities=[4, 0]) == []
    assert solve([], sizes=[], priorities=[], capacities=[3]) == []
