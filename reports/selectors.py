"""Dashboard figures: aggregates in SQL, a fixed number of queries whatever the data.

Every function takes the dashboard's filters. Site and nationality narrow persons (and
cases, by their principal applicant's nationality); the date range narrows the
figures over time (departures, interviews, incidents). Snapshot figures (pipeline,
aging, population) describe today.

On PostgreSQL the figures are read from summary tables that triggers keep exact
(reports/figures.py): a few hundred rows whatever the number of persons. Elsewhere, and
as the reference the tests hold them to, they are counted from the rows themselves
(the live_* functions).
"""

import datetime
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, DateField, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncMonth, TruncWeek
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cases import workflow
from cases.models import (
    Case,
    CaseStatus,
    Incident,
    IncidentEffect,
    IncidentKind,
    IncidentPerson,
    Interview,
    InterviewOutcome,
    Person,
    Relationship,
    ResidenceStatus,
    Sex,
    Site,
)
from cases.selectors import StatusCount
from offers.models import DeparturePerson, DepartureStatus
from reports.forms import DashboardFilters

# Outcomes that say whether the case came: the participation rate's denominator.
DECIDED_OUTCOMES = (InterviewOutcome.ATTENDED, InterviewOutcome.NO_SHOW, InterviewOutcome.REFUSED)

# Time in the current status: (label, at least days, less than days).
AGING_BUCKETS = [
    (_("under 30 days"), 0, 30),
    (_("30–89 days"), 30, 90),
    (_("90–179 days"), 90, 180),
    (_("180–364 days"), 180, 365),
    (_("a year or more"), 365, None),
]


# Age reached in the current year, from the year of birth (known for everyone, and
# indexed): (label, lowest age, highest age).
AGE_BANDS = [
    ("0–4", 0, 4),
    ("5–11", 5, 11),
    ("12–17", 12, 17),
    ("18–59", 18, 59),
    ("60+", 60, None),
]


def _start(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def _end(day: datetime.date) -> datetime.datetime:
    """The first instant after `day`."""
    return _start(day + datetime.timedelta(days=1))


def _monday(day: datetime.date) -> datetime.date:
    return day - datetime.timedelta(days=day.weekday())


def _weeks(filters: DashboardFilters) -> list[datetime.date]:
    """The Mondays of every week the range touches."""
    first, last = _monday(filters.date_from), _monday(filters.date_to)
    return [first + datetime.timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]


def _months(filters: DashboardFilters) -> list[datetime.date]:
    months = []
    month = filters.date_from.replace(day=1)
    while month <= filters.date_to:
        months.append(month)
        month = (month + datetime.timedelta(days=32)).replace(day=1)
    return months


def _pa_nationality(nationality: str, case_path: str = "pk") -> Exists:
    """The case (at `case_path`) has a principal applicant of this nationality."""
    return Exists(
        Person.objects.filter(
            case_id=OuterRef(case_path), relationship=Relationship.PRINCIPAL_APPLICANT, nationality=nationality
        )
    )


def _persons(filters: DashboardFilters, prefix: str = "") -> Q:
    """Site and nationality filters on persons (reached through `prefix`)."""
    q = Q()
    if filters.site_ids is not None:
        q &= Q(**{f"{prefix}site__in": filters.site_ids})
    if filters.nationality:
        q &= Q(**{f"{prefix}nationality": filters.nationality})
    return q


def _cases(queryset: QuerySet, filters: DashboardFilters, prefix: str = "") -> QuerySet:
    """Site and principal applicant's nationality filters on cases (reached through `prefix`)."""
    if filters.site_ids is not None:
        queryset = queryset.filter(**{f"{prefix}site__in": filters.site_ids})
    if filters.nationality:
        queryset = queryset.filter(_pa_nationality(filters.nationality, f"{prefix}pk" if prefix else "pk"))
    return queryset


# Snapshot of today


@dataclass(frozen=True)
class Headline:
    relocated: int
    to_relocate: int

    @property
    def percent_done(self) -> float:
        total = self.relocated + self.to_relocate
        return round(100 * self.relocated / total, 1) if total else 0.0


@dataclass(frozen=True)
class SiteCount:
    name: str
    present: int
    relocated: int


@dataclass(frozen=True)
class SexRow:
    sex: Sex
    bands: list[int]

    @property
    def total(self) -> int:
        return sum(self.bands)


@dataclass(frozen=True)
class Population:
    headline: Headline
    sites: list[SiteCount]
    by_sex: list[SexRow]
    # Persons present or relocated by their case's status, for the pipeline.
    living_by_status: dict[str, int]


def population(filters: DashboardFilters, sites: list[Site] | None = None) -> Population:
    """Relocated and still to relocate, per site and in all, persons present by sex and age
    band, and living persons by case status. `sites`: every site by name, if already read."""
    from reports import figures

    return figures.population(filters, sites) if figures.enabled() else live_population(filters, sites)


def _age_band(year: int, birth_year: int) -> int | None:
    """The index in AGE_BANDS of the age reached this year, if any."""
    age = year - birth_year
    for index, (_label, low, high) in enumerate(AGE_BANDS):
        if low <= age and (high is None or age <= high):
            return index
    return None


@dataclass
class PopulationCounts:
    """Counts to make a Population of: added up from rows of any grouping."""

    per_site: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    per_sex: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * len(AGE_BANDS)))
    living: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def finish(self, filters: DashboardFilters, sites: list[Site] | None = None) -> Population:
        """The Population, with `sites` (every site by name; read if not given)."""
        if sites is None:
            sites = list(Site.objects.order_by("name"))
        if filters.site_ids is not None:
            sites = [site for site in sites if site.pk in filters.site_ids]
        return Population(
            headline=Headline(
                relocated=sum(n for _present, n in self.per_site.values()),
                to_relocate=sum(n for n, _relocated in self.per_site.values()),
            ),
            sites=[SiteCount(site.name, *self.per_site.get(site.pk, [0, 0])) for site in sites],
            by_sex=[SexRow(sex=sex, bands=list(self.per_sex.get(sex, [0] * len(AGE_BANDS)))) for sex in Sex],
            living_by_status={status: n for status, n in self.living.items() if n},
        )


def live_population(filters: DashboardFilters, sites: list[Site] | None = None) -> Population:
    """population() counted from the persons: one pass over persons (joined to their case)
    grouped by site, sex and case status."""
    year = timezone.localdate().year
    present = Q(residence_status=ResidenceStatus.PRESENT)
    bands = {}
    for index, (_label, low, high) in enumerate(AGE_BANDS):
        q = present & Q(birth_year__lte=year - low)
        if high is not None:
            q &= Q(birth_year__gte=year - high)
        bands[f"a{index}"] = Count("pk", filter=q)
    counts = PopulationCounts()
    rows: list[dict[str, Any]] = [
        dict(row)
        for row in Person.objects.order_by()
        .filter(_persons(filters))
        .values("site_id", "sex", "case__status")
        .annotate(
            present=Count("pk", filter=present),
            relocated=Count("pk", filter=Q(residence_status=ResidenceStatus.RELOCATED)),
            **bands,
        )
    ]
    for row in rows:
        counts.living[row["case__status"]] += row["present"] + row["relocated"]
        counts.per_site[row["site_id"]][0] += row["present"]
        counts.per_site[row["site_id"]][1] += row["relocated"]
        for index in range(len(AGE_BANDS)):
            counts.per_sex[row["sex"]][index] += row[f"a{index}"]
    return counts.finish(filters, sites)


@dataclass(frozen=True)
class AgingRow:
    status: CaseStatus
    buckets: list[int]

    @property
    def total(self) -> int:
        return sum(self.buckets)


@dataclass(frozen=True)
class CaseFigures:
    pipeline: list[StatusCount]
    aging: list[AgingRow]


def case_figures(filters: DashboardFilters, population: Population) -> CaseFigures:
    """The pipeline (cases, and the living persons of `population`, per status, every status
    listed) and the open cases by time in their status."""
    from reports import figures

    if figures.enabled():
        return figures.case_figures(filters, population)
    return live_case_figures(filters, population)


def aging_bounds(now: datetime.datetime) -> list[datetime.datetime]:
    """The instants between AGING_BUCKETS, newest first: now, then 30, 90… days back. Bucket i
    holds the cases that entered their status in (bounds[i + 1], bounds[i]]; the last, before."""
    return [now - datetime.timedelta(days=low) for _label, low, _high in AGING_BUCKETS]


def _case_figures(cases: dict[str, int], aging: dict[str, list[int]], population: Population) -> CaseFigures:
    persons = population.living_by_status
    return CaseFigures(
        pipeline=[
            StatusCount(status=status, cases=cases.get(status, 0), persons=persons.get(status, 0))
            for status in CaseStatus
        ],
        aging=[
            AgingRow(status=status, buckets=list(aging.get(status, [0] * len(AGING_BUCKETS))))
            for status in CaseStatus
            if status not in workflow.ENDED
        ],
    )


def live_case_figures(filters: DashboardFilters, population: Population) -> CaseFigures:
    """case_figures() counted from the cases, in one query."""
    bounds = aging_bounds(timezone.now())
    buckets = {}
    for index, (_label, _low, high) in enumerate(AGING_BUCKETS):
        q = Q(status_changed_at__lte=bounds[index])
        if high is not None:
            q &= Q(status_changed_at__gt=bounds[index + 1])
        buckets[f"b{index}"] = Count("pk", filter=q)
    cases: dict[str, int] = {}
    aging: dict[str, list[int]] = {}
    for row in _cases(Case.objects.order_by(), filters).values("status").annotate(n=Count("pk"), **buckets):
        cases[row["status"]] = row["n"]
        aging[row["status"]] = [row[key] for key in buckets]
    return _case_figures(cases, aging, population)


# Over time


@dataclass(frozen=True)
class WeekDepartures:
    week: datetime.date
    departures: int
    persons: int
    cumulative: int


def departures_per_week(filters: DashboardFilters) -> list[WeekDepartures]:
    """Persons departed per week (from the manifests of departures marked departed) and the
    running total of persons relocated, counting those who left before the range."""
    from reports import figures

    return figures.departures_per_week(filters) if figures.enabled() else live_departures_per_week(filters)


def weekly_departures(
    filters: DashboardFilters, rows: Iterable[tuple[datetime.date, int, int]]
) -> list[WeekDepartures]:
    """The weeks of the range from (week, departures, persons) rows of weeks up to its end."""
    first = _monday(filters.date_from)
    before = 0
    by_week: dict[datetime.date, list[int]] = defaultdict(lambda: [0, 0])
    for week, departures, persons in rows:
        if week < first:
            before += persons
        else:
            by_week[week][0] += departures
            by_week[week][1] += persons
    weeks = []
    total = before
    for week in _weeks(filters):
        departures, persons = by_week.get(week, (0, 0))
        total += persons
        weeks.append(WeekDepartures(week=week, departures=departures, persons=persons, cumulative=total))
    return weeks


def live_departures_per_week(filters: DashboardFilters) -> list[WeekDepartures]:
    """departures_per_week() counted from the manifests, in one query."""
    rows = (
        DeparturePerson.objects.filter(
            _persons(filters, "person__"),
            departure__status=DepartureStatus.DEPARTED,
            departure__departed_at__lt=_end(filters.date_to),
        )
        .annotate(week=TruncWeek("departure__departed_at", output_field=DateField()))
        .values("week")
        .annotate(departures=Count("departure", distinct=True), persons=Count("pk"))
        .values_list("week", "departures", "persons")
    )
    return weekly_departures(filters, rows)


def _rate(attended: int, decided: int) -> float | None:
    return round(100 * attended / decided, 1) if decided else None


@dataclass(frozen=True)
class WeekInterviews:
    week: datetime.date
    by_outcome: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_outcome.values())

    @property
    def counts(self) -> list[int]:
        """In the order of InterviewOutcome."""
        return [self.by_outcome.get(outcome, 0) for outcome in InterviewOutcome]

    @property
    def participation(self) -> float | None:
        """Attended over attended, no-show and refused, in percent; None before any outcome."""
        decided = sum(self.by_outcome.get(outcome, 0) for outcome in DECIDED_OUTCOMES)
        return _rate(self.by_outcome.get(InterviewOutcome.ATTENDED, 0), decided)


@dataclass(frozen=True)
class InterviewFigures:
    weeks: list[WeekInterviews]
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def counts(self) -> list[int]:
        return [self.totals.get(outcome, 0) for outcome in InterviewOutcome]

    @property
    def participation(self) -> float | None:
        decided = sum(self.totals.get(outcome, 0) for outcome in DECIDED_OUTCOMES)
        return _rate(self.totals.get(InterviewOutcome.ATTENDED, 0), decided)

    @property
    def total(self) -> int:
        return sum(self.totals.values())


def interviews_per_week(filters: DashboardFilters) -> InterviewFigures:
    """Interviews scheduled per week by outcome."""
    from reports import figures

    return figures.interviews_per_week(filters) if figures.enabled() else live_interviews_per_week(filters)


def weekly_interviews(filters: DashboardFilters, rows: Iterable[tuple[datetime.date, str, int]]) -> InterviewFigures:
    """The weeks of the range from (week, outcome, interviews) rows."""
    counts: dict[datetime.date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, int] = defaultdict(int)
    for week, outcome, n in rows:
        counts[week][outcome] += n
        totals[outcome] += n
    weeks = [
        WeekInterviews(week=week, by_outcome={o: counts[week].get(o, 0) for o in InterviewOutcome})
        for week in _weeks(filters)
    ]
    return InterviewFigures(weeks=weeks, totals={o: totals.get(o, 0) for o in InterviewOutcome})


def live_interviews_per_week(filters: DashboardFilters) -> InterviewFigures:
    """interviews_per_week() counted from the interviews, in one query."""
    rows = (
        _cases(Interview.objects.order_by(), filters, "case__")
        .filter(scheduled_at__gte=_start(filters.date_from), scheduled_at__lt=_end(filters.date_to))
        .annotate(week=TruncWeek("scheduled_at", output_field=DateField()))
        .values("week", "outcome")
        .annotate(n=Count("pk"))
        .values_list("week", "outcome", "n")
    )
    return weekly_interviews(filters, rows)


@dataclass(frozen=True)
class NeedCount:
    code: str
    label: str
    persons: int


def specific_needs(filters: DashboardFilters) -> list[NeedCount]:
    """Persons present per specific need, most frequent first, in one query."""
    from reports import figures

    return figures.specific_needs(filters) if figures.enabled() else live_specific_needs(filters)


def live_specific_needs(filters: DashboardFilters) -> list[NeedCount]:
    """specific_needs() counted from the persons' needs."""
    Through = Person.specific_needs.through
    rows = (
        Through.objects.filter(_persons(filters, "person__"), person__residence_status=ResidenceStatus.PRESENT)
        .values("specificneed__code", "specificneed__label")
        .annotate(persons=Count("person_id"))
        .order_by("-persons", "specificneed__code")
    )
    return [NeedCount(row["specificneed__code"], row["specificneed__label"], row["persons"]) for row in rows]


@dataclass(frozen=True)
class MonthIncidents:
    month: datetime.date
    by_kind: dict[str, int]
    by_effect: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    @property
    def kind_counts(self) -> list[int]:
        """In the order of IncidentKind."""
        return [self.by_kind.get(kind, 0) for kind in IncidentKind]

    @property
    def effect_counts(self) -> list[int]:
        """Persons affected, in the order of IncidentEffect."""
        return [self.by_effect.get(effect, 0) for effect in IncidentEffect]

    @property
    def harmed(self) -> int:
        """Persons injured, killed or missing."""
        return sum(n for effect, n in self.by_effect.items() if effect != IncidentEffect.AFFECTED)


def incidents_per_month(filters: DashboardFilters) -> list[MonthIncidents]:
    """Incidents per month by kind, and the persons they affected by effect, in two queries.

    The nationality filter keeps incidents that affected a person of that nationality.
    """
    within = Q(occurred_at__gte=_start(filters.date_from), occurred_at__lt=_end(filters.date_to))
    incidents = Incident.objects.order_by().filter(within)
    if filters.site_ids is not None:
        incidents = incidents.filter(site__in=filters.site_ids)
    if filters.nationality:
        incidents = incidents.filter(
            Exists(IncidentPerson.objects.filter(incident=OuterRef("pk"), person__nationality=filters.nationality))
        )
    kinds: dict[datetime.date, dict[str, int]] = defaultdict(dict)
    for row in (
        incidents.annotate(month=TruncMonth("occurred_at", output_field=DateField()))
        .values("month", "kind")
        .annotate(n=Count("pk"))
    ):
        kinds[row["month"]][row["kind"]] = row["n"]
    affected = IncidentPerson.objects.order_by().filter(
        _persons(filters, "person__"),
        incident__occurred_at__gte=_start(filters.date_from),
        incident__occurred_at__lt=_end(filters.date_to),
    )
    if filters.site_ids is not None:
        affected = affected.filter(incident__site__in=filters.site_ids)
    effects: dict[datetime.date, dict[str, int]] = defaultdict(dict)
    for month, effect, n in (
        affected.annotate(month=TruncMonth("incident__occurred_at", output_field=DateField()))
        .values_list("month", "effect")
        .annotate(n=Count("pk"))
    ):
        effects[month][effect] = n
    return [
        MonthIncidents(
            month=month,
            by_kind={k: kinds[month].get(k, 0) for k in IncidentKind},
            by_effect={e: effects[month].get(e, 0) for e in IncidentEffect},
        )
        for month in _months(filters)
    ]
