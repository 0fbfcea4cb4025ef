"""The roster import at scale: progress reporting, writing in chunks, and the fast paths
(name keys, duplicate search, the PostgreSQL staging table) giving what the plain
definitions give."""

import datetime
import gc
import itertools

import pytest
from django.db import connection

from cases import importing
from cases.demo import roster
from cases.importing import COLUMNS, roster_import
from cases.models import Case, Person, RosterImport, RosterImportOutcome, SpecificNeed
from cases.names import STORED_KEYS, match_keys, name_key, stored_keys
from tests.cases.test_import import csv_bytes, family, person_row
from tests.factories import CaseFactory, PersonFactory, SiteFactory

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 1, 1)


@pytest.fixture(autouse=True)
def site(db):
    return SiteFactory(name="Camp Liberty", code="liberty")


@pytest.fixture(autouse=True)
def needs(db):
    for code in ("medical_condition", "disability"):
        SpecificNeed.objects.get_or_create(code=code, defaults={"label": code})


def demo_rows(count: int, seed: int = 7) -> list[dict[str, str]]:
    """A demo roster (households, transliteration variants, needs) at Camp Liberty."""
    known = set(SpecificNeed.objects.values_list("code", flat=True))
    return [person.record("Camp Liberty", needs=known) for person in roster(count, seed, TODAY)]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.depth: list[int] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.calls.append((stage, done, total))
        self.depth.append(len(connection.atomic_blocks))  # transactions (and savepoints) open

    def stages(self) -> list[str]:
        return [stage for stage, _group in itertools.groupby(stage for stage, _done, _total in self.calls)]


def test_progress_goes_through_reading_checking_and_writing_to_the_end():
    rows = demo_rows(400)
    progress = Recorder()

    result = roster_import(csv_bytes(rows), actor=None, filename="big.csv", dry_run=False, progress=progress)

    assert result.ok, result.report_lines()[:5]
    assert progress.stages() == ["reading", "checking", "writing"]
    for stage in ("reading", "checking", "writing"):
        calls = [(done, total) for name, done, total in progress.calls if name == stage]
        totals = {total for _done, total in calls}
        assert len(totals) == 1, stage
        dones = [done for done, _total in calls]
        assert dones == sorted(dones), stage  # never backwards
        assert all(0 <= done <= total for done, total in calls), stage
        # Reported to the end, and at most about every 2% of the way (plus start and end).
        assert calls[-1][0] == calls[-1][1], stage
        assert len(calls) <= 55, (stage, len(calls))
    # The writing starts outside its transaction: where nothing written inside is seen
    # before it ends (SQLite), the job's page still says that the rows are being written.
    writing = [
        depth for (name, _done, _total), depth in zip(progress.calls, progress.depth, strict=True) if name == "writing"
    ]
    assert writing[0] == progress.depth[0]  # where reading was reported: outside the import's transaction
    assert max(writing) == writing[0] + 1
    reading_total = {total for name, _done, total in progress.calls if name == "reading"}.pop()
    assert reading_total == len(rows) + 1  # the file's lines: the header and a line a person
    assert {total for name, _done, total in progress.calls if name == "checking"} == {len(rows)}


def test_a_dry_run_reports_reading_and_checking_only():
    progress = Recorder()

    result = roster_import(csv_bytes(family()), actor=None, filename="f.csv", dry_run=True, progress=progress)

    assert result.ok
    assert progress.stages() == ["reading", "checking"]


def test_an_unchanged_re_import_reports_its_rows_done_when_writing_starts():
    rows = demo_rows(60)
    roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=False)
    progress = Recorder()

    result = roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=False, progress=progress)

    assert result.unchanged == len(rows)
    writing = [(done, total) for stage, done, total in progress.calls if stage == "writing"]
    assert writing[0] == (len(rows), len(rows))


def test_a_refused_file_reports_no_writing_and_progress_is_optional():
    progress = Recorder()
    rows = family()
    rows[1]["sex"] = "W"

    result = roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=False, progress=progress)

    assert not result.ok
    assert "writing" not in progress.stages()
    # Without a callback nothing is called and nothing breaks.
    assert roster_import(csv_bytes(family()), actor=None, filename="f.csv", dry_run=False).ok


def test_rows_written_in_many_chunks_each_get_their_history_and_needs(monkeypatch):
    monkeypatch.setattr(importing, "_BATCH", 7)
    rows = demo_rows(300)
    with_needs = [row for row in rows if row["specific_needs"]]
    assert with_needs  # the demo roster has persons with needs

    result = roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=False)

    assert result.ok, result.report_lines()[:5]
    assert (result.new, result.cases_new) == (len(rows), len({row["case_no"] for row in rows}))
    assert Person.objects.count() == Person.history.filter(history_type="+").count() == len(rows)
    assert Case.history.filter(history_type="+").count() == Case.objects.count()
    for row in with_needs:
        person = Person.objects.get(registration_no=row["registration_no"])
        wanted = sorted(row["specific_needs"].split(";"))
        assert sorted(person.specific_needs.values_list("code", flat=True)) == wanted
        record = person.history.get()
        assert sorted(need.specificneed.code for need in record.specific_needs.all()) == wanted
        assert {field: getattr(person, field) for field in STORED_KEYS} == stored_keys(
            person.family_name, person.given_name, person.native_name
        )
    # In file order.
    assert list(Person.objects.order_by("pk").values_list("registration_no", flat=True)) == [
        row["registration_no"] for row in rows
    ]


@pytest.mark.parametrize("lookups", [20_000, 0], ids=["row by row", "one join"])
def test_a_re_import_mixing_new_changed_and_unchanged_rows_writes_only_what_changed(monkeypatch, lookups):
    """A small file's rows are compared with the persons on record row by row through the
    indexes, a large file's in one join (PostgreSQL): the same outcome either way."""
    monkeypatch.setattr(importing, "_KEY_LOOKUPS", lookups)
    monkeypatch.setattr(importing, "_BATCH", 5)
    rows = demo_rows(120)
    roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=False)
    history = Person.history.count()
    rows[3]["phone"] = "+964 750 111 2222"
    rows[10]["specific_needs"] = "disability"
    extra = person_row(registration_no="R-NEW", case_no="C-NEW", given_name="Omid")

    result = roster_import(csv_bytes([*rows, extra]), actor=None, filename="f.csv", dry_run=False)

    assert (result.new, result.updated, result.unchanged, result.cases_new) == (1, 2, len(rows) - 2, 1)
    assert Person.history.count() == history + 3
    assert Person.objects.get(registration_no=rows[3]["registration_no"]).phone == "+964 750 111 2222"
    changed = Person.objects.get(registration_no=rows[10]["registration_no"])
    assert list(changed.specific_needs.values_list("code", flat=True)) == ["disability"]


# Outside a test's transaction, so that the import's own commit runs (SQLite checks its
# foreign keys only then).
@pytest.mark.django_db(transaction=True)
def test_a_case_deleted_between_the_checks_and_the_writes_refuses_the_whole_file(monkeypatch, site):
    CaseFactory(case_no="C-1", site=site)
    checks = importing._check

    def meanwhile(*args, **kwargs):
        found = checks(*args, **kwargs)
        Case.objects.filter(case_no="C-1").delete()
        return found

    monkeypatch.setattr(importing, "_check", meanwhile)
    rows = [*family(), person_row(registration_no="R-8", case_no="C-8")]

    result = roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=False)

    assert not result.ok
    assert "changed" in result.errors[0].message
    assert not Person.objects.exists()
    assert not Case.objects.exists()
    assert RosterImport.objects.get().outcome == RosterImportOutcome.REFUSED


def show(setting: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {setting}")
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the staging table is PostgreSQL's")
def test_the_staging_tables_and_settings_do_not_outlive_the_import():
    settings = ("work_mem", "enable_nestloop", "jit")
    before = [show(setting) for setting in settings]
    during = []
    rows = demo_rows(30)

    def progress(stage, done, total):
        if stage == "checking" and done == total:
            during.append(show("enable_nestloop"))

    for dry_run in (True, False, False):
        assert roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=dry_run, progress=progress).ok

    # Planner statistics can be far off right after a large import: no row-by-row joins.
    assert during == ["off", "off", "off"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.roster_import_rows'), to_regclass('pg_temp.roster_import_keys')")
        assert cursor.fetchone() == (None, None)
    assert [show(setting) for setting in settings] == before


def test_tabs_backslashes_and_line_breaks_in_cells_are_stored_as_they_are_and_compared_as_equal():
    # On PostgreSQL the rows go through COPY's text format (staging table and name keys).
    rows = family()
    rows[0]["notes"] = "first line\nsecond\tcolumn \\N C:\\dir\\ end\\"
    # Born in a year: the row also holds a NULL (a date), written as \N too.
    rows[1]["notes"] = "C:\\new"
    # (A tab in a name is one space: names are kept without odd spaces.)
    rows[2]["family_name"] = "O\\Brien Jr"
    rows[2]["phone"] = "\\N"
    rows[2]["native_name"] = ""

    first = roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=False)
    again = roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=False)

    assert first.ok, first.report_lines()
    stored = dict(Person.objects.values_list("registration_no", "notes"))
    assert stored["R-1"] == "first line\nsecond\tcolumn \\N C:\\dir\\ end\\"
    assert Person.objects.values_list("notes", "birth_date").get(registration_no="R-2") == ("C:\\new", None)
    assert Person.objects.values_list("family_name", "phone", "native_name").get(registration_no="R-3") == (
        "O\\Brien Jr",
        "\\N",
        "",
    )
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)


def test_the_garbage_collector_is_paused_only_during_the_import():
    seen = []
    assert gc.isenabled()

    roster_import(
        csv_bytes(family()), actor=None, filename="f.csv", dry_run=True, progress=lambda *a: seen.append(gc.isenabled())
    )

    assert seen and not any(seen)
    assert gc.isenabled()
    gc.disable()
    try:
        roster_import(csv_bytes(family()), actor=None, filename="f.csv", dry_run=True)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("family_name", "given_name", "native_name"),
    [
        ("Hosseini", "Mohammad", "محمد حسینی"),
        ("Abdul-Rahman", "Ali Reza", ""),
        ("", "", ""),
        ("Zamani", "", "کریم  زمانی"),
        # Too many keys for the stored length: cut where name_key cuts them.
        (" ".join(f"Name{chr(97 + i)}{chr(97 + j)}" for i in range(9) for j in range(5)), "Mohammad", "محمد"),
    ],
)
def test_the_import_name_key_is_the_search_name_key(family_name, given_name, native_name):
    assert importing._name_key(family_name, given_name, native_name) == name_key(family_name, given_name, native_name)


def test_the_import_name_key_is_the_search_name_key_across_a_demo_roster():
    for person in roster(2000, 3, TODAY):
        assert importing._name_key(person.family_name, person.given_name, person.native_name) == name_key(
            person.family_name, person.given_name, person.native_name
        )


def reference_duplicates(rows, db_people):
    """The probable duplicates by their plain definition, in the order they are listed:
    for each row in file order, its look-alikes by Latin name (on record, then earlier
    rows), then by native name, each of the four the strongest first (the same date of
    birth and sex, the same date, a year alone); a pair once. Latin names alike whose
    native names (both given) differ are no pair. With why: the same Latin name written
    alike, in another spelling, or the same native name."""
    in_file = {row.registration_no for row in rows}
    on_record = [person for person in db_people if person[0] not in in_file]
    found = []
    seen = set()

    def same_birth(a_date, a_year, b_date, b_year):
        if a_year != b_year:
            return False
        if not (a_date and b_date):
            return True
        # The same date, or 1 January on a side (a year alone), or the day and month swapped.
        return (
            a_date == b_date
            or (1, 1) in ((a_date.month, a_date.day), (b_date.month, b_date.day))
            or (
                a_date.day,
                a_date.month,
            )
            == (b_date.month, b_date.day)
        )

    for index, row in enumerate(rows):
        latin, native = match_keys(row.family_name, row.given_name, row.native_name or "")
        for kind in ("latin", "native"):
            earlier = [
                (other.registration_no, other.family_name, other.given_name, other.native_name or "", other.birth_year,
                 other.birth_date, other.sex)
                for other in rows[:index]
            ]  # fmt: skip
            for candidates in (on_record, earlier):
                alike = []
                for reg, family_name, given_name, native_name, year, born, sex in candidates:
                    other_latin, other_native = match_keys(family_name, given_name, native_name)
                    if kind == "latin" and not (latin and other_latin == latin):
                        continue
                    if kind == "latin" and native and other_native and other_native != native:
                        continue
                    if kind == "native" and not (native and other_native == native):
                        continue
                    if reg == row.registration_no or not same_birth(row.birth_date, row.birth_year, born, year):
                        continue
                    same_date = row.birth_date and born == row.birth_date and (born.month, born.day) != (1, 1)
                    rank = (0 if sex == row.sex else 1) if same_date else 2
                    alike.append((rank, reg, family_name, given_name))
                for _rank, reg, family_name, given_name in sorted(alike, key=lambda other: other[0]):
                    if (reg, row.registration_no) in seen:
                        continue
                    seen.add((reg, row.registration_no))
                    if kind == "native":
                        reason = "same name in native script"
                    elif (family_name.casefold(), given_name.casefold()) == (
                        row.family_name.casefold(),
                        row.given_name.casefold(),
                    ):
                        reason = "same name"
                    else:
                        reason = "same name in another spelling"
                    found.append((row.line, row.registration_no, reg, reason))
    return found


def test_the_duplicate_search_lists_what_the_plain_definition_lists_in_its_order():
    rows = demo_rows(700, seed=11)
    # Look-alikes within the file: other spellings, a year for a date, 1 January for a
    # date (a year alone, as registrations write it), the day and month swapped.
    for index, row in enumerate(rows[:60:4]):
        variant = {**row, "registration_no": f"X-{index}", "family_name": row["family_name"].replace("i", "ee")}
        born = row["date_of_birth"]
        if index % 4 == 1:
            variant["date_of_birth"] = born[:4]
        if index % 4 == 2:
            variant["date_of_birth"] = born[:4] + "-01-01"
        if index % 4 == 3 and len(born) == 10:
            # Swapped where that is a date; else another day of the month (no pair).
            month, day = born[5:7], born[8:]
            variant["date_of_birth"] = f"{born[:4]}-{day}-{month}" if int(day) <= 12 else f"{born[:8]}{int(day) - 1}"
        rows.insert(100 + index * 7, variant)
    checker = importing._Checker({column: index for index, column in enumerate(COLUMNS)}, [])
    parsed = [checker.row(line, [row[column] for column in COLUMNS]) for line, row in enumerate(rows, start=2)]
    assert all(parsed)
    # On record: some of the file's people again (not compared with themselves), and
    # look-alikes of others.
    db_people = [
        (row.registration_no, row.family_name, row.given_name, row.native_name, row.birth_year, row.birth_date, row.sex)
        for row in parsed[::9]
    ] + [
        (f"DB-{index}", row.family_name.upper(), row.given_name, row.native_name, row.birth_year, row.birth_date,
         row.sex)
        for index, row in enumerate(parsed[::13])
    ]  # fmt: skip

    search = importing._DuplicateSearch(parsed)
    search.in_file()
    # The persons on record as the database gives them, with their stored keys.
    found = search.result(
        [
            (reg, family, given, year, born, *match_keys(family, given, native), sex, "PA", native, 1, "C-DB")
            for reg, family, given, native, year, born, sex in db_people
        ]
    )

    assert [(d.line, d.registration_no, d.other_registration_no, d.reason) for d in found] == reference_duplicates(
        parsed, db_people
    )
    assert any(d.other_line is None for d in found) and any(d.other_line for d in found)
    assert {d.reason for d in found} == {"same name", "same name in another spelling"}
    # Pairs of two full dates that differ: 1 January against a date, a day and month swapped.
    loose = [
        (d.birth, d.other_birth) for d in found if len(d.birth) == len(d.other_birth) == 10 and d.birth != d.other_birth
    ]
    assert any("-01-01" in pair[0] + pair[1] for pair in loose)
    assert any(one[5:7] == other[8:] and one[8:] == other[5:7] for one, other in loose)


def test_a_name_written_on_many_rows_lists_each_rows_first_look_alikes_as_the_plain_definition():
    # Beyond a few rows a key's rows are kept by date of birth too: the same pairs.
    births = ["1990", "1990-05-01", "1990-05-02", "1990-05-01", "1990", "1990-01-01", "1990-01-05", "1990-02-05"]
    rows = [
        person_row(registration_no=f"R-{n}", case_no=f"C-{n}", given_name="Ali", native_name="",
                   date_of_birth=births[n % len(births)])
        for n in range(120)
    ]  # fmt: skip
    checker = importing._Checker({column: index for index, column in enumerate(COLUMNS)}, [])
    parsed = [checker.row(line, [row.get(column, "") for column in COLUMNS]) for line, row in enumerate(rows, start=2)]
    plain: dict[str, list[str]] = {}
    for _line, registration_no, other, _reason in reference_duplicates(parsed, []):
        plain.setdefault(registration_no, []).append(other)

    result = roster_import(csv_bytes(rows), actor=None, filename="ali.csv", dry_run=True)

    listed: dict[str, list[str]] = {}
    for duplicate in result.duplicates:
        listed.setdefault(duplicate.registration_no, []).append(duplicate.other_registration_no)
    assert listed == {registration_no: others[:10] for registration_no, others in plain.items()}
    assert max(map(len, plain.values())) > 10  # some rows' lists are cut


@pytest.mark.parametrize("lookups", [20_000, 0], ids=["key by key", "one join"])
def test_the_duplicate_search_reads_only_the_persons_on_record_who_share_a_key(site, monkeypatch, lookups):
    """Found through the stored keys' indexes: a million persons on record are not read
    to find a file's few look-alikes. A small file's keys are looked up one by one, a
    large file's joined at once (PostgreSQL): the same persons either way."""
    monkeypatch.setattr(importing, "_KEY_LOOKUPS", lookups)
    for registration_no, family_name, given_name, native_name, year in [
        ("DB-LATIN", "Husseini", "Muhammad", "", 1985),  # the file's person in another spelling
        ("DB-NATIVE", "Karimi", "Reza", "محمد حسینی", 1985),  # the same name in native script
        ("DB-OTHER-YEAR", "Hosseini", "Mohammad", "محمد حسینی", 1986),
        ("DB-OTHER-NAME", "Tehrani", "Ali", "علی تهرانی", 1985),
    ]:
        PersonFactory(
            registration_no=registration_no,
            family_name=family_name,
            given_name=given_name,
            native_name=native_name,
            birth_year=year,
            birth_date=None,
            case=CaseFactory(site=site),
            site=site,
        )
    read = []
    result = importing._DuplicateSearch.result

    def reading(search, db_people):
        people = list(db_people)
        read.extend(person[0] for person in people)
        return result(search, people)

    monkeypatch.setattr(importing._DuplicateSearch, "result", reading)

    found = roster_import(csv_bytes([person_row()]), actor=None, filename="f.csv", dry_run=True)

    assert sorted(read) == ["DB-LATIN", "DB-NATIVE"]
    assert [(d.other_registration_no, d.reason) for d in found.duplicates] == [
        ("DB-LATIN", "same name in another spelling"),
        ("DB-NATIVE", "same name in native script"),
    ]


def test_names_whose_keys_are_longer_than_the_names_are_imported_and_matched(site):
    """Md is Mohammad and an Arabic ligature is several letters: a key can be longer than
    the longest name; it is stored whole (the import used to fail on PostgreSQL)."""
    long_latin = " ".join(["Md"] * 33)  # 98 characters (a name holds 100); its key has 132
    long_native = "\ufdf2 " * 60  # the ligature of Allah, four letters once unfolded
    rows = [
        person_row(registration_no="R-1", family_name=long_latin, given_name=long_latin, native_name=long_native),
        person_row(registration_no="R-2", case_no="C-2", family_name=long_latin, given_name=long_latin),
    ]
    result = roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=False)
    assert result.ok, result.report_lines()
    person = Person.objects.get(registration_no="R-1")
    assert (len(person.match_latin), len(person.match_native)) == (265, 240)
    # Without a native name of its own: R-1's, written otherwise, would set them apart.
    alike = person_row(
        registration_no="R-3", case_no="C-3", family_name=long_latin, given_name=long_latin, native_name=""
    )
    again = roster_import(
        csv_bytes([alike]),
        actor=None,
        filename="g.csv",
        dry_run=True,
    )
    assert {d.other_registration_no for d in again.duplicates} == {"R-1", "R-2"}


def test_probable_duplicates_of_persons_on_record_come_before_those_in_the_file(site):
    PersonFactory(
        registration_no="DB-1",
        family_name="Hosseini",
        given_name="Muhammad",
        native_name="محمد حسینی",
        birth_year=1985,
        birth_date=datetime.date(1985, 3, 21),
        case=CaseFactory(case_no="C-DB", site=site),
        site=site,
    )
    rows = [*family(), person_row(registration_no="R-4", case_no="C-2", given_name="Mohammed")]

    result = roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=True)

    pairs = [(d.registration_no, d.other_registration_no) for d in result.duplicates]
    assert pairs == [("R-1", "DB-1"), ("R-4", "DB-1"), ("R-4", "R-1")]
