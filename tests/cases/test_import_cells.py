"""What a roster's cells may hold: text garbled by a wrong encoding, characters an encoding
lost, invisible and control characters, numbers a spreadsheet changed; and the XLSX
template that keeps typed values as they were typed."""

import io

import openpyxl
import pytest

from cases.importing import COLUMNS
from cases.models import Person
from tests.cases.test_import import csv_bytes, family, needs, person_row, run, site  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def seen(result) -> list[tuple[int | None, str, str]]:
    """What the admin sees of a refused file: each error's line, column and message."""
    assert not Person.objects.exists()
    return [(error.line, error.column, error.message) for error in result.errors]


def test_an_encrypted_workbook_is_refused_as_password_protected():
    # An encrypted OOXML file is an OLE compound file holding these streams.
    content = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "EncryptionInfo".encode("utf-16-le") + bytes(10)
    content += "EncryptedPackage".encode("utf-16-le") + bytes(100)

    result = run(content, filename="roster.xlsx")

    [(line, column, message)] = seen(result)
    assert (line, column) == (None, "")
    assert message.startswith("The workbook is password-protected or encrypted (rights-protected)")
    assert "save an unprotected copy" in message


SCIENTIFIC = (
    "Excel has shown this number in scientific notation and dropped its last digits: format the column as Text"
    " in the spreadsheet and type the numbers again."
)


def sheet(rows: list[dict[str, object]]) -> bytes:
    book = openpyxl.Workbook()
    book.active.append(list(COLUMNS))
    for row in rows:
        book.active.append([row[column] for column in COLUMNS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("column", ["registration_no", "case_no", "phone"])
@pytest.mark.parametrize("number", [1.23456789012346e17, 1e15, 9876543210987654])
def test_an_xlsx_number_too_long_for_its_digits_to_hold_is_refused_on_its_line_and_column(column, number):
    rows: list[dict[str, object]] = list(family())
    rows[1][column] = number
    if column == "case_no":
        rows = rows[1:2]
        rows[0]["relationship"] = "PA"

    result = run(sheet(rows), filename="roster.xlsx")

    line = 2 if column == "case_no" else 3
    assert seen(result) == [(line, column, SCIENTIFIC)]


def test_an_xlsx_number_of_up_to_15_digits_is_read_whole():
    rows: list[dict[str, object]] = list(family())
    rows[1]["registration_no"] = 123456789012345
    rows[1]["phone"] = 9647501234567

    result = run(sheet(rows), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert Person.objects.get(registration_no="123456789012345").phone == "9647501234567"
