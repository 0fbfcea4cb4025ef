"""Allocation benchmark: 10,000 eligible cases, 20 offers, optimal against greedy.

    .venv/bin/python bench/allocation_bench.py [--cases 10000] [--offers 20] [--seed 1]

Prints JSON: solve time of the optimal allocation (SciPy milp / HiGHS), and for both
the optimal and the greedy baseline (highest priority first, if it fits) the places
filled and the total priority, with the machine's load average (1, 5, 15 minutes) at
the end of the run, as timings on a busy machine are not comparable. No database:
the engine is pure.
"""

import argparse
import datetime
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from offers.allocation import NEED_POINTS, Candidate, Conditions, solve

TODAY = datetime.date(2026, 11, 26)


def make(cases: int, offers: int, seed: int) -> tuple[list[Candidate], list[Conditions]]:
    rng = random.Random(seed)
    codes = [*NEED_POINTS, "medical_condition", "mental_health"]
    candidates = [
        Candidate(
            case_id=i,
            case_no=f"C-{i}",
            persons=rng.choices([1, 2, 3, 4, 5, 6, 7], weights=[28, 14, 14, 16, 13, 9, 6])[0],
            nationalities=frozenset({rng.choice(["IR"] * 8 + ["IQ", "AF"])}),
            needs=tuple(rng.sample(codes, rng.choice([0, 0, 0, 0, 1, 1, 2]))),
            eligible_since=TODAY - datetime.timedelta(days=rng.randint(0, 720)),
        )
        for i in range(cases)
    ]
    conditions = [
        Conditions(
            places_left=rng.choice([25, 40, 60, 90, 120, 210, 300]),
            max_case_size=rng.choice([None, None, 5, 6]),
            nationalities=rng.choice([frozenset(), frozenset(), frozenset({"IR", "IQ"})]),
            excluded_needs=rng.choice([frozenset(), frozenset({"serious_medical_condition"})]),
        )
        for _ in range(offers)
    ]
    return candidates, conditions


def greedy_many(candidates: list[Candidate], offers: list[Conditions]) -> tuple[int, int]:
    left = [o.places_left for o in offers]
    filled = priority = 0
    for c in sorted(candidates, key=lambda c: -c.priority(TODAY)):
        for k, offer in enumerate(offers):
            if offer.fits(c) and c.persons <= left[k]:
                left[k] -= c.persons
                filled += c.persons
                priority += c.priority(TODAY)
                break
    return filled, priority


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--offers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    candidates, offers = make(args.cases, args.offers, args.seed)
    priorities = [c.priority(TODAY) for c in candidates]

    started = time.perf_counter()
    pairs = [(i, k) for i, c in enumerate(candidates) for k, o in enumerate(offers) if o.fits(c)]
    chosen = solve(pairs, [c.persons for c in candidates], priorities, [o.places_left for o in offers])
    optimal_seconds = time.perf_counter() - started
    optimal_filled = sum(candidates[pairs[i][0]].persons for i in chosen)
    optimal_priority = sum(priorities[pairs[i][0]] for i in chosen)

    started = time.perf_counter()
    greedy_filled, greedy_priority = greedy_many(candidates, offers)
    greedy_seconds = time.perf_counter() - started

    places = sum(o.places_left for o in offers)
    print(
        json.dumps(
            {
                "cases": args.cases,
                "offers": args.offers,
                "places": places,
                "case_offer_pairs": len(pairs),
                "optimal": {
                    "seconds": round(optimal_seconds, 3),
                    "places_filled": optimal_filled,
                    "total_priority": optimal_priority,
                },
                "greedy": {
                    "seconds": round(greedy_seconds, 3),
                    "places_filled": greedy_filled,
                    "total_priority": greedy_priority,
                },
                "target_seconds": 5,
                "within_target": optimal_seconds < 5,
                "load_average": [round(load, 2) for load in os.getloadavg()],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
