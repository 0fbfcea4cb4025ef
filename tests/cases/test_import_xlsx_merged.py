"""Merged cells in a workbook, read as a spreadsheet shows them: merged down one column
(a case number merged down a household), each row they span has the value; merged
across columns, the other columns show no value of their own and are refused there."""

import io
import subprocess

import openpyxl
import pytest

from cases.importing import COLUMNS
from cases.models import Case, Person
from tests.cases.test_import import errors_of, errors_seen, family, needs, person_row, rewritten, run, site  # noqa: F401
from tests.cases.test_import_admin import AD, check
from tests.reports.test_libreoffice import soffice  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

MERGED_ACROSS = (
    "Merged with the cell to its left (or above it), whose value the merged cells show: unmerge them and type each"
    " column's value in its own cell."
)


def letter(column: str) -> str:
    return openpyxl.utils.get_column_letter(COLUMNS.index(column) + 1)


def workbook(
    rows: list[dict[str, str]],
    merged: tuple[str, ...] = (),
    columns=COLUMNS,
    origin: int = 1,
    above: int = 0,
    hidden: tuple[int, ...] = (),
) -> bytes:
    """An XLSX of the roster's header and `rows`, below `above` empty rows and from column
    `origin` on, with the cells `merged` (each as "B3:B5") merged and the sheet rows
    `hidden` hidden. As a spreadsheet merges cells, those a merge covers are emptied:
    only the first keeps its value."""
    book = openpyxl.Workbook()
    sheet = book.active
    lines = [list(columns), *([row.get(c, "") for c in columns] for row in rows)]
    for number, values in enumerate(lines, start=1 + above):
        for at, value in enumerate(values, start=origin):
            sheet.cell(row=number, column=at, value=value or None)
    for cells in merged:
        sheet.merge_cells(cells)
    for number in hidden:
        sheet.row_dimensions[number].hidden = True
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def household(size: int, case_no: str, first: int) -> list[dict[str, str]]:
    """A case of `size` persons, its case number on its first row alone (as it is left
    when the cells below are merged into it)."""
    rows = [person_row(registration_no=f"R-{first}", case_no=case_no)]
    for number in range(first + 1, first + size):
        rows.append(person_row(registration_no=f"R-{number}", case_no="", relationship="child", given_name="Ali"))
    return rows


def test_a_case_number_merged_down_a_household_is_each_of_its_rows_case_number():
    rows = household(3, "C-1", 1) + household(2, "C-2", 4)
    cases = letter("case_no")

    result = run(workbook(rows, merged=(f"{cases}2:{cases}4", f"{cases}5:{cases}6")), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert dict(Person.objects.values_list("registration_no", "case__case_no")) == {
        "R-1": "C-1",
        "R-2": "C-1",
        "R-3": "C-1",
        "R-4": "C-2",
        "R-5": "C-2",
    }
    assert result.merged == ["B2:B4", "B5:B6"]
    assert result.merged_line() == (
        "Merged cells were read as their value on each row they span (check that each of those rows should have"
        " it): B2:B4, B5:B6."
    )
    assert result.merged_line() in result.report_lines()


def test_the_same_rows_unmerged_lack_their_case_numbers():
    result = run(workbook(household(3, "C-1", 1)), filename="roster.xlsx")

    assert errors_seen(result) == [
        (3, "case_no", "A value is required."),
        (4, "case_no", "A value is required."),
    ]
    assert not Person.objects.exists()


def test_the_check_page_names_the_merged_cells_read_on_each_row_they_span(client_for):
    rows = household(3, "C-1", 1)

    response = check(client_for(AD), workbook(rows, merged=("B2:B4",)), name="roster.xlsx")

    assert response.context["result"]["ok"]
    assert response.context["result"]["new"] == 3
    assert (
        "Merged cells were read as their value on each row they span (check that each of those rows should have"
        " it): B2:B4." in response.content.decode()
    )
    assert not Person.objects.exists()


def test_a_blank_row_under_a_merged_case_number_stays_blank_and_is_skipped():
    # A spacer row between households, inside the first household's merge.
    rows = household(2, "C-1", 1) + [{}] + household(2, "C-2", 4)
    cases = letter("case_no")

    result = run(workbook(rows, merged=(f"{cases}2:{cases}4", f"{cases}5:{cases}6")), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert (result.rows, Case.objects.get(case_no="C-1").members.count()) == (4, 2)


def test_a_total_beside_the_roster_under_a_merged_case_number_is_no_person():
    columns = [*COLUMNS, "count"]
    rows = [*household(3, "C-1", 1), {"count": "3 persons"}]
    cases = letter("case_no")

    result = run(workbook(rows, merged=(f"{cases}2:{cases}5",), columns=columns), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert (result.rows, Person.objects.count()) == (3, 3)


def test_a_value_left_under_a_merged_cell_is_its_rows_own():
    # A spreadsheet empties the cells it merges and shows the first one's value; a file
    # written otherwise may hold a value under the merge: R-3's own case, C-2.
    rows = household(3, "C-1", 1)
    rows[2]["case_no"], rows[2]["relationship"] = "C-2", "PA"
    cases = letter("case_no")
    merge = f'<mergeCells count="1"><mergeCell ref="{cases}2:{cases}4"/></mergeCells>'.encode()
    content = rewritten(
        workbook(rows),
        lambda name, data: data.replace(b"</sheetData>", b"</sheetData>" + merge) if "worksheets/" in name else data,
    )

    result = run(content, filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert dict(Person.objects.values_list("registration_no", "case__case_no")) == {
        "R-1": "C-1",
        "R-2": "C-1",
        "R-3": "C-2",
    }
    assert result.merged == [f"{cases}2:{cases}4"]


def test_a_roster_further_right_has_its_merged_cells_placed_where_they_are():
    rows = household(3, "C-1", 1)
    cases = openpyxl.utils.get_column_letter(COLUMNS.index("case_no") + 3)

    result = run(workbook(rows, merged=(f"{cases}2:{cases}4",), origin=3), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert Person.objects.filter(case__case_no="C-1").count() == 3
    assert result.merged == [f"{cases}2:{cases}4"]


def test_names_merged_across_two_columns_are_refused_on_the_column_that_shows_no_value():
    rows = family()
    rows[1]["family_name"], rows[1]["given_name"] = "Hosseini Zahra", ""

    result = run(workbook(rows, merged=(f"{letter('family_name')}3:{letter('given_name')}3",)), filename="roster.xlsx")

    assert errors_of(result) == {(3, "given_name")}
    assert [error.message for error in result.errors] == [MERGED_ACROSS]
    assert not Person.objects.exists() and not Case.objects.exists()


def test_a_block_of_merged_cells_is_refused_on_every_cell_but_its_first():
    rows = family()
    first, last = letter("sex"), letter("date_of_birth")

    result = run(workbook(rows, merged=(f"{first}3:{last}4",)), filename="roster.xlsx")

    assert errors_seen(result) == [
        (3, "date_of_birth", MERGED_ACROSS),
        (4, "sex", MERGED_ACROSS),
        (4, "date_of_birth", MERGED_ACROSS),
    ]
    assert not Person.objects.exists()


def test_a_row_merged_whole_into_the_row_above_is_refused_not_skipped():
    last = letter(COLUMNS[-1])
    rows = [*family(), person_row(registration_no="R-4", case_no="C-2", given_name="Karim")]

    result = run(workbook(rows, merged=(f"A3:{last}4",)), filename="roster.xlsx")

    lines = {error.line for error in result.errors}
    assert lines == {3, 4}
    assert {error.message for error in result.errors if error.line == 4} == {MERGED_ACROSS}
    assert not Person.objects.exists()


def test_cells_merged_across_into_a_column_that_is_not_read_are_the_first_cells_value():
    columns = [*COLUMNS, "remarks2"]
    rows = [{**row, "notes": "Moved from block C"} for row in family()]
    notes, extra = letter("notes"), openpyxl.utils.get_column_letter(len(columns))

    result = run(workbook(rows, merged=(f"{notes}2:{extra}2",), columns=columns), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert Person.objects.get(registration_no="R-1").notes == "Moved from block C"


def test_merged_cells_left_empty_are_empty():
    rows = family()
    rows[1]["sex"] = ""
    first, last = letter("sex"), letter("date_of_birth")

    result = run(workbook(rows, merged=(f"{first}3:{last}3",)), filename="roster.xlsx")

    assert errors_seen(result) == [
        (3, "sex", "A value is required."),
        (3, "date_of_birth", "A value is required."),
    ]
    assert not Person.objects.exists()


def test_cells_merged_down_a_column_that_is_not_read_are_not_named():
    columns = [*COLUMNS, "block"]
    rows = [{**row, "block": "C" if at == 0 else ""} for at, row in enumerate(family())]
    block = openpyxl.utils.get_column_letter(len(columns))

    result = run(workbook(rows, merged=(f"{block}2:{block}4",), columns=columns), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert (result.merged, result.merged_line()) == ([], "")


def test_a_header_merged_down_into_the_first_row_is_refused():
    rows = family()
    rows[0]["registration_no"] = ""

    result = run(workbook(rows, merged=("A1:A2",)), filename="roster.xlsx")

    assert [(error.line, error.message) for error in result.errors] == [
        (
            1,
            "Cells of the header are merged with the cells below them (A1:A2): unmerge them, so that the header row"
            " alone holds the columns' names.",
        )
    ]
    assert not Person.objects.exists()


def test_header_cells_merged_across_name_no_column_beyond_the_first():
    # "Name" over the two name columns: the second has no name of its own.
    columns = [column if column != "family_name" else "name" for column in COLUMNS]
    rows = [{**row, "name": row["family_name"]} for row in family()]

    merged = (f"{letter('family_name')}1:{letter('given_name')}1",)

    result = run(workbook(rows, merged=merged, columns=columns), filename="roster.xlsx")

    assert [(error.line, error.message.split(". ")[0]) for error in result.errors] == [
        (1, "Required column(s) missing from the header row: family_name, given_name")
    ]
    assert not Person.objects.exists()


def test_the_merged_cells_named_are_the_first_ten_and_a_count():
    rows: list[dict[str, str]] = []
    for number in range(12):
        rows += household(2, f"C-{number}", 2 * number + 1)
    cases = letter("case_no")
    merged = tuple(f"{cases}{2 * n + 2}:{cases}{2 * n + 3}" for n in range(12))

    result = run(workbook(rows, merged=merged), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert result.merged_line().endswith(f"{cases}18:{cases}19, {cases}20:{cases}21 and 2 more.")


def test_far_more_merged_cells_than_rows_are_refused_before_the_rows_are_read(settings):
    settings.ROSTER_IMPORT_MAX_ROWS = 1  # the reader allows 4 × (1 + 1,000) merged ranges
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(COLUMNS))
    sheet.append([person_row(sex="Q")[column] for column in COLUMNS])  # its error is never read
    for row in range(3, 101):
        for column in range(1, 83, 2):
            sheet.merge_cells(start_row=row, start_column=column, end_row=row, end_column=column + 1)
    out = io.BytesIO()
    book.save(out)

    result = run(out.getvalue(), filename="roster.xlsx")

    assert [(error.line, error.message) for error in result.errors] == [
        (
            None,
            "The sheet has 4,018 ranges of merged cells, far more than a roster has rows. Unmerge them (select the"
            " whole sheet, then Unmerge Cells), or save the roster as CSV (UTF-8).",
        )
    ]


def saved_by_libreoffice(program: str, content: bytes, folder) -> bytes:
    """The workbook as a real spreadsheet program saves it again (LibreOffice headless)."""
    (folder / "in").mkdir()
    (folder / "in" / "roster.xlsx").write_bytes(content)
    subprocess.run(
        [
            program,
            f"-env:UserInstallation={(folder / 'profile').as_uri()}",
            "--headless",
            "--convert-to",
            "xlsx:Calc MS Excel 2007 XML",
            "--outdir",
            str(folder / "out"),
            str(folder / "in" / "roster.xlsx"),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return (folder / "out" / "roster.xlsx").read_bytes()


@pytest.mark.libreoffice
def test_merged_cells_are_read_alike_from_a_workbook_a_spreadsheet_saved(soffice, tmp_path):  # noqa: F811
    # LibreOffice writes the cells a merge covers as empty styled cells of their own.
    rows = household(3, "C-1", 1) + household(2, "C-2", 4)
    rows[4]["family_name"], rows[4]["given_name"] = "Hosseini Ali", ""
    cases, names = letter("case_no"), f"{letter('family_name')}6:{letter('given_name')}6"
    content = saved_by_libreoffice(
        soffice, workbook(rows, merged=(f"{cases}2:{cases}4", f"{cases}5:{cases}6", names)), tmp_path
    )

    result = run(content, filename="roster.xlsx")

    assert result.merged == [f"{cases}2:{cases}4", f"{cases}5:{cases}6"]
    assert errors_seen(result) == [(6, "given_name", MERGED_ACROSS)]
    assert not Person.objects.exists()
