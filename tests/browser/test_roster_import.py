"""An administrator imports a roster through the admin, in a real browser: the template,
a refused file, the check with its probable duplicates, the confirmation, and the page
that follows a job on the database queue by refreshing itself."""

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from cases.models import Person, RosterImportJob, SpecificNeed
from tests.cases.test_import import csv_bytes, family, person_row
from tests.cases.test_import_jobs import DATABASE_QUEUE
from tests.factories import CaseFactory, PersonFactory, SiteFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IMPORT = "/admin/cases/person/import/"


@pytest.fixture(autouse=True)
def site(db):
    # The need the family's roster names; made by a data migration, gone after a flush.
    SpecificNeed.objects.get_or_create(code="medical_condition", defaults={"label": "Medical condition"})
    return SiteFactory(name="Camp Liberty", code="liberty")


def _choose(page, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    page.goto(IMPORT)
    page.set_input_files("#id_file", str(path))
    page.get_by_role("button", name="Check file").click()


def test_an_administrator_checks_a_roster_sees_its_duplicates_and_imports_it(page, log_in, administrator, tmp_path):
    # Someone on record may be the file's PA: the same man, spelt otherwise, born the same day.
    on_record = PersonFactory(
        registration_no="R-OLD", case=CaseFactory(case_no="C-OLD"), given_name="Muhammad", birth_date="1985-03-21"
    )
    log_in("administrator-test")
    page.goto(IMPORT)
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV", exact=True).click()
    template = download.value.path().read_text(encoding="utf-8-sig")
    assert template.splitlines()[0].startswith("registration_no,case_no,relationship")

    _choose(page, tmp_path, "family.csv", csv_bytes(family()))

    expect(page.get_by_role("heading", name="Checked: nothing has been written yet")).to_be_visible()
    duplicates = page.locator("table.import-duplicates tbody tr")
    expect(duplicates).to_have_count(1)
    expect(duplicates.first).to_contain_text(f"HOSSEINI, Muhammad ({on_record.registration_no})")
    expect(duplicates.first).to_contain_text("the roster")
    assert Person.objects.count() == 1

    page.get_by_role("button", name="Import", exact=True).click()

    expect(page.get_by_role("heading", name="Imported", exact=True)).to_be_visible()
    expect(page.locator(".import-summary")).to_have_text("3 rows: 3 new, 0 updated, 0 unchanged; 1 new case.")
    assert set(Person.objects.values_list("registration_no", flat=True)) == {"R-OLD", "R-1", "R-2", "R-3"}
    # Never merged: the look-alike on record is as it was.
    on_record.refresh_from_db()
    assert (on_record.given_name, on_record.case.case_no) == ("Muhammad", "C-OLD")


def test_a_bad_roster_is_refused_with_every_error_by_line_and_column(page, log_in, administrator, tmp_path):
    rows = [*family(), person_row(registration_no="R-4", relationship="child", sex="Q", date_of_birth="1980-02-31")]
    rows[1]["site"] = "Nowhere"
    log_in("administrator-test")

    _choose(page, tmp_path, "bad.csv", csv_bytes(rows))

    expect(page.get_by_role("heading", name="Refused: nothing has been imported")).to_be_visible()
    errors = page.locator("table.import-errors tbody tr")
    expect(errors).to_have_count(3)
    expected = [
        ("3", "site", "Unknown site “Nowhere”"),
        ("5", "sex", "“Q” is not one of F, M, X"),
        ("5", "date_of_birth", "“1980-02-31” is not a real date"),
    ]
    for row, (line, column, problem) in enumerate(expected):
        expect(errors.nth(row).locator("td")).to_have_text([line, column, re.compile("^" + re.escape(problem))])
    assert page.get_by_role("button", name="Import", exact=True).count() == 0
    with page.expect_download() as download:
        page.get_by_role("link", name="Download every error and probable duplicate (CSV)").click()
    report = download.value.path().read_text(encoding="utf-8-sig").splitlines()
    assert [line.split(",")[:2] for line in report[1:]] == [[line, column] for line, column, _problem in expected]
    assert not Person.objects.exists()


def test_the_page_follows_a_job_on_the_queue_until_the_worker_has_checked_it(
    page, log_in, administrator, settings, tmp_path
):
    settings.TASKS = DATABASE_QUEUE
    log_in("administrator-test")

    _choose(page, tmp_path, "family.csv", csv_bytes(family()))

    expect(page.get_by_text("Waiting for the background worker to start it.")).to_be_visible()
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    # No reload from here: the page refreshes itself.
    expect(page.get_by_role("heading", name="Checked: nothing has been written yet")).to_be_visible(timeout=8_000)
    assert RosterImportJob.objects.get().status == "checked"
    assert not Person.objects.exists()


def test_a_checked_roster_can_be_cancelled_instead(page, log_in, administrator, tmp_path):
    log_in("administrator-test")
    _choose(page, tmp_path, "family.csv", csv_bytes(family()))
    expect(page.get_by_role("heading", name="Checked: nothing has been written yet")).to_be_visible()

    page.get_by_role("button", name="Cancel").click()

    expect(page.get_by_text("Cancelled: nothing was imported, and the file is deleted.")).to_be_visible()
    expect(page).to_have_url(re.compile(re.escape(IMPORT) + "$"))
    job = RosterImportJob.objects.get()
    assert (job.status, bytes(job.content)) == ("cancelled", b"")
    assert not Person.objects.exists()
