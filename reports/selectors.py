"""Dashboard figures: aggregates in SQL, a fixed number of queries whatever the data.

Every function takes the dashboard's filters. Site and nationality narrow persons (and
cases, by their principal applicant's nationality); the date range narrows the
figures over time (departures, interviews, incidents). Snapshot figures (pipeline,
aging, population) describe today.
"""

import datetime
from collections import defaultdict
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
    if filters.site is not None:
        q &= Q(**{f"{prefix}site": filters.site})
    if filters.nationality:
        q &= Q(**{f"{prefix}nationality": filters.nationality})
    return q


def _cases(queryset: QuerySet, filters: DashboardFilters, prefix: str = "") -> QuerySet:
    """Site and principal applicant's nationality filters on cases (reached through `prefix`)."""
    if filters.site is not None:
        queryset = queryset.filter(**{f"{prefix}site": filters.site})
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


def population(filters: DashboardFilters) -> Population:
    """Relocated and still to relocate, per site and in all, persons present by sex and age
    band, and living persons by case status: one pass over persons (joined to their case)
    grouped by site, sex and case status, and the list of sites."""
    year = timezone.localdate().year
    present = Q(residence_status=ResidenceStatus.PRESENT)
    bands = {}
    for index, (_label, low, high) in enumerate(AGE_BANDS):
        q = present & Q(birth_year__lte=year - low)
        if high is not None:
            q &= Q(birth_year__gte=year - high)
        bands[f"a{index}"] = Count("pk", filter=q)
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
    per_site: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    per_sex: dict[str, list[int]] = defaultdict(lambda: [0] * len(AGE_BANDS))
    living: dict[str, int] = defaultdict(int)
    for row in rows:
        living[row["case__status"]] += row["present"] + row["relocated"]
        per_site[row["site_id"]][0] += row["present"]
        per_site[row["site_id"]][1] += row["relocated"]
        for index in range(len(AGE_BANDS)):
            per_sex[row["sex"]][index] += row[f"a{index}"]
    sites = Site.objects.order_by("name")
    if filters.site is not None:
        sites = sites.filter(pk=filters.site.pk)
    return Population(
        headline=Headline(relocated=sum(r["relocated"] for r in rows), to_relocate=sum(r["present"] for r in rows)),
        sites=[SiteCount(site.name, *per_site[site.pk]) for site in sites],
        by_sex=[SexRow(sex=sex, bands=per_sex[sex]) for sex in Sex],
        living_by_status=dict(living),
    )


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
    listed) and the open cases by time in their status, in one query over cases."""
    now = timezone.now()
    buckets = {}
    for index, (_label, low, high) in enumerate(AGING_BUCKETS):
        q = Q(status_changed_at__lte=now - datetime.timedelta(days=low))
        if high is not None:
            q &= Q(status_changed_at__gt=now - datetime.timedelta(days=high))
        buckets[f"b{index}"] = Count("pk", filter=q)
    cases: dict[str, dict[str, Any]] = {
        row["status"]: dict(row)
        for row in _cases(Case.objects.order_by(), filters).values("status").annotate(n=Count("pk"), **buckets)
    }
    persons = population.living_by_status
    return CaseFigures(
        pipeline=[
            StatusCount(status=status, cases=cases.get(status, {}).get("n", 0), persons=persons.get(status, 0))
            for status in CaseStatus
        ],
        aging=[
            AgingRow(status=status, buckets=[cases.get(status, {}).get(key, 0) for key in buckets])
            for status in CaseStatus
            if status not in workflow.ENDED
        ],
    )


# Over time


@dataclass(frozen=True)
class WeekDepartures:
    week: datetime.date
    departures: int
    persons: int
    cumulative: int


def departures_per_week(filters: DashboardFilters) -> list[WeekDepartures]:
    """Persons departed per week (from the manifests of departures marked departed) and the
    running total of persons relocated, counting those who left before the range; one query."""
    rows = (
        DeparturePerson.objects.filter(
            _persons(filters, "person__"),
            departure__status=DepartureStatus.DEPARTED,
            departure__departed_at__lt=_end(filters.date_to),
        )
        .annotate(week=TruncWeek("departure__departed_at", output_field=DateField()))
        .values("week")
        .annotate(departures=Count("departure", distinct=True), persons=Count("pk"))
        .order_by("week")
    )
    first = _monday(filters.date_from)
    before = 0
    by_week: dict[datetime.date, tuple[int, int]] = {}
    for row in rows:
        if row["week"] < first:
            before += row["persons"]
        else:
            by_week[row["week"]] = (row["departures"], row["persons"])
    weeks = []
    total = before
    for week in _weeks(filters):
        departures, persons = by_week.get(week, (0, 0))
        total += persons
        weeks.append(WeekDepartures(week=week, departures=departures, persons=persons, cumulative=total))
    return weeks


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
    """Interviews scheduled per week by outcome, in one query."""
    rows = (
        _cases(Interview.objects.order_by(), filters, "case__")
        .filter(scheduled_at__gte=_start(filters.date_from), scheduled_at__lt=_end(filters.date_to))
        .annotate(week=TruncWeek("scheduled_at", output_field=DateField()))
        .values("week", "outcome")
        .annotate(n=Count("pk"))
    )
    counts: dict[datetime.date, dict[str, int]] = defaultdict(dict)
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row["week"]][row["outcome"]] = row["n"]
        totals[row["outcome"]] += row["n"]
    weeks = [
        WeekInterviews(week=week, by_outcome={o: counts[week].get(o, 0) for o in InterviewOutcome})
        for week in _weeks(filters)
    ]
    return InterviewFigures(weeks=weeks, totals={o: totals.get(o, 0) for o in InterviewOutcome})


@dataclass(frozen=True)
class NeedCount:
    code: str
    label: str
    persons: int


def specific_needs(filters: DashboardFilters) -> list[NeedCount]:
    """Persons present per specific need, most frequent first, in one query."""
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
    if filters.site is not None:
        incidents = incidents.filter(site=filters.site)
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
    if filters.site is not None:
        affected = affected.filter(incident__site=filters.site)
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
