"""Allocation suggestions: which eligible cases to nominate to an offer.

An exact optimisation, solved with SciPy's `milp` (the HiGHS solver), in two stages:

1. fill the offer's remaining places as exactly as possible (most persons placed);
2. among the selections that place that many persons, take the one with the highest
   total priority (vulnerability first, then time waiting).

A case is one 0/1 variable, so a household is never split. Cases that break one of
the offer's conditions are never variables at all. Two stages rather than one
weighted objective, so that no weighting can trade a place for priority, and both
stages run with a zero optimality gap.
"""

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.utils.translation import gettext as _
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

# Points per member with a specific need; the heavier needs weigh more.
NEED_POINTS = {
    "serious_medical_condition": 30,
    "survivor_of_torture": 30,
    "unaccompanied_child": 30,
    "separated_child": 25,
    "survivor_of_violence": 25,
    "woman_at_risk": 25,
    "disability": 20,
    "older_person_at_risk": 20,
    "legal_protection_needs": 20,
}
DEFAULT_NEED_POINTS = 10
WAITING_POINTS_PER_30_DAYS = 1


@dataclass(frozen=True)
class Candidate:
    case_id: int
    case_no: str
    persons: int
    nationalities: frozenset[str]
    needs: tuple[str, ...]  # one entry per member need, repeats allowed
    eligible_since: datetime.date

    def vulnerability(self) -> int:
        return sum(NEED_POINTS.get(code, DEFAULT_NEED_POINTS) for code in self.needs)

    def waiting_days(self, today: datetime.date) -> int:
        return max((today - self.eligible_since).days, 0)

    def waiting_points(self, today: datetime.date) -> int:
        # Every member has waited: counting the wait per person keeps the objective
        # from favouring small households over large ones.
        return WAITING_POINTS_PER_30_DAYS * (self.waiting_days(today) // 30) * self.persons

    def priority(self, today: datetime.date) -> int:
        return self.vulnerability() + self.waiting_points(today)


@dataclass(frozen=True)
class Conditions:
    """The checkable conditions of an offer."""

    places_left: int
    max_case_size: int | None = None
    nationalities: frozenset[str] = frozenset()  # empty: any
    excluded_needs: frozenset[str] = frozenset()

    def fits(self, candidate: Candidate) -> bool:
        return (
            (self.max_case_size is None or candidate.persons <= self.max_case_size)
            and (not self.nationalities or candidate.nationalities <= self.nationalities)
            and not self.excluded_needs.intersection(candidate.needs)
            and candidate.persons <= self.places_left
        )

    def met(self, candidate: Candidate) -> list[str]:
        """The offer's conditions this case meets, in words (for a case that fits)."""
        met = [
            _("household of %(n)d fits the %(left)d places left") % {"n": candidate.persons, "left": self.places_left}
        ]
        if self.max_case_size is not None:
            met.append(_("household within the offer's %(max)d") % {"max": self.max_case_size})
        if self.nationalities:
            met.append(_("nationality accepted"))
        if self.excluded_needs:
            met.append(_("no specific need the offer cannot receive"))
        return met

    def unmet(self, candidate: Candidate) -> list[str]:
        """Why a case cannot go to this offer; empty when it may."""
        reasons = []
        if self.max_case_size is not None and candidate.persons > self.max_case_size:
            reasons.append(
                _("household of %(n)d is larger than the offer's %(max)d")
                % {"n": candidate.persons, "max": self.max_case_size}
            )
        if self.nationalities and not candidate.nationalities <= self.nationalities:
            reasons.append(
                _("nationality %(codes)s not among those accepted")
                % {"codes": ", ".join(sorted(candidate.nationalities - self.nationalities))}
            )
        excluded = sorted(set(candidate.needs) & self.excluded_needs)
        if excluded:
            reasons.append(_("specific needs the offer cannot receive: %(codes)s") % {"codes": ", ".join(excluded)})
        if candidate.persons > self.places_left:
            reasons.append(
                _("household of %(n)d is larger than the %(left)d places left")
                % {"n": candidate.persons, "left": self.places_left}
            )
        return reasons


@dataclass
class Explained:
    """A case in a proposal; `reasons` are the conditions it meets, or why it was left out."""

    candidate: Candidate
    priority: int
    vulnerability: int
    waiting_days: int
    reasons: list[str] = field(default_factory=list)


@dataclass
class Proposal:
    places_left: int
    chosen: list[Explained]
    left_out: list[Explained]  # the strongest candidates not chosen, with why
    places_filled: int
    total_priority: int
    greedy_filled: int = 0
    greedy_priority: int = 0

    @property
    def case_ids(self) -> list[int]:
        return [e.candidate.case_id for e in self.chosen]


def _milp(
    objective: np.ndarray,
    integrality: np.ndarray,
    upper: np.ndarray,
    constraints: list[LinearConstraint],
    *,
    ceiling: float,
) -> np.ndarray:
    """Maximise an objective whose value is a whole number at every candidate solution
    (persons placed; sums of whole priorities), no greater than `ceiling`.

    A relative gap of 0.5 / ceiling lets the solver stop once no solution can beat the
    one it has by a whole unit: with whole values that one is exactly optimal, and the
    solver is spared proving the last fraction of a bound that cannot be reached.
    """
    result = milp(
        c=-objective,
        integrality=integrality,
        bounds=Bounds(0, upper),
        constraints=constraints,
        options={"mip_rel_gap": 0.5 / max(ceiling, 1.0)},
    )
    if result.x is None:  # pragma: no cover - choosing nothing is always feasible
        raise RuntimeError(f"allocation solver failed: {result.message}")
    return result.x


def solve(
    pairs: Sequence[tuple[int, int]], sizes: Sequence[int], priorities: Sequence[int], capacities: Sequence[int]
) -> list[int]:
    """Choose pairs (case index, offer index): each case at most once, each offer
    within its capacity, most persons placed, then the highest total priority.

    Returns the indices of the chosen pairs. Cases of the same size that fit the same
    offers are interchangeable but for their priority, so the model counts how many
    of each such class go to each offer (few integer variables) and takes each
    class's best cases: the exact optimum, without one variable per case and offer.
    """
    if not pairs:
        return []
    fits: dict[int, set[int]] = {}
    for case, offer in pairs:
        fits.setdefault(case, set()).add(offer)
    classes: dict[tuple[int, frozenset[int]], list[int]] = {}
    for case, fitting_offers in fits.items():
        classes.setdefault((sizes[case], frozenset(fitting_offers)), []).append(case)
    keys = list(classes)
    for (size, class_offers), members in classes.items():
        members.sort(key=lambda c: -priorities[c])
        # No more of a class can go than its offers have room for: drop the rest early.
        del members[sum(capacities[o] for o in class_offers) // size :]

    # Columns: y[class, offer] (integer counts), then z[case] (0..1, continuous).
    y_index = [(k, offer) for k, (_size, class_offers) in enumerate(keys) for offer in sorted(class_offers)]
    cases = [c for key in keys for c in classes[key]]
    n_y, n = len(y_index), len(y_index) + len(cases)
    y_size = np.array([keys[k][0] for k, _offer in y_index], dtype=float)

    capacity_rows = csr_array((y_size, ([offer for _k, offer in y_index], range(n_y))), shape=(len(capacities), n))
    link_rows, link_cols, link_vals = [], [], []
    for col, (k, _offer) in enumerate(y_index):
        link_rows.append(k)
        link_cols.append(col)
        link_vals.append(1.0)
    z_col = n_y
    for k, key in enumerate(keys):
        for _case in classes[key]:
            link_rows.append(k)
            link_cols.append(z_col)
            link_vals.append(-1.0)
            z_col += 1
    link = csr_array((link_vals, (link_rows, link_cols)), shape=(len(keys), n))
    upper = np.concatenate(
        [[min(len(classes[keys[k]]), capacities[offer] // keys[k][0]) for k, offer in y_index], np.ones(len(cases))]
    )
    integrality = np.concatenate([np.ones(n_y), np.zeros(len(cases))])
    placed = np.concatenate([y_size, np.zeros(len(cases))])
    constraints = [
        LinearConstraint(capacity_rows, 0, np.array(capacities, dtype=float)),
        LinearConstraint(link, 0, 0),
    ]

    # Stage 1: the most persons placed.
    filled = round(float(placed @ _milp(placed, integrality, upper, constraints, ceiling=float(sum(capacities)))))
    # Stage 2: that many persons, and the highest total priority among such choices.
    worth = np.concatenate([np.zeros(n_y), [float(priorities[c]) for c in cases]])
    x = _milp(
        worth,
        integrality,
        upper,
        [*constraints, LinearConstraint(placed.reshape(1, -1), filled, np.inf)],
        ceiling=float(worth.sum()),
    )

    pair_index = {pair: i for i, pair in enumerate(pairs)}
    chosen = []
    taken = dict.fromkeys(range(len(keys)), 0)
    for col, (k, offer) in enumerate(y_index):
        count = round(x[col])
        for case in classes[keys[k]][taken[k] : taken[k] + count]:
            chosen.append(pair_index[(case, offer)])
        taken[k] += count
    return chosen


def propose(
    candidates: Iterable[Candidate],
    conditions: Conditions,
    *,
    today: datetime.date,
    left_out_shown: int = 10,
) -> Proposal:
    """The optimal set of cases for one offer, with the reasons for and against."""
    everyone = list(candidates)
    fitting = [c for c in everyone if conditions.fits(c)]
    priorities = [c.priority(today) for c in fitting]
    chosen_idx = set(
        solve(
            [(i, 0) for i in range(len(fitting))],
            [c.persons for c in fitting],
            priorities,
            [conditions.places_left],
        )
    )

    def explain(c: Candidate, reasons: list[str]) -> Explained:
        return Explained(c, c.priority(today), c.vulnerability(), c.waiting_days(today), reasons)

    chosen = [explain(fitting[i], conditions.met(fitting[i])) for i in sorted(chosen_idx, key=lambda i: -priorities[i])]
    filled = sum(e.candidate.persons for e in chosen)
    total = sum(e.priority for e in chosen)
    chosen_ids = {e.candidate.case_id for e in chosen}
    left_out = []
    for c in sorted(everyone, key=lambda c: -c.priority(today)):
        if c.case_id in chosen_ids:
            continue
        unmet = conditions.unmet(c)
        if not unmet:
            unmet = [
                _(
                    "fits the offer, but no selection with it places %(filled)d persons "
                    "with a total priority of %(total)d or more"
                )
                % {"filled": filled, "total": total}
            ]
        left_out.append(explain(c, unmet))
        if len(left_out) >= left_out_shown:
            break
    baseline = greedy(everyone, conditions, today=today)
    return Proposal(
        conditions.places_left,
        chosen,
        left_out,
        filled,
        total,
        greedy_filled=sum(c.persons for c in baseline),
        greedy_priority=sum(c.priority(today) for c in baseline),
    )


def greedy(candidates: Iterable[Candidate], conditions: Conditions, *, today: datetime.date) -> list[Candidate]:
    """The baseline a person would apply by hand: highest priority first, if it fits."""
    left = conditions.places_left
    taken = []
    for c in sorted(candidates, key=lambda c: -c.priority(today)):
        if conditions.fits(c) and c.persons <= left:
            taken.append(c)
            left -= c.persons
    return taken
