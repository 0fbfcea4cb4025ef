"""XLSX cells read as their number format shows them, where the roster reads them otherwise:
a number's zeros, a date shown as its year, a date and time shown as the date."""

import datetime
import io

import openpyxl
import pytest

from cases import xlsx_reader
from cases.importing import COLUMNS
from cases.models import Case, Person
from tests.cases.test_import import csv_bytes, family, needs, rewritten, run, site  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

DATE = COLUMNS.index("date_of_birth") + 1


def workbook(rows: list[dict[str, str]], cells: dict[tuple[int, str], tuple[object, str]]) -> bytes:
    """An XLSX of `rows` (text), with the cells (row of the sheet, column) given a value
    and a number format."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append([row[column] for column in COLUMNS])
    for (row_number, column), (value, number_format) in cells.items():
        cell = sheet.cell(row=row_number, column=COLUMNS.index(column) + 1, value=value)
        cell.number_format = number_format
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def read_tag_by_tag(content: bytes) -> bytes:
    """The same workbook, its cells written otherwise (two spaces after `<c`): the reader
    then places them tag by tag."""
    return rewritten(content, lambda name, data: data.replace(b'<c r="', b'<c  r="') if "worksheets/" in name else data)


def numbered_family() -> list[dict[str, str]]:
    rows = family()
    for row in rows:
        row["case_no"] = "00045"
    rows[0]["phone"] = "07501234567"
    return rows


def numbers_as_shown(rows: list[dict[str, str]]) -> dict[tuple[int, str], tuple[object, str]]:
    """The registration numbers R-1… as the numbers 1… shown with a literal "R-", the case
    number 00045 as 45 shown with zeros, the phone as a number shown with its leading 0."""
    cells: dict[tuple[int, str], tuple[object, str]] = {(2, "phone"): (7501234567, "00000000000")}
    for at, row in enumerate(rows, start=2):
        cells[at, "registration_no"] = (int(row["registration_no"].removeprefix("R-")), '"R-"0')
        cells[at, "case_no"] = (45, "00000")
    return cells


@pytest.mark.parametrize("layout", [lambda content: content, read_tag_by_tag], ids=["plain", "tag_by_tag"])
def test_numbers_are_read_as_their_format_shows_them_so_a_workbook_re_imports_a_csv_unchanged(layout):
    rows = numbered_family()
    assert run(csv_bytes(rows)).new == 3

    result = run(layout(workbook(rows, numbers_as_shown(rows))), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert (result.new, result.updated, result.unchanged, result.cases_new) == (0, 0, 3, 0)
    assert list(Case.objects.values_list("case_no", flat=True)) == ["00045"]
    assert Person.objects.get(registration_no="R-1").phone == "07501234567"


def test_a_fresh_workbook_stores_the_numbers_as_shown():
    rows = numbered_family()

    result = run(workbook(rows, numbers_as_shown(rows)), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert sorted(Person.objects.values_list("registration_no", "case__case_no", "phone")) == [
        ("R-1", "00045", "07501234567"),
        ("R-2", "00045", ""),
        ("R-3", "00045", ""),
    ]


@pytest.mark.parametrize("layout", [lambda content: content, read_tag_by_tag], ids=["plain", "tag_by_tag"])
def test_a_date_shown_as_its_year_alone_is_a_year_only_birth(layout):
    # A sheet shows a birth of which only the year is known as a date formatted "yyyy"; its
    # CSV export says 1988, not a made-up 1 January.
    rows = family()
    cells = {
        (3, "date_of_birth"): (datetime.datetime(1988, 1, 1), "yyyy"),
        (4, "date_of_birth"): (datetime.datetime(2015, 6, 1), "dd/mm/yyyy"),
    }

    result = run(layout(workbook(rows, cells)), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert sorted(Person.objects.values_list("registration_no", "birth_year", "birth_date")) == [
        ("R-1", 1985, datetime.date(1985, 3, 21)),
        ("R-2", 1988, None),
        ("R-3", 2015, datetime.date(2015, 6, 1)),
    ]


def test_a_date_shown_as_month_and_year_is_refused_on_its_cell():
    rows = family()

    result = run(workbook(rows, {(3, "date_of_birth"): (datetime.datetime(1988, 3, 1), "mm/yyyy")}), filename="r.xlsx")

    assert [(error.line, error.column) for error in result.errors] == [(3, "date_of_birth")]
    assert "“1988-03”" in result.errors[0].message
    assert not Person.objects.exists() and not Case.objects.exists()


def test_a_date_and_time_shown_as_a_date_is_the_date_and_shown_with_its_time_is_refused():
    rows = family()
    at = datetime.datetime(1985, 3, 21, 14, 30)

    shown_as_date = run(workbook(rows, {(2, "date_of_birth"): (at, "dd/mm/yyyy")}), filename="roster.xlsx")
    assert shown_as_date.ok, shown_as_date.report_lines()
    assert Person.objects.get(registration_no="R-1").birth_date == datetime.date(1985, 3, 21)

    Person.objects.all().delete()
    Case.objects.all().delete()
    shown_with_time = run(workbook(rows, {(2, "date_of_birth"): (at, "dd/mm/yyyy hh:mm")}), filename="roster.xlsx")
    assert [(error.line, error.column) for error in shown_with_time.errors] == [(2, "date_of_birth")]
    assert not Person.objects.exists()


@pytest.mark.parametrize(
    ("number", "code", "shown"),
    [
        (123, "00000", "00123"),
        (123, '"R-"00000', "R-00123"),
        (1234, "000\\-000", "001-234"),
        (1234567, "000\\-000", "1234-567"),  # digits beyond the zeros go with the first ones
        (-5, "000", "-005"),
        (123, "00000;-00000;0", "00123"),
        # Digits shown if the number has them, colours, and characters shown as they are.
        (123, "#00000", "00123"),
        (1234567, "#00000", "1234567"),
        (123, "[Red]00000", "00123"),
        (123, "000-000", "000-123"),
        (123, "000 000", "000 123"),
        (1234567, "###-0000", "123-4567"),
        (12345, "###-0000", "1-2345"),
        (7501234567, "(000) 000-0000", "(750) 123-4567"),
        # Digits are filled from the right: an optional one left empty, a zero shown.
        (123, "000-##", "001-23"),
        (5, "000-##", "000-5"),
        (123, "000-#", "012-3"),
        (1234567, '"R-"00000', "R-1234567"),
        # Padding, fill and currency.
        (123, "0000_)", "0123"),
        (123, "0000*-", "0123"),
        (123, "[$€-407]0000", "€0123"),
        (123, "[$-409]0000", "0123"),
    ],
)
def test_digits_as_a_format_of_zeros_and_literal_text_shows_them(number, code, shown):
    kind = xlsx_reader.format_kind(code)
    assert kind is not None
    assert xlsx_reader.formatted(number, kind) == shown


@pytest.mark.parametrize(
    "code", ["General", "0", "#", "#0", "0.00", "#,##0", "@", '"0"', "[h]:mm", "dd/mm/yyyy hh:mm", "0.00E+00"]
)
def test_formats_that_do_not_change_the_roster_text_are_left_to_the_value(code):
    assert xlsx_reader.format_kind(code) is None
