"""The roster import service: every rule of the roster format, all or nothing."""

import datetime
import io
import json
import re
import subprocess
import time
import unicodedata
import zipfile

import openpyxl
import pytest
from django.utils import timezone
from openpyxl.utils import get_column_letter

from cases import importing, xlsx_reader
from cases.importing import COLUMNS, REQUIRED_COLUMNS, roster_import, strongest_first
from cases.models import (
    Case,
    CaseStatus,
    DistinctPersons,
    Person,
    ResidenceStatus,
    RosterImport,
    RosterImportOutcome,
    SpecificNeed,
)
from cases.names import latin_key, native_key
from cases.services import site_transfer
from tests.factories import CaseFactory, PersonFactory, SiteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def site(db):
    return SiteFactory(name="Camp Liberty", code="liberty")


@pytest.fixture(autouse=True)
def needs(db):
    for code in ("medical_condition", "disability"):
        SpecificNeed.objects.get_or_create(code=code, defaults={"label": code})


def person_row(**values: str) -> dict[str, str]:
    row = {
        "registration_no": "R-1",
        "case_no": "C-1",
        "relationship": "PA",
        "family_name": "Hosseini",
        "given_name": "Mohammad",
        "native_name": "محمد حسینی",
        "sex": "M",
        "date_of_birth": "1985-03-21",
        "nationality": "IR",
        "site": "Camp Liberty",
        "specific_needs": "",
        "phone": "",
        "notes": "",
    }
    row.update(values)
    return row


def family() -> list[dict[str, str]]:
    return [
        person_row(),
        person_row(
            registration_no="R-2",
            relationship="spouse",
            given_name="Zahra",
            native_name="زهرا حسینی",
            sex="F",
            date_of_birth="1988",
            specific_needs="medical_condition",
        ),
        person_row(
            registration_no="R-3",
            relationship="child",
            given_name="Ali",
            native_name="علی حسینی",
            date_of_birth="2015-06-01",
        ),
    ]


def csv_bytes(rows: list[dict[str, str]], columns=COLUMNS, header=None, bom=False) -> bytes:
    lines = [",".join(header or columns)]
    for row in rows:
        lines.append(",".join(_quoted(row.get(column, "")) for column in columns))
    text = "\r\n".join(lines) + "\r\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def _quoted(value: str) -> str:
    if any(char in value for char in ',"\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def xlsx_bytes(rows: list[list[object]], text_cells: tuple[str, ...] = ()) -> bytes:
    """An XLSX of `rows`; cells named in text_cells are text even when they start with "="."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    for coordinate in text_cells:
        sheet[coordinate].data_type = "s"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


SHEET_PART = "xl/worksheets/sheet1.xml"
BEYOND_THE_READERS_LIMITS = (
    "The XLSX file could not be read within the memory and time one import may use; it was not imported."
    " Save the roster as CSV (UTF-8), or copy it into a new workbook."
)


def rewritten(workbook: bytes, change=lambda name, data: data, added: dict[str, str | bytes] | None = None) -> bytes:
    """`workbook` with each part as change(name, data) gives it back, and the parts `added`."""
    source = zipfile.ZipFile(io.BytesIO(workbook))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, change(info.filename, source.read(info)))
        for name, data in (added or {}).items():
            target.writestr(name, data)
    return out.getvalue()


def run(content: bytes, *, dry_run=False, actor=None, filename="roster.csv"):
    return roster_import(content, actor=actor, filename=filename, dry_run=dry_run)


def errors_seen(result) -> list[tuple[int | None, str, str]]:
    """What the admin sees of a refused file: each error's line, column and message."""
    return [(error.line, error.column, error.message) for error in result.errors]


def errors_of(result) -> set[tuple[int | None, str]]:
    return {(error.line, error.column) for error in result.errors}


def refused(content: bytes, **options) -> set[tuple[int | None, str]]:
    """The (line, column) of every error of a file that is refused, with nothing written."""
    result = run(content, **options)
    assert not Person.objects.exists() and not Case.objects.exists()
    return errors_of(result)


def test_a_valid_file_creates_its_cases_and_persons():
    result = run(csv_bytes(family()))

    assert result.ok, result.report_lines()
    assert (result.rows, result.new, result.updated, result.unchanged, result.cases_new) == (3, 3, 0, 0, 1)
    case = Case.objects.get(case_no="C-1")
    assert case.status == CaseStatus.REGISTERED
    assert case.site.name == "Camp Liberty"
    assert sorted(case.members.values_list("registration_no", flat=True)) == ["R-1", "R-2", "R-3"]
    spouse = Person.objects.get(registration_no="R-2")
    assert [need.code for need in spouse.specific_needs.all()] == ["medical_condition"]
    assert spouse.native_name == "زهرا حسینی"


def test_a_year_alone_is_kept_as_a_year_without_a_made_up_date():
    run(csv_bytes(family()))

    spouse = Person.objects.get(registration_no="R-2")
    assert (spouse.birth_year, spouse.birth_date) == (1988, None)
    child = Person.objects.get(registration_no="R-3")
    assert (child.birth_year, child.birth_date) == (2015, datetime.date(2015, 6, 1))


def test_new_persons_and_cases_have_history_by_the_importing_user(administrator):
    run(csv_bytes(family()), actor=administrator)

    spouse = Person.objects.get(registration_no="R-2")
    record = spouse.history.get()
    assert record.history_type == "+"
    assert record.history_user == administrator
    assert "roster.csv" in record.history_change_reason
    assert [need.specificneed.code for need in record.specific_needs.all()] == ["medical_condition"]
    assert Case.objects.get(case_no="C-1").history.get().history_user == administrator


def test_every_import_is_recorded_with_who_when_file_and_counts(administrator):
    run(csv_bytes(family()), actor=administrator, filename="march.csv")

    record = RosterImport.objects.get()
    assert (record.actor, record.filename, record.outcome, record.dry_run) == (
        administrator,
        "march.csv",
        RosterImportOutcome.IMPORTED,
        False,
    )
    assert (record.rows, record.new, record.updated, record.unchanged, record.cases_new) == (3, 3, 0, 0, 1)
    assert record.created_at <= timezone.now()


def test_headers_are_matched_whatever_their_case_and_spacing():
    header = [
        column.replace("_", " ").upper() if index % 2 else f"  {column.title()} "
        for index, column in enumerate(COLUMNS)
    ]

    result = run(csv_bytes(family(), header=header))

    assert result.ok, result.report_lines()
    assert Person.objects.count() == 3


def test_columns_may_come_in_any_order_and_optional_ones_may_be_left_out():
    columns = [
        "site",
        "date_of_birth",
        "sex",
        "given_name",
        "family_name",
        "relationship",
        "case_no",
        "nationality",
        "registration_no",
    ]

    result = run(csv_bytes(family(), columns=columns))

    assert result.ok, result.report_lines()
    assert Person.objects.get(registration_no="R-1").native_name == ""


def test_a_missing_required_column_is_one_clear_error_naming_it():
    columns = [column for column in COLUMNS if column not in ("sex", "site")]

    result = run(csv_bytes(family(), columns=columns))

    assert len(result.errors) == 1
    assert "sex, site" in str(result.errors[0])
    assert Person.objects.count() == 0


@pytest.mark.parametrize(
    "column",
    [
        "registration_no",
        "case_no",
        "relationship",
        "family_name",
        "given_name",
        "sex",
        "date_of_birth",
        "nationality",
        "site",
    ],
)
def test_a_required_value_left_empty_is_refused(column):
    rows = family()
    rows[1][column] = "  "

    result = run(csv_bytes(rows))

    assert (3, column) in errors_of(result)
    assert Person.objects.count() == 0


@pytest.mark.parametrize(
    "value", ["1980-02-31", "1980-13-01", "31/01/1980", "1980-1", "around 1980", "80", "1899", "1899-12-31"]
)
def test_impossible_or_malformed_dates_are_refused(value):
    result = run(csv_bytes([person_row(date_of_birth=value)]))

    assert errors_of(result) == {(2, "date_of_birth")}
    assert value in result.errors[0].message


def test_future_dates_and_years_are_refused():
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    rows = [
        person_row(date_of_birth=tomorrow.isoformat()),
        person_row(registration_no="R-2", case_no="C-2", date_of_birth=str(tomorrow.year + 1)),
    ]

    result = run(csv_bytes(rows))

    assert errors_of(result) == {(2, "date_of_birth"), (3, "date_of_birth")}


@pytest.mark.parametrize(("value", "stored"), [("F", "F"), ("m", "M"), (" X ", "X")])
def test_sex_codes_f_m_x_are_accepted(value, stored):
    assert run(csv_bytes([person_row(sex=value)])).ok
    assert Person.objects.get().sex == stored


@pytest.mark.parametrize("value", ["Male", "W", "0"])
def test_other_sex_codes_are_refused(value):
    assert errors_of(run(csv_bytes([person_row(sex=value)]))) == {(2, "sex")}


@pytest.mark.parametrize("value", ["IR", "ir", "IRN", "Iran", "iran"])
def test_nationality_codes_and_english_names_are_normalised_to_one_code(value):
    assert run(csv_bytes([person_row(nationality=value)])).ok
    assert Person.objects.get().nationality.code == "IR"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("Iran, Islamic Republic of", "IR"),
        ("Islamic Republic of Iran", "IR"),
        ("Korea, Republic of", "KR"),
        ("Venezuela, Bolivarian Republic of", "VE"),
        ("Congo, The Democratic Republic of the", "CD"),
        ("Tanzania, United Republic of", "TZ"),
        ("State of Palestine", "PS"),
        ("Côte d’Ivoire", "CI"),
    ],
)
def test_nationality_in_iso_3166_names_and_official_names_is_read(value, code):
    result = run(csv_bytes([person_row(nationality=value)]))

    assert result.ok, result.report_lines()
    assert Person.objects.get().nationality.code == code


@pytest.mark.parametrize("value", ["Narnia", "XX", "XYZ", "364", "Korea", "Republic"])
def test_unknown_nationalities_are_refused(value):
    result = run(csv_bytes([person_row(nationality=value)]))

    assert errors_seen(result) == [
        (2, "nationality", f"“{value}” is not an ISO 3166 country code (alpha-2 or alpha-3) or English country name.")
    ]
    assert not Person.objects.exists()


def test_relationships_must_be_one_of_the_roster_codes():
    rows = family()
    rows[2]["relationship"] = "cousin"
    rows[1]["relationship"] = "Other relative"

    result = run(csv_bytes(rows))

    assert errors_of(result) == {(4, "relationship")}


def test_an_unknown_site_is_refused_and_not_created():
    result = run(csv_bytes([person_row(site="Camp Nowhere")]))

    assert errors_of(result) == {(2, "site")}
    assert "Camp Nowhere" in result.errors[0].message
    assert not Case.objects.exists()


def test_sites_are_matched_by_name_whatever_the_case():
    assert run(csv_bytes([person_row(site="camp liberty")])).ok


def test_unknown_specific_needs_codes_are_refused():
    result = run(csv_bytes([person_row(specific_needs="disability; flying")]))

    assert errors_of(result) == {(2, "specific_needs")}
    assert "flying" in result.errors[0].message


SCIENTIFIC = (
    "Excel has shown this number in scientific notation and dropped its last digits: format the column as Text"
    " in the spreadsheet and type the numbers again."
)


@pytest.mark.parametrize("column", ["registration_no", "case_no", "phone"])
@pytest.mark.parametrize("value", ["1.23457E+11", "9,71501E+11", "9.71501e+11", "1E+12"])
def test_a_number_excel_showed_in_scientific_notation_is_refused_on_its_line_and_column(column, value):
    rows = family()
    rows[1][column] = value
    if column == "case_no":
        rows = rows[1:2]
        rows[0]["relationship"] = "PA"

    result = run(csv_bytes(rows))

    line = 2 if column == "case_no" else 3
    assert [(error.line, error.column, error.message) for error in result.errors] == [(line, column, SCIENTIFIC)]
    assert not Person.objects.exists()


@pytest.mark.parametrize("value", ["E+12", "R-1E+5", "+1 555 0100", "12.5E+2A"])
def test_other_values_with_an_e_and_a_plus_are_read(value):
    result = run(csv_bytes([person_row(registration_no=value, phone=value)]))

    assert result.ok, result.report_lines()
    assert Person.objects.values_list("registration_no", "phone").get() == (value, value)


def test_names_in_another_script_than_latin_are_refused_on_their_line_and_column():
    # Accepted, they escaped the probable duplicates (whose Latin keys they lack).
    rows = family()
    rows[1].update(family_name="حسینی", given_name="زهرا", native_name="")
    rows[2].update(given_name="Алі")

    result = run(csv_bytes(rows))

    family_message = "Family names are written in Latin script here; put the name in its own script in native_name."
    given_message = "Given names are written in Latin script here; put the name in its own script in native_name."
    assert [(error.line, error.column, error.message) for error in result.errors] == [
        (3, "family_name", family_message),
        (3, "given_name", given_message),
        (4, "given_name", given_message),
    ]
    assert not Person.objects.exists()


@pytest.mark.parametrize(
    "name", ["Müller-Lüdenscheidt", "O’Brien", "Ma'ruf", "Maʼruf", "Nguyễn Thị", "St. Łukasz", "Ø. Åsa"]
)
def test_latin_names_with_accents_apostrophes_hyphens_spaces_and_dots_are_read(name):
    result = run(csv_bytes([person_row(family_name=name, given_name=unicodedata.normalize("NFD", name))]))

    assert result.ok, result.report_lines()
    assert Person.objects.values_list("family_name", "given_name").get() == (name, unicodedata.normalize("NFC", name))


@pytest.mark.parametrize(
    ("value", "separator"),
    [
        ("medical_condition, disability", "“,”"),
        ("medical_condition|disability", "“|”"),
        ("medical_condition / disability", "“/”"),
        ("medical_condition؛disability", "“؛”"),
        ("medical_condition disability", "spaces"),
    ],
)
def test_specific_needs_separated_otherwise_than_with_semicolons_are_refused_naming_the_separator(value, separator):
    result = run(csv_bytes([person_row(specific_needs=value)]))

    assert [(error.line, error.column, error.message) for error in result.errors] == [
        (2, "specific_needs", f"Separate specific needs codes with semicolons (;), not with {separator}.")
    ]
    assert not Person.objects.exists()


def test_an_unknown_specific_needs_code_is_refused_listing_the_codes():
    result = run(csv_bytes([person_row(specific_needs="None")]))

    codes = ", ".join(sorted(SpecificNeed.objects.values_list("code", flat=True)))
    assert [(error.line, error.column, error.message) for error in result.errors] == [
        (2, "specific_needs", f"Unknown specific needs code(s): None. The codes are: {codes}.")
    ]
    assert "medical_condition" in codes
    assert not Person.objects.exists()


def test_specific_needs_may_be_written_as_their_labels_whatever_the_case():
    SpecificNeed.objects.filter(code="medical_condition").update(label="Medical condition")

    result = run(csv_bytes([person_row(specific_needs="medical CONDITION; Disability")]))

    assert result.ok, result.report_lines()
    assert sorted(Person.objects.get().specific_needs.values_list("code", flat=True)) == [
        "disability",
        "medical_condition",
    ]


def test_a_registration_number_twice_in_the_file_is_refused_on_its_second_line():
    rows = family()
    rows[2]["registration_no"] = "R-1"

    result = run(csv_bytes(rows))

    assert errors_of(result) == {(4, "registration_no")}
    assert "line 2" in result.errors[0].message


def test_a_case_without_a_principal_applicant_is_refused():
    rows = family()[1:]

    assert refused(csv_bytes(rows)) == {(2, "relationship")}


def test_a_refused_principal_applicants_row_is_the_only_error_of_its_case():
    # The PA's row is refused for its own mistake; its case does have a PA, and saying
    # "Case C-1 has no principal applicant" on another line sent people looking there.
    rows = family()
    rows[0]["sex"] = "Q"

    assert refused(csv_bytes(rows)) == {(2, "sex")}


def test_a_case_without_a_principal_applicant_is_refused_even_when_another_of_its_rows_is():
    rows = family()[1:]
    rows[1]["sex"] = "Q"

    assert refused(csv_bytes(rows)) == {(2, "relationship"), (3, "sex")}


def test_a_case_with_two_principal_applicants_is_refused():
    rows = family()
    rows[1]["relationship"] = "PA"

    assert refused(csv_bytes(rows)) == {(3, "relationship")}


def test_members_of_one_case_at_different_sites_are_refused():
    SiteFactory(name="Camp Hope", code="hope")
    rows = family()
    rows[2]["site"] = "Camp Hope"

    assert errors_of(run(csv_bytes(rows))) == {(4, "site")}


def test_a_case_on_record_at_another_site_is_refused():
    other = SiteFactory(name="Camp Hope", code="hope")
    CaseFactory(case_no="C-1", site=other)

    result = run(csv_bytes(family()))

    assert errors_of(result) == {(2, "site"), (3, "site"), (4, "site")}
    assert "Camp Hope" in result.errors[0].message


def _moved_without_the_dead(administrator) -> None:
    """family() imported, R-3 then dead, and case C-1 moved to Camp Hope by a site transfer."""
    assert run(csv_bytes(family())).ok
    Person.objects.filter(registration_no="R-3").update(residence_status=ResidenceStatus.DECEASED)
    hope = SiteFactory(name="Camp Hope", code="hope")
    site_transfer(
        actor=administrator,
        cases=Case.objects.all(),
        to_site=hope,
        date=datetime.date(2026, 1, 2),
        reason="Camp closed",
    )


def test_a_member_no_longer_present_stays_at_the_site_a_transfer_left_them_at(administrator):
    # A transfer moves the present members only: a roster that says so was refused
    # ("all its members must be at the same site").
    _moved_without_the_dead(administrator)
    rows = [{**row, "site": "Camp Hope"} for row in family()]
    rows[2]["site"] = "Camp Liberty"

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert (result.new, result.updated, result.unchanged) == (0, 0, 3)


def test_an_import_does_not_move_a_member_no_longer_present(administrator):
    # The file that passed before moved the dead person to their case's new site.
    _moved_without_the_dead(administrator)
    rows = [{**row, "site": "Camp Hope"} for row in family()]

    result = run(csv_bytes(rows))

    assert [(error.line, error.column, error.message) for error in result.errors] == [
        (4, "site", "R-3 is deceased, not present, and stays at Camp Liberty: only present persons move.")
    ]
    assert Person.objects.get(registration_no="R-3").site.name == "Camp Liberty"


def test_a_person_on_record_in_another_case_is_refused():
    case = CaseFactory(case_no="C-9", site__name="Camp Liberty", site__code="liberty")
    PersonFactory(registration_no="R-3", case=case)

    result = run(csv_bytes(family()))

    assert errors_of(result) == {(4, "case_no")}
    assert "C-9" in result.errors[0].message


def test_a_second_principal_applicant_for_a_case_on_record_is_refused(site):
    case = CaseFactory(case_no="C-1", site=site)
    PersonFactory(registration_no="R-OLD", case=case, relationship="PA")

    result = run(csv_bytes(family()))

    assert errors_of(result) == {(2, "relationship")}
    assert "R-OLD" in result.errors[0].message


def test_a_new_member_may_join_a_case_whose_principal_applicant_is_on_record(site):
    case = CaseFactory(case_no="C-1", site=site)
    PersonFactory(registration_no="R-OLD", case=case, relationship="PA")

    result = run(csv_bytes([person_row(registration_no="R-NEW", relationship="child", date_of_birth="2020")]))

    assert result.ok, result.report_lines()
    assert (result.new, result.cases_new) == (1, 0)
    assert case.members.count() == 2


def test_a_refused_file_writes_nothing_and_names_every_bad_row_and_column():
    rows = family() + [
        person_row(registration_no="R-4", case_no="C-2", sex="Q"),
        person_row(registration_no="R-5", case_no="C-3", date_of_birth="1980-02-31", nationality="Narnia"),
        person_row(registration_no="R-6", case_no="C-4"),
    ]

    result = run(csv_bytes(rows))

    assert not result.ok
    assert errors_of(result) == {(5, "sex"), (6, "date_of_birth"), (6, "nationality")}
    assert not Person.objects.exists()
    assert not Case.objects.exists()
    report = "\n".join(result.report_lines())
    assert "Line 5, sex" in report
    assert "Line 6, date_of_birth" in report
    assert RosterImport.objects.get().outcome == RosterImportOutcome.REFUSED


def test_line_numbers_count_physical_lines_of_quoted_multiline_cells():
    rows = [person_row(notes="first line\nsecond line"), person_row(registration_no="R-2", case_no="C-2", sex="?")]

    result = run(csv_bytes(rows))

    assert errors_of(result) == {(4, "sex")}


def test_a_re_import_updates_by_registration_number_and_never_duplicates():
    run(csv_bytes(family()))
    rows = family()
    rows[2]["given_name"] = "Ali Reza"
    rows.append(
        person_row(registration_no="R-4", relationship="child", given_name="Sara", sex="F", date_of_birth="2018")
    )

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert (result.new, result.updated, result.unchanged, result.cases_new) == (1, 1, 2, 0)
    assert Person.objects.count() == 4
    child = Person.objects.get(registration_no="R-3")
    assert child.given_name == "Ali Reza"
    assert [record.history_type for record in child.history.all()] == ["~", "+"]


def test_a_case_may_change_its_principal_applicant_in_a_re_import():
    # The one-PA-per-case rule is checked row by row as rows are written: the check
    # passed, but the import itself always failed ("the roster changed… try again").
    rows = family()
    rows[0]["relationship"], rows[1]["relationship"] = "spouse", "PA"
    assert run(csv_bytes(rows)).ok

    swapped = run(csv_bytes(family()))

    assert swapped.ok, swapped.report_lines()
    assert swapped.updated == 2
    assert dict(Person.objects.values_list("registration_no", "relationship")) == {
        "R-1": "PA",
        "R-2": "spouse",
        "R-3": "child",
    }


def test_a_new_person_may_become_the_principal_applicant_in_a_re_import():
    assert run(csv_bytes(family())).ok
    rows = family()
    rows[0]["relationship"] = "spouse"
    rows.append(person_row(registration_no="R-9", given_name="Reza", native_name="", date_of_birth="1960"))

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert (result.new, result.updated) == (1, 1)
    assert Person.objects.get(relationship="PA").registration_no == "R-9"


def test_invisible_characters_and_unicode_forms_do_not_make_another_person():
    assert run(csv_bytes(family())).ok
    rows = family()
    rows[1]["registration_no"] = "R-2\u200b"  # a zero-width space, pasted with it
    rows[2]["given_name"] = unicodedata.normalize("NFD", "Alí")
    first = unicodedata.normalize("NFC", "Alí")
    middle = run(csv_bytes([{**rows[2], "given_name": first}] + rows[:2]))
    assert (middle.new, middle.updated, middle.unchanged) == (0, 1, 2)

    again = run(csv_bytes(rows))

    assert again.ok, again.report_lines()
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)
    assert Person.objects.count() == 3


@pytest.mark.parametrize(
    ("column", "value", "field", "stored"),
    [
        ("sex", "M\u200f", "sex", "M"),
        ("date_of_birth", "1985-03-21\u200f", "birth_date", datetime.date(1985, 3, 21)),
        ("date_of_birth", "\u200e1985", "birth_year", 1985),
        ("relationship", "PA\u200b", "relationship", "PA"),
        ("nationality", "Iran\u200f", "nationality", "IR"),
        ("nationality", "\ufeffIR", "nationality", "IR"),
        ("nationality", "Syrian\u00a0Arab  Republic", "nationality", "SY"),
        ("nationality", unicodedata.normalize("NFD", "Côte d'Ivoire"), "nationality", "CI"),
        ("site", "Camp\u00a0Liberty", "site__name", "Camp Liberty"),
        ("site", "Camp \u2009 Liberty\u200b", "site__name", "Camp Liberty"),
        ("site", "Camp  Liberty", "site__name", "Camp Liberty"),
    ],
)
def test_invisible_characters_odd_spaces_and_decomposed_accents_in_coded_cells_are_read(column, value, field, stored):
    # They used to be refused with a message quoting a value that looks right.
    result = run(csv_bytes([person_row(**{column: value})]))

    assert result.ok, result.report_lines()
    assert Person.objects.values_list(field, flat=True).get() == stored


def test_specific_needs_with_invisible_characters_and_odd_spaces_are_read():
    result = run(csv_bytes([person_row(specific_needs="medical_condition\u200b;\u00a0disability\u200f")]))

    assert result.ok, result.report_lines()
    assert sorted(Person.objects.get().specific_needs.values_list("code", flat=True)) == [
        "disability",
        "medical_condition",
    ]


def test_a_site_written_with_decomposed_accents_is_the_site_on_record():
    SiteFactory(name="Lésvos Camp", code="lesvos")

    result = run(csv_bytes([person_row(site=unicodedata.normalize("NFD", "Lésvos Camp"))]))

    assert result.ok, result.report_lines()
    assert Person.objects.get().site.name == "Lésvos Camp"


def test_a_coded_cell_of_invisible_characters_alone_is_refused_as_empty():
    result = run(csv_bytes([person_row(sex="\u200f\u00a0")]))

    assert [(error.line, error.column, error.message) for error in result.errors] == [
        (2, "sex", "A value is required.")
    ]
    assert not Person.objects.exists()


def test_registration_and_case_numbers_in_persian_or_arabic_digits_are_the_same_person():
    assert run(csv_bytes(family())).ok
    rows = [
        {**row, "registration_no": row["registration_no"].replace("1", "۱").replace("2", "٢"), "case_no": "C-۱"}
        for row in family()
    ]

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert (result.new, result.updated, result.unchanged, result.cases_new) == (0, 0, 3, 0)
    assert sorted(Person.objects.values_list("registration_no", flat=True)) == ["R-1", "R-2", "R-3"]


def test_an_unchanged_re_import_writes_nothing_and_adds_no_history():
    run(csv_bytes(family()))
    history_rows = Person.history.count()
    stamps = list(Person.objects.order_by("pk").values_list("updated_at", flat=True))

    result = run(csv_bytes(family()))

    assert (result.new, result.updated, result.unchanged) == (0, 0, 3)
    assert Person.history.count() == history_rows
    assert list(Person.objects.order_by("pk").values_list("updated_at", flat=True)) == stamps


def test_changed_specific_needs_are_updated_with_history():
    run(csv_bytes(family()))
    rows = family()
    rows[1]["specific_needs"] = "disability;medical_condition"

    result = run(csv_bytes(rows))

    assert (result.updated, result.unchanged) == (1, 2)
    spouse = Person.objects.get(registration_no="R-2")
    assert sorted(spouse.specific_needs.values_list("code", flat=True)) == ["disability", "medical_condition"]
    latest = spouse.history.first()
    assert sorted(need.specificneed.code for need in latest.specific_needs.all()) == ["disability", "medical_condition"]


def test_an_optional_column_left_out_of_a_re_import_keeps_what_is_on_record():
    run(csv_bytes(family()))
    columns = [column for column in COLUMNS if column not in ("native_name", "specific_needs")]

    result = run(csv_bytes(family(), columns=columns))

    assert result.unchanged == 3
    spouse = Person.objects.get(registration_no="R-2")
    assert spouse.native_name == "زهرا حسینی"
    assert spouse.specific_needs.count() == 1


def test_a_dry_run_counts_but_writes_nothing(administrator):
    run(csv_bytes(family()))
    rows = family()
    rows[0]["phone"] = "+964 750 000 0000"
    rows.append(person_row(registration_no="R-9", case_no="C-9"))

    result = run(csv_bytes(rows), dry_run=True, actor=administrator)

    assert result.ok
    assert (result.new, result.updated, result.unchanged, result.cases_new) == (1, 1, 2, 1)
    assert Person.objects.count() == 3
    assert Person.objects.get(registration_no="R-1").phone == ""
    record = RosterImport.objects.latest("pk")
    assert (record.dry_run, record.outcome) == (True, RosterImportOutcome.CHECKED)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("  =1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd", "'-2+3+cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'=1"),
        ("+964 750 123 4567", "+964 750 123 4567"),
        ("-", "-"),
        ("Plain notes", "Plain notes"),
    ],
)
def test_values_that_look_like_formulas_are_stored_as_plain_text(value, stored):
    result = run(csv_bytes([person_row(notes=value, phone="+964 750 123 4567")]))

    assert result.ok, result.report_lines()
    person = Person.objects.get()
    assert person.notes == stored
    assert person.phone == "+964 750 123 4567"


@pytest.mark.parametrize(
    "phone", ["+964 750-123-4567", "+1-555-123-4567", "+49 (0)30 1234-5678", "+964/750/1234567", "+964.750.123.4567"]
)
def test_phone_numbers_with_dashes_slashes_or_dots_are_stored_as_written(phone):
    result = run(csv_bytes([person_row(phone=phone, notes=phone)]))

    assert result.ok, result.report_lines()
    assert Person.objects.values_list("phone", "notes").get() == (phone, phone)


@pytest.mark.parametrize(
    ("value", "stored"),
    [("+964-750-1234567 ext. 2", "'+964-750-1234567 ext. 2"), ("-1-A1", "'-1-A1"), ("+1/SUM(A1)", "'+1/SUM(A1)")],
)
def test_a_signed_value_with_anything_but_a_phones_characters_is_still_plain_text(value, stored):
    result = run(csv_bytes([person_row(phone=value)]))

    assert result.ok, result.report_lines()
    assert Person.objects.get().phone == stored


def test_a_csv_cell_written_as_excel_text_is_read_as_the_text_in_its_quotes():
    # ="00123": how exporters keep a number's leading zeros for Excel.
    rows = family()
    rows[0].update(registration_no='="00123"', phone='="07501234567"', notes='="=1+1"')
    rows[1].update(notes='="a"b"')
    content = csv_bytes(rows).replace(b'"=""00123"""', b'="00123"')

    result = run(content)

    assert result.ok, result.report_lines()
    assert list(Person.objects.values_list("registration_no", "phone", "notes").order_by("pk")[:2]) == [
        ("00123", "07501234567", "'=1+1"),
        ("R-2", "", '\'="a"b"'),
    ]


def test_a_workbook_cell_of_text_written_as_excel_text_is_kept_as_plain_text():
    rows = [list(COLUMNS), [person_row()[column] for column in COLUMNS]]
    rows[1][COLUMNS.index("notes")] = '="00123"'
    notes = f"{get_column_letter(COLUMNS.index('notes') + 1)}2"

    result = run(xlsx_bytes(rows, text_cells=(notes,)), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert Person.objects.get().notes == '\'="00123"'


def test_formula_text_in_names_is_stored_as_plain_text():
    result = run(csv_bytes([person_row(family_name="=cmd()", given_name="@x")]))

    assert result.ok
    assert Person.objects.values_list("family_name", "given_name").get() == ("'=cmd()", "'@x")


def test_csv_with_a_byte_order_mark_and_semicolons_is_read():
    content = csv_bytes(family(), bom=True).decode("utf-8-sig").replace(",", ";").encode("utf-8-sig")

    result = run(content)

    assert result.ok, result.report_lines()
    assert result.new == 3


def test_a_column_spelt_almost_like_a_roster_column_is_refused_naming_it():
    # Left out without a word, the needs of every row were dropped and the import said
    # "unchanged".
    columns = [column if column != "specific_needs" else "Specific need" for column in COLUMNS]
    rows = [{**row, "Specific need": row.get("specific_needs", "")} for row in family()]

    result = run(csv_bytes(rows, columns=columns))

    assert [(error.line, error.column, error.message) for error in result.errors] == [
        (
            1,
            "specific_needs",
            "“Specific need” is not a column of the roster: is it specific_needs? If it is, name it specific_needs;"
            " if it is not, give it another name (columns that are not the roster's are not read).",
        )
    ]


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("Phone number", "phone"),
        ("Telephone", "phone"),
        ("Mobile", "phone"),
        ("Specific needs (codes)", "specific_needs"),
        ("Needs", "specific_needs"),
        ("Name (native script)", "native_name"),
        ("Remarks", "notes"),
        # A description in brackets, a qualifier after another name, names written a/b.
        ("Native name (Arabic)", "native_name"),
        ("Phone (mobile)", "phone"),
        ("Telephone no.", "phone"),
        ("Mobile phone number", "phone"),
        ("Notes/remarks", "notes"),
    ],
)
def test_a_column_under_another_name_of_an_optional_roster_column_is_refused_naming_it(header, column):
    # Left out without a word, its values were lost, and a re-import said "unchanged".
    columns = [name if name != column else header for name in COLUMNS]
    rows = [{**row, header: "+964 750 123 4567"} for row in family()]

    result = run(csv_bytes(rows, columns=columns))

    assert [(error.line, error.column, error.message) for error in result.errors] == [
        (
            1,
            column,
            f"“{header}” is not a column of the roster: is it {column}? If it is, name it {column}; if it is not,"
            " give it another name (columns that are not the roster's are not read).",
        )
    ]
    assert not Person.objects.exists()


@pytest.mark.parametrize(
    ("header", "column"),
    [("DOB", "date_of_birth"), ("Gender", "sex"), ("Country", "nationality"), ("Case #", "case_no")],
)
def test_a_required_column_under_another_name_is_named_with_the_missing_column(header, column):
    columns = [name if name != column else header for name in COLUMNS]
    rows = [{**row, header: row[column]} for row in family()]

    result = run(csv_bytes(rows, columns=columns))

    assert [(error.line, error.column) for error in result.errors] == [(1, ""), (1, column)]
    assert f"missing from the header row: {column}." in result.errors[0].message
    assert result.errors[1].message == (
        f"“{header}” is not a column of the roster: is it {column}? If it is, name it {column}; if it is not,"
        " give it another name (columns that are not the roster's are not read)."
    )
    assert not Person.objects.exists()


@pytest.mark.parametrize(
    "extra", ["Phone owner", "Interview notes", "Smartphone", "Headphones", "Case worker", "Previous site"]
)
def test_a_column_whose_name_merely_holds_a_roster_columns_name_is_another_column_not_read(extra):
    # Refused, it would have to be renamed or deleted from a file the user keeps.
    columns = [*REQUIRED_COLUMNS, extra]
    rows = [{**row, extra: "x"} for row in family()]

    result = run(csv_bytes(rows, columns=columns))

    assert result.ok, result.report_lines()
    assert result.report_lines()[1] == f"Columns not read (not roster columns): {extra}."
    assert Person.objects.count() == 3


def test_another_name_of_a_roster_column_present_under_its_own_name_is_named_as_not_read():
    columns = [*COLUMNS, "Telephone"]
    rows = [{**row, "Telephone": "+1 555 0100"} for row in family()]

    result = run(csv_bytes(rows, columns=columns))

    assert result.ok, result.report_lines()
    assert result.report_lines()[1] == "Columns not read (not roster columns): Telephone."
    assert set(Person.objects.values_list("phone", flat=True)) == {""}


def test_rows_with_values_only_in_columns_not_read_are_skipped_as_empty_rows():
    # A helper column filled down past the last person gave nine "A value is required" a row.
    columns = [*COLUMNS, "age"]
    rows = [{**row, "age": "40"} for row in family()] + [{"age": "0"}] * 3

    result = run(csv_bytes(rows, columns=columns))

    assert result.ok, result.report_lines()
    assert (result.rows, result.new) == (3, 3)


def test_a_file_whose_rows_have_values_only_in_columns_not_read_has_no_persons():
    result = run(csv_bytes([{"age": "0"}] * 2, columns=[*COLUMNS, "age"]))

    assert [(error.line, error.message) for error in result.errors] == [
        (None, "The file has a header row but no persons.")
    ]
    assert not Person.objects.exists()


def test_other_columns_are_left_alone():
    columns = [*COLUMNS, "comments", "status", "id"]
    rows = [{**row, "comments": "hello", "status": "deceased", "id": "7"} for row in family()]

    result = run(csv_bytes(rows, columns=columns))

    assert result.ok, result.report_lines()
    assert result.new == 3
    assert set(Person.objects.values_list("residence_status", flat=True)) == {ResidenceStatus.PRESENT}
    assert result.report_lines()[1] == "Columns not read (not roster columns): comments, status, id."


def test_a_file_of_the_roster_columns_alone_names_no_columns_not_read():
    result = run(csv_bytes(family()))

    assert result.ok, result.report_lines()
    assert (result.not_read_line(), len(result.report_lines())) == ("", 1)


def test_a_tab_separated_file_is_read():
    # Google Sheets' .tsv export.
    content = "".join(
        "\t".join(values) + "\r\n" for values in [COLUMNS, *([row[column] for column in COLUMNS] for row in family())]
    ).encode()

    result = run(content, filename="roster.tsv")

    assert result.ok, result.report_lines()
    assert Person.objects.get(registration_no="R-2").specific_needs.get().code == "medical_condition"


@pytest.mark.parametrize(("separator", "newline"), [(";", "\r\n"), (",", "\n"), ("\t", "\r\n")])
def test_a_first_line_naming_the_separator_is_honoured_and_lines_keep_the_files_numbers(separator, newline):
    rows = family()
    rows[2]["sex"] = "Q"
    text = csv_bytes(rows).decode().replace(",", separator).replace("\r\n", newline)
    content = f"sep={separator}{newline}{text}".encode()

    result = run(content)

    assert [(error.line, error.column) for error in result.errors] == [(5, "sex")]
    assert not Person.objects.exists()
    rows[2]["sex"] = "M"
    text = csv_bytes(rows).decode().replace(",", separator).replace("\r\n", newline)
    assert run(f"sep={separator}{newline}{text}".encode()).new == 3


def test_a_semicolon_csv_starting_with_a_blank_line_is_read():
    content = b"\r\n" + csv_bytes(family()).decode().replace(",", ";").encode()

    result = run(content)

    assert result.ok, result.report_lines()
    assert result.new == 3


def test_utf16_without_a_byte_order_mark_is_refused_as_utf16_and_a_double_mark_is_read():
    utf16 = csv_bytes(family()).decode().encode("utf-16-le")

    assert [error.message for error in run(utf16).errors] == [
        "The file looks like UTF-16 text, not UTF-8. Save it as “CSV UTF-8” and try again."
    ]
    assert run(b"\xef\xbb\xbf" + csv_bytes(family(), bom=True)).ok


def test_a_csv_that_is_not_utf8_is_refused_with_a_clear_message():
    content = csv_bytes([person_row(family_name="Müller", native_name="")]).decode().encode("latin-1")

    result = run(content)

    assert len(result.errors) == 1
    assert "UTF-8" in result.errors[0].message


def test_a_nul_character_in_a_cell_is_refused_on_its_line_and_column_and_nothing_is_written():
    # A damaged export. PostgreSQL cannot store NUL in text: this used to stop the
    # import with a database error instead of a report.
    rows = family()
    rows[1]["notes"] = "ok\x00"
    rows[2]["family_name"] = "Hos\x00seini"

    result = run(csv_bytes(rows))

    assert errors_of(result) == {(3, "notes"), (4, "family_name")}
    assert "NUL" in result.errors[0].message
    assert not Person.objects.exists()


@pytest.mark.parametrize("column", ["site", "sex", "nationality", "date_of_birth", "relationship", "specific_needs"])
def test_a_nul_character_in_a_checked_cell_is_quoted_without_it_in_every_message(column):
    # The messages quote the cell and are stored (on PostgreSQL, JSON cannot hold NUL).
    rows = family()
    rows[1][column] = "Z\x00Z"

    result = run(csv_bytes(rows))

    assert errors_of(result) == {(3, column)}
    assert not any("\x00" in error.message for error in result.errors)
    assert any("Z\ufffdZ" in error.message for error in result.errors)  # the cell, quoted without it
    assert result.record.error_count == len(result.errors)


def test_a_quote_never_closed_refuses_the_file_instead_of_swallowing_the_rows_after_it():
    # Python's csv reads the rest of the file into the open cell: R-2 and R-3 were lost
    # and the import said "1 row: 1 new".
    lines = csv_bytes(family()).decode().split("\r\n")
    lines[1] += '"oops'

    result = run("\r\n".join(lines).encode())

    assert [(error.line, error.message) for error in result.errors] == [
        (2, 'A quote (") opened on this line is never closed, so the rest of the file cannot be read.')
    ]
    assert not Person.objects.exists()


def test_a_huge_cell_is_refused_by_its_columns_limit_on_its_line():
    rows = family()
    rows[1]["notes"] = "x" * 200_000  # beyond the csv module's own limit of 131,072
    rows[2]["sex"] = "Q"

    result = run(csv_bytes(rows))

    assert errors_of(result) == {(3, "notes"), (4, "sex")}
    assert "Longer than 10000 characters (200000)" in result.errors[0].message
    assert not Person.objects.exists()


def test_an_empty_file_is_refused():
    assert not run(b"").ok
    assert not run(",".join(COLUMNS).encode()).ok


def test_an_xlsx_file_is_read_like_a_csv_with_dates_and_numbers_as_cells():
    rows = [list(COLUMNS)]
    for row in family():
        values = [row[column] for column in COLUMNS]
        if len(row["date_of_birth"]) == 10:
            values[COLUMNS.index("date_of_birth")] = datetime.datetime.fromisoformat(row["date_of_birth"])
        elif row["date_of_birth"]:
            values[COLUMNS.index("date_of_birth")] = int(row["date_of_birth"])
        rows.append(values)
    rows.append([None] * len(COLUMNS))
    rows.append(
        [1234, "C-2", "PA", "Rezaei", "Reza", None, "M", 1970, "IRN", "Camp Liberty", None, None, "Needs a wheelchair"]
    )

    result = run(xlsx_bytes(rows), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert result.new == 4
    assert Person.objects.get(registration_no="R-2").birth_date is None
    assert Person.objects.get(registration_no="R-3").birth_date == datetime.date(2015, 6, 1)
    assert Person.objects.get(registration_no="1234").birth_year == 1970


def test_xlsx_text_that_looks_like_a_formula_is_stored_as_plain_text_and_formulas_are_not_stored():
    rows = [list(COLUMNS), [person_row()[column] for column in COLUMNS]]
    rows[1][COLUMNS.index("notes")] = '=HYPERLINK("http://x","y")'
    rows[1][COLUMNS.index("phone")] = "=1+1"

    workbook = rewritten(
        xlsx_bytes(rows, text_cells=("M2",)),
        lambda name, data: (
            data.replace(b"<f>1+1</f><v /></c>", b"<f>1+1</f><v>2</v></c>") if name == SHEET_PART else data
        ),
    )
    result = run(workbook, filename="roster.xlsx")

    assert result.ok, result.report_lines()
    person = Person.objects.get()
    assert person.notes == '\'=HYPERLINK("http://x","y")'
    # A real formula cell gives the value last computed, never the formula.
    assert person.phone == "2"


def test_xlsx_errors_name_the_sheet_row():
    rows = [list(COLUMNS), [], [person_row()[column] for column in COLUMNS]]
    rows[2][COLUMNS.index("sex")] = "?"

    result = run(xlsx_bytes(rows), filename="roster.xlsx")

    assert errors_of(result) == {(3, "sex")}


def _bomb() -> bytes:
    entities = '<!ENTITY a0 "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY a{n} "{("&a" + str(n - 1) + ";") * 10}">' for n in range(1, 10)
    )
    sheet = (
        f'<?xml version="1.0"?><!DOCTYPE worksheet [{entities}]>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>&a9;</t></is></c></row></sheetData></worksheet>'
    )
    return _with_sheet_xml(sheet)


def test_an_xml_bomb_is_refused_quickly():
    started = time.monotonic()

    result = run(_bomb(), filename="bomb.xlsx")

    assert time.monotonic() - started < 2
    assert len(result.errors) == 1
    assert "XLSX" in result.errors[0].message


def _roster_sheet_with(cell: str, *, styled_only: bool = False) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(list(COLUMNS))
    for row in family():
        sheet.append([row.get(column, "") for column in COLUMNS])
    if styled_only:
        sheet[cell].font = openpyxl.styles.Font(bold=True)  # formatted, but empty
    else:
        sheet[cell] = "x"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("XFD1048576", "The sheet has values down to row 1,048,576, far beyond the roster's rows."),
        ("XFD5", "The sheet has values across 16,384 columns, far beyond the roster's columns."),
    ],
)
def test_a_value_far_beyond_the_roster_is_refused_before_the_sheet_is_read(cell, message):
    # The sheet reader holds every cell up to the furthest value: this 5 KB file would
    # have asked for 500 GB and stopped the whole process.
    result = run(_roster_sheet_with(cell), filename="roster.xlsx")

    assert [error.message.split(" Delete")[0] for error in result.errors] == [message]
    assert not Person.objects.exists()


def test_a_workbook_whose_sheet_cannot_be_found_plainly_has_every_part_looked_at(monkeypatch):
    # calamine finds sheets by other routes than the usual part names; so does the check
    # (run here in this process: in an import it runs in the reader's).
    monkeypatch.setattr(xlsx_reader, "sheet_paths", lambda archive: {})
    out = io.BytesIO()

    xlsx_reader.read(_roster_sheet_with("XFD1048576"), 201_000, out)

    assert json.loads(out.getvalue().splitlines()[0]) == {"too_far": "rows", "n": 1_048_576}


def _with_sheet(sheet_data: str, *, prefix: str = "") -> bytes:
    """A roster workbook whose sheet's XML holds `sheet_data` (rows of inline-string cells)."""
    tag, namespace = (f"{prefix}:", f"xmlns:{prefix}") if prefix else ("", "xmlns")
    sheet = (
        f'<?xml version="1.0"?><{tag}worksheet {namespace}="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<{tag}sheetData>{sheet_data}</{tag}sheetData></{tag}worksheet>"
    )
    return _with_sheet_xml(sheet)


def _with_sheet_xml(sheet: str) -> bytes:
    """A roster workbook (its header row only) whose sheet's XML is `sheet`."""
    return rewritten(xlsx_bytes([list(COLUMNS)]), lambda name, data: sheet.encode() if name == SHEET_PART else data)


def _cells(values, *, reference=lambda column: "", tag="c") -> str:
    return "".join(
        f'<{tag}{reference(column)} t="inlineStr"><is><t>{value}</t></is></{tag}>'
        for column, value in enumerate(values, start=1)
    )


@pytest.mark.parametrize(
    ("rows", "prefix", "message"),
    [
        # Cells without their reference are placed one after the other in their row.
        (f'<row r="1048576">{_cells(["x"] * 200)}</row>', "", "down to row 1,048,576"),
        # A far cell first, a near one after: cells need not come in order.
        (
            '<row r="2"><c r="Z1048576" t="inlineStr"><is><t>x</t></is></c><c r="A2" t="inlineStr">'
            "<is><t>x</t></is></c></row>",
            "",
            "down to row 1,048,576",
        ),
        # The reference after other attributes, in single quotes, in lower case.
        ('<row r="2"><c t="inlineStr" r="XFD2"><is><t>x</t></is></c></row>', "", "across 16,384 columns"),
        ("<row r='2'><c r='A1048576' t='inlineStr'><is><t>x</t></is></c></row>", "", "down to row 1,048,576"),
        ('<row r="2"><c r="xfd2" t="inlineStr"><is><t>x</t></is></c></row>', "", "across 16,384 columns"),
        # Tags in a namespace of their own.
        (
            '<x:row r="2"><x:c r="XFD1048576" t="inlineStr"><x:is><x:t>x</x:t></x:is></x:c></x:row>',
            "x",
            "down to row 1,048,576",
        ),
    ],
    ids=["without-references", "out-of-order", "reference-not-first", "single-quotes", "lower-case", "prefixed"],
)
def test_a_sheet_written_unusually_is_measured_before_it_is_read(rows, prefix, message):
    # Each of these 5 KB files made the sheet reader ask for gigabytes (67 GB for the first).
    sheet = _with_sheet(rows, prefix=prefix)

    result = run(sheet, filename="roster.xlsx")

    assert len(result.errors) == 1
    assert f"The sheet has values {message}, far beyond the roster" in result.errors[0].message


def test_a_sheet_whose_cells_do_not_name_their_place_is_read_in_order():
    # Some generators leave out cell and row references; the reader places cells in order.
    rows = "".join(f"<row>{_cells([row.get(column, '') for column in COLUMNS])}</row>" for row in family())

    result = run(_with_sheet(f"<row>{_cells(COLUMNS)}</row>{rows}"), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert result.new == 3
    assert Person.objects.get(registration_no="R-3").given_name == "Ali"


def _with_shared_strings(count: int) -> bytes:
    """The family's workbook, its header's first cell a shared string, the shared strings saying `count`."""
    relation = (
        '<Relationship Id="rId99" Target="sharedStrings.xml"'
        ' Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>'
    )
    strings = (
        '<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
        f' count="{count}" uniqueCount="{count}"><si><t>registration_no</t></si></sst>'
    )

    def change(name: str, data: bytes) -> bytes:
        if name == SHEET_PART:
            return data.replace(
                b'<c r="A1" t="inlineStr"><is><t>registration_no</t></is></c>', b'<c r="A1" t="s"><v>0</v></c>'
            )
        if name == "xl/_rels/workbook.xml.rels":
            return data.replace(b"</Relationships>", relation.encode() + b"</Relationships>")
        return data

    return rewritten(xlsx_bytes([list(COLUMNS), *_family_rows()]), change, {"xl/sharedStrings.xml": strings})


def test_shared_strings_are_read():
    result = run(_with_shared_strings(1), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert result.new == 3


def test_a_workbook_that_asks_for_more_memory_than_allowed_is_refused_and_the_import_goes_on():
    # A 5 KB file whose shared strings say there are four billion: the sheet reader asks
    # for 96 GB at once, and a failed allocation stops its process. It reads in a child
    # process of its own, with a memory limit; this one (the test's) goes on.
    result = run(_with_shared_strings(4_000_000_000), filename="roster.xlsx")

    assert [error.message for error in result.errors] == [BEYOND_THE_READERS_LIMITS]
    assert not Person.objects.exists()
    assert RosterImport.objects.get().outcome == RosterImportOutcome.REFUSED


@pytest.fixture
def sheet_readers(monkeypatch) -> list[subprocess.Popen]:
    """The sheet reader processes the imports start."""
    started = []

    class Recorded(importing.subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(importing.subprocess, "Popen", Recorded)
    return started


def test_the_sheet_reader_is_stopped_when_a_file_is_refused_before_its_end(sheet_readers, settings):
    settings.ROSTER_IMPORT_MAX_ROWS = 2

    result = run(xlsx_bytes([list(COLUMNS), *_family_rows()]), filename="roster.xlsx")

    assert result.errors[0].message == (
        "The file has more than 2 rows, the limit for one import. Split it into smaller files."
    )
    assert len(sheet_readers) == 1
    assert sheet_readers[0].returncode is not None  # stopped and waited for: no process left behind


def _family_rows() -> list[list[str]]:
    return [[row.get(column, "") for column in COLUMNS] for row in family()]


def _workbook(*sheets: tuple[str, list[list[str]], str], active: int = -1) -> bytes:
    """A workbook of (title, rows, state) sheets, in order, that opens on sheet `active`."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows, state in sheets:
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
        sheet.sheet_state = state
    workbook.active = active % len(sheets)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_the_first_visible_worksheet_is_read_not_a_hidden_one_before_it(state):
    old = [list(COLUMNS), *([*row[:4], "OLD", *row[5:]] for row in _family_rows())]

    result = run(
        _workbook(("Old roster", old, state), ("Roster", [list(COLUMNS), *_family_rows()], "visible")),
        filename="r.xlsx",
    )

    assert result.ok, result.report_lines()
    assert result.new == 3
    assert Person.objects.get(registration_no="R-3").given_name == "Ali"


def test_the_sheet_the_workbook_opens_on_is_read_and_named():
    march = [list(COLUMNS), *([*row[:4], "MARCH", *row[5:]] for row in _family_rows())]
    sheets = (("March", march, "visible"), ("April", [list(COLUMNS), *_family_rows()], "visible"))

    result = run(_workbook(*sheets, active=1), filename="r.xlsx")

    assert result.ok, result.report_lines()
    assert Person.objects.get(registration_no="R-3").given_name == "Ali"
    assert result.report_lines()[:2] == [
        result.summary(),
        "Read from the sheet “April”, one of 2 in the workbook.",
    ]


def test_a_workbook_opening_on_a_hidden_sheet_has_its_first_visible_worksheet_read():
    april = [list(COLUMNS), *([*row[:4], "APRIL", *row[5:]] for row in _family_rows())]
    sheets = (
        ("March", [list(COLUMNS), *_family_rows()], "visible"),
        ("Lists", [["PA"], ["child"]], "visible"),
        ("April", april, "hidden"),
    )

    result = run(_workbook(*sheets, active=2), filename="r.xlsx")

    assert result.ok, result.report_lines()
    assert Person.objects.get(registration_no="R-3").given_name == "Ali"
    assert (result.sheet, result.sheets) == ("March", 2)


def test_the_sheet_read_is_named_when_the_file_is_refused_too():
    # Opened on the lists, not the roster: the errors say the columns are missing, and
    # the sheet they were looked for in is named.
    sheets = (("Roster", [list(COLUMNS), *_family_rows()], "visible"), ("Lists", [["PA"], ["child"]], "visible"))

    result = run(_workbook(*sheets, active=1), filename="r.xlsx")

    assert [(error.line, error.message.split(":")[0]) for error in result.errors] == [
        (1, "Required column(s) missing from the header row")
    ]
    assert result.report_lines()[:3] == [
        "r.xlsx refused: 1 error; nothing was imported.",
        "Read from the sheet “Lists”, one of 2 in the workbook.",
        str(result.errors[0]),
    ]
    assert not Person.objects.exists()


TITLE_FIRST = (
    "The header row must be the first row that is not empty: line 3 is the header, and the row(s) above it"
    " (“Camp Liberty roster, March 2026”) are not part of the roster. Delete them, and import the file again."
)


@pytest.mark.parametrize(
    ("kind", "separator", "title"),
    [
        ("csv", ",", "Camp Liberty roster, March 2026"),
        # The title decides nothing: its comma is not the file's separator, nor its lack of one.
        ("csv", ";", "Camp Liberty roster, March 2026"),
        ("csv", "\t", "Camp Liberty roster, March 2026"),
        ("csv", ",", "Camp Liberty roster; March 2026"),
        ("xlsx", "", "Camp Liberty roster, March 2026"),
    ],
)
def test_a_title_above_the_header_is_refused_naming_the_header_below_it(kind, separator, title):
    rows = [[title], [], list(COLUMNS), *_family_rows()]
    if kind == "csv":
        lines = [
            separator.join(_quoted(str(value)) if separator == "," else str(value) for value in row) for row in rows
        ]
        content = "\r\n".join(lines).encode()
    else:
        content = xlsx_bytes(rows)

    result = run(content, filename=f"roster.{kind}")

    assert [(error.line, error.column, error.message) for error in result.errors] == [
        (1, "", TITLE_FIRST.replace("Camp Liberty roster, March 2026", title))
    ]
    assert not Person.objects.exists() and not Case.objects.exists()


def test_a_title_above_a_header_that_lacks_a_column_is_refused_with_both_said():
    columns = [column for column in COLUMNS if column != "sex"]
    content = "Camp Liberty roster, March 2026\r\n\r\n" + csv_bytes(family(), columns=columns).decode()

    result = run(content.encode())

    assert [(error.line, error.message.split(":")[0]) for error in result.errors] == [
        (1, "The header row must be the first row that is not empty"),
        (3, "Required column(s) missing from the header row"),
    ]
    assert "sex" in result.errors[1].message
    assert not Person.objects.exists()


def test_a_file_of_rows_that_name_no_roster_column_is_refused_on_its_first_line():
    content = "\r\n".join(f"Item {number},Amount" for number in range(1, 9)).encode()

    result = run(content)

    assert [(error.line, error.message.split(":")[0]) for error in result.errors] == [
        (1, "Required column(s) missing from the header row")
    ]
    assert not Person.objects.exists() and not Case.objects.exists()


@pytest.mark.parametrize(
    ("title", "written"),
    [
        ("فهرست", b"&#1601;&#1607;&#1585;&#1587;&#1578;"),  # as writers of ASCII-only XML write Persian
        ("Camp\x96", b"Camp&#x96;"),  # U+0096, which HTML would read as a dash
    ],
    ids=["persian", "c1-control"],
)
def test_the_sheet_read_is_found_however_the_workbook_writes_its_name_and_active_tab(title, written):
    # A name as character references, the active tab in single quotes: the roster is
    # read, not the lists beside it.
    lists = [list(COLUMNS), *([f"=Roster!A{n}"] * len(COLUMNS) for n in range(2, 5))]
    workbook = _workbook(("Lists", lists, "visible"), ("ROSTER", [list(COLUMNS), *_family_rows()], "visible"), active=0)

    def change(name: str, data: bytes) -> bytes:
        if name != "xl/workbook.xml":
            return data
        data = data.replace(b"ROSTER", written)
        return re.sub(
            rb'activeTab="0"|<workbookView ',
            lambda m: b"<workbookView activeTab='1' " if m.group(0).startswith(b"<") else b"",
            data,
        )

    result = run(rewritten(workbook, change), filename="r.xlsx")

    assert result.ok, result.report_lines()
    assert (result.sheet, result.rows) == (title, 3)


def test_a_workbook_of_one_visible_worksheet_names_no_sheet():
    result = run(xlsx_bytes([list(COLUMNS), *_family_rows()]), filename="r.xlsx")

    assert result.ok
    assert (result.sheet, result.sheet_line()) == ("", "")
    assert len(result.report_lines()) == 1


def _chart_sheet_first(*, roster_hidden: bool = False) -> bytes:
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx_bytes([list(COLUMNS), *_family_rows()])))
    workbook.create_chartsheet("Chart", 0)
    if roster_hidden:
        workbook["Sheet"].sheet_state = "hidden"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_a_chart_sheet_before_the_roster_is_passed_over():
    result = run(_chart_sheet_first(), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert result.new == 3


def test_a_workbook_without_a_visible_worksheet_is_refused():
    result = run(_chart_sheet_first(roster_hidden=True), filename="roster.xlsx")

    assert [error.message for error in result.errors] == ["The workbook has no visible worksheet to read."]


@pytest.mark.parametrize("part", ["xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/worksheets/sheet1.xml"])
def test_tags_never_closed_are_looked_through_in_bounded_time(part):
    # Thousands of tags never closed, then a megabyte of spaces (the part cut there): each
    # tag made a pattern scan to the end of the megabyte, and a 3 KB file took 23 to 56 s.
    opening, at = {
        "xl/workbook.xml": ("<sheet ", b"<sheet "),
        "xl/_rels/workbook.xml.rels": ("<Relationship ", b"<Relationship "),
        "xl/worksheets/sheet1.xml": ('<c r="AA', b"</sheetData>"),
    }[part]
    workbook = rewritten(
        xlsx_bytes([list(COLUMNS), *_family_rows()]),
        lambda name, data: (
            data[: data.index(at)] + opening.encode() * 40_000 + b" " * 1_000_000 if name == part else data
        ),
    )
    started = time.monotonic()

    result = run(workbook, filename="roster.xlsx")

    assert time.monotonic() - started < 10
    assert [error.message for error in result.errors] == ["The file is not a readable XLSX workbook."]


def test_a_damaged_workbook_is_refused_with_a_message():
    content = bytearray(xlsx_bytes([list(COLUMNS), *_family_rows()]))
    info = zipfile.ZipFile(io.BytesIO(bytes(content))).getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    content[start + 10] ^= 0xFF  # a byte of the compressed sheet

    result = run(bytes(content), filename="roster.xlsx")

    assert [error.message for error in result.errors] == ["The file is not a readable XLSX workbook."]
    assert RosterImport.objects.get().outcome == RosterImportOutcome.REFUSED


def test_the_sheet_reader_is_stopped_when_the_import_fails_before_reading_a_row(sheet_readers):
    def progress(stage, done, total):
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="database is locked"):
        roster_import(
            xlsx_bytes([list(COLUMNS), *_family_rows()]), actor=None, filename="r.xlsx", dry_run=True, progress=progress
        )

    assert len(sheet_readers) == 1
    assert sheet_readers[0].returncode is not None


def test_formatting_far_beyond_the_roster_is_no_reason_to_refuse_it():
    result = run(_roster_sheet_with("XFD1048576", styled_only=True), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert result.new == 3


def test_a_file_that_is_not_a_workbook_is_refused():
    result = run(b"PK\x03\x04 not really a zip", filename="roster.xlsx")

    assert "XLSX" in result.errors[0].message


def test_old_excel_files_are_refused_with_a_clear_message():
    result = run(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, filename="roster.xls")

    assert "CSV" in result.errors[0].message


def test_a_file_over_the_row_limit_is_refused_with_a_clear_message(settings):
    settings.ROSTER_IMPORT_MAX_ROWS = 2

    result = run(csv_bytes(family()))

    assert len(result.errors) == 1
    assert "more than 2 rows" in result.errors[0].message
    assert not Person.objects.exists()


def test_a_file_over_the_byte_limit_is_refused_with_a_clear_message(settings):
    settings.ROSTER_IMPORT_MAX_BYTES = 100

    result = run(io.BytesIO(csv_bytes(family())))

    assert errors_seen(result) == [
        (
            None,
            "",
            "The file is larger than the limit of 100 bytes for one import; split it and import the parts one by one.",
        )
    ]
    assert not Person.objects.exists()


# Probable duplicates


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Mohammad", "Mohammed"),
        ("Mohammad", "Muhammad"),
        ("Hossein", "Hussein"),
        ("Hosseini", "Husseini"),
        ("Ghasemi", "Qasemi"),
        ("Fatemeh", "Fatima"),
        ("Esfahani", "Isfahani"),
        ("Mousavi", "Musavi"),
        ("Zeinab", "Zainab"),
    ],
)
def test_transliteration_variants_share_a_name_key(a, b):
    assert latin_key(a) == latin_key(b)


@pytest.mark.parametrize(("a", "b"), [("Ahmad", "Hamed"), ("Ali", "Leila"), ("Reza", "Zahra")])
def test_different_names_keep_different_keys(a, b):
    assert latin_key(a) != latin_key(b)


def test_arabic_and_persian_letter_forms_share_a_native_key():
    assert native_key("علي") == native_key("علی")
    assert native_key("محمّد  حسيني") == native_key("محمد حسینی")


def test_transliteration_variants_with_the_same_birth_date_are_flagged_within_the_file():
    rows = family() + [
        person_row(registration_no="R-7", case_no="C-7", family_name="Husseini", given_name="Muhammad", native_name=""),
    ]

    result = run(csv_bytes(rows), dry_run=True)

    assert result.ok
    assert [(d.line, d.other_line, d.other_registration_no) for d in result.duplicates] == [(5, 2, "R-1")]


def test_the_same_native_name_and_birth_year_is_flagged_even_when_latin_names_differ():
    rows = family() + [
        person_row(registration_no="R-7", case_no="C-7", family_name="Alavi", given_name="Mamad", date_of_birth="1985"),
    ]

    result = run(csv_bytes(rows), dry_run=True)

    assert [(d.line, d.other_registration_no) for d in result.duplicates] == [(5, "R-1")]
    assert "native" in result.duplicates[0].reason


def _on_record(site, family_name: str, given_name: str, birth_date: datetime.date | None) -> None:
    """R-OLD, born in 1985, in a case of their own."""
    case = CaseFactory(case_no="C-OLD", site=site)
    PersonFactory(registration_no="R-OLD", case=case, family_name=family_name, given_name=given_name,
                  native_name="", birth_year=1985, birth_date=birth_date)  # fmt: skip


def test_probable_duplicates_of_persons_on_record_are_flagged_but_not_merged(site):
    _on_record(site, "Hosseyni", "Mohamad", datetime.date(1985, 3, 21))

    result = run(csv_bytes(family()))

    assert result.ok
    assert [(d.line, d.other_line, d.other_registration_no) for d in result.duplicates] == [(2, None, "R-OLD")]
    assert (result.duplicates[0].reason, result.duplicates[0].other_birth) == (
        "same name in another spelling",
        "1985-03-21",
    )
    assert Person.objects.count() == 4


def test_a_look_alike_written_the_same_way_is_said_to_have_the_same_name(site):
    _on_record(site, "HOSSEINI", "mohammad", None)

    result = run(csv_bytes(family()))

    assert [(d.registration_no, d.birth, d.other_birth, d.reason) for d in result.duplicates] == [
        ("R-1", "1985-03-21", "1985", "same name")
    ]


def _namesakes(count: int) -> list[dict[str, str]]:
    """`count` households of one person each, all ALI KARIMI born in 2000 (a year alone)."""
    return [
        person_row(registration_no=f"R-{n}", case_no=f"C-{n}", family_name="Karimi", given_name="Ali",
                   native_name="", date_of_birth="2000")
        for n in range(count)
    ]  # fmt: skip


def test_each_row_lists_its_first_ten_look_alikes_not_all_of_them():
    # 300 namesakes are 44,850 pairs; 20,000 of them took a gigabyte and more.
    result = run(csv_bytes(_namesakes(300)), dry_run=True)

    assert result.ok
    listed: dict[str, list[str]] = {}
    for duplicate in result.duplicates:
        listed.setdefault(duplicate.registration_no, []).append(duplicate.other_registration_no)
    assert listed["R-3"] == ["R-0", "R-1", "R-2"]
    assert listed["R-299"] == [f"R-{n}" for n in range(10)]
    assert len(result.duplicates) == 45 + 10 * 290
    assert result.duplicates_notice == (
        "Rows with more than 10 look-alikes list their first 10: a common name with a year of birth alone may match"
        " many persons."
    )


def test_a_row_with_many_look_alikes_on_record_lists_ten_and_says_so(site):
    case = CaseFactory(case_no="C-OLD", site=site)
    for n in range(12):
        PersonFactory(registration_no=f"OLD-{n}", case=case, relationship="child", family_name="Karimi",
                      given_name="Ali", native_name="", birth_year=2000, birth_date=None)  # fmt: skip

    result = run(csv_bytes(_namesakes(1)), dry_run=True)

    # The same ten at every check, whatever order the database gives them in.
    first_ten = sorted(f"OLD-{n}" for n in range(12))[:10]
    assert [duplicate.other_registration_no for duplicate in result.duplicates] == first_ten
    assert result.duplicates_notice.startswith("Rows with more than 10 look-alikes list their first 10")


def test_a_file_with_more_look_alikes_than_can_be_listed_says_so(monkeypatch):
    monkeypatch.setattr(importing, "MAX_DUPLICATES", 100)

    result = run(csv_bytes(_namesakes(40)), dry_run=True)

    assert len(result.duplicates) == 100
    assert result.report_lines()[-1].endswith(
        "The list stops at 100 probable duplicates, keeping strong pairs over possible ones, and there are more:"
        " does the file repeat a placeholder name?"
    )


def test_a_file_with_more_look_alikes_than_can_be_listed_keeps_a_strong_pair_found_after_the_cap(monkeypatch):
    monkeypatch.setattr(importing, "MAX_DUPLICATES", 20)
    # 40 namesakes born in 2000 (a year alone) fill the list with possible pairs; two
    # persons born the same day, after them in the file, are a strong pair.
    rows = _namesakes(40) + [
        person_row(registration_no=f"T-{n}", case_no=f"T-{n}", family_name="Rahimi", given_name="Sara", sex="F",
                   native_name="", date_of_birth="1999-04-12")
        for n in range(2)
    ]  # fmt: skip

    result = run(csv_bytes(rows), dry_run=True)

    listed = [(d.registration_no, d.other_registration_no, d.strength) for d in strongest_first(result.duplicates)]
    assert listed[0] == ("T-1", "T-0", "strong")
    assert [strength for _one, _other, strength in listed] == ["strong"] + ["possible"] * 19
    assert result.duplicates_notice.endswith(
        "The list stops at 20 probable duplicates, keeping strong pairs over possible ones, and there are more:"
        " does the file repeat a placeholder name?"
    )


def test_a_look_alike_on_record_marked_as_a_different_person_is_listed_no_more(administrator):
    PersonFactory(registration_no="R-OLD", family_name="Hosseini", given_name="Muhammad", birth_date="1985-03-21")
    assert [d.other_registration_no for d in run(csv_bytes(family()), dry_run=True).duplicates] == ["R-OLD"]
    DistinctPersons.objects.create(first="R-1", second="R-OLD", decided_by=administrator)

    result = run(csv_bytes(family()), dry_run=True)

    assert result.duplicates == []
    assert result.duplicates_decided == 1
    assert result.report_lines()[-1] == "1 pair marked earlier as different persons is not listed."


def test_look_alikes_marked_as_different_persons_leave_their_places_to_the_next_ones(site, administrator):
    case = CaseFactory(case_no="C-OLD", site=site)
    for n in range(12):
        PersonFactory(registration_no=f"OLD-{n:02}", case=case, relationship="child", family_name="Karimi",
                      given_name="Ali", native_name="", birth_year=2000, birth_date=None)  # fmt: skip
    rows = _namesakes(1)
    first = run(csv_bytes(rows), dry_run=True)
    assert [d.other_registration_no for d in first.duplicates] == [f"OLD-{n:02}" for n in range(10)]
    for duplicate in first.duplicates:
        DistinctPersons.objects.create(first=duplicate.other_registration_no, second="R-0", decided_by=administrator)

    result = run(csv_bytes(rows), dry_run=True)

    # The next two, no longer cut off by the ten marked.
    assert [d.other_registration_no for d in result.duplicates] == ["OLD-10", "OLD-11"]
    assert (result.duplicates_decided, result.duplicates_notice) == (10, "")


@pytest.mark.parametrize("order", ["hassan first", "hussein first"])
def test_latin_look_alikes_whose_one_word_native_names_differ_are_not_flagged(order):
    rows = [
        person_row(registration_no="R-1", given_name="Hassan", native_name="حسن", date_of_birth="2010-04-02"),
        person_row(registration_no="R-2", case_no="C-2", given_name="Hussein", native_name="حسین",
                   date_of_birth="2010-04-02"),
    ]  # fmt: skip
    if order == "hussein first":
        rows.reverse()
    # Without their native names, they are a pair.
    plain = [{**row, "native_name": ""} for row in rows]
    assert len(run(csv_bytes(plain), dry_run=True).duplicates) == 1

    result = run(csv_bytes(rows), dry_run=True)

    assert result.ok, result.report_lines()
    assert result.duplicates == []


def test_the_same_name_born_on_another_day_is_not_a_duplicate():
    rows = family() + [
        person_row(
            registration_no="R-7", case_no="C-7", given_name="Muhammad", native_name="", date_of_birth="1985-03-22"
        ),
    ]

    assert run(csv_bytes(rows), dry_run=True).duplicates == []


def test_re_importing_a_person_does_not_flag_them_as_their_own_duplicate():
    run(csv_bytes(family()))

    assert run(csv_bytes(family())).duplicates == []


def test_a_re_imported_pair_of_look_alikes_is_flagged_once():
    rows = family() + [person_row(registration_no="R-7", case_no="C-7", given_name="Muhammad", native_name="")]
    run(csv_bytes(rows))

    result = run(csv_bytes(rows))

    assert [(d.line, d.other_line) for d in result.duplicates] == [(5, 2)]


def test_a_pair_born_the_same_day_of_the_same_sex_is_strong_and_shows_both_persons(site):
    _on_record(site, "Hosseyni", "Mohamad", None)
    rows = family() + [
        person_row(registration_no="R-7", case_no="C-7", relationship="PA", given_name="Muhammad", native_name=""),
    ]

    result = run(csv_bytes(rows), dry_run=True)

    assert [
        (d.registration_no, d.other_registration_no, d.strength, d.reason, d.sex, d.other_sex, d.case_no,
         d.other_case_no, d.relationship, d.other_relationship, d.native_name, d.other_native_name)
        for d in result.duplicates
    ] == [
        ("R-1", "R-OLD", "possible", "same name in another spelling", "M", "M", "C-1", "C-OLD", "PA", "PA",
         "محمد حسینی", ""),
        ("R-7", "R-OLD", "possible", "same name in another spelling", "M", "M", "C-7", "C-OLD", "PA", "PA", "", ""),
        ("R-7", "R-1", "strong", "same name in another spelling", "M", "M", "C-7", "C-1", "PA", "PA", "",
         "محمد حسینی"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("on_record", "in_file", "listed"),
    [
        (datetime.date(1985, 1, 1), "1985-03-21", True),  # 1 January: a year alone, as registrations write it
        (datetime.date(1985, 3, 21), "1985-01-01", True),
        (datetime.date(1985, 7, 3), "1985-03-07", True),  # the day and month swapped
        (datetime.date(1985, 7, 3), "1985-03-08", False),  # another date
        (datetime.date(1985, 3, 22), "1985-03-21", False),
        (datetime.date(1985, 1, 2), "1985-03-21", False),  # 2 January is a date
    ],
)
def test_dates_of_birth_that_may_be_one_written_otherwise_are_a_possible_pair(site, on_record, in_file, listed):
    _on_record(site, "Hosseyni", "Mohamad", on_record)
    rows = [
        person_row(date_of_birth=in_file),
        # The same two dates within the file.
        person_row(registration_no="R-2", case_no="C-2", given_name="Muhammad", date_of_birth=on_record.isoformat()),
    ]

    result = run(csv_bytes(rows), dry_run=True)

    pairs = [
        (d.registration_no, d.other_registration_no, d.strength, d.birth, d.other_birth) for d in result.duplicates
    ]
    # The same date is a strong pair, but for 1 January: a year alone, as registrations write it.
    same = "possible" if (on_record.month, on_record.day) == (1, 1) else "strong"
    expected = [
        ("R-1", "R-OLD", "possible", in_file, on_record.isoformat()),
        ("R-2", "R-OLD", same, on_record.isoformat(), on_record.isoformat()),
        ("R-2", "R-1", "possible", on_record.isoformat(), in_file),
    ]
    assert pairs == (expected if listed else expected[1:2])


def test_twins_of_another_sex_whose_latin_names_are_alike_are_only_a_possible_pair():
    rows = family() + [
        person_row(registration_no="R-4", relationship="child", given_name="Amin", native_name="",
                   date_of_birth="2015-06-01"),
        person_row(registration_no="R-5", relationship="child", given_name="Amina", native_name="", sex="F",
                   date_of_birth="2015-06-01"),
    ]  # fmt: skip

    result = run(csv_bytes(rows), dry_run=True)

    assert [(d.registration_no, d.other_registration_no, d.strength) for d in result.duplicates] == [
        ("R-5", "R-4", "possible")
    ]


def test_latin_look_alikes_whose_native_names_differ_are_not_flagged(site):
    # Hassan and Hussein share a Latin key (no vowels); in their own script they are two names.
    case = CaseFactory(case_no="C-OLD", site=site)
    PersonFactory(registration_no="R-OLD", case=case, family_name="Hosseini", given_name="Husein",
                  native_name="حسین حسینی", birth_year=2010, birth_date=datetime.date(2010, 4, 2))  # fmt: skip
    rows = [
        person_row(registration_no="R-1", given_name="Hassan", native_name="حسن حسینی", date_of_birth="2010-04-02"),
        person_row(registration_no="R-2", relationship="sibling", given_name="Hussein", native_name="حسین حسینی",
                   date_of_birth="2010-04-02"),
    ]  # fmt: skip

    result = run(csv_bytes(rows), dry_run=True)

    # Hussein and Husein are one name written alike in native script: still a pair.
    assert [(d.registration_no, d.other_registration_no, d.reason) for d in result.duplicates] == [
        ("R-2", "R-OLD", "same name in another spelling")
    ]


@pytest.mark.parametrize(
    ("on_record", "in_file"),
    [
        ("محمد حسینی", "حسینی محمد"),  # the family name first
        ("محمد حسینی", "محمد رضا حسینی"),  # a name added (a father's, a second given name)
        ("محمدرضا حسینی", "محمد رضا حسینی"),  # a compound name with its space
        ("محمدرضا", "محمد رضا"),  # a one-word compound name, and with its space
    ],
)
def test_latin_look_alikes_whose_native_names_are_one_name_written_otherwise_are_flagged(site, on_record, in_file):
    case = CaseFactory(case_no="C-OLD", site=site)
    PersonFactory(registration_no="R-OLD", case=case, family_name="Hosseini", given_name="Mohammad",
                  native_name=on_record, birth_year=1985, birth_date=datetime.date(1985, 3, 21))  # fmt: skip
    rows = [person_row(registration_no="R-1", given_name="Muhammad", native_name=in_file)]

    result = run(csv_bytes(rows), dry_run=True)

    assert [(d.other_registration_no, d.strength) for d in result.duplicates] == [("R-OLD", "strong")]


def test_a_latin_look_alike_without_a_native_name_is_still_flagged():
    rows = [
        person_row(registration_no="R-1", given_name="Hassan", native_name="حسن حسینی", date_of_birth="2010-04-02"),
        person_row(registration_no="R-2", case_no="C-2", given_name="Hasan", native_name="", date_of_birth="2010"),
    ]

    result = run(csv_bytes(rows), dry_run=True)

    assert [(d.registration_no, d.other_registration_no, d.strength) for d in result.duplicates] == [
        ("R-2", "R-1", "possible")
    ]


def test_a_row_with_many_look_alikes_in_the_file_keeps_those_born_the_same_day_first():
    rows = _namesakes(12) + [
        person_row(registration_no=f"R-{reg}", case_no=f"C-{reg}", family_name="Karimi", given_name="Ali",
                   native_name="", date_of_birth="2000-03-03", sex=sex)
        for reg, sex in (("TRUE", "M"), ("OTHER-SEX", "F"), ("DUP", "M"))
    ]  # fmt: skip

    result = run(csv_bytes(rows), dry_run=True)

    listed = [(d.other_registration_no, d.strength) for d in result.duplicates if d.registration_no == "R-DUP"]
    assert listed == [("R-TRUE", "strong"), ("R-OTHER-SEX", "possible")] + [(f"R-{n}", "possible") for n in range(8)]
    assert result.duplicates_notice.startswith("Rows with more than 10 look-alikes list their first 10")


def test_a_row_with_many_look_alikes_on_record_keeps_the_one_born_the_same_day_first(site):
    case = CaseFactory(case_no="C-OLD", site=site)
    for n in range(12):
        PersonFactory(registration_no=f"OLD-{n:02d}", case=case, relationship="child", family_name="Karimi",
                      given_name="Ali", native_name="", birth_year=2000, birth_date=None)  # fmt: skip
    PersonFactory(registration_no="OLD-TRUE", case=CaseFactory(case_no="C-T", site=site), family_name="Karimi",
                  given_name="Ali", native_name="", birth_year=2000, birth_date=datetime.date(2000, 3, 3))  # fmt: skip
    rows = [person_row(family_name="Karimi", given_name="Ali", native_name="", date_of_birth="2000-03-03")]

    result = run(csv_bytes(rows), dry_run=True)

    assert [(d.other_registration_no, d.strength, d.other_case_no) for d in result.duplicates] == [
        ("OLD-TRUE", "strong", "C-T")
    ] + [(f"OLD-{n:02d}", "possible", "C-OLD") for n in range(9)]


def test_an_update_bumps_the_version_so_an_edit_opened_before_it_is_refused():
    run(csv_bytes(family()))
    before = Person.objects.get(registration_no="R-3").version
    rows = family()
    rows[2]["given_name"] = "Ali Reza"

    run(csv_bytes(rows))

    assert Person.objects.get(registration_no="R-3").version == before + 1
    assert Person.objects.get(registration_no="R-1").version == before


def test_a_clash_with_a_change_made_during_the_import_refuses_the_whole_file(monkeypatch, site):
    # Another import adds R-2 between this import's checks and its writes.
    checks = importing._check

    def meanwhile(*args, **kwargs):
        found = checks(*args, **kwargs)
        PersonFactory(registration_no="R-2", case=CaseFactory(case_no="C-OTHER", site=site))
        return found

    monkeypatch.setattr(importing, "_check", meanwhile)

    result = run(csv_bytes(family()))

    assert not result.ok
    assert "changed" in result.errors[0].message
    assert not Case.objects.filter(case_no="C-1").exists()
    assert Person.objects.count() == 1
    assert RosterImport.objects.get().outcome == RosterImportOutcome.REFUSED


def test_imported_and_updated_persons_get_the_search_key_of_their_names():
    run(csv_bytes(family()))
    assert f" {latin_key('Mohammad')} " in Person.objects.get(registration_no="R-1").name_key
    rows = family()
    rows[0]["given_name"] = "Reza"
    rows[0]["native_name"] = "رضا حسینی"

    run(csv_bytes(rows))

    key = Person.objects.get(registration_no="R-1").name_key
    assert f" {latin_key('Reza')} " in key
    assert f" {latin_key('Mohammad')} " not in key


def test_openpyxl_parses_workbooks_through_defusedxml():
    # The template writer and django-import-export use openpyxl; with defusedxml
    # installed, its XML parsing refuses entity declarations too.
    assert openpyxl.DEFUSEDXML is True


def test_an_xlsx_that_unpacks_to_far_more_than_the_byte_limit_is_refused_unread(settings):
    settings.ROSTER_IMPORT_MAX_BYTES = 100_000
    workbook = rewritten(xlsx_bytes([list(COLUMNS)]), added={"xl/padding.xml": b" " * 2_000_000})

    result = run(workbook, filename="roster.xlsx")

    assert len(workbook) < 100_000
    assert "unpacks" in result.errors[0].message


def _zipped(parts: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return out.getvalue()


ODS_REPEATED_CELLS = (
    '<?xml version="1.0" encoding="UTF-8"?><office:document-content'
    ' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
    ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
    ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
    '<office:body><office:spreadsheet><table:table table:name="Roster">'
    '<table:table-row table:number-rows-repeated="99000">'
    '<table:table-cell table:number-columns-repeated="1000" office:value-type="string"><text:p>x</text:p>'
    "</table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"
)


@pytest.mark.parametrize(
    "parts",
    [
        # An 800-byte ODS whose one cell repeats 99 million times: the sheet reader would
        # ask for 4 GB at once and stop the whole process.
        {"mimetype": "application/vnd.oasis.opendocument.spreadsheet", "content.xml": ODS_REPEATED_CELLS},
        # The same, dressed up with an XLSX part name.
        {"xl/workbook.xml": "<workbook/>", "content.xml": ODS_REPEATED_CELLS},
        {"[Content_Types].xml": "<Types/>", "xl/workbook.bin": "\x83\x01"},
    ],
    ids=["ods", "ods-with-an-xlsx-part", "xlsb"],
)
def test_a_zipped_workbook_other_than_xlsx_is_refused_unread(parts):
    result = run(_zipped(parts), filename="roster.xlsx")

    assert [error.message for error in result.errors] == [
        "The file is not an XLSX workbook (an ODS or XLSB file, say): save it as XLSX or CSV (UTF-8)."
    ]
    assert not Person.objects.exists()


@pytest.mark.parametrize(
    ("header", "line", "values"),
    [
        # An unquoted list of needs in a semicolon file: phone and notes moved a column on.
        (
            ";".join(COLUMNS),
            "R-9;C-9;PA;Rahimi;Omid;;M;1990;AF;Camp Liberty;medical_condition;disability;+1 555;notes",
            14,
        ),
        # An unquoted comma in the notes of a comma file: the end of the notes was lost.
        (
            ",".join(COLUMNS),
            "R-9,C-9,PA,Rahimi,Omid,,M,1990,AF,Camp Liberty,,+1 555,Needs wheelchair, insulin daily",
            14,
        ),
    ],
    ids=["semicolon", "comma"],
)
def test_a_line_with_more_values_than_the_header_has_columns_is_refused(header, line, values):
    result = run(f"{header}\r\n{line}\r\n".encode())

    assert [(error.line, error.message) for error in result.errors] == [
        (
            2,
            f"This line has {values} values and the header 13 columns: column 14 holds a value but has no name in"
            " the header row (name the column, or delete the value), or a value that holds the separator"
            " (a comma or a semicolon) is not in double quotes.",
        )
    ]
    assert not Person.objects.exists()


def test_a_value_typed_in_a_column_without_a_header_name_is_refused_naming_its_column():
    rows = [";".join(_quoted(row[column]) for column in COLUMNS) for row in family()]
    rows[1] += ";;check spelling with camp office"

    result = run("\r\n".join([";".join(COLUMNS), *rows, ""]).encode())

    assert [(error.line, error.message) for error in result.errors] == [
        (
            3,
            "This line has 15 values and the header 13 columns: column 15 holds a value but has no name in"
            " the header row (name the column, or delete the value), or a value that holds the separator"
            " (a comma or a semicolon) is not in double quotes.",
        )
    ]
    assert not Person.objects.exists()


def test_a_quoted_value_after_a_space_is_refused_with_advice_on_where_the_quote_goes():
    line = 'R-9,C-9,PA,Rahimi,Omid,,M,1990,AF,Camp Liberty,,+1 555, "Needs wheelchair, insulin daily"'

    result = run(f"{','.join(COLUMNS)}\r\n{line}\r\n".encode())

    assert [(error.line, error.message) for error in result.errors] == [
        (
            2,
            "This line has 14 values and the header 13 columns: a value in double quotes must begin with its"
            " quote, right after the separator, with no space before it.",
        )
    ]
    assert not Person.objects.exists()


def test_empty_cells_after_the_last_column_are_no_reason_to_refuse_a_line():
    row = family()[0]
    line = ",".join(_quoted(row.get(column, "")) for column in COLUMNS)

    result = run(f"{','.join(COLUMNS)}\r\n{line},,\r\n".encode())

    assert result.ok, result.report_lines()
    assert result.new == 1


def _with_cells(rows: list[list[str]], cells: dict[str, str]) -> bytes:
    """A workbook of `rows` whose cells named in `cells` are written as the XML given
    ({cell} in it stands for the cell's name)."""

    def change(name: str, data: bytes) -> bytes:
        if name != SHEET_PART:
            return data
        for cell, xml in cells.items():
            start = data.index(f'<c r="{cell}"'.encode())
            tag_end = data.index(b">", start) + 1
            end = tag_end if data[tag_end - 2 : tag_end] == b"/>" else data.index(b"</c>", start) + 4
            data = data[:start] + xml.format(cell=cell).encode() + data[end:]
        return data

    return rewritten(xlsx_bytes(rows), change)


def _with_error_cell(rows: list[list[str]], cell: str, code: str, attributes: str = 'r="{cell}" t="e"') -> bytes:
    """A workbook of `rows` whose `cell` holds a formula that failed with `code`."""
    return _with_cells(rows, {cell: f"<c {attributes}><f>VLOOKUP(A2,Other!A:B,2,FALSE)</f><v>{code}</v></c>"})


def test_an_error_cell_in_a_reimport_is_refused_instead_of_emptying_the_value():
    rows = family()
    rows[0]["phone"] = "+964 750 111 2222"
    run(csv_bytes(rows))
    phone = f"{get_column_letter(1 + COLUMNS.index('phone'))}2"
    sheet = [list(COLUMNS), *([row.get(column, "") for column in COLUMNS] for row in rows)]

    result = run(_with_error_cell(sheet, phone, "#N/A"), filename="roster.xlsx")

    assert [(error.line, error.column, error.message) for error in result.errors] == [
        (2, "phone", "Holds the spreadsheet error #N/A, not a value: correct the formula, or type the value.")
    ]
    assert Person.objects.get(registration_no="R-1").phone == "+964 750 111 2222"


def test_a_spreadsheet_error_in_a_csv_is_refused_like_in_a_workbook():
    rows = family()
    rows[2]["family_name"] = "#REF!"

    result = run(csv_bytes(rows))

    assert [(error.line, error.column, error.message) for error in result.errors] == [
        (4, "family_name", "Holds the spreadsheet error #REF!, not a value: correct the formula, or type the value.")
    ]
    assert not Person.objects.exists()


@pytest.mark.parametrize("unsaved_formula_before", [False, True])
def test_an_error_the_sheet_reader_does_not_know_is_named_by_its_cell(unsaved_formula_before):
    cells = {"D3": '<c r="{cell}" t="e"><f>VLOOKUP(A2,Other!A:B,2,FALSE)</f><v>#SPILL!</v></c>'}
    if unsaved_formula_before:
        cells["A2"] = '<c r="{cell}"><f>"R-1"</f><v /></c>'

    result = run(_with_cells([list(COLUMNS), *_family_rows()], cells), filename="roster.xlsx")

    assert [(error.line, error.message) for error in result.errors] == [
        (
            3,
            "Cell D3 holds the spreadsheet error #SPILL!, which cannot be read: correct the formula,"
            " or type the value, and try again.",
        )
    ]
    assert not Person.objects.exists()


UNSAVED_FORMULA = (
    "Holds a formula whose result the file does not hold (it was not saved by a spreadsheet):"
    " open the file in a spreadsheet and save it again, or type the value."
)


@pytest.mark.parametrize(
    "xml",
    [
        '<c r="{cell}"><f>"+964 750"</f><v /></c>',  # as openpyxl writes a formula
        '<c r="{cell}"><f>"+964 750"</f></c>',
        '<c r="{cell}" t="str"><f>"+964 750"</f></c>',
        '<c r="{cell}"><f t="shared" si="0"/><v></v></c>',
        '<c s="0" r="{cell}"><f>"+964 750"</f><v/></c>',  # the reference after another attribute: read tag by tag
    ],
    ids=["empty-value", "no-value", "text-without-value", "shared", "tag-by-tag"],
)
def test_a_formula_without_its_result_is_refused_instead_of_emptying_the_value(xml):
    rows = family()
    rows[0]["phone"] = "+964 750 111 2222"
    run(csv_bytes(rows))
    phone = f"{get_column_letter(1 + COLUMNS.index('phone'))}2"
    sheet = [list(COLUMNS), *([row.get(column, "") for column in COLUMNS] for row in rows)]

    result = run(_with_cells(sheet, {phone: xml}), filename="roster.xlsx")

    assert [(error.line, error.column, error.message) for error in result.errors] == [(2, "phone", UNSAVED_FORMULA)]
    assert Person.objects.get(registration_no="R-1").phone == "+964 750 111 2222"


def test_a_formula_gives_its_saved_result_and_an_empty_text_result_is_empty():
    sheet = [list(COLUMNS), *_family_rows()]
    phone, notes = (get_column_letter(1 + COLUMNS.index(column)) for column in ("phone", "notes"))
    cells = {
        f"{phone}2": '<c r="{cell}"><f>"+964 "&amp;"750"</f><v>+964 750</v></c>',
        f"{notes}2": '<c r="{cell}" t="str"><f>IF(TRUE,"","x")</f><v></v></c>',
    }

    result = run(_with_cells(sheet, cells), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    person = Person.objects.get(registration_no="R-1")
    assert (person.phone, person.notes) == ("+964 750", "")


@pytest.mark.parametrize(
    "xml",
    [
        '<c r="{cell}" t="str"><f>"+964 "&amp;"750"</f><v xml:space="preserve">+964 750</v></c>',  # as Excel writes
        '<c r="{cell}" t="str"><f>"+964 750"</f>\n  <v>+964 750</v></c>',
        '<c r="{cell}" t="inlineStr"><f>"+964 750"</f><is><t>+964 750</t></is></c>',
    ],
    ids=["space-preserved", "lines-between", "inline-string"],
)
def test_a_formula_result_is_read_however_its_value_is_written(xml):
    sheet = [list(COLUMNS), *_family_rows()]
    phone = f"{get_column_letter(1 + COLUMNS.index('phone'))}2"

    result = run(_with_cells(sheet, {phone: xml}), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert Person.objects.get(registration_no="R-1").phone == "+964 750"


def test_formula_results_in_a_sheet_with_a_namespace_prefix_are_read():
    # As the .NET Open XML SDK writes a sheet: every tag with its prefix.
    def cell(column: int, text: str) -> str:
        return f'<x:c r="{get_column_letter(column)}2" t="inlineStr"><x:is><x:t>{text}</x:t></x:is></x:c>'

    values = [person_row()[column] for column in COLUMNS]
    phone = 1 + COLUMNS.index("phone")
    cells = "".join(cell(n, value) for n, value in enumerate(values, start=1) if value and n != phone)
    cells += f'<x:c r="{get_column_letter(phone)}2"><x:f>1+1</x:f><x:v>2</x:v></x:c>'
    header = "".join(
        f'<x:c r="{get_column_letter(n)}1" t="inlineStr"><x:is><x:t>{name}</x:t></x:is></x:c>'
        for n, name in enumerate(COLUMNS, start=1)
    )

    result = run(
        _with_sheet(f'<x:row r="1">{header}</x:row><x:row r="2">{cells}</x:row>', prefix="x"), filename="r.xlsx"
    )

    assert result.ok, result.report_lines()
    assert Person.objects.get().phone == "2"


def test_formulas_without_results_outside_the_roster_are_as_empty_cells():
    # A title above the header and a column of the sheet's own, its formula filled down
    # past the roster: neither is read, so neither is refused.
    header = [*COLUMNS, "age"]
    rows = [
        ["=TODAY()"],
        header,
        *([*row, "=2026-1990"] for row in _family_rows()),
        *([None] * 13 + ["=1"] for _ in range(3)),
    ]

    result = run(xlsx_bytes(rows), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert result.rows == 3


@pytest.mark.parametrize("first", [False, True], ids=["last-column", "a-column-before-every-value"])
def test_a_header_cell_holding_a_formula_without_its_result_is_refused(first):
    # Before every value, the cell lies left of where the sheet's reader starts its rows.
    if first:
        rows = [['="phone"', *COLUMNS], *(["=1", *row] for row in _family_rows())]
    else:
        rows = [[*COLUMNS[:-1], '="notes"'], *_family_rows()]

    result = run(xlsx_bytes(rows), filename="roster.xlsx")

    assert [(error.line, error.message) for error in result.errors] == [
        (1, "A cell of the header holds a formula whose result the file does not hold: type the column's name in it.")
    ]
    assert not Person.objects.exists()


def test_an_error_cell_is_named_by_its_code_however_its_value_is_written():
    sheet = [list(COLUMNS), *_family_rows()]
    phone = f"{get_column_letter(1 + COLUMNS.index('phone'))}3"
    failed = '<c r="{cell}" t="e"><f>1/0</f><v xml:space="preserve">#DIV/0!</v></c>'

    result = run(_with_cells(sheet, {phone: failed}), filename="roster.xlsx")

    assert [(error.line, error.message) for error in result.errors] == [
        (3, "Holds the spreadsheet error #DIV/0!, not a value: correct the formula, or type the value.")
    ]
    assert not Person.objects.exists()


def test_a_csv_cell_is_never_taken_for_a_formula_without_its_result():
    # The XLSX reader's mark for one is a character a CSV may hold.
    rows = family()
    rows[0]["notes"] = "\x1b"

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert Person.objects.get(registration_no="R-1").notes == "\x1b"


def test_a_row_of_formulas_without_their_results_is_refused_not_passed_over_as_empty():
    # The sheet's reader sees no value in the last row at all: it would end the sheet before it.
    sheet = [list(COLUMNS), *_family_rows()]
    last = len(sheet)
    cells = {f"{get_column_letter(n)}{last}": '<c r="{cell}"><f>Other!A1</f><v /></c>' for n in range(1, 14)}

    result = run(_with_cells(sheet, cells), filename="roster.xlsx")

    assert {(error.line, error.message) for error in result.errors} == {(last, UNSAVED_FORMULA)}
    assert len(result.errors) == len(COLUMNS)
    assert not Person.objects.exists()


def test_a_formula_cell_cut_across_two_pieces_of_the_sheet_is_read_whole():
    # The sheet's XML is looked through a megabyte at a time: here the first megabyte
    # ends inside the phone's formula, before its end and its (empty) value.
    def row(number: int, values: list[str]) -> str:
        cells = "".join(
            f'<c r="{get_column_letter(n)}{number}" t="inlineStr"><is><t>{value}</t></is></c>' if value else ""
            for n, value in enumerate(values, start=1)
        )
        return f'<row r="{number}">{cells}</row>'

    values = [person_row()[column] for column in COLUMNS]
    phone = f"{get_column_letter(1 + COLUMNS.index('phone'))}2"
    values[COLUMNS.index("phone")] = "PHONE"
    person = row(2, values).replace(
        f'<c r="{phone}" t="inlineStr"><is><t>PHONE</t></is></c>', f'<c r="{phone}"><f>"+964"</f><v /></c>'
    )
    sheet = (
        '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{row(1, list(COLUMNS))}PADDING{person}</sheetData></worksheet>"
    )
    padding = (1 << 20) - sheet.encode().index(b"</f>") + len("PADDING")
    sheet = sheet.replace("PADDING", " " * padding)
    assert sheet.encode().index(b"</f>") == 1 << 20

    result = run(_with_sheet_xml(sheet), filename="roster.xlsx")

    assert [(error.line, error.column, error.message) for error in result.errors] == [(2, "phone", UNSAVED_FORMULA)]
    assert not Person.objects.exists()


def test_a_huge_cell_is_quoted_shortened_in_its_message():
    # Every message is kept (on the page, in the report, on the import's record): a
    # 20 MB cell quoted whole in ten of them took the process to 2 GB.
    rows = family()
    rows[1]["relationship"] = "x" * 100_000

    result = run(csv_bytes(rows))

    assert [error.message for error in result.errors] == [
        f"“{'x' * 59}…” is not one of PA, spouse, child, parent, sibling, other_relative, other."
    ]
    assert not Person.objects.exists()


@pytest.mark.parametrize(
    ("first_column", "attributes"),
    [
        (0, 's="0" r="{cell}" t="e"'),  # the reference after another attribute: read tag by tag
        (1, 'r="{cell}" t="e"'),  # the table starts in column B
    ],
    ids=["reference-not-first", "table-from-column-b"],
)
def test_an_error_cell_is_found_however_the_sheet_is_laid_out(first_column, attributes):
    rows = family()
    rows[0]["notes"] = "keep me"
    run(csv_bytes(rows))
    notes = f"{get_column_letter(1 + first_column + COLUMNS.index('notes'))}2"
    sheet = [[None] * first_column + row for row in [list(COLUMNS), *([r.get(c, "") for c in COLUMNS] for r in rows)]]

    result = run(_with_error_cell(sheet, notes, "#N/A", attributes), filename="roster.xlsx")

    assert [(error.line, error.column) for error in result.errors] == [(2, "notes")]
    assert Person.objects.get(registration_no="R-1").notes == "keep me"


def _reader_script(tmp_path, monkeypatch, code: str) -> None:
    """The XLSX reader replaced by a script of `code`."""
    script = tmp_path / "reader.py"
    script.write_text(code)
    monkeypatch.setattr(importing, "_XLSX_READER", script)


def test_a_reader_stuck_without_using_its_cpu_time_is_stopped_and_the_file_refused(tmp_path, monkeypatch, caplog):
    # Out of memory, calamine once waited forever on a lock it held: its CPU time limit
    # never came, and the import would have waited with it.
    _reader_script(tmp_path, monkeypatch, "import sys, time\nsys.stdin.buffer.read()\ntime.sleep(600)\n")
    monkeypatch.setattr(importing, "_XLSX_READER_SECONDS", 1)
    started = time.monotonic()

    result = run(xlsx_bytes([list(COLUMNS), *_family_rows()]), filename="roster.xlsx")

    assert [error.message for error in result.errors] == [BEYOND_THE_READERS_LIMITS]
    # Killed at its deadline (two seconds here), not left to sleep its ten minutes out;
    # the operator's log says so.
    assert time.monotonic() - started < 10
    assert [record.getMessage().split(" on a file")[0] for record in caplog.records] == [
        "The XLSX reader stopped (exit status -9)"
    ]
    assert not Person.objects.exists()


def test_the_reader_prints_no_rust_backtrace_whatever_the_environment(tmp_path, monkeypatch):
    # Printing one while out of memory is how calamine came to wait on itself.
    monkeypatch.setenv("RUST_BACKTRACE", "full")
    seen = tmp_path / "seen"
    _reader_script(tmp_path, monkeypatch, f"import os\nopen({str(seen)!r}, 'w').write(os.environ['RUST_BACKTRACE'])\n")

    run(xlsx_bytes([list(COLUMNS), *_family_rows()]), filename="roster.xlsx")

    assert seen.read_text() == "0"


def test_a_workbook_whose_values_need_more_memory_than_allowed_is_refused_as_such(settings):
    # Sixteen cells of 8 MB: a 100 KB file that unpacks within the limit, but whose
    # values take more memory to read than the reader is allowed here.
    settings.ROSTER_IMPORT_XLSX_MEMORY_MB = 200
    long = "x" * 8_000_000
    rows = "".join(f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>{long}</t></is></c></row>' for n in range(1, 17))

    result = run(_with_sheet(rows), filename="roster.xlsx")

    assert [error.message for error in result.errors] == [BEYOND_THE_READERS_LIMITS]
