"""Read an XLSX workbook's roster sheet in a process of its own, within limits.

calamine (Rust) reads a sheet ten times faster than openpyxl, but it trusts what a
workbook says about itself: a shared-strings count of four billion in a 5 KB file makes
it ask for 96 GB, and the failed allocation stops the whole process at once — the web
server's or the import worker's. So everything that reads a workbook's XML runs here, in
a child process whose memory and CPU time are capped: a workbook that asks for too much
stops the child alone, and the import refuses the file. cases.importing starts it.

The sheet read is the one the workbook opens on (its active sheet), as the person who
saved it last saw it, if that is a visible worksheet; else its first visible worksheet (a
hidden sheet or a chart sheet before it is passed over). Before calamine reads it,
its XML is looked through for how far its values reach: one stray value in cell
XFD1048576 would make calamine hold 17 billion cells; that file is refused with a message
that says so, where the cap alone would only say the file asked for too much. It is
also looked through for the cells whose number format changes what they say (a number
shown with leading zeros, a date shown as its year alone): calamine gives values only,
and those cells are given as the sheet shows them (format_kind).

Run as `python -I xlsx_reader.py MEMORY_BYTES CPU_SECONDS MAX_ROW`, with the workbook on
standard input. Standard output is JSON lines: first {"height": N, "sheet": NAME,
"sheets": HOW_MANY_VISIBLE_WORKSHEETS, "merged": [[TOP, LEFT, BOTTOM, RIGHT, "B2:B5"], …],
"hidden": [ROW, …]} (the merged cells: sheet rows from 1, and positions in the rows'
arrays; the hidden rows) — or
one of {"error": TEXT}, {"no_sheet": true}, {"too_far": "rows"|"columns"|"merged", "n": N},
{"error_cell": [ROW, COLUMN_LETTERS, CODE]} — then one array of rows per line (each row
an array of cell texts), then {"end": true} or {"error": TEXT}. Out of memory, it stops
without a word (exit status 3, or calamine's abort). Only the standard library and
python-calamine are imported: no Django.
"""

from __future__ import annotations

import datetime
import functools
import io
import itertools
import json
import os
import re
import resource
import sys
import zipfile
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

BATCH = 2_000
# The errors a spreadsheet shows in a cell whose formula failed, as a CSV export writes
# them. calamine reads an error cell as empty: it is given here as its code.
SPREADSHEET_ERRORS = frozenset(
    {"#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!", "#SPILL!", "#CALC!", "#FIELD!", "#BUSY!"}
    | {"#GETTING_DATA", "#CONNECT!", "#BLOCKED!", "#UNKNOWN!", "#EXTERNAL!", "#PYTHON!"}
)
# What a cell is given as when it holds a formula whose result the file does not hold
# (openpyxl writes formulas so: a spreadsheet works the result out when it opens the
# file; calamine reads the cell as empty). A cell's text holds this character only
# through the escape `_x001B_`, which no roster has; the mark counts in sheets only.
UNSAVED_FORMULA = "\x1b"
# What a cell is given as when merged cells cover it and show the value of a cell in
# another column (a merge across columns): the sheet shows no value of its own there.
# (Not a character str.isspace counts: a row of them is no empty row.)
MERGED_ACROSS = "\x18"
# The most columns a sheet may span (a roster has 13; an export may carry more).
MAX_COLUMNS = 100
# Parts of the workbook's own description larger than this are not parsed here.
_DESCRIPTION_BYTES = 10 << 20

# Every pattern below is bounded, so that a tag never closed costs a bounded scan.
_SHEET = re.compile(rb"<(?:[\w.-]{1,50}:)?sheet\b([^>]{0,4000})>")
_WORKBOOK_VIEW = re.compile(rb"<(?:[\w.-]{1,50}:)?workbookView\b([^>]{0,4000})>")
_RELATIONSHIP = re.compile(rb"<(?:[\w.-]{1,50}:)?Relationship\b([^>]{0,4000})>")
_ATTRIBUTES = re.compile(rb"""([\w:.-]{1,100})\s{0,10}=\s{0,10}(?:"([^"<]{0,2000})"|'([^'<]{0,2000})')""")
# A cell tag that does not begin with a plain reference (`<c r="B7"`), in any namespace.
_ODD_CELL = re.compile(rb'<c(?:[>\t\r\n/]| (?!r="[A-Z]{1,3}[0-9]{1,7}"))')
_PREFIXED_CELL = re.compile(rb":c[\s/>]")
_ROW_OR_CELL = re.compile(rb"<(?:[\w.-]{1,50}:)?(row|c)(?=[\s/>])([^>]{0,1000})>")
_ERROR_CELL = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"[^>]{0,1000}?\st="e"[^>]{0,1000}>')
_ERROR_TYPE = re.compile(rb"""(?:^|\s)t\s{0,10}=\s{0,10}["']e["']""")
_STRING_TYPE = re.compile(rb"""(?:^|\s)t\s{0,10}=\s{0,10}["']str["']""")
# A cell tag (written as spreadsheets write it) whose content begins with a formula.
_FORMULA_CELL = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"([^>]{0,1000})>(?=\s{0,100}<f[\s/>])')
# A cell's content from its formula to its result, if any: an inline string (group 1), or
# a value's tag (group 2: `<v xml:space="preserve">`, `<x:v>`), empty if it ends in "/>"
# or is followed by "</".
_FORMULA = re.compile(
    rb"\s{0,100}<(?:[\w.-]{1,50}:)?f(?=[\s/>])[^>]{0,1000}(?:(?<=/)>|>[^<]{0,100000}</(?:[\w.-]{1,50}:)?f>)"
    rb"\s{0,100}(?:(<(?:[\w.-]{1,50}:)?is(?=[\s/>]))|(<(?:[\w.-]{1,50}:)?v(?=[\s/>])[^>]{0,1000}>(?:\s{0,100}</)?))?"
)
# Where a piece of a sheet may end: before a row or a cell, so that a cell's formula and
# value come in the same piece as its tag.
_ROW_OR_CELL_START = re.compile(rb"<(?:[\w.-]{1,50}:)?(?:row|c)(?=[\s/>])")
_VALUE = re.compile(rb"<(?:[\w.-]{1,50}:)?v(?:\s[^>]{0,1000})?>([^<]{0,50})<")
_CHARACTER_REFERENCE = re.compile(r"&#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}));")
_REFERENCE = re.compile(rb"""(?:^|\s)r\s{0,10}=\s{0,10}["']([A-Za-z]{0,10})([0-9]{0,10})["']""")
# A row hidden (by hand, or by a filter): as spreadsheets write it, and as an attribute.
_HIDDEN_ROW = re.compile(rb'<row r="([0-9]{1,7})"[^>]{0,1000}?\shidden="(?:1|true)"')
_HIDDEN = re.compile(rb"""(?:^|\s)hidden\s{0,10}=\s{0,10}["'](?:1|true)["']""")


# A spreadsheet keeps 15 significant digits of a number: from here on, a whole number's
# last digits may be other than those typed (a long registration number typed into a
# cell that is not Text).
_EXACT_DIGITS = 1e15


def _scientific(value: float) -> str:
    """A number as a spreadsheet shows its 15 digits (1.23456789012346E+17)."""
    return f"{value:.15G}"


def cell_text(value: Any) -> str:
    """A cell's value as the text a CSV export of the sheet would hold; a number of more
    than 15 digits in scientific notation, as its digits beyond them are not what was typed."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, int | float) and abs(value) >= _EXACT_DIGITS:
        return _scientific(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# Number formats -----------------------------------------------------------------------------

# What a cell's number format changes in the text a CSV export of the sheet holds, where
# the roster reads it otherwise: a number's digits shown as the format's zeros and
# literal text ("digits": 123 as 00123 or R-00123 — a registration number kept with its
# zeros), a date shown as its year alone ("year": a birth of which only the year is known)
# or as its month and year ("month"), a date and time shown as the date ("date"). The
# kind, and for "digits" the format. calamine gives the cell's value only.
Kind = tuple[str, str]
# The built-in formats among those (their codes are not written in the workbook).
_BUILT_IN_FORMATS = {14: "mm-dd-yy", 15: "d-mmm-yy", 16: "d-mmm", 17: "mmm-yy", 22: "m/d/yy h:mm"}
# What a format shows literally: quoted text, an escaped character, a [colour], [$-locale]
# or [h] part, a padding or filling character.
_FORMAT_LITERALS = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]|[_*].')
# A format of digits (0: always shown, #: shown if the number has it) and literal text
# only (quoted, escaped, or one of the characters a format shows as they are; a currency
# [$€-407] shows its symbol, a [colour] or [$-locale] nothing, a padding _) or fill *-
# nothing that is read), and its parts.
_DIGITS_FORMAT = re.compile(r'(?:"[^"]{0,100}"|\\.|\[[^\]]{0,40}\]|[_*].|[0#]|[ \-()/:+$]){1,100}')
_DIGITS_PART = re.compile(r'"([^"]*)"|\\(.)|\[\$([^\]-]*)[^\]]*\]|\[[^\]]*\]|[_*].|([0#])|(.)')
_NUMBER_FORMAT = re.compile(rb"<(?:[\w.-]{1,50}:)?numFmt\b([^>]{0,4000})>")
_CELL_STYLES = re.compile(rb"<(?:[\w.-]{1,50}:)?cellXfs\b[^>]{0,4000}>")
_CELL_STYLES_END = re.compile(rb"</(?:[\w.-]{1,50}:)?cellXfs>")
_CELL_STYLE = re.compile(rb"<(?:[\w.-]{1,50}:)?xf\b([^>]{0,4000})>")
_STYLE = re.compile(rb"""(?:^|\s)s\s{0,10}=\s{0,10}["']([0-9]{1,7})["']""")
# A value with a fraction (a date's time), and the tag of the cell it begins.
_FRACTION = re.compile(rb"<v>[0-9]{1,10}\.[0-9]")
_VALUE_CELL = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"([^>]{0,1000})>\s{0,100}')


def format_kind(code: str) -> Kind | None:
    """What a number format's code (its first section: positive numbers) changes, if anything."""
    section = code.split(";", 1)[0]
    if _DIGITS_FORMAT.fullmatch(section) and "0" in "".join(part[3] for part in _DIGITS_PART.findall(section)):
        return None if section in ("0", "#", "#0") else ("digits", section)
    shown = _FORMAT_LITERALS.sub("", section).lower()
    if ("y" not in shown and "d" not in shown) or "h" in shown or "s" in shown or "a/p" in shown or "am/pm" in shown:
        return None
    if "d" not in shown:
        return ("month", "") if "m" in shown else ("year", "")
    return ("date", "")


def formatted(value: Any, kind: Kind) -> str:
    """A cell's value as its number format shows it (cell_text where the format does not matter)."""
    what, section = kind
    if what == "digits":
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and float(value).is_integer()
            and abs(value) < _EXACT_DIGITS
        ):
            return _digits(int(value), section)
    elif isinstance(value, datetime.date):  # a datetime too
        if what == "year":
            return f"{value.year:04d}"
        if what == "month":
            return f"{value.year:04d}-{value.month:02d}"
        return (value.date() if isinstance(value, datetime.datetime) else value).isoformat()
    return cell_text(value)


def _digits(number: int, section: str) -> str:
    """`number` as a format of digits and literal text shows it, as a spreadsheet fills
    the format's digits from the right: 1234 as 000-000 is 001-234, 5 as 000-## is
    000-5; digits beyond the format's go before its first."""
    zeros, parts = _digits_parts(section)
    digits = str(abs(number))
    sign = "-" if number < 0 else ""
    if parts is None:
        return sign + digits.zfill(zeros)
    shown: list[str] = []
    left = len(digits)
    first = next(at for at, (_text, digit) in enumerate(parts) if digit)
    for at in range(len(parts) - 1, -1, -1):
        text, digit = parts[at]
        if not digit:
            shown.append(text)
            continue
        if left:
            left -= 1
            shown.append(digits[left])
        elif digit == "0":
            shown.append("0")
        if at == first and left:
            shown.append(digits[:left])
    return sign + "".join(reversed(shown))


@functools.cache
def _digits_parts(section: str) -> tuple[int, list[tuple[str, str]] | None]:
    """A format of digits and literal text: how many digits it always shows (its zeros),
    and its parts, one a digit ("", "0" or "#") or a literal text (text, "") — None if it
    is zeros alone."""
    parts = [
        (quoted or escaped or currency or literal, digit)
        for quoted, escaped, currency, digit, literal in _DIGITS_PART.findall(section)
        if quoted or escaped or currency or digit or literal
    ]
    zeros = sum(digit == "0" for _text, digit in parts)
    return zeros, None if all(digit == "0" for _text, digit in parts) else parts


def number_formats(archive: zipfile.ZipFile) -> dict[int, Kind]:
    """The workbook's cell styles (by their position, as cells name them: `s="3"`) whose
    number format changes a value's text (format_kind)."""
    relations = _description(archive, "xl/_rels/workbook.xml.rels")
    path = "xl/styles.xml"
    for relation in _RELATIONSHIP.findall(relations):
        attributes = _attributes(relation)
        if attributes.get(b"Type", b"").endswith(b"/styles") and b"Target" in attributes:
            target = attributes[b"Target"].decode(errors="replace")
            path = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    styles = _description(archive, path)
    codes = dict(_BUILT_IN_FORMATS)
    for tag in _NUMBER_FORMAT.findall(styles):
        attributes = _attributes(tag)
        number = attributes.get(b"numFmtId", b"")
        if number.isdigit() and len(number) <= 6 and b"formatCode" in attributes:
            codes[int(number)] = _xml_text(attributes[b"formatCode"])
    start = _CELL_STYLES.search(styles)
    if start is None:
        return {}
    end = _CELL_STYLES_END.search(styles, start.end())
    kinds = {}
    for at, tag in enumerate(_CELL_STYLE.findall(styles, start.end(), end.start() if end else len(styles))):
        number = _attributes(tag).get(b"numFmtId", b"0")
        kind = format_kind(codes.get(int(number), "")) if number.isdigit() and len(number) <= 6 else None
        if kind is not None:
            kinds[at] = kind
    return kinds


# Which sheet ------------------------------------------------------------------------------


def _description(archive: zipfile.ZipFile, name: str) -> bytes:
    """A part of the workbook's own description; empty if missing or implausibly large."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return b""
    return archive.read(info) if info.file_size <= _DESCRIPTION_BYTES else b""


def active_sheet(archive: zipfile.ZipFile) -> int:
    """The position among all the workbook's sheets of the one it opens on (0 if it says none)."""
    view = _WORKBOOK_VIEW.search(_description(archive, "xl/workbook.xml"))
    tab = _attributes(view.group(1)).get(b"activeTab", b"0") if view else b"0"
    return int(tab) if tab.isdigit() and len(tab) <= 5 else 0


def sheet_paths(archive: zipfile.ZipFile) -> dict[str, str]:
    """The parts of the workbook's visible worksheets by name, in the workbook's order, as
    far as the workbook says plainly (its description may be laid out otherwise)."""
    workbook = _description(archive, "xl/workbook.xml")
    relations = _description(archive, "xl/_rels/workbook.xml.rels")
    targets = {}
    for relation in _RELATIONSHIP.findall(relations):
        attributes = _attributes(relation)
        if attributes.get(b"Type", b"").endswith(b"/worksheet") and b"Id" in attributes and b"Target" in attributes:
            target = attributes[b"Target"].decode(errors="replace")
            targets[attributes[b"Id"]] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    paths = {}
    for sheet in _SHEET.findall(workbook):
        attributes = _attributes(sheet)
        ids = [value for name, value in attributes.items() if name.endswith(b":id")]
        if attributes.get(b"state", b"visible") == b"visible" and ids and ids[0] in targets and b"name" in attributes:
            paths[_xml_text(attributes[b"name"])] = targets[ids[0]]
    return paths


def _attributes(tag: bytes) -> dict[bytes, bytes]:
    return {name: double or single for name, double, single in _ATTRIBUTES.findall(tag)}


def _xml_text(value: bytes) -> str:
    """An attribute's text, its entities and character references (`&amp;`, `&#1601;`) read
    as XML reads them (not as HTML does: `&#x96;` is U+0096, not a dash)."""

    def character(reference: re.Match[str]) -> str:
        hexadecimal, decimal = reference.groups()
        code = int(hexadecimal, 16) if hexadecimal else int(decimal)
        return chr(code) if code <= 0x10FFFF else reference.group(0)

    text = _CHARACTER_REFERENCE.sub(character, value.decode(errors="replace"))
    for escaped, plain in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        text = text.replace(escaped, plain)
    return text


# How far a sheet reaches --------------------------------------------------------------------


Cell = tuple[int, int]


class Reach(NamedTuple):
    """How far a sheet's values reach, and the cells calamine does not read as a CSV
    export would hold them."""

    # The furthest row if beyond the limit (else 0), the furthest column if beyond Z (else
    # at most 26).
    last_row: int
    last_column: int
    # The cells calamine would read as empty, by (row, column): an error cell's code, or
    # UNSAVED_FORMULA.
    errors: dict[Cell, str]
    # The cells whose number format changes their text (format_kind), by (row, column).
    formats: dict[Cell, Kind]
    # The rows hidden in the sheet (by hand, or by a filter).
    hidden: set[int]


def reach(archive: zipfile.ZipFile, paths: list[str], max_row: int, styles: dict[int, Kind] | None = None) -> Reach:
    """Reach of these parts; `styles` are the workbook's number_formats."""
    reaches = [_reach(archive, path, max_row, styles or {}) for path in paths]
    return Reach(
        max((r.last_row for r in reaches), default=0),
        max((r.last_column for r in reaches), default=0),
        {cell: code for r in reaches for cell, code in r.errors.items()},
        {cell: kind for r in reaches for cell, kind in r.formats.items()},
        set().union(*(r.hidden for r in reaches)),
    )


def _styled_cells(styles: dict[int, Kind]) -> re.Pattern[bytes] | None:
    """The pattern of the cells (written as spreadsheets write them) of the styles whose
    format shows a number's digits or a date's year or month."""
    numbers = b"|".join(str(style).encode() for style, kind in styles.items() if kind[0] != "date")
    if not numbers:
        return None
    return re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"(?=[^>]{0,1000}?\ss="(%s)")[^>]{0,1000}(?<!/)>' % numbers)


def _timed_cells(body: bytes, styles: dict[int, Kind]) -> Iterator[tuple[Cell, Kind]]:
    """The cells (written as spreadsheets write them) of the styles that show a date
    without its time, whose value holds a time (a fraction of a day). Looked for from
    those values: most dates have none."""
    for value in _FRACTION.finditer(body):
        start = body.rfind(b"<c ", max(0, value.start() - 1100), value.start())
        cell = _VALUE_CELL.match(body, start) if start >= 0 else None
        if cell is None or cell.end() != value.start():
            continue
        style = _STYLE.search(cell.group(3))
        kind = styles.get(int(style.group(1))) if style else None
        if kind is not None and kind[0] == "date":
            yield (int(cell.group(2)), column_number(cell.group(1))), kind


def _reach(archive: zipfile.ZipFile, name: str, limit: int, styles: dict[int, Kind]) -> Reach:
    """`reach` of one part, read a piece at a time.

    Spreadsheets begin every cell tag with its reference (`<c r="B7" …>`): then only the
    cells holding a value beyond column Z or in rows with as many digits as the limit are
    looked at. A sheet written otherwise (cells without their reference, a namespace
    prefix, other quotes) is read again tag by tag, as calamine places its cells.
    """
    # A value cell (not an empty, formatted one: `<c r="B7" s="1"/>`) outside A1:Z99999
    # (for a limit of six digits).
    digits = len(str(limit)) - 1
    far = re.compile(rb'<c r="(?![A-Z][0-9]{1,%d}")([A-Z]{1,3})([0-9]{1,7})"(?:[^>]{0,1000}[^/>])?>' % digits)
    last_row = last_column = 0
    errors: dict[Cell, str] = {}
    formats: dict[Cell, Kind] = {}
    hidden: set[int] = set()
    styled = _styled_cells(styles)
    timed = any(kind[0] == "date" for kind in styles.values())
    for body in _pieces(archive, name):
        if _ODD_CELL.search(body) or _PREFIXED_CELL.search(body):
            return _reach_tag_by_tag(archive, name, styles)
        if b"hidden=" in body:
            hidden.update(int(row) for row in _HIDDEN_ROW.findall(body))
        for letters, row_digits in far.findall(body):
            last_column = max(last_column, column_number(letters))
            if (row := int(row_digits)) > limit:
                last_row = max(last_row, row)
        if b't="e"' in body:
            for cell in _ERROR_CELL.finditer(body):
                errors[int(cell.group(2)), column_number(cell.group(1))] = _error_code(body, cell.end())
        if b"<f" in body:
            for cell in _FORMULA_CELL.finditer(body):
                if _unsaved(body, cell.end(), cell.group(3)):
                    errors.setdefault((int(cell.group(2)), column_number(cell.group(1))), UNSAVED_FORMULA)
        if styled:
            for letters, row_digits, style in styled.findall(body):
                formats[int(row_digits), column_number(letters)] = styles[int(style)]
        if timed:
            formats.update(_timed_cells(body, styles))
    return Reach(last_row, last_column, errors, formats, hidden)


def _unsaved(body: bytes, end: int, attributes: bytes) -> bool:
    """Whether the cell whose tag (with these attributes) ends at `end` holds a formula
    and no result: no value, or an empty one where the result is not a text (an empty
    text is a result)."""
    formula = _FORMULA.match(body, end)
    if formula is None:
        return False
    inline, value = formula.groups()
    if inline:
        return False
    return value is None or (value.endswith((b"/>", b"</")) and not _STRING_TYPE.search(attributes))


def _error_code(body: bytes, end: int) -> str:
    """The code of the error cell whose tag ends at `end` (#N/A if it cannot be told)."""
    value = _VALUE.search(body, end, end + 100_000)
    code = value.group(1).decode(errors="replace").strip() if value else ""
    return code if code in SPREADSHEET_ERRORS else "#N/A"


def _reach_tag_by_tag(archive: zipfile.ZipFile, name: str, styles: dict[int, Kind]) -> Reach:
    """_reach for a sheet not written as spreadsheets write it: a cell without its
    reference is the next one in its row; a row without its number the next row. A cell
    that is not empty (`<c …/>`) counts as holding a value."""
    last_row = last_column = row = column = 0
    errors: dict[Cell, str] = {}
    formats: dict[Cell, Kind] = {}
    hidden: set[int] = set()
    for body in _pieces(archive, name):
        for tag in _ROW_OR_CELL.finditer(body):
            element, attributes = tag.groups()
            reference = _REFERENCE.search(attributes)
            letters, digits = reference.groups() if reference else (b"", b"")
            if element == b"row":
                row, column = (int(digits) if digits else row + 1), 0
                if _HIDDEN.search(attributes):
                    hidden.add(row)
                continue
            column = column_number(letters.upper()) if letters else column + 1
            row = int(digits) if digits else row
            if not attributes.endswith(b"/"):
                last_row, last_column = max(last_row, row), max(last_column, column)
                if _ERROR_TYPE.search(attributes):
                    errors[row, column] = _error_code(body, tag.end())
                elif _unsaved(body, tag.end(), attributes):
                    errors[row, column] = UNSAVED_FORMULA
                elif styles and (style := _STYLE.search(attributes)) and int(style.group(1)) in styles:
                    formats[row, column] = styles[int(style.group(1))]
    return Reach(last_row, last_column, errors, formats, hidden)


def _pieces(archive: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    """A part's XML a megabyte at a time, each piece ending before the last row or cell
    that begins near its end (else before the last tag), which comes whole with the next."""
    tail = b""
    with archive.open(name) as part:
        while chunk := part.read(1 << 20):
            text = tail + chunk
            cut = _last_row_or_cell(text)
            cut = text.rfind(b"<", max(0, len(text) - 4096)) if cut < 0 else cut
            cut = len(text) if cut < 0 else cut
            yield text[:cut]
            tail = text[cut:]
    yield tail


def _last_row_or_cell(text: bytes) -> int:
    """Where the last row or cell begins in the last 200 KB of `text` (a cell holds at
    most a formula and a value of some 32,000 characters), or -1."""
    for near in (4096, 200 << 10):
        starts = [start.start() for start in _ROW_OR_CELL_START.finditer(text, max(0, len(text) - near))]
        if starts:
            return starts[-1]
    return -1


def _column_letters(number: int) -> str:
    """1 = A, 27 = AA."""
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_number(letters: bytes) -> int:
    """A = 1, Z = 26, AA = 27, XFD = 16,384."""
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


# Reading ------------------------------------------------------------------------------------


def read(content: bytes, max_row: int, out: IO[bytes]) -> None:
    def send(message: Any) -> None:
        out.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")

    from python_calamine import CalamineError, CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(content))
        sheets = workbook.sheets_metadata
        visible = [
            sheet.name
            for sheet in sheets
            if sheet.typ == SheetTypeEnum.WorkSheet and sheet.visible == SheetVisibleEnum.Visible
        ]
        if not visible:
            send({"no_sheet": True})
            return
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            active = active_sheet(archive)
            name = sheets[active].name if active < len(sheets) and sheets[active].name in visible else visible[0]
            plain = sheet_paths(archive)
            path = plain.get(name)
            # A workbook laid out otherwise: every XML part is looked through.
            paths = [path] if path in archive.namelist() else [n for n in archive.namelist() if n.endswith(".xml")]
            last_row, last_column, errors, formats, hidden = reach(archive, paths, max_row, number_formats(archive))
        if last_row > max_row or last_column > MAX_COLUMNS:
            too_far = "rows" if last_row > max_row else "columns"
            send({"too_far": too_far, "n": last_row if too_far == "rows" else last_column})
            return
        try:
            sheet = workbook.get_sheet_by_name(name)
        except CalamineError:
            failed = sorted((cell, code) for cell, code in errors.items() if code != UNSAVED_FORMULA)
            if failed:  # calamine knows the older error codes only
                (row, column), code = failed[0]
                send({"error_cell": [row, _column_letters(column), code]})
                return
            raise
        # iter_rows starts at the sheet's first row, empty rows included (row numbers
        # hold), but at the first column that holds a value. The cells calamine reads as
        # empty may lie beyond its last row or column: they are given too ...
        first_row, first_column = sheet.start or (0, 0)
        height = max(first_row + sheet.height, max((row for row, _column in errors), default=0))
        # ... or before its first column: then every row is given from that column on.
        shift = max(0, first_column + 1 - min((column for _row, column in errors), default=first_column + 1))
        ranges = sheet.merged_cell_ranges or []
        if len(ranges) > 4 * max_row:
            send({"too_far": "merged", "n": len(ranges)})
            return
        merged = [
            [top + 1, left - first_column + shift, bottom + 1, right - first_column + shift]
            + [f"{_column_letters(left + 1)}{top + 1}:{_column_letters(right + 1)}{bottom + 1}"]
            for (top, left), (bottom, right) in ranges
            if (top, left) != (bottom, right) and top < height
        ]
        shown = {"height": height, "sheet": name, "sheets": len(visible), "merged": merged}
        send({**shown, "hidden": sorted(row for row in hidden if row <= height)})
        by_row: dict[int, list[tuple[int, str]]] = {}
        for (row, column), code in errors.items():
            by_row.setdefault(row, []).append((column - 1 - first_column + shift, code))
        formats_by_row: dict[int, list[tuple[int, Kind]]] = {}
        for (row, column), kind in formats.items():
            formats_by_row.setdefault(row, []).append((column - 1 - first_column, kind))
        batch: list[list[str]] = []
        rows = itertools.chain(sheet.iter_rows(), itertools.repeat((), height - first_row - sheet.height))
        for row, values in enumerate(rows, start=1):
            cells = [value if type(value) is str else cell_text(value) for value in values]
            for at, kind in formats_by_row.get(row, ()):
                if 0 <= at < len(cells):
                    cells[at] = formatted(values[at], kind)
            if shift:
                cells[:0] = [""] * shift
            for at, code in by_row.get(row, ()):
                if at >= len(cells):
                    cells.extend([""] * (at + 1 - len(cells)))
                cells[at] = code
            batch.append(cells)
            if len(batch) == BATCH:
                send(batch)
                batch = []
        send(batch)
    except BaseException as exc:  # calamine panics are BaseExceptions
        # Beyond the memory cap (in Python, or where calamine makes a Python value):
        # stopped without a word, as when calamine's own allocation fails.
        if isinstance(exc, MemoryError) or "pointer is null" in str(exc):
            os._exit(3)
        # Every other failure is the file's.
        send({"error": f"{type(exc).__name__}: {exc}"[:500]})
        return
    send({"end": True})


def main(memory: int, cpu_seconds: int, max_row: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    read(sys.stdin.buffer.read(), max_row, sys.stdout.buffer)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
