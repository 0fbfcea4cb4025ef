"""Rows hidden in a workbook (by hand, or by a filter) are read like the others: the result
names them, so that a person filtering a roster before importing it sees what goes in."""

import pytest

from cases.models import Person
from tests.cases.test_import import family, needs, person_row, run, site  # noqa: F401 - fixtures
from tests.cases.test_import_admin import AD, check
from tests.cases.test_import_xlsx_formats import read_tag_by_tag
from tests.cases.test_import_xlsx_merged import saved_by_libreoffice, workbook
from tests.reports.test_libreoffice import soffice  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("layout", [lambda content: content, read_tag_by_tag], ids=["plain", "tag_by_tag"])
def test_a_hidden_row_is_read_and_named(layout):
    result = run(layout(workbook(family(), hidden=(3,))), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert Person.objects.count() == 3
    assert result.hidden == [3]
    assert result.hidden_line() == (
        "A row hidden in the sheet (by hand or by a filter) was read like the others: line 3. Delete it from the"
        " file if it is not to be imported."
    )
    assert result.hidden_line() in result.report_lines()


def test_hidden_rows_with_no_person_are_not_named():
    # A hidden empty row above the header, the header itself, a blank row and rows below the roster.
    rows = [*family(), {}, person_row(registration_no="R-9", case_no="C-9")]

    result = run(workbook(rows, hidden=(1, 2, 6, 9, 40), above=1), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert (result.hidden, result.hidden_line()) == ([], "")


def test_many_hidden_rows_are_named_ten_and_a_count():
    rows = [person_row(registration_no=f"R-{n}", case_no=f"C-{n}", given_name=f"Name{chr(97 + n)}") for n in range(14)]

    result = run(workbook(rows, hidden=tuple(range(2, 16))), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert "lines 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 4 more." in result.hidden_line()


def test_the_check_page_names_the_hidden_rows(client_for):
    response = check(client_for(AD), workbook(family(), hidden=(4,)), name="roster.xlsx")

    assert response.context["result"]["ok"]
    assert "was read like the others: line 4." in response.content.decode()


@pytest.mark.libreoffice
def test_a_row_hidden_in_a_workbook_libreoffice_saved_is_named(soffice, tmp_path):  # noqa: F811
    # LibreOffice writes hidden="true" on a hidden row, and hidden="false" on every other.
    content = saved_by_libreoffice(soffice, workbook(family(), hidden=(2,)), tmp_path)

    result = run(content, filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert result.hidden == [2]
