"""The admin's roster import screens: Administrators only; upload, check, confirm, each
step a background job (run at once here: tests/conftest.py sets the immediate backend)."""

import csv
import datetime
import gzip
import io
import re

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessLog
from cases import import_jobs, importing
from cases.importing import COLUMNS, ImportResult, ProbableDuplicate, RowError
from cases.models import (
    Case,
    DistinctPersons,
    Person,
    ResidenceStatus,
    RosterImport,
    RosterImportJob,
    RosterImportJobStatus,
    RosterImportOutcome,
    SiteAssignment,
)
from cases.services import incident_record
from cases.tasks import prune_roster_import_jobs
from tests.cases.test_import import csv_bytes, family, person_row
from tests.conftest import ROLES
from tests.factories import CaseFactory, PersonFactory, SiteFactory, UserFactory

A, ST, SU, AD = ROLES
IMPORT = reverse("admin:cases_person_import")
QUERIES_IMPORT_PAGE = 4
QUERIES_JOB_PAGE = 5
QUERIES_RECORDS_PAGE = 7
QUERIES_DIFFERENT_PERSONS_PAGE = 7
TEMPLATE_CSV = reverse("admin:cases_person_import_template", args=["csv"])
TEMPLATE_XLSX = reverse("admin:cases_person_import_template", args=["xlsx"])
CHANGELIST = reverse("admin:cases_person_changelist")

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def site(db):
    return SiteFactory(name="Camp Liberty", code="liberty")


def upload(content: bytes, name="roster.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


@pytest.mark.parametrize(
    ("role", "expected"),
    [(A, 302), (ST, 403), (SU, 403), (AD, 200)],
)
@pytest.mark.parametrize("url", [IMPORT, TEMPLATE_CSV, TEMPLATE_XLSX])
def test_only_administrators_reach_the_import_pages(client_for, role, expected, url):
    response = client_for(role).get(url)

    assert response.status_code == expected
    if role == A:
        assert "login" in response["Location"]


@pytest.mark.parametrize("role", [ST, SU])
def test_staff_and_supervisors_cannot_post_a_file_either(client_for, role):
    response = client_for(role).post(IMPORT, {"file": upload(csv_bytes(family())), "confirm": "1"})

    assert response.status_code == 403
    assert not Person.objects.exists()
    assert not RosterImport.objects.exists()


def test_an_administrator_limited_to_some_sites_is_refused_every_import_screen_and_told_why(
    client_for, administrator, site
):
    # An import writes persons of any site and shows look-alikes of any site (their names,
    # numbers and births): a user limited to some sites must not reach it.
    client = client_for(AD)
    job = check(client, csv_bytes(family())).context["job"]
    SiteAssignment.objects.create(user=administrator, site=site)
    client = client_for(AD)

    for url in (IMPORT, TEMPLATE_CSV, job_url(job), reverse("admin:cases_rosterimport_changelist")):
        response = client.get(url)
        assert response.status_code == 403, url
    for url in (IMPORT, job_url(job, "confirm"), job_url(job, "cancel")):
        assert client.post(url, {"file": upload(csv_bytes(family()))}).status_code == 403, url
    assert "your account is limited to some sites" in client.get(IMPORT).text
    assert IMPORT not in client.get(CHANGELIST).text
    assert not Person.objects.exists()
    assert RosterImportJob.objects.get().status == RosterImportJobStatus.CHECKED


def test_the_person_list_links_to_the_import(client_for):
    response = client_for(AD).get(CHANGELIST)

    assert response.status_code == 200
    assert IMPORT in response.content.decode()


def test_the_import_page_says_how_each_value_is_written(client_for):
    page = client_for(AD).get(IMPORT).text

    for rule in (
        "date_of_birth as YYYY-MM-DD, or YYYY when only the year is known",
        "sex F, M or X",
        "PA (one per case)",
        "specific_needs as codes separated by semicolons (;)",
        "family_name and given_name in Latin script, the name in its own script in native_name",
    ):
        assert rule in page


def test_the_import_page_is_headed_and_placed_as_the_admins_own_pages(client_for):
    page = client_for(AD).get(IMPORT).text
    assert "Relocation administration" in page
    assert '<ol class="breadcrumbs">' in page
    assert '<li aria-current="page">Import roster</li>' in page


def pinned(client, url: str, queries: int, django_assert_num_queries) -> str:
    """The page at `url` as a second visit gets it (a first may refresh the session), made
    in `queries` queries."""
    client.get(url)
    with django_assert_num_queries(queries):
        return client.get(url).content.decode()


@pytest.fixture
def other():
    """Another Administrator."""
    return UserFactory(username="administrator-2", role=AD, is_staff=True)


def check(client, content: bytes, name="roster.csv"):
    """Upload a file; the check runs as a job (at once in the tests) and the page follows it."""
    return client.post(IMPORT, {"file": upload(content, name), "check": "1"}, follow=True)


def job_url(job, action=""):
    name = f"admin:cases_person_import_{action or 'job'}"
    return reverse(name, args=[job.pk])


def test_checking_a_file_shows_the_counts_and_writes_nothing(client_for):
    response = check(client_for(AD), csv_bytes(family()))

    assert response.status_code == 200
    job = response.context["job"]
    assert job.status == RosterImportJobStatus.CHECKED
    assert response.context["result"]["ok"]
    assert (response.context["result"]["new"], response.context["result"]["cases_new"]) == (3, 1)
    assert job_url(job, "confirm") in response.content.decode()
    assert not Person.objects.exists()
    assert RosterImport.objects.get().outcome == RosterImportOutcome.CHECKED


def test_the_check_of_a_workbook_of_several_sheets_names_the_sheet_read(client_for):
    workbook = openpyxl.Workbook()
    workbook.active.title = "Notes"
    workbook.active.append(["Roster of the camp, April"])
    roster = workbook.create_sheet("April")
    for row in [list(COLUMNS), *([person[column] for column in COLUMNS] for person in family())]:
        roster.append(row)
    workbook.active = 1
    content = io.BytesIO()
    workbook.save(content)

    response = check(client_for(AD), content.getvalue(), name="roster.xlsx")

    assert response.context["result"]["ok"]
    assert "Read from the sheet “April”, one of 2 in the workbook." in response.content.decode()


def test_the_check_names_the_columns_that_are_not_read(client_for):
    columns = [*COLUMNS, "age", "remarks2"]
    rows = [{**row, "age": "40", "remarks2": "seen"} for row in family()]

    response = check(client_for(AD), csv_bytes(rows, columns=columns))

    assert response.context["result"]["ok"]
    assert "Columns not read (not roster columns): age, remarks2." in response.content.decode()
    assert not Person.objects.exists()


def test_a_bad_file_shows_every_error_with_line_and_column_and_no_import_button(client_for):
    rows = family() + [person_row(registration_no="R-4", case_no="C-2", sex="Q", date_of_birth="1980-02-31")]

    response = check(client_for(AD), csv_bytes(rows))

    page = response.content.decode()
    errors = response.context["result"]["errors"]
    assert [(e["line"], e["column"]) for e in errors] == [(5, "sex"), (5, "date_of_birth")]
    assert "1980-02-31" in page
    assert "Refused: nothing has been imported" in page
    assert job_url(response.context["job"], "confirm") not in page
    assert not Person.objects.exists()
    # A refused file is not kept.
    assert bytes(RosterImportJob.objects.get().content) == b""


def test_probable_duplicates_are_shown_in_the_preview(client_for):
    rows = family() + [person_row(registration_no="R-7", case_no="C-7", given_name="Muhammad", native_name="")]

    response = check(client_for(AD), csv_bytes(rows))

    page = response.content.decode()
    assert "1 probable duplicate</h3>" in page
    assert [d["registration_no"] for d in response.context["result"]["duplicates"]] == ["R-7"]
    assert response.context["result"]["duplicates_notice"] == ""  # nothing left out
    assert "errornote" not in page
    assert [(d["other_registration_no"], d["other_birth"]) for d in response.context["result"]["duplicates"]] == [
        ("R-1", "1985-03-21")
    ]


def test_the_preview_lists_the_strong_pairs_first_says_how_many_of_each_and_shows_both_persons(client_for, monkeypatch):
    monkeypatch.setattr(import_jobs, "SHOWN", 2)
    rows = family()
    rows[1]["native_name"] = "<b>زهرا</b>"
    rows += [
        # R-2's look-alike by a year of birth alone comes first in the file; R-7's is strong.
        person_row(registration_no="R-6", case_no="C-6", given_name="Zahra", native_name="<b>زهرا</b>", sex="F",
                   date_of_birth="1988-02-02"),
        person_row(registration_no="R-7", case_no="C-7", given_name="Muhammad", native_name=""),
        person_row(registration_no="R-8", case_no="C-8", given_name="Mohamad", native_name="", sex="F"),
    ]  # fmt: skip

    response = check(client_for(AD), csv_bytes(rows))

    page = response.content.decode()
    assert "4 probable duplicates</h3>" in page
    assert '<p class="import-strengths">1 strong: same date of birth and sex; 3 possible</p>' in page
    shown = [(d["registration_no"], d["other_registration_no"], d["strength"]) for d in response.context["duplicates"]]
    assert shown == [("R-7", "R-1", "strong"), ("R-6", "R-2", "possible")]
    assert "… and 2 more." in page
    # Both persons' sex, case, relationship and native name, escaped.
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page.split('<table class="import-duplicates">')[1], re.S)
    cells = [cell for cell in cells if 'type="checkbox"' not in cell]  # to mark a pair as different persons
    text = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip() for cell in cells]
    assert text[:6] == [
        "strong",
        "6",
        "HOSSEINI, Muhammad (R-7) born 1985-03-21 · sex M · case C-7 · PA",
        "HOSSEINI, Mohammad (R-1) born 1985-03-21 · sex M · case C-1 · PA محمد حسینی",
        "line 2",
        "same name in another spelling",
    ]
    # Escaped.
    assert text[6:9] == [
        "possible",
        "5",
        "HOSSEINI, Zahra (R-6) born 1988-02-02 · sex F · case C-6 · PA &lt;b&gt;زهرا&lt;/b&gt;",
    ]


def _with_look_alikes() -> list[dict[str, str]]:
    """The family, and two look-alikes: R-7 of R-1 (strong), R-9 of R-2 (possible)."""
    return [
        *family(),
        person_row(registration_no="R-7", case_no="C-7", given_name="Muhammad", native_name=""),
        person_row(registration_no="R-9", case_no="C-9", given_name="Zahra", native_name="", sex="F",
                   date_of_birth="1988"),
    ]  # fmt: skip


def _pairs(response) -> list[tuple[str, str]]:
    return [(d["registration_no"], d["other_registration_no"]) for d in response.context["duplicates"]]


def test_pairs_marked_as_different_persons_on_the_check_page_are_listed_no_more(client_for, administrator):
    client = client_for(AD)
    rows = _with_look_alikes()
    checked = check(client, csv_bytes(rows))
    job = checked.context["job"]
    assert _pairs(checked) == [("R-7", "R-1"), ("R-9", "R-2")]
    # Each box holds its pair's registration numbers (not its place in a list that may change).
    assert 'name="pair" value="[&quot;R-7&quot;, &quot;R-1&quot;]" form="import-different"' in checked.text

    page = client.post(job_url(job, "different"), {"pair": ['["R-7", "R-1"]']}, follow=True)

    text = page.content.decode()
    assert "1 pair marked as different persons: the file is checked again without it." in text
    assert '<p class="import-decided">1 pair marked earlier as different persons is not listed.</p>' in text
    assert _pairs(page) == [("R-9", "R-2")]
    marked = DistinctPersons.objects.get()
    assert (marked.first, marked.second, marked.decided_by) == ("R-1", "R-7", administrator)
    assert page.context["job"].status == RosterImportJobStatus.CHECKED
    # Imported as checked again, and in any later file: the pair is listed no more.
    client.post(job_url(job, "confirm"))
    job.refresh_from_db()
    assert (job.status, Person.objects.count()) == (RosterImportJobStatus.DONE, 5)
    again = importing.roster_import(csv_bytes(rows), actor=None, filename="again.csv", dry_run=True)
    assert [(d.registration_no, d.other_registration_no) for d in again.duplicates] == [("R-9", "R-2")]
    assert "1 pair marked earlier as different persons is not listed." in again.report_lines()


def test_marking_pairs_as_different_persons_is_refused_with_nothing_written_unless_the_check_waits(
    client_for, administrator, other
):
    client = client_for(AD)
    job = check(client, csv_bytes(_with_look_alikes())).context["job"]

    nothing = client.post(job_url(job, "different"), {}, follow=True).content.decode()
    assert "Choose the pairs that are different persons first." in nothing
    # Another Administrator's job is none of theirs; Staff may not import at all.
    client.force_login(other)
    assert client.post(job_url(job, "different"), {"pair": ['["R-7", "R-1"]']}).status_code == 404
    assert client_for(ST).post(job_url(job, "different"), {"pair": ['["R-7", "R-1"]']}).status_code == 403
    # Once imported, the check waits no more.
    client = client_for(AD)
    client.post(job_url(job, "confirm"))
    done = client.post(job_url(job, "different"), {"pair": ['["R-7", "R-1"]']}, follow=True).content.decode()
    assert "This check is no longer waiting for confirmation" in done
    assert not DistinctPersons.objects.exists()
    assert "Mark the ticked pairs" not in client.get(job_url(job)).content.decode()


def test_a_check_confirmed_after_another_administrator_marked_one_of_its_pairs_is_shown_again_saying_so(
    client_for, administrator, other
):
    client = client_for(AD)
    job = check(client, csv_bytes(_with_look_alikes())).context["job"]
    DistinctPersons.objects.create(first="R-1", second="R-7", decided_by=other)  # on their own check

    page = client.post(job_url(job, "confirm"), follow=True).text

    assert "(or pairs of its look-alikes were marked as different persons)" in page
    assert not Person.objects.exists()


def test_a_page_left_open_marks_the_pair_ticked_or_nothing_whatever_the_list_has_become(client_for):
    client = client_for(AD)
    rows = [
        person_row(registration_no=f"R-{n}", case_no=f"C-{n}", given_name="Muhammad", native_name="") for n in (1, 2, 3)
    ]
    job = check(client, csv_bytes(rows)).context["job"]
    client.post(job_url(job, "different"), {"pair": ['["R-2", "R-1"]']})  # the list is checked again

    # From the same page, left open: the pair ticked there, whatever its place now.
    client.post(job_url(job, "different"), {"pair": ['["R-3", "R-1"]']})
    assert set(DistinctPersons.objects.values_list("first", "second")) == {("R-1", "R-2"), ("R-1", "R-3")}
    # A pair no longer listed (marked meanwhile), or one never listed, refuses them all.
    for stale in (['["R-3", "R-1"]', '["R-3", "R-2"]'], ['["R-9", "R-1"]'], ["0"]):
        refused = client.post(job_url(job, "different"), {"pair": stale}, follow=True).text
        assert "The list of probable duplicates changed since the page was shown: look at it again." in refused
    assert DistinctPersons.objects.count() == 2


def test_a_pair_marked_as_different_persons_follows_a_registration_number_corrected_in_the_admin(
    client_for, administrator
):
    rows = _with_look_alikes()
    importing.roster_import(csv_bytes(rows), actor=None, filename="first.csv", dry_run=False)
    DistinctPersons.objects.create(first="R-1", second="R-7", decided_by=administrator)
    client = client_for(AD)
    person = Person.objects.get(registration_no="R-1")
    url = reverse("admin:cases_person_change", args=[person.pk])

    assert client.post(url, admin_form(client, url, registration_no="R-1A")).status_code == 302

    assert list(DistinctPersons.objects.values_list("first", "second", "decided_by")) == [
        ("R-1A", "R-7", administrator.pk)
    ]
    rows[0]["registration_no"] = "R-1A"
    again = importing.roster_import(csv_bytes(rows), actor=None, filename="again.csv", dry_run=True)
    assert [(d.registration_no, d.other_registration_no) for d in again.duplicates] == [("R-9", "R-2")]


def test_the_pairs_marked_as_different_persons_are_a_record_administrators_read_and_may_undo(client_for, administrator):
    marked = DistinctPersons.objects.create(first="R-1", second="R-7", decided_by=administrator)
    changelist = reverse("admin:cases_distinctpersons_changelist")
    assert client_for(ST).get(changelist).status_code == 403
    client = client_for(AD)

    page = client.get(changelist).content.decode()

    assert 'field-second">R-7</td>' in page
    assert '<td class="field-decided_by nowrap">administrator-test</td>' in page
    assert ">R-1</a>" in page  # the pair's own page, where it is deleted
    delete = reverse("admin:cases_distinctpersons_delete", args=[marked.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302  # marked by mistake: listed again
    assert not DistinctPersons.objects.exists()


@pytest.mark.parametrize("pairs", [1, 25])
def test_the_list_of_different_persons_costs_the_same_queries_whatever_the_pairs_listed(
    client_for, administrator, django_assert_num_queries, pairs
):
    for number in range(pairs):
        DistinctPersons.objects.create(first=f"R-{number:02}", second=f"S-{number:02}", decided_by=administrator)
    changelist = reverse("admin:cases_distinctpersons_changelist")

    # session, user, permissions with groups and sites, the count, the pairs with who
    # marked them, the date hierarchy's bounds and its days
    page = pinned(client_for(AD), changelist, QUERIES_DIFFERENT_PERSONS_PAGE, django_assert_num_queries)

    assert page.count('<td class="field-second">S-') == pairs


def test_a_look_alike_on_record_links_to_their_page_for_the_administrator_to_compare(client_for):
    on_record = PersonFactory(registration_no="R-OLD", given_name="Muhammad", birth_date="1985-03-21")

    response = check(client_for(AD), csv_bytes(family()))

    page = response.content.decode()
    change = reverse("admin:cases_person_change", args=[on_record.pk])
    # In a tab of its own: the check's page stays open to confirm or cancel.
    link = (
        f'<a href="{change}" target="_blank" rel="noopener">HOSSEINI, Muhammad <span class="nowrap">(R-OLD)</span></a>'
    )
    assert link in page
    # Once gone from the roster, the name stays, without a link.
    on_record.delete()
    page = client_for(AD).get(job_url(response.context["job"])).content.decode()
    assert 'HOSSEINI, Muhammad <span class="nowrap">(R-OLD)</span>' in page
    assert change not in page


def test_confirming_the_checked_file_imports_it_and_drops_the_file(client_for, administrator):
    client = client_for(AD)
    job = check(client, csv_bytes(family())).context["job"]

    response = client.post(job_url(job, "confirm"), follow=True)

    assert "Imported" in response.content.decode()
    assert response.context["result"]["summary"].startswith("3 rows: 3 new")
    assert Person.objects.count() == 3
    record = RosterImport.objects.latest("pk")
    assert (record.outcome, record.actor) == (RosterImportOutcome.IMPORTED, administrator)
    assert Person.objects.get(registration_no="R-1").history.get().history_user == administrator
    job.refresh_from_db()
    assert (job.status, bytes(job.content), job.record) == (RosterImportJobStatus.DONE, b"", record)


def test_a_job_is_confirmed_once_and_only_by_its_owner(client_for, administrator, other):
    client = client_for(AD)
    job = check(client, csv_bytes(family())).context["job"]
    stranger = Client()
    stranger.force_login(other)

    assert stranger.get(job_url(job)).status_code == 404
    assert stranger.post(job_url(job, "confirm")).status_code == 404
    assert not Person.objects.exists()
    client.post(job_url(job, "confirm"))
    again = client.post(job_url(job, "confirm"), follow=True)
    assert "This file has been imported already." in again.content.decode()
    assert Person.objects.count() == 3
    assert RosterImport.objects.filter(outcome=RosterImportOutcome.IMPORTED).count() == 1


def test_if_the_roster_changed_after_the_check_the_import_shows_the_new_outcome_instead_of_writing(client_for):
    # A look-alike recorded between the check and the confirmation: the administrator
    # confirmed a file without probable duplicates and must see the one it has now.
    client = client_for(AD)
    job = check(client, csv_bytes(family())).context["job"]
    PersonFactory(registration_no="R-OLD", given_name="Muhammad", birth_date="1985-03-21")

    page = client.post(job_url(job, "confirm"), follow=True).content.decode()

    job.refresh_from_db()
    assert (job.status, job.dry_run, job.result["duplicate_count"]) == (RosterImportJobStatus.CHECKED, True, 1)
    assert "The roster on record changed after your check" in page
    assert "1 probable duplicate</h3>" in page
    assert Person.objects.count() == 1
    # Confirmed again, as it is now: imported.
    client.post(job_url(job, "confirm"))
    job.refresh_from_db()
    assert (job.status, job.result["new"]) == (RosterImportJobStatus.DONE, 3)
    assert Person.objects.count() == 4


def edited_by_a_colleague(registration_no: str) -> None:
    """An edit saved from the person's page: new values, the next version."""
    Person.objects.filter(registration_no=registration_no).update(
        phone="222", notes="Moved to tent 4", version=F("version") + 1
    )


def test_a_person_the_file_changes_edited_after_the_check_is_shown_again_not_overwritten(client_for):
    client = client_for(AD)
    importing.roster_import(csv_bytes(family()), actor=None, filename="first.csv", dry_run=False)
    rows = family()
    rows[0]["phone"] = "111"
    job = check(client, csv_bytes(rows)).context["job"]
    assert job.result["updated"] == 1
    edited_by_a_colleague("R-1")

    page = client.post(job_url(job, "confirm"), follow=True).text

    job.refresh_from_db()
    assert (job.status, job.dry_run) == (RosterImportJobStatus.CHECKED, True)
    assert "The roster on record changed after your check" in page
    assert Person.objects.filter(registration_no="R-1", phone="222", notes="Moved to tent 4").exists()
    # Confirmed again, as it is now: written as the page showed it.
    client.post(job_url(job, "confirm"))
    job.refresh_from_db()
    assert (job.status, job.result["updated"]) == (RosterImportJobStatus.DONE, 1)
    assert Person.objects.get(registration_no="R-1").phone == "111"


def admin_form(client, url: str, **changes) -> dict:
    """The admin's change form at `url` as it was opened, with `changes`."""
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def test_a_person_edited_in_the_admin_after_the_check_is_shown_again_not_overwritten(client_for):
    client = client_for(AD)
    importing.roster_import(csv_bytes(family()), actor=None, filename="first.csv", dry_run=False)
    rows = family()
    rows[0]["phone"] = "111"
    job = check(client, csv_bytes(rows)).context["job"]
    person = Person.objects.get(registration_no="R-1")
    url = reverse("admin:cases_person_change", args=[person.pk])
    assert client.post(url, admin_form(client, url, notes="Moved to tent 4")).status_code == 302

    page = client.post(job_url(job, "confirm"), follow=True).text

    assert "The roster on record changed after your check" in page
    person.refresh_from_db()
    assert (person.version, person.phone, person.notes) == (1, "", "Moved to tent 4")


def test_an_admin_form_opened_before_someone_else_saved_is_refused_not_saved_over_theirs(client_for):
    importing.roster_import(csv_bytes(family()), actor=None, filename="first.csv", dry_run=False)
    person = Person.objects.get(registration_no="R-1")
    client = client_for(AD)
    url = reverse("admin:cases_person_change", args=[person.pk])
    opened = admin_form(client, url, notes="Tent 9")
    edited_by_a_colleague("R-1")

    response = client.post(url, opened)

    assert response.status_code == 200
    assert "Someone else saved this record while you were editing it." in response.text
    assert "Your changes were not saved" in response.text
    person.refresh_from_db()
    assert (person.version, person.notes) == (1, "Moved to tent 4")
    # Opened again, it saves.
    assert client.post(url, admin_form(client, url, notes="Tent 9")).status_code == 302
    person.refresh_from_db()
    assert (person.version, person.notes) == (2, "Tent 9")


def test_an_admin_form_opened_before_an_incident_killed_the_person_is_refused_not_saved_over_it(
    client_for, administrator
):
    person = PersonFactory()
    client = client_for(AD)
    url = reverse("admin:cases_person_change", args=[person.pk])
    opened = admin_form(client, url, notes="Tent 9")  # shows the person present
    incident_record(
        actor=administrator,
        site=person.site,
        kind="attack",
        occurred_at=timezone.now(),
        summary="Shelling",
        affected=[(person, "killed")],
    )

    response = client.post(url, opened)

    assert response.status_code == 200
    assert "Someone else saved this record while you were editing it." in response.text
    person.refresh_from_db()
    assert (person.residence_status, person.notes, person.version) == (ResidenceStatus.DECEASED, "", 1)


def test_a_case_admin_form_opened_before_someone_else_saved_is_refused(client_for):
    importing.roster_import(csv_bytes(family()), actor=None, filename="first.csv", dry_run=False)
    case = Case.objects.get(case_no="C-1")
    client = client_for(AD)
    url = reverse("admin:cases_case_change", args=[case.pk])
    page = client.get(url)
    data = admin_form(client, url, notes="Opened first")
    # The inlines' management forms, as the page sends them.
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({management.add_prefix(name): management[name].value() for name in management.fields})
        for form in formset.formset.forms:
            data.update(
                {form.add_prefix(name): form[name].value() for name in form.fields if form[name].value() is not None}
            )
    Case.objects.filter(pk=case.pk).update(notes="Saved by a colleague", version=F("version") + 1)

    refused = client.post(url, data)

    assert refused.status_code == 200
    assert "Someone else saved this record while you were editing it." in refused.text
    case.refresh_from_db()
    assert (case.version, case.notes) == (1, "Saved by a colleague")
    data["seen_version"] = 1
    assert client.post(url, data).status_code == 302
    case.refresh_from_db()
    assert (case.version, case.notes) == (2, "Opened first")


def edit_after_the_import_checked(monkeypatch, registration_no: str) -> None:
    """The colleague's edit saved after the import's own check, before it writes."""
    outcome = importing._outcome

    def checked_then_edited(plan, duplicates):
        digest = outcome(plan, duplicates)
        if not getattr(checked_then_edited, "done", False) and plan.changed:
            edited_by_a_colleague(registration_no)
            checked_then_edited.done = True  # type: ignore[attr-defined]
        return digest

    monkeypatch.setattr(importing, "_outcome", checked_then_edited)


def test_a_person_edited_while_the_confirmed_file_is_written_fails_the_write_and_the_file_is_shown_again(
    client_for, monkeypatch
):
    client = client_for(AD)
    importing.roster_import(csv_bytes(family()), actor=None, filename="first.csv", dry_run=False)
    rows = family()
    rows[0]["phone"] = "111"
    job = check(client, csv_bytes(rows)).context["job"]
    edit_after_the_import_checked(monkeypatch, "R-1")

    page = client.post(job_url(job, "confirm"), follow=True).text

    job.refresh_from_db()
    assert (job.status, job.dry_run, job.result["ok"]) == (RosterImportJobStatus.CHECKED, True, True)
    assert bytes(job.content)  # kept, to be confirmed again
    assert "The roster on record changed after your check" in page
    assert Person.objects.filter(registration_no="R-1", phone="222", notes="Moved to tent 4").exists()
    assert not RosterImport.objects.filter(outcome=RosterImportOutcome.REFUSED).exists()


def test_from_the_command_line_a_person_edited_while_the_file_is_written_fails_the_import_whole(monkeypatch):
    importing.roster_import(csv_bytes(family()), actor=None, filename="first.csv", dry_run=False)
    rows = family()
    rows[0]["phone"] = "111"
    rows[1]["phone"] = "333"
    edit_after_the_import_checked(monkeypatch, "R-1")

    result = importing.roster_import(csv_bytes(rows), actor=None, filename="second.csv", dry_run=False)

    assert [error.message for error in result.errors] == [
        "The roster changed in the database while this file was imported; try again."
    ]
    assert Person.objects.filter(registration_no="R-1", phone="222", notes="Moved to tent 4").exists()
    assert Person.objects.get(registration_no="R-2").phone == ""


def test_cancelling_a_checked_job_deletes_its_file_and_imports_nothing(client_for):
    client = client_for(AD)
    job = check(client, csv_bytes(family())).context["job"]

    response = client.post(job_url(job, "cancel"), follow=True)

    assert "nothing was imported" in response.content.decode()
    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.CANCELLED, b"")
    assert client.post(job_url(job, "confirm")).status_code == 302
    assert not Person.objects.exists()


def test_a_check_left_unconfirmed_expires_and_the_worker_deletes_its_file(client_for, settings):
    client = client_for(AD)
    job = check(client, csv_bytes(family())).context["job"]
    RosterImportJob.objects.filter(pk=job.pk).update(
        updated_at=timezone.now() - datetime.timedelta(minutes=settings.ROSTER_IMPORT_CONFIRM_MINUTES + 1)
    )

    # Pages write nothing (on SQLite an import may hold the only write lock), but show
    # the check as expired and refuse to import it.
    page = client.get(job_url(job)).content.decode()
    assert "Not confirmed in time: nothing has been imported" in page
    assert 'value="Import"' not in page
    assert "<td>Cancelled</td>" in client.get(IMPORT).content.decode()  # in the recent imports
    refused = client.post(job_url(job, "confirm"), follow=True).content.decode()
    assert "cannot be imported any more; choose it again" in refused
    assert not Person.objects.exists()
    job.refresh_from_db()
    assert bytes(job.content)

    prune_roster_import_jobs.call()  # what the worker runs when the check expires

    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.CANCELLED, b"")


def test_the_uploaded_file_does_not_stay_on_disk(client_for, settings, tmp_path):
    # Force Django to spool the upload to a temporary file, in a folder we can watch.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    client = client_for(AD)

    job = client.post(IMPORT, {"file": io.BytesIO(csv_bytes(family())), "check": "1"}, follow=True).context["job"]
    client.post(job_url(job, "confirm"))

    assert Person.objects.count() == 3
    assert list(tmp_path.iterdir()) == []


def test_an_oversized_file_is_refused_with_the_limit_in_the_message_and_no_job(client_for, settings):
    settings.ROSTER_IMPORT_MAX_BYTES = 200

    response = client_for(AD).post(IMPORT, {"file": upload(csv_bytes(family())), "check": "1"})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "file": [
            "The file is larger than the limit of 200 bytes for one import; split it and import the parts one by one."
        ]
    }
    assert not RosterImportJob.objects.exists()


def test_an_oversized_file_refused_on_upload_is_in_the_record_of_imports(client_for, settings, administrator):
    settings.ROSTER_IMPORT_MAX_BYTES = 2 * 1024 * 1024
    content = csv_bytes(family()) + b"\r\n" * 1024 * 1024  # 2 MB and more

    client_for(AD).post(IMPORT, {"file": upload(content, name="big.csv"), "check": "1"})

    assert not RosterImportJob.objects.exists()
    record = RosterImport.objects.get()
    assert (record.outcome, record.actor, record.filename, record.dry_run) == (
        RosterImportOutcome.REFUSED,
        administrator,
        "big.csv",
        True,
    )
    assert record.errors == [
        "The file is larger than the limit of 2.0 MB for one import; split it and import the parts one by one."
    ]


def test_an_oversized_upload_is_dropped_past_the_limit_never_written_to_disk(client_for, settings, monkeypatch):
    # Every upload goes to a temporary file here: what reaches one is counted.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    settings.ROSTER_IMPORT_MAX_BYTES = 1024 * 1024
    kept = []
    receive = TemporaryFileUploadHandler.receive_data_chunk

    def counted(handler, raw_data, start):
        kept.append(len(raw_data))
        return receive(handler, raw_data, start)

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", counted)
    content = csv_bytes(family()) + b"\r\n" * 3 * 1024 * 1024  # 6 MB and more

    response = client_for(AD).post(IMPORT, {"file": upload(content, name="big.csv"), "check": "1"})

    assert response.context["form"].errors == {
        "file": [
            "The file is larger than the limit of 1.0 MB for one import; split it and import the parts one by one."
        ]
    }
    # The file's first part went to a temporary file, and nothing past the limit.
    assert 0 < sum(kept) <= 1024 * 1024
    assert not RosterImportJob.objects.exists()
    assert RosterImport.objects.get().filename == "big.csv"


@pytest.mark.parametrize(
    "sent",
    [
        lambda small, big: {"file": big, "other": small},  # a file under another name is dropped
        lambda small, big: {"file": [small, big]},  # a second roster file past the limit refuses them
    ],
    ids=["other_name", "second_roster_file"],
)
def test_a_roster_file_past_the_limit_is_refused_and_recorded_under_its_name(client_for, settings, sent):
    settings.ROSTER_IMPORT_MAX_BYTES = 1000
    small, big = upload(csv_bytes(family())), upload(csv_bytes(family()) + b"\r\n" * 2000, name="big.csv")

    response = client_for(AD).post(IMPORT, {**sent(small, big), "check": "1"})

    assert response.context["form"].errors == {
        "file": [
            "The file is larger than the limit of 1000 bytes for one import; split it and import the parts one by one."
        ]
    }
    assert not RosterImportJob.objects.exists()
    record = RosterImport.objects.get()
    assert (record.filename, record.outcome) == ("big.csv", RosterImportOutcome.REFUSED)


def test_a_file_under_another_name_after_the_roster_file_is_ignored(client_for, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # uploads go to temporary files

    response = client_for(AD).post(
        IMPORT, {"file": upload(csv_bytes(family())), "other": upload(b"hi", name="x.txt"), "check": "1"}
    )

    assert response.status_code == 302
    assert bytes(RosterImportJob.objects.get().content) == csv_bytes(family())


def test_a_large_file_under_another_name_than_the_forms_is_no_roster_file(client_for, settings):
    settings.ROSTER_IMPORT_MAX_BYTES = 1000

    response = client_for(AD).post(IMPORT, {"attachment": upload(b"x" * 5000, name="other.bin"), "check": "1"})

    assert response.context["form"].errors == {"file": ["This field is required."]}
    assert not RosterImport.objects.exists() and not RosterImportJob.objects.exists()


def test_the_upload_page_states_the_limits_as_read(client_for, settings):
    settings.ROSTER_IMPORT_MAX_BYTES = 1536 * 1024

    page = client_for(AD).get(IMPORT).content.decode()

    assert "Limits: 200,000 rows, 1.5 MB." in page


def test_a_file_at_the_limit_is_checked(client_for, settings):
    content = csv_bytes(family())
    settings.ROSTER_IMPORT_MAX_BYTES = len(content)

    response = check(client_for(AD), content)

    assert response.context["result"]["ok"]
    assert response.context["result"]["new"] == 3


def test_an_upload_without_the_csrf_token_is_refused_and_nothing_kept(administrator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(administrator)

    response = client.post(IMPORT, {"file": upload(csv_bytes(family())), "check": "1"})

    assert response.status_code == 403
    assert not RosterImportJob.objects.exists() and not RosterImport.objects.exists()
    # With its token, the same upload is taken.
    token = client.get(IMPORT).context["csrf_token"]
    response = client.post(IMPORT, {"file": upload(csv_bytes(family())), "check": "1", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert RosterImportJob.objects.count() == 1


def test_the_csv_template_has_the_exact_headers_and_an_example_row_that_is_valid_but_not_imported(client_for):
    response = client_for(AD).get(TEMPLATE_CSV)

    assert response["Content-Disposition"] == 'attachment; filename="roster-template.csv"'
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 2
    # Every value passes its checks; the example itself is refused, so that nobody
    # imports a made-up person by uploading the template as it is.
    result = check(client_for(AD), response.content).context["result"]
    assert [(error["line"], error["column"], error["message"]) for error in result["errors"]] == [
        (2, "registration_no", "This is the template's example row: delete it, then add your rows.")
    ]


def test_the_xlsx_template_has_the_exact_headers_and_an_example_row(client_for):
    response = client_for(AD).get(TEMPLATE_XLSX)

    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == 2


def test_an_unknown_template_kind_is_not_found(client_for):
    assert client_for(AD).get(reverse("admin:cases_person_import_template", args=["pdf"])).status_code == 404


@pytest.mark.parametrize(("role", "expected"), [(A, 302), (ST, 403), (SU, 403), (AD, 200)])
def test_only_administrators_read_the_record_of_imports(client_for, role, expected):
    assert client_for(role).get(reverse("admin:cases_rosterimport_changelist")).status_code == expected


@pytest.mark.parametrize("records", [1, 25])
def test_the_record_of_imports_costs_the_same_queries_whatever_the_records_listed(
    client_for, administrator, django_assert_num_queries, records
):
    for number in range(records):
        RosterImport.objects.create(
            actor=administrator, filename=f"roster-{number}.csv", outcome=RosterImportOutcome.REFUSED, error_count=2
        )
    changelist = reverse("admin:cases_rosterimport_changelist")

    # session, user, permissions with groups and sites, the count, the records with their
    # users, the date hierarchy's bounds and its days
    page = pinned(client_for(AD), changelist, QUERIES_RECORDS_PAGE, django_assert_num_queries)

    assert page.count("roster-") == records


@pytest.mark.parametrize("jobs", [1, 8])
def test_the_import_page_costs_the_same_queries_whatever_the_jobs_listed(
    client_for, administrator, django_assert_num_queries, jobs
):
    client = client_for("Administrator")
    for number in range(jobs):
        record = RosterImport.objects.create(actor=administrator, filename="r.csv", outcome=RosterImportOutcome.REFUSED)
        RosterImportJob.objects.create(
            actor=administrator,
            filename=f"roster-{number}.csv",
            size=10,
            status=RosterImportJobStatus.DONE,
            record=record,
        )
    client.get(IMPORT)  # a first request may refresh the session
    # session, user, permissions with groups and sites, the user's recent jobs with their records
    with django_assert_num_queries(QUERIES_IMPORT_PAGE):
        response = client.get(IMPORT)
    assert len(response.context["jobs"]) == jobs
    assert response.content.decode().count("<td>Refused</td>") == jobs


def test_recent_imports_say_whether_each_file_was_imported_or_refused(client_for):
    client = client_for(AD)
    check(client, csv_bytes([person_row(sex="Q")]), name="bad.csv")
    job = check(client, csv_bytes(family()), name="good.csv").context["job"]
    client.post(job_url(job, "confirm"))

    rows = re.findall(
        r"<tr>\s*<td>[^<]*</td>\s*<td><a[^>]*>([^<]*)</a></td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>",
        client.get(IMPORT).text,
    )

    assert rows == [("good.csv", "import", "Imported"), ("bad.csv", "check", "Refused")]


# The full report: every error and probable duplicate, as CSV --------------------------


def _report(client, job):
    response = client.get(job_url(job, "report"))
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="roster-import-{job.pk}-report.csv"'
    assert "no-store" in response["Cache-Control"]
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_the_full_report_lists_every_error_beyond_those_on_the_page(client_for, administrator, monkeypatch):
    monkeypatch.setattr(import_jobs, "SHOWN", 2)
    rows = family() + [
        person_row(registration_no=f"R-{n}", case_no="C-1", relationship="child", sex="Q") for n in range(4, 9)
    ]
    client = client_for(AD)

    response = check(client, csv_bytes(rows))

    job = response.context["job"]
    page = response.content.decode()
    assert len(response.context["result"]["errors"]) == 2
    assert f'… and 3 more errors. <a href="{job_url(job, "report")}">The CSV has them all.</a>' in page
    assert job_url(job, "report") in page
    report = _report(client, job)
    assert report[0] == ["line", "column", "problem", "registration no.", "name", "born", "may be (registration no.)",
                         "may be (name)", "may be (born)", "found in", "strength", "sex", "case no.", "relationship",
                         "native name", "may be (sex)", "may be (case no.)", "may be (relationship)",
                         "may be (native name)"]  # fmt: skip
    assert [(line, column) for line, column, *_rest in report[1:]] == [(str(n), "sex") for n in range(5, 10)]
    assert report[1][2] == "“Q” is not one of F, M, X."
    # Handing it out is written to the access log, as an export is.
    entry = AccessLog.objects.get(view_name="admin:cases_person_import_report")
    assert (entry.user, entry.kind, entry.object_id, entry.status_code) == (administrator, "export", str(job.pk), 200)


def test_each_error_of_the_report_names_the_person_of_its_line(client_for):
    # Sorted or filtered by person in a spreadsheet: a refused row's number and name as
    # written, and a row refused across rows (a number twice) too.
    rows = family() + [
        person_row(registration_no="R-4", case_no="C-1", relationship="child", given_name="Reza", sex="Q"),
        person_row(registration_no="R-2", case_no="C-1", relationship="child", given_name="Sara", sex="F"),
    ]
    client = client_for(AD)

    report = _report(client, check(client, csv_bytes(rows)).context["job"])

    assert [
        (line, column, registration_no, name) for line, column, _problem, registration_no, name, *_ in report[1:3]
    ] == [
        ("5", "sex", "R-4", "HOSSEINI, Reza"),
        ("6", "registration_no", "R-2", "HOSSEINI, Sara"),
    ]


def test_many_errors_are_summed_up_by_problem_above_the_list(client_for):
    rows = family()
    rows += [person_row(registration_no=f"R-{n}", case_no="C-1", relationship="child", sex="Q") for n in range(4, 16)]
    rows += [
        person_row(registration_no=f"R-{n}", case_no="C-1", relationship="child", nationality="ZZ") for n in (16, 17)
    ]

    result = check(client_for(AD), csv_bytes(rows)).context["result"]

    assert [(kind["count"], kind["column"], kind["first_line"]) for kind in result["error_kinds"]] == [
        (12, "sex", 5),
        (2, "nationality", 17),
    ]
    page = client_for(AD).get(job_url(RosterImportJob.objects.get())).content.decode()
    assert "The most frequent problems:" in page
    assert '<td class="count">12</td><td>sex</td><td>“Q” is not one of F, M, X.</td><td>5</td>' in page


def test_the_full_report_lists_the_probable_duplicates_with_where_they_were_found(client_for):
    PersonFactory(registration_no="R-OLD", case=CaseFactory(case_no="C-OLD"), given_name="Muhammad",
                  birth_date="1985-03-21")  # fmt: skip
    rows = family() + [person_row(registration_no="R-7", case_no="C-7", given_name="Mohammed", native_name="")]
    client = client_for(AD)

    job = check(client, csv_bytes(rows)).context["job"]

    def pair(line, reg, name, other, other_name, other_birth, where):
        why = "same name in another spelling"
        return [line, "", why, reg, name, "1985-03-21", other, other_name, other_birth, where]

    strong = "strong: same date of birth and sex"
    old = ["M", "C-OLD", "PA", "محمد حسینی"]
    assert _report(client, job)[1:] == [
        pair("2", "R-1", "HOSSEINI, Mohammad", "R-OLD", "HOSSEINI, Muhammad", "1985-03-21", "the roster")
        + [strong, "M", "C-1", "PA", "محمد حسینی", *old],
        pair("5", "R-7", "HOSSEINI, Mohammed", "R-OLD", "HOSSEINI, Muhammad", "1985-03-21", "the roster")
        + [strong, "M", "C-7", "PA", "", *old],
        pair("5", "R-7", "HOSSEINI, Mohammed", "R-1", "HOSSEINI, Mohammad", "1985-03-21", "line 2")
        + [strong, "M", "C-7", "PA", "", "M", "C-1", "PA", "محمد حسینی"],
    ]


def test_no_cell_of_the_report_is_one_a_spreadsheet_would_run():
    result = ImportResult(filename="x.csv", dry_run=True)
    result.errors = [RowError(3, "notes", '=HYPERLINK("http://x")')]
    result.error_people = {3: ("=R-1", "@X, Y")}
    result.duplicates = [
        ProbableDuplicate(2, "+1", "@A, B", None, "-2", "=C, D", "1985", "=E", "=1985", sex="=F", other_sex="+M",
                          case_no="=C-1", other_case_no="@C-2", relationship="-PA", other_relationship="=child",
                          native_name="=حسن", other_native_name="@حسین")
    ]  # fmt: skip

    rows = list(csv.reader(io.StringIO(gzip.decompress(import_jobs.report_gzip(result)).decode()[1:])))

    assert rows[1] == ["3", "notes", '\'=HYPERLINK("http://x")', "'=R-1", "'@X, Y"]
    assert rows[2] == ["2", "", "'=E", "'+1", "'@A, B", "1985", "'-2", "'=C, D", "'=1985", "the roster", "possible",
                       "'=F", "'=C-1", "'-PA", "'=حسن", "'+M", "'@C-2", "'=child", "'@حسین"]  # fmt: skip


def test_a_file_without_error_or_duplicate_has_no_report(client_for):
    client = client_for(AD)

    response = check(client, csv_bytes(family()))

    job = response.context["job"]
    assert job_url(job, "report") not in response.content.decode()
    assert client.get(job_url(job, "report")).status_code == 404


def test_the_report_is_the_uploaders_only_and_administrators_only(client_for, other):
    job = check(client_for(AD), csv_bytes([person_row(sex="Q")])).context["job"]
    stranger = Client()
    stranger.force_login(other)

    assert stranger.get(job_url(job, "report")).status_code == 404
    assert client_for(ST).get(job_url(job, "report")).status_code == 403
    assert client_for(SU).get(job_url(job, "report")).status_code == 403
    assert "login" in client_for(A).get(job_url(job, "report"))["Location"]


def test_the_lists_of_errors_and_duplicates_are_deleted_after_their_days_the_counts_kept(client_for, settings):
    client = client_for(AD)
    old = check(client, csv_bytes([person_row(sex="Q")])).context["job"]
    recent = check(client, csv_bytes([person_row(sex="Q")])).context["job"]
    RosterImportJob.objects.filter(pk=old.pk).update(
        updated_at=timezone.now() - datetime.timedelta(days=settings.ROSTER_IMPORT_REPORT_DAYS, minutes=1)
    )

    # Gone for the user at once, whether or not the worker has deleted them yet.
    assert client.get(job_url(old, "report")).status_code == 404
    page = client.get(job_url(old)).content.decode()
    assert "Refused: nothing has been imported" in page
    assert "The list of errors and probable duplicates was deleted 7 days after" in page
    assert job_url(old, "report") not in page
    assert "is not one of F, M, X" not in page
    old.refresh_from_db()
    assert bytes(old.report) and "errors" in old.result  # the pages wrote nothing

    prune_roster_import_jobs.call()  # what the worker runs when they expire

    old.refresh_from_db()
    assert bytes(old.report) == b""
    assert (old.result["error_count"], "errors" in old.result, old.result["details_deleted"]) == (1, False, True)
    # A recent job keeps its lists.
    assert len(_report(client, recent)) == 2
    assert "is not one of F, M, X" in client.get(job_url(recent)).content.decode()


def _lists_expired(job, settings):
    RosterImportJob.objects.filter(pk=job.pk).update(
        updated_at=timezone.now() - datetime.timedelta(days=settings.ROSTER_IMPORT_REPORT_DAYS, minutes=1)
    )


def test_a_clean_import_never_says_a_list_of_errors_or_duplicates_was_deleted(client_for, settings):
    client = client_for(AD)
    job = check(client, csv_bytes(family())).context["job"]
    client.post(job_url(job, "confirm"))
    _lists_expired(job, settings)

    prune_roster_import_jobs.call()

    page = client.get(job_url(job)).content.decode()
    assert "<h2>Imported</h2>" in page
    assert "was deleted" not in page


def test_once_its_list_is_deleted_a_refused_check_still_says_how_many_errors_it_had(client_for, settings):
    client = client_for(AD)
    rows = [person_row(registration_no=f"R-{n}", case_no=f"C-{n}", sex="Q") for n in range(12)]
    job = check(client, csv_bytes(rows)).context["job"]
    _lists_expired(job, settings)

    prune_roster_import_jobs.call()

    page = client.get(job_url(job)).content.decode()
    assert "12 errors</h3>" in page
    assert "The list of errors and probable duplicates was deleted 7 days after the check; the counts are kept." in page
    assert "is not one of F, M, X" not in page
    assert "more errors" not in page


def test_once_its_list_is_deleted_an_import_still_says_how_many_probable_duplicates_it_had(client_for, settings):
    PersonFactory(registration_no="R-OLD", given_name="Muhammad", birth_date="1985-03-21")
    client = client_for(AD)
    job = check(client, csv_bytes(family())).context["job"]
    client.post(job_url(job, "confirm"))
    _lists_expired(job, settings)

    # As the worker will leave it, before it has.
    page = client.get(job_url(job)).content.decode()

    assert "1 probable duplicate</h3>" in page
    assert "probable duplicates was deleted 7 days after the import; the counts are kept." in page
    assert "R-OLD" not in page


def _record_page(client, record):
    page = client.get(reverse("admin:cases_rosterimport_change", args=[record.pk])).content.decode()
    return page.split('id="content-main"')[1]


def _rows_with_secrets():
    return [
        person_row(registration_no="R-SECRET-1"),
        person_row(registration_no="R-SECRET-1", case_no="C-2"),
        person_row(registration_no="R-3", case_no="C-3", date_of_birth="1980-02-31"),
    ]


def test_the_record_of_a_check_shows_its_first_errors_one_a_line(client_for):
    client = client_for(AD)
    check(client, csv_bytes(_rows_with_secrets()))

    page = _record_page(client, RosterImport.objects.get())

    assert "Line 3, registration_no: “R-SECRET-1” is already on line 2 of this file.<br>" in page
    assert "Line 4, date_of_birth: “1980-02-31” is not a real date.<br>" in page
    assert "[&quot;" not in page  # not the raw JSON list


def test_the_record_of_a_job_that_failed_says_why(client_for, administrator):
    record = importing.record_attempt(
        actor=administrator,
        filename="roster.csv",
        dry_run=False,
        outcome=RosterImportOutcome.FAILED,
        reason="Its worker stopped while it ran: given up.",
    )

    page = _record_page(client_for(AD), record)

    assert "Its worker stopped while it ran: given up.<br>" in page


def test_the_record_of_imports_deletes_the_first_errors_after_their_days_and_keeps_the_rest(
    client_for, administrator, settings
):
    client = client_for(AD)
    job = check(client, csv_bytes(_rows_with_secrets()), name="april.csv").context["job"]
    _lists_expired(job, settings)
    RosterImport.objects.update(
        created_at=timezone.now() - datetime.timedelta(days=settings.ROSTER_IMPORT_REPORT_DAYS, minutes=1)
    )
    record = RosterImport.objects.get()

    # Shown as deleted at once, whether or not the worker has deleted them yet.
    page = _record_page(client, record)
    assert "Deleted 7 days after the check; the count is kept." in page
    assert "R-SECRET-1" not in page and "1980-02-31" not in page

    prune_roster_import_jobs.call()  # what the worker runs when they expire

    record.refresh_from_db()
    assert (record.errors, record.error_count, record.filename, record.actor) == ([], 2, "april.csv", administrator)
    assert "Deleted 7 days after the check; the count is kept." in _record_page(client, record)
    # Nor does the job keep them, summed up by problem.
    job.refresh_from_db()
    assert "R-SECRET-1" not in str(job.result) and "1980-02-31" not in str(job.result)
    assert "2 errors</h3>" in client.get(job_url(job)).content.decode()


@pytest.mark.parametrize("look_alikes", [1, 6])
def test_the_job_page_costs_the_same_queries_whatever_the_duplicates_shown(
    client_for, django_assert_num_queries, look_alikes
):
    # Each row of the file has a look-alike on record, each linked to their page.
    for n in range(look_alikes):
        PersonFactory(registration_no=f"R-OLD-{n}", given_name="Muhammad", birth_date="1985-03-21")
    rows = [person_row(registration_no=f"R-{n}", case_no=f"C-{n}") for n in range(look_alikes)]
    client = client_for(AD)
    job = check(client, csv_bytes(rows)).context["job"]
    client.get(job_url(job))  # a first request may refresh the session
    # session, user, permissions with groups and sites, the job, the look-alikes' pages
    # (nothing written: expired lists and checks are dropped by the worker)
    with django_assert_num_queries(QUERIES_JOB_PAGE):
        response = client.get(job_url(job))
    # Every row may be every look-alike: a link each.
    links = re.findall(r'href="/admin/cases/person/(\d+)/change/"', response.content.decode())
    assert len(links) == look_alikes * look_alikes
