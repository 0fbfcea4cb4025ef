"""Staff pages benchmark on PostgreSQL: the case list and the case page at N persons.

    .venv/bin/python bench/cases_bench.py [--persons 1000000] [--runs 7] [--reuse]
        [--database-url postgres://postgres@127.0.0.1:5433/relocation_bench]

Uses the same database and SQL fill as bench/reports_bench.py (--reuse keeps one made
before with the same --persons, counted as the fill makes them: households of three, so
999,999 for the default; otherwise it is dropped and made again: never point it at real
data). That fill writes lower(family || ' ' || given) as the persons' name keys,
which the search never matches; the keys are first made what the app stores
(cases.names.name_key, computed here in Python and written in one UPDATE; ~2 minutes per
million persons, once: a database whose keys are right already is left as it is), and a
database just filled or rewritten is vacuumed, as autovacuum would have done by the time
anyone searches it. Then measures, through Django's test client as a staff user, the server
time (median and slowest of --runs, after one warm-up) and the queries of:

- the case list filtered (status, site), searched (a name), sorted and on its third page
  (pages of the list's default size, cases.views.PAGE_SIZES[0]);
- the case list filtered and paginated, without a search;
- the same search with no column chosen (the closest matches first), its first page;
- the same search misspelt so that no name key matches (the similarity fallback);
- the case list searched by registration number;
- the case page of a household;

each against its baseline: a plain SQL SELECT of the same rows (the page of cases with
their principal applicant, or the case with its members), timed the same way. Prints
JSON, with the machine's load average before and after (the figures are wall times).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh_database, setup_django
from reports_bench import DEFAULT_URL, OTHER_SITE, _exists, _fill

TARGET_MS = 150


def _timed(call: Any, runs: int) -> dict[str, float]:
    call()  # warm-up: connection, caches, plans
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "slowest_ms": round(max(times), 1)}


def _staff_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from accounts.roles import STAFF

    user, _ = get_user_model().objects.get_or_create(username="bench-staff")
    user.groups.set([Group.objects.get(name=STAFF)])
    client = Client()
    client.force_login(user)
    return client


def _page(client: Any, path: str, params: dict[str, str], runs: int) -> dict[str, Any]:
    from django.db import connection

    def get() -> None:
        response = client.get(path, params)
        assert response.status_code == 200, response.status_code

    # Each query and its time (the request resets Django's own query log, so count here).
    queries: list[tuple[float, str]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append(((time.perf_counter() - started) * 1000, sql))

    get()
    with connection.execute_wrapper(record):
        get()
    slowest = sorted(queries, reverse=True)[:3]
    return {
        **_timed(get, runs),
        "queries": len(queries),
        "slowest_queries": [{"ms": round(ms, 1), "sql": sql[:160]} for ms, sql in slowest],
    }


def _sql(sql: str, params: list[Any], runs: int) -> dict[str, Any]:
    from django.db import connection

    def run() -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            cursor.fetchall()

    return _timed(run, runs)


# The baseline of a list page: the same cases (a page of the list's default size) with their
# principal applicant, in one SELECT.
LIST_SQL = """
    SELECT c.id, c.case_no, c.status, c.status_changed_at, s.name, p.family_name, p.given_name, p.native_name
    FROM cases_case c
    JOIN cases_site s ON s.id = c.site_id
    LEFT JOIN cases_person p ON p.case_id = c.id AND p.relationship = 'PA'
    WHERE c.status = %s AND c.site_id = %s {extra}
    ORDER BY c.case_no LIMIT {limit} OFFSET {offset}
"""
NAMED = (
    "AND EXISTS (SELECT 1 FROM cases_person m WHERE m.case_id = c.id "
    "AND m.family_name = 'Hosseini' AND m.given_name = 'Zahra')"
)


def _vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def _real_name_keys() -> dict[str, Any]:
    """Persons' name keys made what Person.save() and the roster import store (see the docstring)."""
    from django.db import connection, transaction

    from cases.names import name_key

    with connection.cursor() as cursor:
        cursor.execute("SELECT family_name, given_name, native_name, name_key FROM cases_person ORDER BY id LIMIT 1000")
        if all(key == name_key(family, given, native) for family, given, native, key in cursor.fetchall()):
            return {}
    started = time.perf_counter()
    raw: Any = connection.connection
    with transaction.atomic():
        with raw.cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE bench_name_key (id bigint, name_key text) ON COMMIT DROP")
        # A server-side cursor read in batches, each batch's new keys copied before the next is read.
        with raw.cursor(name="bench_persons") as persons, raw.cursor() as cursor:
            persons.execute("SELECT id, family_name, given_name, native_name, name_key FROM cases_person")
            while rows := persons.fetchmany(20_000):
                keys = [(pk, key) for pk, *name, stored in rows if (key := name_key(*name)) != stored]
                with cursor.copy("COPY bench_name_key (id, name_key) FROM STDIN") as copy:
                    for row in keys:
                        copy.write_row(row)
        with raw.cursor() as cursor:
            cursor.execute("UPDATE cases_person p SET name_key = k.name_key FROM bench_name_key k WHERE p.id = k.id")
            updated = cursor.rowcount
    return {"name_keys_made_real": updated, "seconds_to_make_name_keys": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    os.environ["LOG_LEVEL"] = "WARNING"
    fill: dict[str, Any] = {}
    if args.reuse and _exists(args.database_url, args.persons // 3 * 3):
        setup_django(args.database_url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    else:
        fresh_database(args.database_url)
        fill = _fill(args.persons)
    if keys := _real_name_keys():
        fill.update(keys)
    if fill:
        _vacuum()

    from cases.models import Case, Person, Site
    from cases.views import PAGE_SIZES

    size = PAGE_SIZES[0]

    def _listed(extra: str = "", page: int = 3) -> dict[str, Any]:
        sql = LIST_SQL.format(extra=extra, limit=size, offset=(page - 1) * size)
        return _sql(sql, ["eligible", site.pk], args.runs)

    site = Site.objects.get(code=OTHER_SITE)
    client = _staff_client()
    household = Case.objects.filter(site=site).order_by("pk")[1000]
    registration_no = Person.objects.filter(case=household).values_list("registration_no", flat=True).first()
    filters = {"status": "eligible", "site": str(site.pk)}
    load_before = os.getloadavg()
    results = {
        "list_filtered": {
            "page": _page(client, "/cases/", {**filters, "page": "3"}, args.runs),
            "baseline_select": _listed(),
        },
        "list_filtered_searched_sorted": {
            "page": _page(
                client, "/cases/", {**filters, "q": "Hosseini Zahra", "o": "case_no", "page": "3"}, args.runs
            ),
            "baseline_select": _listed(NAMED),
        },
        "list_filtered_searched_by_relevance": {
            "page": _page(client, "/cases/", {**filters, "q": "Hosseini Zahra"}, args.runs),
            "baseline_select": _listed(NAMED, page=1),
        },
        "list_filtered_searched_misspelt": {
            "page": _page(
                client, "/cases/", {**filters, "q": "Hosseimi Zahra", "o": "case_no", "page": "3"}, args.runs
            ),
            "baseline_select": _listed(NAMED),
        },
        "list_by_registration_no": {
            "page": _page(client, "/cases/", {"q": registration_no or ""}, args.runs),
            "baseline_select": _sql(
                "SELECT c.id, c.case_no FROM cases_case c JOIN cases_person p ON p.case_id = c.id "
                "WHERE p.registration_no = %s",
                [registration_no],
                args.runs,
            ),
        },
        "case_page": {
            "page": _page(client, f"/cases/{household.pk}/", {}, args.runs),
            "baseline_select": _sql(
                "SELECT c.*, p.* FROM cases_case c JOIN cases_person p ON p.case_id = c.id WHERE c.id = %s",
                [household.pk],
                args.runs,
            ),
        },
    }
    for figures in results.values():
        figures["within_target"] = figures["page"]["median_ms"] < TARGET_MS
    print(
        json.dumps(
            {
                "persons": Person.objects.count(),
                "target_ms": TARGET_MS,
                **fill,
                "load_average_before": [round(load, 2) for load in load_before],
                "load_average_after": [round(load, 2) for load in os.getloadavg()],
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
