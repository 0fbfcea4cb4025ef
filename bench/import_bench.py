"""Roster import benchmark on PostgreSQL: this project's import against the physical limit.

    .venv/bin/python bench/import_bench.py [--rows 100000] [--ie-rows 10000] [--seed 1]
        [--steps csv_fresh,csv_unchanged,schema_copy,xlsx_fresh,xlsx_unchanged,import_export,copy]
        [--database-url postgres://postgres@127.0.0.1:5433/relocation_import_bench]

Makes a fresh database (dropped and created again: never point it at real data),
writes a demo roster of N rows (cases/demo.py) as CSV and XLSX, then measures, each
step in a fresh process so that its peak memory is its own:

- fresh import of the CSV (validated, with history), then an unchanged re-import;
- the floor of this schema: the rows that import wrote (cases, persons, needs and their
  history rows) copied back with COPY into the same tables, with their indexes, triggers
  and foreign keys, in one transaction timed up to its foreign-key checks, then rolled
  back (run after csv_fresh);
- fresh import of the XLSX, then an unchanged re-import;
- the plain django-import-export ModelResource import of the same CSV (on the first
  --ie-rows rows: it is slow), with cases made beforehand;
- PostgreSQL COPY of the same rows into a bare table, as the physical limit.

Prints JSON: seconds, rows/s, peak RSS (MB) and the history rows written of each step,
the machine's load average (1, 5, 15 minutes) as each step starts, and the ratios. The
targets (issue #3, at 100,000 rows): a fresh CSV import at 25,000 rows/s or more, an
unchanged re-import in 2 s at most and writing nothing, peak memory 400 MB at most, an
XLSX import within twice the CSV's time.
"""

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, fresh_database, peak_rss_mb, setup_django

DEFAULT_URL = "postgres://postgres@127.0.0.1:5433/relocation_import_bench"
SITE = "Bench Camp"
ACTOR = "bench-admin"
TODAY = datetime.date(2026, 1, 1)
STEPS = ("csv_fresh", "csv_unchanged", "schema_copy", "xlsx_fresh", "xlsx_unchanged", "import_export", "copy")
IMPORTS = ("csv_fresh", "csv_unchanged", "xlsx_fresh", "xlsx_unchanged")
# The tables an import writes, parents first.
WRITTEN = [
    "cases_case",
    "cases_historicalcase",
    "cases_person",
    "cases_historicalperson",
    "cases_person_specific_needs",
    "cases_historicalperson_specific_needs",
]
TABLES = [
    "cases_historicalperson_specific_needs",
    "cases_person_specific_needs",
    "cases_historicalperson",
    "cases_person",
    "cases_historicalcase",
    "cases_case",
    "cases_rosterimport",
    # What the triggers keep beside them: the name words (and the dashboard's counts,
    # added in _truncate). A fresh import starts from the state a fresh database has.
    "cases_nameword",
]


def _fresh_database(url: str) -> None:
    fresh_database(url)
    from django.contrib.auth import get_user_model

    from cases.models import Site

    Site.objects.create(name=SITE, code="bench")
    # The imports are made by someone, as in the admin: their history rows name them.
    get_user_model().objects.create_user(ACTOR)


def _write_files(rows: int, seed: int, folder: Path) -> tuple[Path, Path]:
    import openpyxl

    from cases.demo import roster
    from cases.importing import COLUMNS

    people = roster(rows, seed, TODAY)
    values = [[record[column] for column in COLUMNS] for record in (person.record(SITE) for person in people)]
    csv_path = folder / "roster.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows(values)
    xlsx_path = folder / "roster.xlsx"
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Roster")
    sheet.append(list(COLUMNS))
    for row in values:
        sheet.append(row)
    workbook.save(xlsx_path)
    return csv_path, xlsx_path


def _truncate() -> None:
    from django.db import connection

    from reports.models import COUNT_MODELS

    tables = [*TABLES, *(model._meta.db_table for model in COUNT_MODELS)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def _step_import(path: Path, truncate: bool) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from cases.importing import roster_import
    from cases.models import Person

    actor = get_user_model().objects.get(username=ACTOR)
    if truncate:
        _truncate()
    history_before = Person.history.count()
    started = time.perf_counter()
    with path.open("rb") as file:
        result = roster_import(file, actor=actor, filename=path.name, dry_run=False)
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit("\n".join(result.report_lines()[:20]))
    return {
        "rows": result.rows,
        "new": result.new,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "probable_duplicates": len(result.duplicates),
        "seconds": round(seconds, 2),
        "rows_per_second": round(result.rows / seconds),
        "history_rows_written": Person.history.count() - history_before,
    }


def _step_import_export(path: Path, limit: int) -> dict[str, Any]:
    """django-import-export's ModelResource, row by row as its admin does it."""
    import tablib
    from import_export import fields, resources, widgets

    from cases.models import Case, Person, Site

    _truncate()
    site = Site.objects.get(name=SITE)
    with path.open(encoding="utf-8") as file:
        reader = csv.DictReader(file)
        lines = [row for _, row in zip(range(limit), reader, strict=False)]
    # It cannot make the cases itself: they are made beforehand, outside the timing.
    Case.objects.bulk_create([Case(case_no=no, site=site) for no in sorted({row["case_no"] for row in lines})])
    for row in lines:
        born = row.pop("date_of_birth")
        row["birth_year"] = born[:4]
        row["birth_date"] = born if len(born) == 10 else ""
        del row["specific_needs"]
    dataset = tablib.Dataset(headers=list(lines[0]))
    for row in lines:
        dataset.append(list(row.values()))

    class PersonResource(resources.ModelResource):
        case = fields.Field(attribute="case", column_name="case_no", widget=widgets.ForeignKeyWidget(Case, "case_no"))
        site = fields.Field(attribute="site", column_name="site", widget=widgets.ForeignKeyWidget(Site, "name"))

        class Meta:
            model = Person
            import_id_fields = ["registration_no"]
            fields = [
                "registration_no",
                "case",
                "relationship",
                "family_name",
                "given_name",
                "native_name",
                "sex",
                "birth_year",
                "birth_date",
                "nationality",
                "site",
                "phone",
                "notes",
            ]

    started = time.perf_counter()
    result = PersonResource().import_data(dataset, dry_run=False, raise_errors=True)
    seconds = time.perf_counter() - started
    return {
        "rows": len(lines),
        "new": result.totals.get("new", 0),
        "seconds": round(seconds, 2),
        "rows_per_second": round(len(lines) / seconds),
    }


def _step_copy(path: Path) -> dict[str, Any]:
    from django.db import connection

    with path.open(encoding="utf-8") as file:
        reader = csv.reader(file)
        next(reader)
        lines = list(reader)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy")
        cursor.execute(
            "CREATE TABLE bench_copy (registration_no text, case_no text, relationship text, family_name text,"
            " given_name text, native_name text, sex text, date_of_birth text, nationality text, site text,"
            " specific_needs text, phone text, notes text)"
        )
        started = time.perf_counter()
        with cursor.copy("COPY bench_copy FROM STDIN") as copy:  # type: ignore[attr-defined]
            for line in lines:
                copy.write_row(line)
        seconds = time.perf_counter() - started
    return {"rows": len(lines), "seconds": round(seconds, 3), "rows_per_second": round(len(lines) / seconds)}


def _step_schema_copy() -> dict[str, Any]:
    """COPY the rows of the last import back into their tables: what PostgreSQL alone
    needs to write them, with every index, trigger and foreign key of the schema."""
    from django.db import connection, transaction

    from reports.models import COUNT_MODELS

    saved: dict[str, bytes] = {}
    with connection.cursor() as cursor:
        for table in WRITTEN:
            with cursor.copy(f"COPY {table} TO STDOUT") as copy:  # type: ignore[attr-defined]
                saved[table] = b"".join(bytes(chunk) for chunk in copy)
    persons = saved["cases_person"].count(b"\n")
    if not persons:
        raise SystemExit("schema_copy copies the rows of an import: run it after csv_fresh")
    seconds: dict[str, float] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        counts = ", ".join(model._meta.db_table for model in COUNT_MODELS)
        cursor.execute(f"TRUNCATE {', '.join(WRITTEN)}, {counts}, cases_nameword CASCADE")
        started = time.perf_counter()
        for table in WRITTEN:
            begun = time.perf_counter()
            with cursor.copy(f"COPY {table} FROM STDIN") as copy:  # type: ignore[attr-defined]
                copy.write(saved[table])
            seconds[table] = round(time.perf_counter() - begun, 2)
        begun = time.perf_counter()
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the checks COMMIT would run
        seconds["foreign_key_checks"] = round(time.perf_counter() - begun, 2)
        total = time.perf_counter() - started
        transaction.set_rollback(True)  # the database is left as the import left it
    return {
        "rows": persons,
        "seconds": round(total, 2),
        "rows_per_second": round(persons / total),
        "seconds_by_table": seconds,
    }


def _load_average() -> list[float]:
    return [round(load, 2) for load in os.getloadavg()]


def _child(step: str, url: str, path: str, extra: str) -> None:
    load = _load_average()
    setup_django(url)
    if step in ("csv_fresh", "xlsx_fresh"):
        figures = _step_import(Path(path), truncate=True)
    elif step in ("csv_unchanged", "xlsx_unchanged"):
        figures = _step_import(Path(path), truncate=False)
    elif step == "schema_copy":
        figures = _step_schema_copy()
    elif step == "import_export":
        figures = _step_import_export(Path(path), int(extra))
    else:
        figures = _step_copy(Path(path))
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["load_average"] = load
    print(json.dumps(figures))


def _run(step: str, url: str, path: Path, extra: str = "") -> dict[str, Any]:
    output = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, __file__, "--step", step, "--database-url", url, "--path", str(path), "--extra", extra],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--ie-rows", type=int, default=10_000, help="rows for the django-import-export step")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", default=",".join(STEPS), help="the steps to run, comma-separated, in this order")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--extra", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        _child(args.step, args.database_url, args.path, args.extra)
        return

    _fresh_database(args.database_url)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        csv_path, xlsx_path = _write_files(args.rows, args.seed, Path(folder))
        figures: dict[str, Any] = {
            "rows": args.rows,
            "database": "postgresql",
            "files": {
                "csv_mb": round(csv_path.stat().st_size / 1_048_576, 1),
                "xlsx_mb": round(xlsx_path.stat().st_size / 1_048_576, 1),
                "seconds_to_write": round(time.perf_counter() - started, 1),
            },
        }
        steps = [step for step in STEPS if step in args.steps.split(",")]
        for step in steps:
            path = xlsx_path if step.startswith("xlsx") else csv_path
            extra = str(args.ie_rows) if step == "import_export" else ""
            figures[step] = _run(step, args.database_url, path, extra)
    figures["load_average_after"] = _load_average()
    figures["ratios"] = _ratios(figures)
    figures["targets"] = _targets(figures)
    print(json.dumps(figures, indent=2))


def _ratios(figures: dict[str, Any]) -> dict[str, float]:
    ratios = {}
    if "csv_fresh" in figures:
        fresh = figures["csv_fresh"]["rows_per_second"]
        if "copy" in figures:
            ratios["copy_over_csv_fresh"] = round(figures["copy"]["rows_per_second"] / fresh, 1)
        if "schema_copy" in figures:
            ratios["schema_copy_over_csv_fresh"] = round(figures["schema_copy"]["rows_per_second"] / fresh, 1)
        if "import_export" in figures:
            ratios["csv_fresh_over_import_export"] = round(fresh / figures["import_export"]["rows_per_second"], 1)
        if "xlsx_fresh" in figures:
            seconds = figures["xlsx_fresh"]["seconds"] / figures["csv_fresh"]["seconds"]
            ratios["xlsx_seconds_over_csv_seconds"] = round(seconds, 2)
    return ratios


def _targets(figures: dict[str, Any]) -> dict[str, bool]:
    """Issue #3's targets (meant at 100,000 rows), met or not."""
    met = {}
    if "csv_fresh" in figures:
        met["csv_fresh_25000_rows_per_second"] = figures["csv_fresh"]["rows_per_second"] >= 25_000
    for step in ("csv_unchanged", "xlsx_unchanged"):
        if step in figures:
            met[f"{step}_within_2_seconds"] = figures[step]["seconds"] <= 2
            met[f"{step}_writes_no_history"] = figures[step]["history_rows_written"] == 0
    imports = [figures[step] for step in IMPORTS if step in figures]
    if imports:
        met["peak_memory_400_mb"] = max(step["peak_rss_mb"] for step in imports) <= 400
    if "xlsx_seconds_over_csv_seconds" in figures["ratios"]:
        met["xlsx_within_2x_csv"] = figures["ratios"]["xlsx_seconds_over_csv_seconds"] <= 2
    return met


if __name__ == "__main__":
    main()
