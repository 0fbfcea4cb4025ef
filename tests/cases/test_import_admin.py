"""The admin's roster import screen: Administrators only; upload, preview, confirm."""

import hashlib
import io

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.importing import COLUMNS
from cases.models import Person, RosterImport, RosterImportOutcome
from tests.cases.test_import import csv_bytes, family, person_row
from tests.conftest import ROLES
from tests.factories import SiteFactory

A, ST, SU, AD = ROLES
IMPORT = reverse("admin:cases_person_import")
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


@pytest.mark.parametrize(("role", "shown"), [(ST, False), (SU, False), (AD, True)])
def test_the_person_list_links_to_the_import_for_administrators_only(client_for, role, shown):
    response = client_for(role).get(CHANGELIST)

    assert response.status_code == 200
    assert (IMPORT in response.content.decode()) is shown


def test_checking_a_file_shows_the_counts_and_writes_nothing(client_for):
    response = client_for(AD).post(IMPORT, {"file": upload(csv_bytes(family())), "check": "1"})

    assert response.status_code == 200
    assert response.context["result"].ok
    assert (response.context["result"].new, response.context["result"].cases_new) == (3, 1)
    assert 'name="confirm"' in response.content.decode()
    assert not Person.objects.exists()
    assert RosterImport.objects.get().outcome == RosterImportOutcome.CHECKED


def test_a_bad_file_shows_every_error_with_line_and_column_and_no_import_button(client_for):
    rows = family() + [person_row(registration_no="R-4", case_no="C-2", sex="Q", date_of_birth="1980-02-31")]

    response = client_for(AD).post(IMPORT, {"file": upload(csv_bytes(rows)), "check": "1"})

    page = response.content.decode()
    assert [(e.line, e.column) for e in response.context["errors"]] == [(5, "sex"), (5, "date_of_birth")]
    assert "1980-02-31" in page
    assert 'name="confirm"' not in page
    assert not Person.objects.exists()


def test_probable_duplicates_are_shown_in_the_preview(client_for):
    rows = family() + [person_row(registration_no="R-7", case_no="C-7", given_name="Muhammad", native_name="")]

    response = client_for(AD).post(IMPORT, {"file": upload(csv_bytes(rows)), "check": "1"})

    assert "Probable duplicates" in response.content.decode()
    assert [d.registration_no for d in response.context["duplicates"]] == ["R-7"]


def test_confirming_the_checked_file_imports_it(client_for, administrator):
    content = csv_bytes(family())
    client = client_for(AD)
    preview = client.post(IMPORT, {"file": upload(content), "check": "1"})

    response = client.post(
        IMPORT,
        {"file": upload(content), "checked_sha256": preview.context["checked_sha256"], "confirm": "1"},
    )

    assert response.status_code == 302
    assert response["Location"] == CHANGELIST
    assert Person.objects.count() == 3
    record = RosterImport.objects.latest("pk")
    assert (record.outcome, record.actor) == (RosterImportOutcome.IMPORTED, administrator)
    assert Person.objects.get(registration_no="R-1").history.get().history_user == administrator


def test_confirming_with_another_file_only_checks_that_file(client_for):
    checked = hashlib.sha256(csv_bytes(family())).hexdigest()
    other = csv_bytes(family() + [person_row(registration_no="R-9", case_no="C-9")])

    response = client_for(AD).post(IMPORT, {"file": upload(other), "checked_sha256": checked, "confirm": "1"})

    assert response.status_code == 200
    assert response.context["result"].dry_run
    assert not Person.objects.exists()


def test_the_uploaded_file_does_not_stay_on_disk(client_for, settings, tmp_path):
    # Force Django to spool the upload to a temporary file, in a folder we can watch.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    content = csv_bytes(family())
    client = client_for(AD)

    client.post(IMPORT, {"file": io.BytesIO(content), "check": "1"})
    client.post(
        IMPORT, {"file": io.BytesIO(content), "checked_sha256": hashlib.sha256(content).hexdigest(), "confirm": "1"}
    )

    assert Person.objects.count() == 3
    assert list(tmp_path.iterdir()) == []


def test_an_oversized_file_is_refused_with_the_limit_in_the_message(client_for, settings):
    settings.ROSTER_IMPORT_MAX_BYTES = 200

    response = client_for(AD).post(IMPORT, {"file": upload(csv_bytes(family())), "check": "1"})

    assert "limit" in response.content.decode()
    assert not response.context["result"].ok


def test_the_csv_template_has_the_exact_headers_and_an_example_row_that_imports(client_for):
    response = client_for(AD).get(TEMPLATE_CSV)

    assert response["Content-Disposition"] == 'attachment; filename="roster-template.csv"'
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 2
    preview = client_for(AD).post(IMPORT, {"file": upload(response.content), "check": "1"})
    assert preview.context["result"].ok, preview.context["result"].report_lines()


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
