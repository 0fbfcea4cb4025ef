"""The fast writers of reports/exports.py against the plain ones: the XLSX rows written
straight to xlsxwriter's row file, and on PostgreSQL the CSV the server writes (COPY), give
what xlsxwriter's own cells and the csv module give, tricky text included."""

import csv
import datetime
import io
import random

import openpyxl
import pytest
import xlsxwriter
from django.db import connection
from django.http import QueryDict
from xlsxwriter.utility import _datetime_to_excel_datetime

from cases.models import Person, SpecificNeed
from reports import exports
from reports.exports import EXPORTS, WHITESPACE, Column, excel_day, export_rows, neutralise, write_xlsx
from tests.factories import CaseFactory, OfferFactory
from tests.reports.helpers import departed, incident, interview

FORMULA = "=+-@\t\r"
# Text that tests every rule: formulas behind white space of every kind, XML's special
# characters, control characters, xlsxwriter's _xHHHH_ escapes and rich-text markers, CSV's
# quotes, commas and line breaks, Persian with a zero-width non-joiner, white space at the ends.
TRICKY = [
    *(f"{space}{first}x" for space in ["", *WHITESPACE] for first in FORMULA),
    *(f"{space}x" for space in WHITESPACE),
    *(f"x{space}" for space in WHITESPACE),
    "\t \r=1",
    " \u3000@cmd",
    "a=b",
    "1+1",
    "O'Brien",
    'say "hi", then go',
    "line one\nline two",
    "line one\r\nline two",
    'ends with a quote"',
    "a & b < c > d",
    "_x0041_ stays _x0041_",
    "<r><t>rich?</t></r>",
    "bell\x07 and nul-free",
    "\ufffe\uffff",
    "می‌خواهم",
    "محمد حسینی",
    "عَلي",
    "🙂 emoji",
    "x" * 40_000,
]


def _read_xlsx(path) -> list[tuple]:
    book = openpyxl.load_workbook(path)
    return [tuple(c.value for c in row) for row in book.worksheets[0].iter_rows(min_row=2)]


def test_text_cells_read_back_as_xlsxwriter_writes_them_neutralised(tmp_path):
    ours, theirs = tmp_path / "ours.xlsx", tmp_path / "theirs.xlsx"
    columns = [Column("text", "text")]
    assert write_xlsx(str(ours), "T", iter([(value,) for value in TRICKY]), columns) == len(TRICKY)
    workbook = xlsxwriter.Workbook(str(theirs), {"constant_memory": True, "strings_to_formulas": False})
    sheet = workbook.add_worksheet("T")
    sheet.write_string(0, 0, "text")
    for row, value in enumerate(TRICKY, start=1):
        text = neutralise(value)
        if text.startswith("<r>") and text.endswith("</r>"):
            text = " " + text  # xlsxwriter would take it for rich text; we never do
        sheet.write_string(row, 0, text)
    workbook.close()
    expected = [(value.lstrip(" "),) if value.startswith(" <r>") else (value,) for (value,) in _read_xlsx(theirs)]
    assert _read_xlsx(ours) == expected
    assert ("'=x",) in expected and ("<r><t>rich?</t></r>",) in expected
    assert max(len(value) for (value,) in expected) == exports.XLSX_MAX_CHARS


def test_a_row_is_looked_at_cell_by_cell_wherever_a_cell_is_not_plain():
    """The row-wide searches never miss a cell the cell's own search would catch."""
    alphabet = [
        "a",
        "b",
        "1",
        " ",
        "\n",
        "\t",
        "\r",
        "=",
        "+",
        "-",
        "@",
        "&",
        "<",
        "_",
        "x",
        "0",
        "F",
        "\x01",
        "\u3000",
    ]
    randomly = random.Random(6)
    for _ in range(20_000):
        texts = ["".join(randomly.choices(alphabet, k=randomly.randint(0, 6))) for _ in range(randomly.randint(1, 4))]
        joined = "\n" + "\n".join(filter(None, texts)) + "\n"
        row_plain = not (
            exports._ROW_CHARS.search(joined) or exports._ROW_STARTS.search(joined) or exports._ROW_ENDS.search(joined)
        )
        if row_plain:
            assert not any(exports._NOT_PLAIN.search(text) for text in texts if text), texts


def test_every_kind_of_cell_reads_back_with_its_type(tmp_path):
    path = tmp_path / "kinds.xlsx"
    columns = [
        Column("text", "t"),
        Column("int", "i", kind="int"),
        Column("bool", "b", kind="bool"),
        Column("date", "d", kind="date"),
        Column("born", "y", kind="birth"),
        Column("codes", "c", kind="codes"),
        Column("when", "w", kind="datetime"),
    ]
    when = datetime.datetime(2026, 6, 1, 6, 30, tzinfo=datetime.UTC)
    rows = [
        ("a", 3, True, datetime.date(2027, 3, 1), datetime.date(1980, 5, 17), "z;b;a", when),
        ("", None, False, None, 2015, None, None),
    ]
    write_xlsx(str(path), "K", iter(rows), columns)
    assert _read_xlsx(path) == [
        (
            "a",
            3,
            True,
            datetime.datetime(2027, 3, 1),
            datetime.datetime(1980, 5, 17),
            "a;b;z",
            when.replace(tzinfo=None),
        ),
        (None, None, False, None, 2015, None, None),
    ]


def test_days_are_numbered_as_xlsxwriter_numbers_them_but_1_january_1900():
    day = datetime.date(1900, 1, 2)
    while day < datetime.date(2101, 1, 1):
        midnight = datetime.datetime.combine(day, datetime.time.min)
        assert excel_day(day) == _datetime_to_excel_datetime(midnight, False, True), day
        day += datetime.timedelta(days=1)
    assert excel_day(datetime.date(1900, 1, 1)) == 1  # xlsxwriter: 0, which Excel shows as 1900-01-00


def test_more_rows_than_a_sheet_holds_go_on_to_the_next_sheet(tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 4)
    path = tmp_path / "sheets.xlsx"
    assert write_xlsx(str(path), "S", iter([(str(n),) for n in range(7)]), [Column("n", "n")]) == 7
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["S", "S (2)", "S (3)"]
    assert [[c.value for c in row] for row in book["S (3)"].iter_rows()] == [["n"], ["6"]]


@pytest.mark.parametrize(
    "chunks",
    [
        [b'a,"b\nc",d\n', b"e\n"],
        [b'a,"b', b'\nc"', b",d\n"],
        [b'"say ""hi""\n', b'",x\n"', b'\n"\n'],
        [b"", b"x\n", b""],
    ],
)
def test_lf_ends_become_cr_lf_outside_quotes_whatever_the_chunks(chunks):
    whole = b"".join(chunks)
    assert b"".join(exports._crlf(chunks)) == b"".join(exports._crlf([whole]))
    reference = list(csv.reader(io.StringIO(whole.decode())))
    converted = b"".join(exports._crlf(chunks)).decode()
    assert list(csv.reader(io.StringIO(converted))) == reference
    assert converted.count("\r\n") == len(reference)


# PostgreSQL: the CSV the server writes is the csv module's, byte for byte.


def _tricky_rows() -> None:
    need_b, _ = SpecificNeed.objects.get_or_create(code="b-need", defaults={"label": "B"})
    need_a, _ = SpecificNeed.objects.get_or_create(code="a-need", defaults={"label": "A"})
    case = CaseFactory(size=0, notes='notes, "quoted"\r\nand =1')
    for index, value in enumerate(TRICKY):
        person = Person.objects.create(
            registration_no=f"X-{index:03d}",
            case=case,
            relationship="PA" if index == 0 else "child",
            family_name=value[:100],
            given_name=value[-100:],
            native_name="" if index % 3 else value[:200],
            sex="F",
            birth_year=1990,
            birth_date=datetime.date(1990, 1, 1 + index % 28) if index % 2 else None,
            nationality="IR",
            site=case.site,
            phone=value[:40],
            notes=value,
        )
        if index % 4 == 0:
            person.specific_needs.add(need_b, need_a)
    interview(case, "attended", notes="=notes")
    incident(case.members.first())
    departed(list(case.members.all()[:2]), offer=OfferFactory(conditions=" +conditions"))


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_on_postgresql_the_servers_csv_is_the_csv_modules(name):
    if connection.vendor != "postgresql":
        pytest.skip("the server writes CSV on PostgreSQL only")
    _tricky_rows()
    rows = export_rows(EXPORTS[name], QueryDict(), sensitive=True)
    copy = exports._copy(rows)
    if any(c.kind == "datetime" for c in rows.columns):
        assert copy is None  # local date-times are Python's to write
        return
    counts: list[int] = []
    served = b"".join(
        chunk if isinstance(chunk, bytes) else chunk.encode()
        for chunk in exports._copy_stream(*copy, header=exports._csv_header(rows.columns), on_done=counts.append)
    )
    written = "".join(exports._csv_stream(rows, rows.columns, on_done=counts.append)).encode()
    assert served == written
    assert counts[0] == counts[1] == len(list(csv.reader(io.StringIO(written.decode("utf-8-sig"))))) - 1 > 0


@pytest.mark.django_db
def test_on_postgresql_formulas_are_neutralised_as_in_python():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's regular expressions")
    expression = exports._COPY_CELLS["text"].format("t.v")
    values = [*TRICKY, "", "plain", *(f"{a}{b}{c}" for a in WHITESPACE for b in " \t" for c in "=x")]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {expression} FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n", [values])
        neutralised = [value for (value,) in cursor.fetchall()]
    assert neutralised == [neutralise(value) or None for value in values]
