"""`manage.py import_roster PATH [--dry-run]`: the same import and report as the admin's."""

import io

import pytest
from django.core.management import CommandError, call_command

from cases.models import Person, RosterImport
from tests.cases.test_import import csv_bytes, family, person_row
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def site(db):
    return SiteFactory(name="Camp Liberty", code="liberty")


@pytest.fixture
def roster(tmp_path):
    def write(rows, name="roster.csv"):
        path = tmp_path / name
        path.write_bytes(csv_bytes(rows))
        return path

    return write


def test_it_imports_a_file_and_prints_the_counts(roster):
    out = io.StringIO()

    call_command("import_roster", str(roster(family())), stdout=out)

    assert "3 rows: 3 new, 0 updated, 0 unchanged; 1 new case." in out.getvalue()
    assert Person.objects.count() == 3


def test_a_dry_run_prints_the_counts_and_writes_nothing(roster):
    out = io.StringIO()

    call_command("import_roster", str(roster(family())), "--dry-run", stdout=out)

    assert "Checked, nothing written yet. 3 rows: 3 new" in out.getvalue()
    assert "3 new" in out.getvalue()
    assert not Person.objects.exists()
    assert RosterImport.objects.get().dry_run


def test_a_refused_file_exits_non_zero_and_prints_every_error(roster):
    rows = family() + [person_row(registration_no="R-4", case_no="C-2", sex="Q", nationality="Narnia")]
    err = io.StringIO()

    with pytest.raises(CommandError, match="refused: 2 error"):
        call_command("import_roster", str(roster(rows)), stderr=err)

    assert "Line 5, sex" in err.getvalue()
    assert "Line 5, nationality" in err.getvalue()
    assert not Person.objects.exists()


def test_it_records_the_named_user(roster, administrator):
    call_command("import_roster", str(roster(family())), "--user", administrator.username, stdout=io.StringIO())

    assert RosterImport.objects.get().actor == administrator
    assert Person.objects.get(registration_no="R-1").history.get().history_user == administrator


def test_an_unknown_user_is_refused(roster):
    with pytest.raises(CommandError, match="No user"):
        call_command("import_roster", str(roster(family())), "--user", "ghost")


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_roster", str(tmp_path / "missing.csv"))


def test_probable_duplicates_are_printed(roster):
    rows = family() + [person_row(registration_no="R-7", case_no="C-7", given_name="Muhammad", native_name="")]
    out = io.StringIO()

    call_command("import_roster", str(roster(rows)), stdout=out)

    assert "Probable duplicates" in out.getvalue()
    assert "R-7" in out.getvalue()


def test_each_probable_duplicate_is_printed_with_its_strength_the_strong_first(roster):
    rows = family() + [
        person_row(registration_no="R-7", case_no="C-7", given_name="Zahra", native_name="", sex="F",
                   date_of_birth="1988-02-02"),
        person_row(registration_no="R-8", case_no="C-8", given_name="Muhammad", native_name=""),
    ]  # fmt: skip
    out = io.StringIO()

    call_command("import_roster", str(roster(rows)), "--dry-run", stdout=out)

    printed = out.getvalue().splitlines()
    at = printed.index(
        "Probable duplicates (not merged; check them), 1 strong: same date of birth and sex; 1 possible:"
    )
    assert printed[at + 1 : at + 3] == [
        "Line 6: HOSSEINI, Muhammad (R-8) may be HOSSEINI, Mohammad (R-1) in line 2: same name in another spelling;"
        " strong: same date of birth and sex",
        "Line 5: HOSSEINI, Zahra (R-7) may be HOSSEINI, Zahra (R-2) in line 3: same name; possible",
    ]
