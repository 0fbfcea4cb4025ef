"""The dashboard's figures from its summary tables (PostgreSQL).

Counting a million persons, their cases, interviews, needs and manifests takes seconds;
the dashboard has 300 ms. So triggers on those tables keep, in the same transaction as
each change, a count per key in six small tables (reports.models.PersonCount and its
kind): a figure is a sum over a few hundred or thousand rows, whatever the number of
persons. Never stale: a change and its counts commit together, and a reader sees both or
neither. How the triggers stay exact, also with writers at the same time, is told in
reports/migrations/0004_figure_triggers.py; check() compares every count with the rows
(manage.py report_figures), rebuild() counts everything again (--rebuild).

Each reader returns what its twin in reports.selectors (live_*) returns from the rows
themselves, for every filter; tests/reports/test_figures.py holds them to it.
"""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import DateField, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from cases.models import CaseStatus, ResidenceStatus, Site
from cases.scope import Sites
from cases.selectors import StatusCount
from offers.models import DepartureStatus
from reports import selectors
from reports.forms import DashboardFilters
from reports.models import DepartureCount, InterviewCount, NeedCount

# The grid of reports_interviewcount.slot: quarter hours from midnight UTC.
GRID = datetime.timedelta(minutes=15)
_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
LIVING = (ResidenceStatus.PRESENT, ResidenceStatus.RELOCATED)


def enabled() -> bool:
    """Whether the summary tables are kept (by the PostgreSQL triggers)."""
    return connection.vendor == "postgresql"


def _where(filters: DashboardFilters, nationality: str = "nationality") -> tuple[str, list[Any]]:
    """SQL conditions (and their parameters) for the site and nationality filters."""
    conditions: list[str] = ["TRUE"]
    params: list[Any] = []
    if filters.site_ids is not None:
        conditions.append("site_id = ANY(%s)")
        params.append(list(filters.site_ids))
    if filters.nationality:
        conditions.append(f"{nationality} = %s")
        params.append(filters.nationality)
    return " AND ".join(conditions), params


def case_status_counts(sites: Sites = None) -> list[StatusCount]:
    """cases.selectors.case_status_counts() for the home page, in one query over two summary
    tables rather than every case and person: cases by their site, living persons by theirs."""
    where, params = ("site_id = ANY(%s)", [sorted(sites)]) if sites is not None else ("TRUE", [])
    sql = f"""
        SELECT 0, status, sum(n) FROM reports_casecount WHERE {where} GROUP BY 2
        UNION ALL
        SELECT 1, case_status, sum(n) FROM reports_personstatuscount
        WHERE {where} AND residence_status IN (%s, %s) GROUP BY 2
    """  # noqa: S608 - no value in the text
    counts: dict[CaseStatus, list[int]] = {status: [0, 0] for status in CaseStatus}
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *params, *LIVING])
        for kind, status, n in cursor.fetchall():
            if status in CaseStatus.values:
                counts[CaseStatus(status)][kind] = int(n)
    return [StatusCount(status=status, cases=cases, persons=persons) for status, (cases, persons) in counts.items()]


def population(filters: DashboardFilters, sites: list[Site] | None = None) -> selectors.Population:
    """selectors.population(): persons present and relocated by site, sex and year of birth,
    and by their case's status, in one query."""
    where, params = _where(filters)
    sql = f"""
        SELECT 0, site_id, sex, birth_year, residence_status, '', sum(n) FROM reports_personcount
        WHERE {where} AND residence_status IN (%s, %s) GROUP BY 2, 3, 4, 5 HAVING sum(n) <> 0
        UNION ALL
        SELECT 1, 0, '', 0, residence_status, case_status, sum(n) FROM reports_personstatuscount
        WHERE {where} AND residence_status IN (%s, %s) GROUP BY 5, 6 HAVING sum(n) <> 0
    """  # noqa: S608 - no value in the text
    year = timezone.localdate().year
    counts = selectors.PopulationCounts()
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *LIVING, *params, *LIVING])
        for kind, site, sex, birth_year, residence, case_status, n in cursor.fetchall():
            if kind == 1:
                counts.living[case_status] += n
            elif residence == ResidenceStatus.RELOCATED:
                counts.per_site[site][1] += n
            else:
                counts.per_site[site][0] += n
                band = selectors._age_band(year, birth_year)
                if band is not None:
                    counts.per_sex[sex][band] += n
    return counts.finish(filters, sites)


def _utc_day(moment: datetime.datetime) -> datetime.date:
    return moment.astimezone(datetime.UTC).date()


def _utc_midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, datetime.UTC)


def case_figures(filters: DashboardFilters, population: selectors.Population) -> selectors.CaseFigures:
    """selectors.case_figures(), in one query: cases per status and UTC day they entered it
    from reports_casecount, and the cases of the days that hold a bound between two aging
    buckets (at most five days' worth) from cases_case itself."""
    bounds = selectors.aging_bounds(timezone.now())
    days = [_utc_day(bound) for bound in bounds]
    # The bucket of a day strictly between two bound days; -1 for a bound day, -2 for after today.
    bucket = (
        "CASE WHEN changed_on = ANY(%s) THEN -1 WHEN changed_on > %s THEN -2 WHEN changed_on < %s THEN 4"
        " WHEN changed_on > %s THEN 0 WHEN changed_on > %s THEN 1 WHEN changed_on > %s THEN 2 ELSE 3 END"
    )
    bucket_params: list[Any] = [days, days[0], days[4], days[1], days[2], days[3]]
    live_bucket = (
        "CASE WHEN c.status_changed_at > %s THEN -2 WHEN c.status_changed_at > %s THEN 0"
        " WHEN c.status_changed_at > %s THEN 1 WHEN c.status_changed_at > %s THEN 2"
        " WHEN c.status_changed_at > %s THEN 3 ELSE 4 END"
    )
    where, params = _where(filters, "pa_nationality")
    live_where: list[str] = ["TRUE"]
    live_params: list[Any] = []
    if filters.site_ids is not None:
        live_where.append("c.site_id = ANY(%s)")
        live_params.append(list(filters.site_ids))
    if filters.nationality:
        # A subquery per case (a few thousand, through the one-PA-per-case index), not a join
        # with every principal applicant of the nationality.
        live_where.append(
            "(SELECT pa.nationality FROM cases_person pa WHERE pa.case_id = c.id AND pa.relationship = 'PA') = %s"
        )
        live_params.append(filters.nationality)
    day_ranges: list[Any] = []
    for day in days:
        day_ranges += [_utc_midnight(day), _utc_midnight(day + datetime.timedelta(days=1))]
    sql = f"""
        SELECT 0, status, {bucket}, sum(n) FROM reports_casecount WHERE {where} GROUP BY 2, 3
        UNION ALL
        SELECT 1, c.status, {live_bucket}, count(*)
        FROM (VALUES {", ".join(["(%s::timestamptz, %s::timestamptz)"] * len(days))}) AS d(first, next)
        CROSS JOIN LATERAL (
            SELECT * FROM cases_case c WHERE c.status = ANY(%s) AND c.status_changed_at >= d.first
            AND c.status_changed_at < d.next OFFSET 0
        ) c
        WHERE {" AND ".join(live_where)} GROUP BY 2, 3
    """  # noqa: S608 - no value in the text
    cases: dict[str, int] = {}
    aging: dict[str, list[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                *bucket_params,
                *params,
                *bounds,
                *day_ranges,
                list(CaseStatus.values),
                *live_params,
            ],
        )
        for live, status, index, n in cursor.fetchall():
            if not live:
                cases[status] = cases.get(status, 0) + n
            if index >= 0:
                aging.setdefault(status, [0] * len(selectors.AGING_BUCKETS))[index] += n
    return selectors._case_figures({s: n for s, n in cases.items() if n}, aging, population)


def departures_per_week(filters: DashboardFilters) -> list[selectors.WeekDepartures]:
    """selectors.departures_per_week(), from the persons counted per departure."""
    rows = DepartureCount.objects.filter(
        departure__status=DepartureStatus.DEPARTED, departure__departed_at__lt=selectors._end(filters.date_to)
    )
    if filters.site_ids is not None:
        rows = rows.filter(site__in=filters.site_ids)
    if filters.nationality:
        rows = rows.filter(nationality=filters.nationality)
    per_departure = (
        rows.annotate(week=TruncWeek("departure__departed_at", output_field=DateField()))
        .values("departure_id", "week")
        .annotate(persons=Sum("n"))
        .filter(persons__gt=0)
        .values_list("departure_id", "week", "persons")
    )
    return selectors.weekly_departures(filters, ((week, 1, persons) for _pk, week, persons in per_departure))


def on_grid(filters: DashboardFilters) -> bool:
    """Whether every bound of the range and of its weeks falls on the quarter-hour grid, so
    that counts per quarter hour add up to counts per week and range exactly (true of every
    time zone's offsets today; a range reaching into an odd historic offset is counted live)."""
    days = [filters.date_from, filters.date_to + datetime.timedelta(days=1), *selectors._weeks(filters)]
    return all((selectors._start(day) - _EPOCH) % GRID == datetime.timedelta(0) for day in days)


def interviews_per_week(filters: DashboardFilters) -> selectors.InterviewFigures:
    """selectors.interviews_per_week(), from the interviews counted per quarter hour."""
    if not on_grid(filters):
        return selectors.live_interviews_per_week(filters)
    rows = InterviewCount.objects.filter(
        slot__gte=selectors._start(filters.date_from), slot__lt=selectors._end(filters.date_to)
    )
    if filters.site_ids is not None:
        rows = rows.filter(site__in=filters.site_ids)
    if filters.nationality:
        rows = rows.filter(pa_nationality=filters.nationality)
    weekly: Iterable[tuple[datetime.date, str, int]] = (
        rows.annotate(week=TruncWeek("slot", output_field=DateField()))
        .values("week", "outcome")
        .annotate(interviews=Sum("n"))
        .values_list("week", "outcome", "interviews")
    )
    return selectors.weekly_interviews(filters, weekly)


def specific_needs(filters: DashboardFilters) -> list[selectors.NeedCount]:
    """selectors.specific_needs(), from the needs counted per site, nationality and residence."""
    rows = NeedCount.objects.filter(residence_status=ResidenceStatus.PRESENT)
    if filters.site_ids is not None:
        rows = rows.filter(site__in=filters.site_ids)
    if filters.nationality:
        rows = rows.filter(nationality=filters.nationality)
    counted = (
        rows.values("specificneed__code", "specificneed__label")
        .annotate(persons=Sum("n"))
        .filter(persons__gt=0)
        .order_by("-persons", "specificneed__code")
    )
    return [
        selectors.NeedCount(row["specificneed__code"], row["specificneed__label"], row["persons"]) for row in counted
    ]


# Upkeep


@dataclass(frozen=True)
class Mismatch:
    table: str
    key: str
    stored: int
    actual: int


def check() -> list[Mismatch]:
    """Every key whose count in a summary table differs from the rows (none, unless something
    went around the triggers: TRUNCATE, or triggers disabled). Reads everything: seconds at a
    million persons."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT summary, key, stored, actual FROM reports_figures_check() ORDER BY 1, 2")
        return [Mismatch(*row) for row in cursor.fetchall()]


def rebuild() -> None:
    """Count everything again (writers to the counted tables wait meanwhile; readers do not)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reports_figures_rebuild()")
