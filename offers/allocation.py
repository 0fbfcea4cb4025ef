"""Allocation suggestions: which eligible cases to nominate to an offer.

An exact optimisation, solved with SciPy's `milp` (the HiGHS solver), in two stages:

1. fill the offer's remaining places as exactly as possible (most persons placed);
2. among the selections that place that many persons, take the one with the highest
   total priority (vulnerability first, then time waiting).

A case is taken whole or not at all (the model counts whole households), so a
household is never split. Cases that break one of the offer's conditions are never in
the model at all. Two stages rather than one weighted objective, so that no weighting
can trade a place for priority, and both stages are solved to the exact optimum. The
first stage needs no solver when a quick packing already fills every place (see
`solve`).
"""

import datetime
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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
    # Specific needs' labels by code, for the words shown (codes where missing).
    need_labels: Mapping[str, str] = field(default_factory=dict, compare=False)

    def needs_shown(self, needs: Iterable[str]) -> str:
        """Needs in words, each once with how many members have it: "Disability ×2, …"."""
        counted = Counter(self.need_labels.get(code, code) for code in needs)
        return ", ".join(label if n == 1 else f"{label} ×{n}" for label, n in sorted(counted.items()))

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
            met.append(_("household within the offer's limit of %(max)d persons") % {"max": self.max_case_size})
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
                _("household of %(n)d is larger than the offer's limit of %(max)d persons")
                % {"n": candidate.persons, "max": self.max_case_size}
            )
        if self.nationalities and not candidate.nationalities <= self.nationalities:
            reasons.append(
                _("nationality %(codes)s not among those accepted")
                % {"codes": ", ".join(sorted(candidate.nationalities - self.nationalities))}
            )
        excluded = set(candidate.needs) & self.excluded_needs
        if excluded:
            reasons.append(
                _("specific needs the offer cannot receive: %(needs)s") % {"needs": self.needs_shown(excluded)}
            )
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
    # The members' specific needs, in words.
    needs: str = ""


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

    Every column is an integer and every objective coefficient a whole number, so HiGHS
    sees that the objective is integral and rounds its bound down to a whole number: a
    solution within 1 of the LP bound is proved optimal at once, without branching.
    The relative gap of 0.5 / ceiling (an absolute gap under a half, as the optimum is
    at most `ceiling`) is the same guarantee stated to the solver: it may stop only
    once no solution can beat the one it has by a whole unit, that is, at the optimum.
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


@dataclass
class _Class:
    """Cases of one size that fit the same offers: interchangeable but for priority."""

    size: int
    offers: list[int]
    members: list[int]  # case indices, highest priority first
    levels: list[tuple[int, int]] = field(default_factory=list)  # (priority, how many), highest first


def _classes(
    pairs: Sequence[tuple[int, int]], sizes: Sequence[int], priorities: Sequence[int], capacities: Sequence[int]
) -> list[_Class]:
    fits: dict[int, set[int]] = {}
    for case, offer in pairs:
        # An offer with fewer places left than the household is no offer for it.
        if sizes[case] <= capacities[offer]:
            fits.setdefault(case, set()).add(offer)
    grouped: dict[tuple[int, frozenset[int]], list[int]] = {}
    for case, fitting_offers in fits.items():
        grouped.setdefault((sizes[case], frozenset(fitting_offers)), []).append(case)
    classes = []
    for (size, class_offers), members in grouped.items():
        members.sort(key=lambda c: -priorities[c])
        # No more of a class can go than its offers have room for: drop the rest early.
        del members[sum(capacities[o] for o in class_offers) // size :]
        levels: list[tuple[int, int]] = []
        for case in members:
            if levels and levels[-1][0] == priorities[case]:
                levels[-1] = (levels[-1][0], levels[-1][1] + 1)
            else:
                levels.append((priorities[case], 1))
        classes.append(_Class(size, sorted(class_offers), members, levels))
    return classes


def _fill_greedily(classes: list[_Class], capacities: Sequence[int]) -> int:
    """Persons a quick packing places (a lower bound on the most that can be placed):
    offer by offer, the largest households that still fit, then smaller ones."""
    left = list(capacities)
    remaining = [len(cls.members) for cls in classes]
    by_offer: dict[int, list[int]] = {}
    for k, cls in enumerate(classes):
        for offer in cls.offers:
            by_offer.setdefault(offer, []).append(k)
    placed = 0
    # The offers open to the fewest classes first, while those classes are still there.
    for offer in sorted(by_offer, key=lambda o: len(by_offer[o])):
        for k in sorted(by_offer[offer], key=lambda k: -classes[k].size):
            take = min(remaining[k], left[offer] // classes[k].size)
            remaining[k] -= take
            left[offer] -= take * classes[k].size
            placed += take * classes[k].size
    return placed


def solve(
    pairs: Sequence[tuple[int, int]], sizes: Sequence[int], priorities: Sequence[int], capacities: Sequence[int]
) -> list[int]:
    """Choose pairs (case index, offer index): each case at most once, each offer
    within its capacity, most persons placed, then the highest total priority.

    Returns the indices of the chosen pairs. Priorities are whole numbers. Cases of the
    same size that fit the same offers (a class) are interchangeable but for their
    priority, and within a class cases of the same priority are interchangeable
    outright. So the model has whole-number variables only: y[class, offer], how many
    of a class go to an offer, and w[class, priority], how many of a class are taken at
    that priority; the same count of a class either way. That is the exact optimum
    without one variable per case and offer, and, all variables and priorities being
    whole, an objective HiGHS knows to be whole (see `_milp`).
    """
    classes = _classes(pairs, sizes, priorities, capacities)
    if not classes:
        return []

    # Columns: y[class, offer], then w[class, level]; all integers.
    y_index = [(k, offer) for k, cls in enumerate(classes) for offer in cls.offers]
    w_index = [(k, level) for k, cls in enumerate(classes) for level in range(len(cls.levels))]
    n_y, n = len(y_index), len(y_index) + len(w_index)
    y_size = np.array([classes[k].size for k, _offer in y_index], dtype=float)

    capacity_rows = csr_array((y_size, ([offer for _k, offer in y_index], range(n_y))), shape=(len(capacities), n))
    link = csr_array(
        (
            np.concatenate([np.ones(n_y), -np.ones(len(w_index))]),
            ([k for k, _offer in y_index] + [k for k, _level in w_index], range(n)),
        ),
        shape=(len(classes), n),
    )
    upper = np.array(
        [min(len(classes[k].members), capacities[offer] // classes[k].size) for k, offer in y_index]
        + [classes[k].levels[level][1] for k, level in w_index],
        dtype=float,
    )
    integrality = np.ones(n)
    placed = np.concatenate([y_size, np.zeros(len(w_index))])
    link_rows = LinearConstraint(link, 0, 0)

    # Stage 1: the most persons placed. No selection places more than every place
    # there is; when a quick packing places that many, it is the optimum, no solver needed.
    ceiling = sum(capacities)
    filled = _fill_greedily(classes, capacities)
    if filled < ceiling:
        capacity = LinearConstraint(capacity_rows, 0, np.array(capacities, dtype=float))
        x = _milp(placed, integrality, upper, [capacity, link_rows], ceiling=float(ceiling))
        filled = max(filled, round(float(placed @ x)))

    # Stage 2: that many persons, and the highest total priority among such choices.
    if filled == ceiling:  # every offer full to the last place: equalities, which presolve can use
        stage2 = [LinearConstraint(capacity_rows, np.array(capacities, dtype=float), np.array(capacities, dtype=float))]
    else:
        stage2 = [
            LinearConstraint(capacity_rows, 0, np.array(capacities, dtype=float)),
            LinearConstraint(placed.reshape(1, -1), filled, np.inf),
        ]
    worth = np.concatenate([np.zeros(n_y), [float(classes[k].levels[level][0]) for k, level in w_index]])
    x = _milp(worth, integrality, upper, [*stage2, link_rows], ceiling=float(np.maximum(worth, 0) @ upper))

    pair_index = {pair: i for i, pair in enumerate(pairs)}
    counts = [round(v) for v in x]
    chosen: list[int] = []
    y_col, w_col = 0, n_y
    for cls in classes:
        # The cases taken: at each priority, as many as w says (members are in level order)...
        taken: list[int] = []
        start = 0
        for _priority, count in cls.levels:
            taken.extend(cls.members[start : start + counts[w_col]])
            start += count
            w_col += 1
        # ...handed to the offers as y says: within the class they are interchangeable.
        for offer in cls.offers:
            chosen.extend(pair_index[(case, offer)] for case in taken[: counts[y_col]])
            del taken[: counts[y_col]]
            y_col += 1
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
        return Explained(
            c, c.priority(today), c.vulnerability(), c.waiting_days(today), reasons, conditions.needs_shown(c.needs)
        )

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
