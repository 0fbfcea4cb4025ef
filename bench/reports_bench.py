"""Reports benchmark on PostgreSQL: the dashboard at N persons and the export of 100,000 persons.

    .venv/bin/python bench/reports_bench.py [--persons 1000000] [--runs 5] [--reuse]
        [--database-url postgres://postgres@127.0.0.1:5433/relocation_bench]

Makes a fresh database (dropped and created again: never point it at real data; --reuse
keeps one made before with the same --persons), fills it in SQL (generate_series): N
persons in households of three, one interview per case, incidents, offers and departures
whose manifests hold the relocated persons. One site holds a tenth of the persons: the
exports take that site (?site=...), 100,000 persons at the default N.

Then measures, each step in a fresh process so that its peak memory is its own:

- the dashboard (/reports/ through Django's test client, as a supervisor): server time
  per request (median and slowest of --runs, after one warm-up) and queries, unfiltered
  and filtered (the export site, one nationality, three years); and whether its figures,
  read from the summary tables (reports/figures.py), are those counted from the rows;
- the persons export of that site through its view, CSV and XLSX: seconds, rows/s, peak
  RSS and its growth over the process before the export;
- the plain django-import-export ModelResource export of the same rows and columns, CSV
  and XLSX, as the baseline.

The fill writes with the triggers off (session_replication_role = replica) and then counts
the summary tables once (reports_figures_rebuild()). Prints JSON, with the load average
(1, 5, 15 minutes) before and after each step: the machine may be shared.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, fresh_database, peak_rss_mb, setup_django

DEFAULT_URL = "postgres://postgres@127.0.0.1:5433/relocation_bench"
EXPORT_SITE = "bench-export"
OTHER_SITE = "bench-main"


def _exists(url: str, persons: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM cases_person").fetchone()
            return row is not None and row[0] == persons
    except psycopg.Error:
        return False


FAMILY = ["Ahmadi", "Hosseini", "Mohammadi", "Rezaei", "Karimi", "Moradi", "Jafari", "Rahimi", "Hashemi", "Kazemi"]
NATIVE = ["احمدی", "حسینی", "محمدی", "رضایی", "کریمی", "مرادی", "جعفری", "رحیمی", "هاشمی", "کاظمی"]
GIVEN = ["Zahra", "Ali", "Maryam", "Reza", "Fatemeh", "Mehdi", "Leila", "Hassan", "Sara", "Omid"]
STATUSES = [
    "registered",
    "interview_scheduled",
    "interviewed",
    "eligible",
    "eligible",
    "eligible",
    "not_eligible",
    "nominated",
    "accepted",
    "departure_scheduled",
    "declined_participation",
    "on_hold",
    "relocated",
    "relocated",
    "closed",
]
OUTCOMES = ["attended", "attended", "attended", "attended", "no_show", "refused", "pending", "cancelled"]


def _fill(persons: int) -> dict[str, Any]:
    """Everything in SQL: about 15 s per million persons here, and the dashboard's summary
    tables counted once at the end (the triggers that keep them are off meanwhile)."""
    from django.db import connection

    from reports import figures

    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
    try:
        seconds = _fill_rows(persons)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")
    started = time.perf_counter()
    figures.rebuild()
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE reports_personcount, reports_personstatuscount, reports_needcount, reports_casecount,"
            " reports_interviewcount, reports_departurecount"
        )
    return {"seconds_to_fill": seconds, "seconds_to_count_summaries": round(time.perf_counter() - started, 1)}


def _fill_rows(persons: int) -> float:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from cases.models import Site, SpecificNeed
    from offers.models import Offer

    started = time.perf_counter()
    export_site = Site.objects.create(name="Bench export camp", code=EXPORT_SITE)
    other_site = Site.objects.create(name="Bench camp", code=OTHER_SITE)
    user = get_user_model().objects.create(username="bench-reporter")
    if not SpecificNeed.objects.exists():
        SpecificNeed.objects.bulk_create(SpecificNeed(code=f"need-{n}", label=f"Need {n}") for n in range(8))
    offers = [Offer.objects.create(country="CA", reference=f"BENCH-{n}", places=50_000) for n in range(5)]
    cases = persons // 3
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cases_case (case_no, site_id, status, status_changed_at, status_before_hold, determination,
                                    needs_review, notes, created_at, updated_at, version)
            SELECT 'B-' || lpad(g::text, 8, '0'),
                   CASE WHEN g %% 10 = 0 THEN %(export_site)s ELSE %(other_site)s END,
                   (%(statuses)s::text[])[1 + (g * 7) %% cardinality(%(statuses)s::text[])],
                   now() - make_interval(days => ((g::bigint * 7919) %% 700)::int, hours => g %% 24),
                   '', 'pending', false, '', now(), now(), 0
            FROM generate_series(1, %(cases)s) g
            """,
            {"export_site": export_site.pk, "other_site": other_site.pk, "statuses": STATUSES, "cases": cases},
        )
        cursor.execute(
            """
            INSERT INTO cases_person (registration_no, case_id, relationship, family_name, given_name, native_name,
                                      name_key, sex, birth_year, birth_date, nationality, site_id, residence_status,
                                      phone, notes, created_at, updated_at, version)
            SELECT 'R-' || lpad(g::text, 9, '0'), c.id,
                   CASE WHEN (g - 1) %% 3 = 0 THEN 'PA' ELSE 'child' END,
                   (%(family)s::text[])[1 + g %% 10], (%(given)s::text[])[1 + (g / 10) %% 10],
                   (%(native)s::text[])[1 + g %% 10] || ' ' || g,
                   lower((%(family)s::text[])[1 + g %% 10] || ' ' || (%(given)s::text[])[1 + (g / 10) %% 10]),
                   CASE WHEN g %% 2 = 0 THEN 'F' ELSE 'M' END,
                   1950 + (g * 31) %% 76,
                   CASE WHEN g %% 5 = 0 THEN NULL
                        ELSE make_date(1950 + (g * 31) %% 76, 1 + g %% 12, 1 + g %% 28) END,
                   (ARRAY['IR','IR','IR','IR','IR','IR','IR','IR','IQ','AF'])[1 + g %% 10],
                   c.site_id,
                   CASE WHEN c.status = 'relocated' THEN 'relocated' WHEN g %% 97 = 0 THEN 'deceased'
                        ELSE 'present' END,
                   '+98 912 ' || g, '', now(), now(), 0
            FROM generate_series(1, %(persons)s) g
            JOIN cases_case c ON c.case_no = 'B-' || lpad(((g - 1) / 3 + 1)::text, 8, '0')
            """,
            {"family": FAMILY, "given": GIVEN, "native": NATIVE, "persons": cases * 3},
        )
        cursor.execute(
            """
            INSERT INTO cases_person_specific_needs (person_id, specificneed_id)
            SELECT p.id, n.ids[1 + p.id % cardinality(n.ids)]
            FROM cases_person p, (SELECT array_agg(id ORDER BY id) AS ids FROM cases_specificneed) n
            WHERE p.id % 9 = 0
            """
        )
        cursor.execute(
            """
            INSERT INTO cases_interview (case_id, kind, scheduled_at, place, outcome, notes, created_at)
            SELECT id, 'protection', now() - make_interval(days => ((id * 13) %% 300)::int, hours => (id %% 8)::int),
                   'Room 1', (%(outcomes)s::text[])[1 + id %% cardinality(%(outcomes)s::text[])], '', now()
            FROM cases_case
            """,
            {"outcomes": OUTCOMES},
        )
        cursor.execute(
            """
            INSERT INTO cases_incident (site_id, kind, occurred_at, summary, description, reported_by_id, created_at)
            SELECT CASE WHEN g %% 10 = 0 THEN %(export_site)s ELSE %(other_site)s END,
                   (ARRAY['attack','medical','fire','protest','other'])[1 + g %% 5],
                   now() - make_interval(days => (g * 3) %% 700), 'Incident ' || g, '', %(user)s, now()
            FROM generate_series(1, 400) g
            """,
            {"export_site": export_site.pk, "other_site": other_site.pk, "user": user.pk},
        )
        cursor.execute(
            """
            INSERT INTO cases_incidentperson (incident_id, person_id, effect)
            SELECT i.id, p.id, (ARRAY['affected','injured','killed','missing'])[1 + p.id % 4]
            FROM cases_incident i
            JOIN LATERAL (SELECT id FROM cases_person WHERE id > i.id * 1000 ORDER BY id LIMIT 5) p ON true
            """
        )
        # 60 departures over the last 400 days; their manifests hold the relocated persons.
        cursor.execute(
            """
            INSERT INTO offers_departure (offer_id, planned_date, route, status, departed_at, created_at)
            SELECT (%(offers)s::bigint[])[1 + g %% 5], (now() - make_interval(days => g * 6))::date,
                   'Flight ' || g, 'departed', now() - make_interval(days => g * 6), now()
            FROM generate_series(1, 60) g
            """,
            {"offers": [o.pk for o in offers]},
        )
        cursor.execute(
            """
            INSERT INTO offers_departureperson (departure_id, person_id, travel_document, medical_clearance,
                                                exit_permission)
            SELECT d.ids[1 + p.case_id % 60], p.id, true, true, true
            FROM cases_person p, (SELECT array_agg(id ORDER BY id) AS ids FROM offers_departure) d
            WHERE p.residence_status = 'relocated'
            """
        )
        cursor.execute("ANALYZE")
    return round(time.perf_counter() - started, 1)


def _supervisor() -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from accounts.roles import SUPERVISOR

    user, _ = get_user_model().objects.get_or_create(username="bench-supervisor")
    user.groups.set([Group.objects.get(name=SUPERVISOR)])
    return user


def _client() -> Any:
    from django.test import Client

    client = Client()
    client.force_login(_supervisor())
    return client


def _step_dashboard(runs: int) -> dict[str, Any]:
    import datetime

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    client = _client()
    today = timezone.localdate()
    filtered = {
        "site": str(_export_site()),
        "nationality": "IQ",
        "date_from": (today - datetime.timedelta(days=3 * 365)).isoformat(),
        "date_to": today.isoformat(),
    }
    figures: dict[str, Any] = {}
    for name, params in (("unfiltered", {}), ("filtered", filtered)):
        assert client.get("/reports/", params).status_code == 200  # warm-up: connection, templates, translations
        times = []
        queries = 0
        for _ in range(runs):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get("/reports/", params)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
            queries = len(captured)
        slowest = sorted(((float(q["time"]), q["sql"][:100]) for q in captured.captured_queries), reverse=True)[:3]
        figures[name] = {
            "params": params,
            "median_ms": round(statistics.median(times)),
            "slowest_ms": round(max(times)),
            "queries": queries,
            # session, user, user and group permissions, groups (role in the header)
            "queries_beyond_auth_and_session": queries - 5,
            "slowest_queries_s": slowest,
            "html_kb": round(len(response.content) / 1024),
        }
    figures["figures_match_live_counts"] = _figures_match_live(filtered)
    return figures


def _figures_match_live(filtered: dict[str, str]) -> bool:
    """Whether the dashboard's figures from the summary tables are those counted from the rows
    (reports.selectors.live_*), unfiltered and filtered."""
    import datetime

    from cases.models import Site
    from reports import figures, selectors
    from reports.forms import DashboardFilters, default_range

    first, last = default_range()
    for params in ({}, filtered):
        filters = DashboardFilters(
            site=Site.objects.get(pk=params["site"]) if params else None,
            nationality=params.get("nationality", ""),
            date_from=datetime.date.fromisoformat(params["date_from"]) if params else first,
            date_to=last,
        )
        live = selectors.live_population(filters)
        summed = figures.population(filters)
        if (
            summed != live
            or figures.case_figures(filters, summed) != selectors.live_case_figures(filters, live)
            or figures.departures_per_week(filters) != selectors.live_departures_per_week(filters)
            or figures.interviews_per_week(filters) != selectors.live_interviews_per_week(filters)
            or figures.specific_needs(filters) != selectors.live_specific_needs(filters)
        ):
            return False
    return True


def _export_site() -> int:
    from cases.models import Site

    return Site.objects.get(code=EXPORT_SITE).pk


def _step_export(fmt: str) -> dict[str, Any]:
    from reports.models import ExportLog

    client = _client()
    site = _export_site()
    # Warm-up, as a server process is by its first export: code loaded, connection open
    # (another list, so that no row of the measured one is fetched before it).
    b"".join(client.get(f"/reports/export/offers.{fmt}").streaming_content)
    before = peak_rss_mb()
    started = time.perf_counter()
    response = client.get(f"/reports/export/persons.{fmt}", {"site": site})
    size = 0
    for chunk in response.streaming_content:
        size += len(chunk)
    response.close()
    seconds = time.perf_counter() - started
    rows = ExportLog.objects.latest("pk").row_count or 0
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "mb": round(size / 1_048_576, 1),
        "peak_rss_mb": peak_rss_mb(),
        "rss_growth_mb": round(peak_rss_mb() - before, 1),
    }


def _step_import_export(fmt: str) -> dict[str, Any]:
    """django-import-export's ModelResource export of the same rows and columns."""
    from import_export import fields, resources

    from cases.models import Case, Person

    class PersonResource(resources.ModelResource):
        case_no = fields.Field(attribute="case__case_no", column_name="case_no")
        site = fields.Field(attribute="site__name", column_name="site")
        case_status = fields.Field(attribute="case__status", column_name="case_status")

        class Meta:
            model = Person
            fields = [
                "registration_no",
                "case_no",
                "relationship",
                "family_name",
                "given_name",
                "native_name",
                "sex",
                "birth_date",
                "nationality",
                "site",
                "residence_status",
                "case_status",
            ]
            export_order = fields

    site = _export_site()
    before = peak_rss_mb()
    started = time.perf_counter()
    queryset = Person.objects.filter(case__in=Case.objects.filter(site=site)).select_related("case", "site")
    dataset = PersonResource().export(queryset=queryset.order_by("registration_no"))
    data = dataset.csv if fmt == "csv" else dataset.xlsx
    seconds = time.perf_counter() - started
    rows = len(dataset)
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "mb": round(len(data) / 1_048_576, 1),
        "peak_rss_mb": peak_rss_mb(),
        "rss_growth_mb": round(peak_rss_mb() - before, 1),
    }


def _child(step: str, url: str, extra: str) -> None:
    setup_django(url)
    if step == "dashboard":
        figures = _step_dashboard(int(extra))
    elif step in ("csv", "xlsx"):
        figures = _step_export(step)
    else:
        figures = _step_import_export(step.removeprefix("ie_"))
    print(json.dumps(figures))


def _load() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def _run(step: str, url: str, extra: str = "") -> dict[str, Any]:
    before = _load()
    output = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, __file__, "--step", step, "--database-url", url, "--extra", extra],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(output.stdout.strip().splitlines()[-1]) | {"load_average": f"{before} -> {_load()}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="dashboard requests measured")
    parser.add_argument("--reuse", action="store_true", help="keep a database already filled with --persons")
    parser.add_argument("--dashboard-only", action="store_true", help="skip the exports")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--extra", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        _child(args.step, args.database_url, args.extra)
        return

    figures: dict[str, Any] = {"persons": args.persons, "database": "postgresql"}
    if args.reuse and _exists(args.database_url, args.persons - args.persons % 3):
        setup_django(args.database_url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)  # the code may have moved on since the data was made
    else:
        fresh_database(args.database_url)
        figures |= _fill(args.persons)
    figures["dashboard"] = _run("dashboard", args.database_url, str(args.runs))
    if args.dashboard_only:
        print(json.dumps(figures, indent=2))
        return
    for step in ("csv", "xlsx", "ie_csv", "ie_xlsx"):
        figures[f"export_{step}"] = _run(step, args.database_url)
    figures["ratios"] = {
        "xlsx_seconds_import_export_over_ours": round(
            figures["export_ie_xlsx"]["seconds"] / figures["export_xlsx"]["seconds"], 1
        ),
        "xlsx_peak_rss_import_export_over_ours": round(
            figures["export_ie_xlsx"]["peak_rss_mb"] / figures["export_xlsx"]["peak_rss_mb"], 1
        ),
        "csv_rows_per_second_ours_over_import_export": round(
            figures["export_csv"]["rows_per_second"] / figures["export_ie_csv"]["rows_per_second"], 1
        ),
    }
    dashboards = [figures["dashboard"]["unfiltered"], figures["dashboard"]["filtered"]]
    figures["targets_met"] = {  # issue #6
        "dashboard_under_300_ms": max(d["median_ms"] for d in dashboards) < 300,
        "dashboard_15_queries_or_fewer": max(d["queries"] for d in dashboards) <= 15,
        "xlsx_under_8_s": figures["export_xlsx"]["seconds"] < 8,
        "xlsx_under_250_mb": figures["export_xlsx"]["peak_rss_mb"] < 250,
        "csv_100000_rows_per_s": figures["export_csv"]["rows_per_second"] >= 100_000,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
