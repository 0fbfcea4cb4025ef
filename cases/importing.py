"""Roster import: the one code path behind the admin's import screen and `manage.py import_roster`.

A file (CSV in UTF-8 with or without BOM, or XLSX) is read whole, every row is checked
against the roster format of DESIGN.md and against the database, and only a file
without a single error is written, in one transaction. Every error carries the line
(CSV: the physical line where the record starts; XLSX: the sheet row) and the column.

Re-imports are keyed on registration_no: a row equal to the person on record writes
nothing (no history row); a changed row updates the person and records history. An
optional column left out of the file leaves that field as it is; present but empty,
it clears the field.

Cell values that a spreadsheet would run as a formula (starting with =, @, or + / -
when they are not a number or phone number) are stored with a leading apostrophe, the
convention spreadsheets themselves use for "this is text". Leading and trailing
white space, tabs and line breaks included, is stripped from every cell. An XLSX
formula cell is read as the value the spreadsheet last computed.

Probable duplicates (same name in another transliteration or in native script, same
birth date or year) are reported, never merged, each as strong (the same date of birth,
other than 1 January, and sex) or possible (a year of birth alone, or another sex, or
1 January, the date registrations write for a year alone, or a day and month swapped).
Latin names alike whose native names, both written, differ are no pair: the
native name is the name as the person writes it, and Hassan (حسن) and Hussein (حسین)
only meet in the Latin key.

On PostgreSQL the checked rows are copied (COPY) into a temporary table, and the
database does the comparing and the writing: which rows are new, changed or unchanged
is one query (an unchanged re-import brings nothing back to Python), and new cases and
persons are inserted together with their history rows and needs by INSERT … SELECT
statements. Elsewhere (SQLite) the same is done in Python with bulk_create. Changed
persons go through simple-history's bulk_update_with_history. Either way every new or
changed person gets a history row, and an unchanged one none.

`progress(stage, done, total)`, when given, is called as the import goes: "reading"
(done and total count the file's lines), "checking" and "writing" (they count rows),
at most about every 2% of the way and at each stage's start and end.
"""

import contextlib
import csv
import datetime
import difflib
import functools
import gc
import hashlib
import heapq
import io
import itertools
import json
import logging
import math
import operator
import os
import re
import subprocess
import sys
import threading
import time
import unicodedata
import zipfile
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any

import openpyxl
import openpyxl.styles
import openpyxl.utils
import openpyxl.worksheet.datavalidation
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower, Replace
from django.template.defaultfilters import filesizeformat
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django_countries import countries
from simple_history.utils import bulk_update_with_history

from cases import workflow
from cases.countries import country_by_name
from cases.models import (
    Case,
    CaseStatus,
    DistinctPersons,
    Person,
    Relationship,
    ResidenceStatus,
    RosterImport,
    RosterImportOutcome,
    Sex,
    Site,
    SpecificNeed,
    full_name,
)
from cases.names import (
    NAME_KEY_LENGTH,
    STORED_KEYS,
    match_keys,
    name_key,
    native_spelling,
    native_words,
    word_keys,
    words,
)
from cases.xlsx_reader import MERGED_ACROSS, SPREADSHEET_ERRORS, UNSAVED_FORMULA

User = Any

COLUMNS = (
    "registration_no",
    "case_no",
    "relationship",
    "family_name",
    "given_name",
    "native_name",
    "sex",
    "date_of_birth",
    "nationality",
    "site",
    "specific_needs",
    "phone",
    "notes",
)
REQUIRED_COLUMNS = (
    "registration_no",
    "case_no",
    "relationship",
    "family_name",
    "given_name",
    "sex",
    "date_of_birth",
    "nationality",
    "site",
)
# Optional columns map to these Person fields; left out of a file, the field is kept.
OPTIONAL_TEXT_COLUMNS = ("native_name", "phone", "notes")

# The example row of the downloadable template.
# The template's example row shows every column filled in. Its registration number is
# refused, so that a template imported as it is adds no made-up person.
TEMPLATE_EXAMPLE = {
    "registration_no": "EXAMPLE-0001",
    "case_no": "EXAMPLE-C1",
    "relationship": "PA",
    "family_name": "Hosseini",
    "given_name": "Mohammad",
    "native_name": "محمد حسینی",
    "sex": "M",
    "date_of_birth": "1985-03-21",
    "nationality": "IR",
    "site": "Camp Liberty",
    "specific_needs": "medical_condition;disability",
    "phone": "+964 750 123 4567",
    "notes": "",
}

# An XLSX is a zip: refuse one that unpacks to far more than any roster within the
# byte limit would.
XLSX_MAX_EXPANSION = 10
_XLSX_READER = Path(__file__).with_name("xlsx_reader.py")
# The CPU time it may take (a 200,000-row sheet takes about two seconds); it is stopped
# after twice that in all, since a child stuck (in a deadlock, say) uses none.
_XLSX_READER_SECONDS = 60

logger = logging.getLogger(__name__)
# Errors kept on the RosterImport record (all of them are in the result and report).
RECORDED_ERRORS = 200
_BATCH = 2000
# What the XLSX reader gives for a cell whose formula has no value (xlsx_reader).
_SHEET_NOT_VALUES = SPREADSHEET_ERRORS | {UNSAVED_FORMULA, MERGED_ACROSS}
# The marks of a sheet's cells that hold no value of their own, read as empty outside the
# roster's columns.
_SHEET_MARKS = (UNSAVED_FORMULA, MERGED_ACROSS)
# The new persons are written in this many statements, so that the progress bar moves
# while they are. Few: the triggers of each statement (the dashboard's figures) join
# the rows written to whole tables, by hashing them under the import's planner settings
# (_stage); a roster of 100,000 took 0.5 s longer in 20 statements than in 4, and 4 as
# long as 1 (a median of three on the 2-core machine, PostgreSQL 15).
_WRITE_STATEMENTS = 4


def max_rows() -> int:
    return settings.ROSTER_IMPORT_MAX_ROWS


def max_bytes() -> int:
    return settings.ROSTER_IMPORT_MAX_BYTES


def size_limit() -> str:
    """max_bytes as people read it: 50.0 MB, 200 bytes."""
    return filesizeformat(max_bytes()).replace("\N{NO-BREAK SPACE}", " ")


def too_large() -> str:
    """The refusal of a file over the byte limit (on upload, or by the import itself)."""
    return _(
        "The file is larger than the limit of %(size)s for one import; split it and import the parts one by one."
    ) % {"size": size_limit()}


@dataclass(frozen=True, slots=True)
class RowError:
    """A reason for refusing the file. line is None for the file as a whole."""

    line: int | None
    column: str
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        if not self.column:
            return _("Line %(line)d: %(message)s") % {"line": self.line, "message": self.message}
        return _("Line %(line)d, %(column)s: %(message)s") % {
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


class DuplicateStrength(models.TextChoices):
    STRONG = "strong", gettext_lazy("strong")
    POSSIBLE = "possible", gettext_lazy("possible")


STRENGTH_LINES = {
    DuplicateStrength.STRONG: gettext_lazy("strong: same date of birth and sex"),
    DuplicateStrength.POSSIBLE: gettext_lazy("possible"),
}


@dataclass(frozen=True)
class ProbableDuplicate:
    """Two records that look like one person. Shown for a person to decide; never merged.

    strong when both have the same full date of birth (not 1 January, which registrations
    write for a year alone) and the same sex; possible when
    either has a year of birth alone, or their sexes differ, or their dates differ but
    may be one (1 January for a year alone, a day and month swapped). Sex, case number,
    relationship and native name are as written (the file's codes), for both sides."""

    line: int
    registration_no: str
    name: str
    # other_line is None when the other record is already in the database.
    other_line: int | None
    other_registration_no: str
    other_name: str
    birth: str
    reason: str
    other_birth: str = ""
    strength: str = DuplicateStrength.POSSIBLE
    sex: str = ""
    other_sex: str = ""
    case_no: str = ""
    other_case_no: str = ""
    relationship: str = ""
    other_relationship: str = ""
    native_name: str = ""
    other_native_name: str = ""

    def __str__(self) -> str:
        where = _("line %(line)d") % {"line": self.other_line} if self.other_line is not None else _("the database")
        return _(
            "Line %(line)d: %(name)s (%(reg)s) may be %(other)s (%(other_reg)s) in %(where)s: %(reason)s; %(strength)s"
        ) % {
            "line": self.line,
            "name": self.name,
            "reg": self.registration_no,
            "other": self.other_name,
            "other_reg": self.other_registration_no,
            "where": where,
            "reason": self.reason,
            "strength": STRENGTH_LINES[DuplicateStrength(self.strength)],
        }


def strongest_first(duplicates: list[ProbableDuplicate]) -> list[ProbableDuplicate]:
    """The strong pairs, then the possible ones, each in the order found (file order)."""
    return sorted(duplicates, key=lambda duplicate: duplicate.strength != DuplicateStrength.STRONG)


def strength_counts(duplicates: list[ProbableDuplicate]) -> tuple[int, int]:
    """How many pairs are strong, and how many possible."""
    strong = sum(1 for duplicate in duplicates if duplicate.strength == DuplicateStrength.STRONG)
    return strong, len(duplicates) - strong


def strength_line(strong: int, possible: int) -> str:
    return _("%(strong)s strong: same date of birth and sex; %(possible)s possible") % {
        "strong": _grouped(strong),
        "possible": _grouped(possible),
    }


def _grouped(number: int) -> str:
    """120,000 rather than 120000 (in the language's own way)."""
    return number_format(number, force_grouping=True)


# The merged cells or hidden rows a result names at most (the count of the others follows).
_SHOWN_AT_MOST = 10


def _first_and_more(items: list[str]) -> str:
    """ "B2:B4, B5:B6" or, beyond _SHOWN_AT_MOST, the first ones "and 2 more"."""
    shown = ", ".join(items[:_SHOWN_AT_MOST])
    if len(items) <= _SHOWN_AT_MOST:
        return shown
    more = len(items) - _SHOWN_AT_MOST
    return ngettext("%(items)s and %(n)s more", "%(items)s and %(n)s more", more) % {
        "items": shown,
        "n": _grouped(more),
    }


@dataclass
class ImportResult:
    filename: str
    dry_run: bool
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    cases_new: int = 0
    errors: list[RowError] = field(default_factory=list)
    duplicates: list[ProbableDuplicate] = field(default_factory=list)
    # What the list of probable duplicates leaves out (_DuplicateSearch.notice), if anything.
    duplicates_notice: str = ""
    # The pairs not listed because they were marked as different persons (DistinctPersons).
    duplicates_decided: int = 0
    # What writing the file does, as a digest (_outcome): the check's is given back to
    # the import (roster_import's `seen`), which writes nothing if it differs.
    outcome: str = ""
    changed_since_check: bool = False
    record: RosterImport | None = None
    # The sheet read, where the workbook had more than one visible worksheet (their number).
    sheet: str = ""
    sheets: int = 0
    # The header's other columns, which are not read (as the header names them).
    not_read: list[str] = field(default_factory=list)
    # The cells merged down a roster column, read as their value on each row they span
    # (as a spreadsheet names them: "B2:B5").
    merged: list[str] = field(default_factory=list)
    # The rows of persons hidden in the sheet (by hand, or by a filter), read like the others.
    hidden: list[int] = field(default_factory=list)
    # The registration number and name written on each line with an error (for the
    # report, where an error is sorted or filtered by person).
    error_people: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if not self.ok:
            return ngettext(
                "%(file)s refused: %(n)s error; nothing was imported.",
                "%(file)s refused: %(n)s errors; nothing was imported.",
                len(self.errors),
            ) % {"file": self.filename, "n": _grouped(len(self.errors))}
        rows = ngettext("%(n)s row", "%(n)s rows", self.rows) % {"n": _grouped(self.rows)}
        cases = ngettext("%(n)s new case", "%(n)s new cases", self.cases_new) % {"n": _grouped(self.cases_new)}
        text = _("%(rows)s: %(new)s new, %(updated)s updated, %(unchanged)s unchanged; %(cases)s.") % {
            "rows": rows,
            "new": _grouped(self.new),
            "updated": _grouped(self.updated),
            "unchanged": _grouped(self.unchanged),
            "cases": cases,
        }
        if self.dry_run:
            # A check (the admin's first step, the command's --dry-run) writes nothing.
            return _("Checked, nothing written yet. %(text)s") % {"text": text}
        return text

    def sheet_line(self) -> str:
        """Which sheet was read, where there was a choice ("" otherwise)."""
        if not self.sheet:
            return ""
        return _("Read from the sheet “%(sheet)s”, one of %(n)s in the workbook.") % {
            "sheet": self.sheet,
            "n": self.sheets,
        }

    def not_read_line(self) -> str:
        """The header's columns that are not the roster's, and were not read ("" if none)."""
        if not self.not_read:
            return ""
        return _("Columns not read (not roster columns): %(columns)s.") % {"columns": ", ".join(self.not_read)}

    def merged_line(self) -> str:
        """The merged cells read as their value on each row they span ("" if none)."""
        if not self.merged:
            return ""
        return _(
            "Merged cells were read as their value on each row they span (check that each of those rows"
            " should have it): %(cells)s."
        ) % {"cells": _first_and_more(self.merged)}

    def hidden_line(self) -> str:
        """The rows hidden in the sheet and read like the others ("" if none)."""
        if not self.hidden:
            return ""
        return ngettext(
            "A row hidden in the sheet (by hand or by a filter) was read like the others: line %(lines)s."
            " Delete it from the file if it is not to be imported.",
            "Rows hidden in the sheet (by hand or by a filter) were read like the others: lines %(lines)s."
            " Delete those that are not to be imported.",
            len(self.hidden),
        ) % {"lines": _first_and_more([str(line) for line in self.hidden])}

    def report_lines(self) -> list[str]:
        lines = [self.summary()]
        if self.sheet:
            lines.append(self.sheet_line())
        if self.not_read:
            lines.append(self.not_read_line())
        if self.merged:
            lines.append(self.merged_line())
        if self.hidden:
            lines.append(self.hidden_line())
        lines += [str(error) for error in self.errors]
        if self.duplicates:
            lines.append(
                _("Probable duplicates (not merged; check them), %(strengths)s:")
                % {"strengths": strength_line(*strength_counts(self.duplicates))}
            )
            lines += [str(duplicate) for duplicate in strongest_first(self.duplicates)]
        if self.duplicates_notice:
            lines.append(self.duplicates_notice)
        if self.duplicates_decided:
            lines.append(self.decided_line())
        return lines

    def decided_line(self) -> str:
        return ngettext(
            "%(n)s pair marked earlier as different persons is not listed.",
            "%(n)s pairs marked earlier as different persons are not listed.",
            self.duplicates_decided,
        ) % {"n": _grouped(self.duplicates_decided)}


class _Refused(Exception):
    """The file cannot be read at all (format, size, encoding, header)."""

    def __init__(self, *errors: RowError) -> None:
        super().__init__(errors)
        self.errors = list(errors)


# Reading ---------------------------------------------------------------------------------


Progress = Callable[[str, int, int], None]


class _Progress:
    """Calls the caller's progress(stage, done, total) at most every ~2% of `total`.

    Loops compare `done >= self.next` themselves (no call per row); without a
    callback `next` is never reached.
    """

    STEPS = 50

    def __init__(self, callback: Progress | None) -> None:
        self.callback = callback
        self.stage = ""
        self.total = 0
        self.step = 1
        self.next = sys.maxsize

    def start(self, stage: str, total: int, done: int = 0) -> None:
        self.stage, self.total = stage, total
        self.step = max(1, total // self.STEPS)
        self.report(done)

    def report(self, done: int) -> None:
        if self.callback is None:
            return
        done = min(done, self.total)
        self.next = done + self.step
        self.callback(self.stage, done, self.total)


def _csv_rows(content: bytes) -> tuple[int, Generator[tuple[int, list[str]]]]:
    """The number of physical lines, and the records with the line each starts on."""
    if content[:200].count(0) > 50:
        # Text in UTF-16 without its byte order mark: a 0 byte every other byte.
        raise _Refused(
            RowError(None, "", _("The file looks like UTF-16 text, not UTF-8. Save it as “CSV UTF-8” and try again."))
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Refused(
            RowError(
                None,
                "",
                _("The file is not UTF-8 text (byte %(at)d). Save it as “CSV UTF-8” and try again.")
                % {"at": exc.start + 1},
            )
        ) from exc
    # Some tools write the byte order mark twice.
    text = text.lstrip("\ufeff")
    # And some end the file with DOS's end-of-file character (Ctrl-Z), which is no line.
    if text.rstrip("\r\n").endswith("\x1a"):
        text = text.rstrip("\r\n")[:-1]
    lines = max(text.count("\n"), text.count("\r")) + (0 if text.endswith(("\n", "\r")) else 1)
    return lines, _csv_records(text)


def _names_a_column(line: str) -> bool:
    """Whether a line of a CSV names a roster column, whatever its separator."""
    return any(_header_key(cell.strip('"')) in _HEADER_KEYS for cell in re.split(r"[,;\t]", line))


def _csv_records(text: str) -> Generator[tuple[int, list[str]]]:
    # Excel's first line "sep=;" names the separator, and is no row.
    skipped = 0
    if text[:4].casefold() == "sep=" and text[4:5] not in ("", "\r", "\n", '"') and text[5:6] in ("\r", "\n", ""):
        delimiter = text[4:5]
        text = text[6:].removeprefix("\n") if text[5:6] == "\r" else text[6:]
        skipped = 1
    else:
        # The header row: the first line that names a roster column (a title may stand
        # above it), else the first that is not blank. Spreadsheets in many locales save
        # CSV with semicolons, and text exports use tabs.
        lines = [line for line in itertools.islice(io.StringIO(text), 100) if line.strip()]
        header = next((line for line in lines if _names_a_column(line)), lines[0] if lines else "")
        delimiter = max((",", ";", "\t"), key=header.count)
    # However long a cell, it is read, and refused by its column's limit with its line.
    csv.field_size_limit(max(csv.field_size_limit(), max_bytes()))
    # Strict: a quote left open would otherwise make the rest of the file one cell, and
    # the rows in it would be lost without a word.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1 + skipped
    try:
        for values in reader:
            yield start, values
            start = reader.line_num + 1 + skipped
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            message = _('A quote (") opened on this line is never closed, so the rest of the file cannot be read.')
        else:
            message = _("This line cannot be read as CSV (%(error)s).") % {"error": exc}
        raise _Refused(RowError(start, "", message)) from exc


# What an ODS or XLSB workbook holds and an XLSX does not.
_OTHER_WORKBOOK_PARTS = frozenset({"mimetype", "content.xml", "xl/workbook.bin"})


def _unreadable() -> _Refused:
    return _Refused(RowError(None, "", _("The file is not a readable XLSX workbook.")))


@dataclass
class _Merge:
    top: int
    left: int
    bottom: int
    right: int
    cells: str  # as a spreadsheet names them: "B2:B5"
    value: str = ""


class _Merges:
    """A sheet's merged cells, as a spreadsheet shows them, row by row.

    Merged cells show the value of their first cell. Merged down one column (a case
    number merged down a household), each row they span that holds a value of its own in
    the roster's columns is given that value (a blank row, or a total beside the roster,
    stays as empty as it is); `filled` keeps which (cells, position, top row). Merged
    across columns, the other columns show no value of their own: their cells are given
    as MERGED_ACROSS, refused on a roster column. At most a sheet's width of them is open
    on any row."""

    def __init__(self, ranges: list[list[Any]]) -> None:
        self.waiting = sorted((_Merge(*merge) for merge in ranges), key=operator.attrgetter("top"), reverse=True)
        self.open: list[_Merge] = []
        self.filled: list[tuple[str, int, int]] = []

    def __bool__(self) -> bool:
        return bool(self.waiting or self.open)

    def apply(self, row: int, values: list[str], read: AbstractSet[int]) -> list[str]:
        """The row's values as the sheet shows them; `read` are the roster's positions."""
        while self.waiting and self.waiting[-1].top <= row:
            self.open.append(self.waiting.pop())
        if not self.open:
            return values
        values = list(values)
        values.extend([""] * (max(merge.right for merge in self.open) + 1 - len(values)))
        held = any(values[at].strip() for at in read if at < len(values))
        for merge in self.open:
            if merge.left < 0:  # before the sheet's first value: empty
                continue
            if row == merge.top:
                merge.value = values[merge.left]
                if merge.left == merge.right and merge.value.strip():
                    self.filled.append((merge.cells, merge.left, merge.top))
            if not merge.value.strip():
                continue
            if merge.left == merge.right:
                if held and not values[merge.left].strip():
                    values[merge.left] = merge.value
                continue
            for at in range(merge.left + (row == merge.top), merge.right + 1):
                values[at] = MERGED_ACROSS
        self.open = [merge for merge in self.open if merge.bottom > row]
        return values

    def below(self, row: int, positions: Iterable[int]) -> list[str]:
        """The merged cells that span this row and the next in one of these positions."""
        wanted = set(positions)
        return [
            merge.cells
            for merge in self.open
            if merge.top <= row < merge.bottom and wanted.intersection(range(merge.left, merge.right + 1))
        ]


class _SheetReader:
    """The rows of an XLSX sheet as cases.xlsx_reader, run as a child process, reads them.

    Iterating gives (sheet row number, cell texts); `merges` gives them as the sheet shows
    its merged cells. close() stops the child (also when the rows were never asked for)."""

    def __init__(self, content: bytes) -> None:
        self.size = len(content)
        # The sheet read, and how many visible worksheets the workbook has (its first message).
        self.name = ""
        self.sheets = 0
        self.merges = _Merges([])
        # The sheet's hidden rows (by hand, or by a filter).
        self.hidden: frozenset[int] = frozenset()
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter and script, no shell
            [
                sys.executable,
                "-I",
                str(_XLSX_READER),
                str(settings.ROSTER_IMPORT_XLSX_MEMORY_MB << 20),
                str(_XLSX_READER_SECONDS),
                str(max_rows() + 1_000),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # Out of memory while it reports a panic, calamine would wait forever for a
            # lock it holds if it were printing the panic's backtrace as well.
            env={**os.environ, "RUST_BACKTRACE": "0"},
        )
        self.deadline = threading.Timer(2 * _XLSX_READER_SECONDS, self.process.kill)
        self.deadline.daemon = True
        self.deadline.start()
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None  # both PIPE
        self.stdout = stdout
        # The child reads the whole workbook before it writes anything.
        with contextlib.suppress(BrokenPipeError):
            stdin.write(content)
        with contextlib.suppress(BrokenPipeError):
            stdin.close()

    def message(self) -> Any:
        """The child's next message; None if it stopped before it said one whole."""
        line = self.stdout.readline()
        try:
            return json.loads(line) if line.endswith(b"\n") else None
        except ValueError:
            return None

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        number = 0
        try:
            while isinstance(message := self.message(), list):
                for values in message:
                    number += 1
                    yield number, values
            if not (isinstance(message, dict) and message.get("end")):
                raise self.stopped() if message is None else _unreadable()
        finally:
            self.close()

    def close(self) -> None:
        self.deadline.cancel()
        self.process.kill()
        self.stdout.close()
        self.process.wait()

    def stopped(self) -> _Refused:
        """The refusal of a file whose reading stopped the child: it asked for more memory
        or time than allowed."""
        self.close()
        logger.warning(
            "The XLSX reader stopped (exit status %s) on a file of %s bytes.", self.process.returncode, self.size
        )
        limit = _("The XLSX file could not be read within the memory and time one import may use; it was not imported.")
        advice = _("Save the roster as CSV (UTF-8), or copy it into a new workbook.")
        return _Refused(RowError(None, "", f"{limit} {advice}"))


def _xlsx_rows(content: bytes) -> tuple[int, _SheetReader]:
    """The number of sheet rows, and the rows with their sheet row numbers."""
    # calamine (Rust) reads the sheet ten times faster than openpyxl, and its XML
    # parser expands no entity declarations: an XML bomb fails at once. Formula cells
    # are read as the value the spreadsheet last computed; no formula is ever stored.
    # It reads in a child process, within limits: see cases.xlsx_reader.
    unreadable = _unreadable()
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise unreadable from exc
    # calamine reads other zipped workbooks too (ODS, XLSB); only an XLSX is read.
    if "xl/workbook.xml" not in names or names & _OTHER_WORKBOOK_PARTS:
        other = _("The file is not an XLSX workbook (an ODS or XLSB file, say): save it as XLSX or CSV (UTF-8).")
        raise _Refused(RowError(None, "", other))
    if unpacked > max_bytes() * XLSX_MAX_EXPANSION:
        raise _Refused(RowError(None, "", _("The XLSX file unpacks to an implausible size; it was not read.")))
    sheet = _SheetReader(content)
    first = sheet.message()
    if isinstance(first, dict) and "height" in first:
        sheet.name, sheet.sheets = str(first["sheet"]), int(first["sheets"])
        sheet.merges = _Merges(first["merged"])
        sheet.hidden = frozenset(first["hidden"])
        return int(first["height"]), sheet
    sheet.close()
    if not isinstance(first, dict):
        raise sheet.stopped()
    if "too_far" in first:
        advice = _("Delete what lies beyond the roster, or copy the roster into a new workbook.")
        if first["too_far"] == "merged":
            message = _("The sheet has %(n)s ranges of merged cells, far more than a roster has rows.")
            advice = _("Unmerge them (select the whole sheet, then Unmerge Cells), or save the roster as CSV (UTF-8).")
        elif first["too_far"] == "rows":
            message = _("The sheet has values down to row %(n)s, far beyond the roster's rows.")
        else:
            message = _("The sheet has values across %(n)s columns, far beyond the roster's columns.")
        raise _Refused(RowError(None, "", f"{message % {'n': _grouped(int(first['n']))}} {advice}"))
    if "error_cell" in first:
        row, cell, code = first["error_cell"]
        message = _(
            "Cell %(cell)s holds the spreadsheet error %(code)s, which cannot be read: correct the formula,"
            " or type the value, and try again."
        )
        raise _Refused(RowError(int(row), "", message % {"cell": f"{cell}{row}", "code": code}))
    if "no_sheet" in first:
        raise _Refused(RowError(None, "", _("The workbook has no visible worksheet to read.")))
    raise unreadable


def _rows(content: bytes, filename: str) -> tuple[int, _SheetReader | Generator[tuple[int, list[str]]]]:
    if content.startswith(b"PK\x03\x04"):
        return _xlsx_rows(content)
    if content.startswith(b"\xd0\xcf\x11\xe0") and "EncryptedPackage".encode("utf-16-le") in content:
        # An XLSX encrypted with a password (or rights-protected): Office wraps it in
        # an OLE compound file, with its parts encrypted in this stream.
        protected = _(
            "The workbook is password-protected or encrypted (rights-protected), so it cannot be read: save an"
            " unprotected copy (in Excel: File > Info > Protect Workbook, and remove the password or the"
            " restriction) and import that copy."
        )
        raise _Refused(RowError(None, "", protected))
    if filename.lower().endswith((".xlsx", ".xls", ".xlsm", ".ods")) or content.startswith(b"\xd0\xcf\x11\xe0"):
        raise _Refused(RowError(None, "", _("Only CSV (UTF-8) and XLSX files can be imported.")))
    return _csv_rows(content)


def _header_key(name: str) -> str:
    # Spaces, dashes, underscores and invisible characters (zero-width space, BOM) aside.
    return re.sub(r"[\s_\-\u200b-\u200f\u2060\ufeff]+", "", name).casefold()


_HEADER_KEYS = {_header_key(column): column for column in COLUMNS}
# Other names a roster's columns go by (as header keys, punctuation aside): a column so
# named would be left out without a word, its values lost.
_HEADER_SYNONYMS = {
    "registrationnumber": "registration_no",
    "regno": "registration_no",
    "case": "case_no",
    "casenumber": "case_no",
    "household": "case_no",
    "householdno": "case_no",
    "householdnumber": "case_no",
    "relation": "relationship",
    "surname": "family_name",
    "lastname": "family_name",
    "firstname": "given_name",
    "namenativescript": "native_name",
    "nameinnativescript": "native_name",
    "gender": "sex",
    "dob": "date_of_birth",
    "birthdate": "date_of_birth",
    "country": "nationality",
    "countryoforigin": "nationality",
    "citizenship": "nationality",
    "needs": "specific_needs",
    "telephone": "phone",
    "tel": "phone",
    "mobile": "phone",
    "mobilephone": "phone",
    "mobilenumber": "phone",
    "telephonenumber": "phone",
    "contactnumber": "phone",
    "contactphone": "phone",
    "note": "notes",
    "comment": "notes",
    "comments": "notes",
    "remarks": "notes",
}


# What may follow a roster column's name in a header meaning that column ("Phone number",
# "Specific needs (codes)"); any other name merely holding one is another column
# ("Phone owner", "Interview notes"), listed as not read.
_HEADER_QUALIFIERS = ("number", "numbers", "no", "nos", "code", "codes", "list")


def _header_guess(value: str) -> str | None:
    """The roster column a header cell that is none of them may have meant: its name or
    another name for it, with a qualifier or a description in brackets ("Phone number",
    "Native name (Arabic)", "Telephone no."), one of names written a/b ("Notes/remarks"),
    or a near miss."""
    described = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", value.casefold())
    for part in [value.casefold(), *re.split(r"[/|]", described)]:
        bare = re.sub(r"[\W_]+", "", part)
        for name, column in itertools.chain(_HEADER_KEYS.items(), _HEADER_SYNONYMS.items()):
            if bare.startswith(name) and (len(bare) == len(name) or bare[len(name) :] in _HEADER_QUALIFIERS):
                return column
    close = difflib.get_close_matches(_header_key(value), _HEADER_KEYS, n=1, cutoff=0.8)
    return _HEADER_KEYS[close[0]] if close else None


def _map_header(line: int, values: list[str]) -> dict[str, int]:
    """Column name → index. Raises _Refused naming every missing required column."""
    positions: dict[str, int] = {}
    errors = []
    unknown: list[tuple[str, str]] = []
    for index, value in enumerate(values):
        column = _HEADER_KEYS.get(_header_key(value))
        if column is None:
            # Other columns are left alone, but one that may be a roster's under another
            # name would be left out without a word (a roster's specific needs, say).
            guess = _header_guess(value) if value.strip() else None
            if guess is not None:
                unknown.append((value.strip(), guess))
            continue
        if column in positions:
            errors.append(
                RowError(
                    line,
                    column,
                    _("The column appears twice (columns %(a)d and %(b)d).")
                    % {
                        "a": positions[column] + 1,
                        "b": index + 1,
                    },
                )
            )
        positions[column] = index
    for value, column in unknown:
        if column not in positions:
            errors.append(
                RowError(
                    line,
                    column,
                    _(
                        "“%(value)s” is not a column of the roster: is it %(column)s? If it is, name it"
                        " %(column)s; if it is not, give it another name (columns that are not the roster's are"
                        " not read)."
                    )
                    % {"value": _shown(value), "column": column},
                )
            )
    missing = [column for column in REQUIRED_COLUMNS if column not in positions]
    if missing:
        errors.insert(
            0,
            RowError(
                line,
                "",
                _("Required column(s) missing from the header row: %(columns)s. The header row must name: %(all)s.")
                % {"columns": ", ".join(missing), "all": ", ".join(COLUMNS)},
            ),
        )
    if errors:
        raise _Refused(*errors)
    return positions


# Checking values -----------------------------------------------------------------------

_FORMULA_STARTS = frozenset("=+-@")
# + and - start a formula unless the cell is a number or a phone number: a sign, digits,
# spaces, dots, parentheses, dashes and slashes call no function (+1-555-123-4567).
_SIGNED_NUMBER = re.compile(r"^[+-][\d\s().\-/]*$")


def plain_text(value: str) -> str:
    """A stripped cell value that no spreadsheet will run as a formula."""
    value = value.strip()
    if value and (value[0] in "=@" or (value[0] in "+-" and not _SIGNED_NUMBER.match(value))):
        return "'" + value
    return value


# A long number as Excel shows it when its column is not text (1.23457E+11): its last
# digits are gone.
_SCIENTIFIC = re.compile(r"^\d(?:[.,]\d+)?[eE]\+\d{1,3}$")
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_YEAR = re.compile(r"^\d{4}$")
_RELATIONSHIPS = (
    {value: value for value in Relationship.values}
    | {value.casefold(): value for value in Relationship.values}
    | {
        "principal_applicant": Relationship.PRINCIPAL_APPLICANT.value,
    }
)
_SEXES = set(Sex.values)
_MAX_LENGTH = {
    name: Person._meta.get_field(name).max_length  # type: ignore[union-attr]
    for name in ("registration_no", "family_name", "given_name", "native_name", "phone")
} | {"case_no": Case._meta.get_field("case_no").max_length, "notes": 10_000}
_MAX_REGISTRATION_NO: int = _MAX_LENGTH["registration_no"] or sys.maxsize
_MAX_CASE_NO: int = _MAX_LENGTH["case_no"] or sys.maxsize
_MAX_FAMILY_NAME: int = _MAX_LENGTH["family_name"] or sys.maxsize
_MAX_GIVEN_NAME: int = _MAX_LENGTH["given_name"] or sys.maxsize
_MAX_NATIVE_NAME: int = _MAX_LENGTH["native_name"] or sys.maxsize
_MAX_PHONE: int = _MAX_LENGTH["phone"] or sys.maxsize
# Notes are free text, but a roster's are a few lines: a longer cell is a mistake.
_MAX_NOTES: int = _MAX_LENGTH["notes"] or sys.maxsize


def _nationality(value: str, cache: dict[str, str]) -> str:
    if value not in cache:
        code = ""
        if value.isalpha() and len(value) in (2, 3):
            code = countries.alpha2(value)
        if not code:
            found = countries.by_name(value)
            code = found if isinstance(found, str) else ""
        if not code:
            code = country_by_name(value)
        cache[value] = code
    return cache[value]


@dataclass(slots=True)
class _Row:
    line: int
    registration_no: str
    case_no: str
    relationship: str
    family_name: str
    given_name: str
    sex: str
    birth_year: int
    birth_date: datetime.date | None
    nationality: str
    site_id: int
    # The optional columns: None when the file leaves the column out.
    native_name: str | None
    phone: str | None
    notes: str | None
    needs: frozenset[int] | None

    @property
    def name(self) -> str:
        return full_name(self.family_name, self.given_name)

    @property
    def birth(self) -> str:
        return self.birth_date.isoformat() if self.birth_date else str(self.birth_year)

    @property
    def optional(self) -> dict[str, str]:
        """The optional text columns present in the file, by name."""
        values = {"native_name": self.native_name, "phone": self.phone, "notes": self.notes}
        return {name: value for name, value in values.items() if value is not None}


def _excel_text(value: str) -> str:
    """A CSV cell written ="…" (as exporters write text for Excel, to keep its leading
    zeros) as the text in its quotes; any other cell as it is."""
    stripped = value.strip()
    if len(stripped) > 2 and stripped.startswith('="') and stripped.endswith('"') and '"' not in stripped[2:-1]:
        return stripped[2:-1]
    return value


def _shown(value: str) -> str:
    """A cell as a message quotes it: at most 60 characters (a cell may hold megabytes,
    and every message is kept)."""
    return value if len(value) <= 60 else f"{value[:59]}…"


def _identifier(value: str) -> str:
    """A registration or case number without invisible characters (a zero-width space
    pasted with it), its letters in one Unicode form (é typed or composed), its digits
    ASCII digits (R-۱۲۳ is R-123)."""
    return "".join(
        str(unicodedata.decimal(char)) if char.isdecimal() and not char.isascii() else char
        for char in _visible(unicodedata.normalize("NFC", value))
    )


def _visible(value: str, kept: AbstractSet[str] | str = "") -> str:
    """The text without its invisible format characters (Unicode category Cf: direction
    marks, zero-width spaces, a soft hyphen), but those `kept`."""
    return "".join(char for char in value if char in kept or unicodedata.category(char) != "Cf")


@functools.lru_cache(maxsize=65_536)
def _latin(name: str) -> bool:
    """Whether a name's letters are all Latin ones (accents, apostrophes, hyphens and
    the like are no letters; a modifier letter such as ʼ is allowed)."""
    return all(unicodedata.name(char, "").startswith(("LATIN", "MODIFIER LETTER")) for char in name if char.isalpha())


def _cleaned(value: str) -> str:
    """A coded cell (a code, date, country or site) as it was meant: in one Unicode
    form, without invisible characters (right-to-left marks, zero-width spaces), its
    spaces (non-breaking ones too) one plain space."""
    return " ".join(_visible(unicodedata.normalize("NFC", value)).split())


def _windows_1252(byte: int) -> str:
    """The character a byte reads as in Windows-1252 (in Latin-1 where it has none, as
    Windows reads the five bytes it leaves undefined)."""
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)


_WINDOWS_1252 = {_windows_1252(byte): byte for byte in range(0x80, 0x100)}
# UTF-8 text read as Windows-1252 (or Latin-1) and saved again: a lead byte's character
# (Ã for 0xC3) followed by a continuation byte's (¼ for 0xBC), as in MÃ¼ller. No name
# has that pair (a capital letter then a symbol or a control), as JOÃO or Ãlvaro have
# not. Or the replacement character, which stands for characters a reading lost.
_CONTINUATIONS = re.escape("".join(_windows_1252(byte) for byte in range(0x80, 0xC0)))
_GARBLED = re.compile(f"[\u00c2-\u00f4][{_CONTINUATIONS}]|\ufffd")
# What a cell's first bytes of garbled text or a replacement character are in UTF-8:
# a CSV without them anywhere has no cell to look at.
_GARBLED_BYTES = (b"\xc3", b"\xef\xbf\xbd")


# What text read back from garbled text never holds: phonetic letters and modifiers
# (U+0250–U+02FF), combining marks on their own (U+0300–U+036F), control characters.
# JOSÉ followed by a non-breaking space (or ’, –, °) is, as bytes, the UTF-8 of a
# phonetic letter (É and the space: ɠ): a real name. ALÍ before a space reads as a mark.
_NOT_MEANT = re.compile("[\u0250-\u036f\x00-\x08\x0e-\x1f\x7f-\x9f]")
# Nor letters of two scripts: ABÚ’L FAZL reads back as AB, an Arabic letter, L FAZL.
_LATIN_LETTER = re.compile("[A-Za-z\u00c0-\u024f\u1e00-\u1eff]")


def _two_scripts(text: str) -> bool:
    letters = [char for char in text if char.isalpha()]
    latin = sum(1 for char in letters if _LATIN_LETTER.match(char))
    return 0 < latin < len(letters)


def _re_encoded(value: str) -> str | None:
    """The text a cell garbled by wrong re-encodings held ("Müller" for "MÃ¼ller"), if
    its text is that."""
    meant = None
    for _twice in range(3):
        try:
            text = bytes(ord(char) if char < "\x80" else _WINDOWS_1252[char] for char in value).decode()
        except (KeyError, UnicodeDecodeError):
            break
        if text == value or _NOT_MEANT.search(text) or _two_scripts(text):
            break
        meant = value = text
    return meant


# A native name's word made of question marks: what an encoding that cannot hold its
# script (Windows-1252) saves in its place.
_LOST_WORD = re.compile(r"(?<!\S)\?+(?!\S)")
# The format characters a name in its own script is spelt with (Persian, Kurdish, Indic
# scripts): the zero-width non-joiner and joiner.
_SPELLING = frozenset("\u200c\u200d")


# What a list of needs is often separated with instead of semicolons (Arabic and
# full-width semicolons and commas among them).
_NEEDS_SEPARATORS = re.compile(r"[,|/،؛；，、]")
# The coded cells among the required ones: relationship, sex, date_of_birth, nationality, site.
_CODED = (2, 5, 6, 7, 8)


class _Checker:
    """Checks one row at a time, collecting every error; keeps lookups warm.

    Most of a large roster repeats a few values (relationships, dates of birth,
    nationalities, sites, needs): each distinct valid value is checked once and
    remembered. The errors of one line come in the order of its columns' checks.
    """

    def __init__(
        self,
        positions: dict[str, int],
        errors: list[RowError],
        nul: bool = False,
        cells: int | None = None,
        excel_text: bool = False,
        garbled: bool = True,
    ) -> None:
        self.positions = positions
        # Whether the file may hold text garbled by a wrong encoding: then every row that
        # is not ASCII is looked at.
        self.garbled = garbled
        # Whether a CSV holds =" anywhere: then its cells written ="…" are looked for.
        self.excel_text = excel_text
        # A CSV's header's number of cells: a line with values beyond it is refused.
        self.cells = cells
        # The cells that are no values: a spreadsheet's error codes (a CSV export writes
        # them too), and in a sheet a formula without its result.
        self.not_values = SPREADSHEET_ERRORS if cells is not None else _SHEET_NOT_VALUES
        # Whether the file holds a NUL character anywhere: then every cell is looked at.
        self.nul = nul
        # The cases whose principal applicant's row is refused (its case has one, then).
        self.refused_pa: set[str] = set()
        self.errors = errors
        self.messages: dict[str, str] = {}
        self.today = timezone.localdate()
        sites = list(Site.objects.values_list("pk", "name", "code"))
        self.sites = {name: pk for pk, name, _code in sites} | {name.casefold(): pk for pk, name, _code in sites}
        self.sites.update({code.casefold(): pk for pk, _name, code in sites if code.casefold() not in self.sites})
        needs = list(SpecificNeed.objects.values_list("pk", "code", "label"))
        # A need is written as its code or as its label ("Medical condition").
        self.needs = {label.casefold(): pk for pk, _code, label in needs} | {
            code.casefold(): pk for pk, code, _ in needs
        }
        self.need_codes = sorted(code for _pk, code, _label in needs)
        self.countries: dict[str, str] = {}
        self.relationships: dict[str, str] = {}
        self.births: dict[str, tuple[int, datetime.date | None]] = {}
        self.needs_of: dict[str, frozenset[int]] = {}
        # Cells missing at the end of a row are empty.
        self.width = max(positions.values()) + 1
        self.required = operator.itemgetter(*(positions[column] for column in REQUIRED_COLUMNS))
        self.at_needs = positions.get("specific_needs")
        # Whether the first cell is a roster column's: a row whose first cell is filled is not blank.
        self.reads_first = 0 in positions.values()
        self.at_optional = tuple(positions.get(column) for column in OPTIONAL_TEXT_COLUMNS)

    def person(self, values: list[str]) -> tuple[str, str]:
        """The registration number and name (as _Row.name) a line holds, as written."""
        registration_no, family_name, given_name = (
            values[self.positions[column]].strip() if self.positions[column] < len(values) else ""
            for column in ("registration_no", "family_name", "given_name")
        )
        name = full_name(family_name, given_name) if family_name or given_name else ""
        return _shown(registration_no), _shown(name)

    def blank(self, values: list[str]) -> bool:
        """Whether a row's roster cells are all empty."""
        return not any(values[at].strip() for at in self.positions.values() if at < len(values))

    def error(self, line: int, column: str, message: str) -> None:
        # A file with an error on every row repeats its messages: each is kept once.
        self.errors.append(RowError(line, column, self.messages.setdefault(message, message)))

    def scientific(self, line: int, column: str) -> None:
        self.error(
            line,
            column,
            _(
                "Excel has shown this number in scientific notation and dropped its last digits: format the"
                " column as Text in the spreadsheet and type the numbers again."
            ),
        )

    def re_encoded(self, line: int, values: list[str]) -> None:
        """Refuses the roster cells of a row garbled by a wrong re-encoding, and gives
        them as they were meant, so that the other checks see what was meant."""
        for column, at in self.positions.items():
            value = values[at]
            if value.isascii() or not _GARBLED.search(value):
                continue
            advice = _(
                "The file's text looks wrongly re-encoded: it was opened with the wrong encoding and saved again."
                " Import the original file, or open it in a spreadsheet as UTF-8 (Data > From Text/CSV, File"
                " origin “65001: Unicode (UTF-8)”) and save it as “CSV UTF-8”."
            )
            if meant := _re_encoded(value.strip()):
                quoted = _("“%(value)s” (perhaps “%(meant)s”)") % {
                    "value": _shown(value.strip()),
                    "meant": _shown(meant),
                }
                self.error(line, column, f"{quoted}: {advice}")
                values[at] = meant
            elif "\ufffd" in value:
                lost = _(
                    "Holds the character � (U+FFFD), which stands for characters lost when the file was read"
                    " with the wrong encoding and saved again: the text cannot be told from it. Import the original"
                    " file, or save it again from its spreadsheet as “CSV UTF-8”."
                )
                self.error(line, column, lost)

    def lost(self, line: int, column: str, value: str = "") -> None:
        if value and not value.strip("? "):
            # Nothing but question marks: a placeholder for a name not known, or a name
            # whose letters all were lost.
            message = _(
                "“%(value)s” is no name. If the name is not known, write what your registration writes for"
                " an unknown name (FNU: first name unknown, LNU: last name unknown); if its letters were lost"
                " when the file was saved, save the roster again from the original as “CSV UTF-8”."
            ) % {"value": _shown(value)}
        else:
            message = _(
                "Holds “?” where letters were: the file was saved in an encoding that cannot hold them (Excel's"
                " “CSV (Comma delimited)” or LibreOffice's Western Europe), and they were lost. Save the roster"
                " again from the original as “CSV UTF-8”, and import that file."
            )
        self.error(line, column, message)

    def name(self, line: int, column: str, value: str, spelling: AbstractSet[str] = frozenset()) -> str:
        """A name without invisible characters (a zero-width space, a right-to-left
        mark; but those its script is `spelling` with), its spaces (non-breaking ones,
        tabs, line breaks) one plain space. A control character is refused: a name has
        none, and it would be stored unseen."""
        # (Tabs, line breaks, a vertical tab are spaces: some exports break lines with them.)
        control = next((char for char in value if unicodedata.category(char) == "Cc" and not char.isspace()), "")
        if control:
            self.error(
                line,
                column,
                _(
                    "Holds a control character (U+%(code)04X), which no name has: it came with text pasted from"
                    " elsewhere, or the file is damaged. Type the name again."
                )
                % {"code": ord(control)},
            )
        return " ".join(_visible(value, spelling).split())

    def text(self, line: int, column: str, value: str) -> str:
        if value[:1] in _FORMULA_STARTS:
            value = plain_text(value)
        limit = _MAX_LENGTH.get(column)
        if limit and len(value) > limit:
            self.error(line, column, _("Longer than %(max)d characters (%(n)d).") % {"max": limit, "n": len(value)})
        return value

    def row(self, line: int, values: list[str]) -> _Row | None:
        count = len(self.errors)
        if self.cells is not None and len(values) > self.cells and any(value.strip() for value in values[self.cells :]):
            # A value holding the separator, unquoted: every value after it is in the
            # wrong column, and the last ones would be lost.
            if any(value[:1].isspace() and value.lstrip().startswith('"') for value in values):
                # `, "a, b"`: the quotes count only where the value begins with them.
                message = _(
                    "This line has %(n)d values and the header %(header)d columns: a value in double quotes"
                    " must begin with its quote, right after the separator, with no space before it."
                )
            else:
                # Or a value typed to the right of the roster, under no header name.
                message = _(
                    "This line has %(n)d values and the header %(header)d columns: column %(column)d holds a value"
                    " but has no name in the header row (name the column, or delete the value), or a value that"
                    " holds the separator (a comma or a semicolon) is not in double quotes."
                )
            beyond = next(at for at in range(self.cells, len(values)) if values[at].strip())
            self.error(line, "", message % {"n": len(values), "header": self.cells, "column": beyond + 1})
            return None
        if len(values) < self.width:
            values = values + [""] * (self.width - len(values))
        if self.excel_text:
            # Before any other rule: the text in the quotes is checked as any cell is.
            values = [_excel_text(value) if '="' in value else value for value in values]
        if self.garbled and not (joined := "".join(values)).isascii() and _GARBLED.search(joined):
            values = list(values)
            self.re_encoded(line, values)
        if self.nul and any("\x00" in value for value in values):
            for column, at in self.positions.items():
                if "\x00" in values[at]:
                    # No database text can hold one; it is a damaged file, or not text.
                    self.error(line, column, _("Holds a NUL character (byte 0): the file may be damaged."))
            # The other checks quote the cells in their messages, which are stored too.
            values = [value.replace("\x00", "\N{REPLACEMENT CHARACTER}") for value in values]
        if not self.not_values.isdisjoint(values):
            # A formula's error or a formula without its result, not a value (an XLSX's
            # error cells are read as their codes).
            before = len(self.errors)
            for column, at in self.positions.items():
                if values[at] not in self.not_values:
                    continue
                if values[at] == UNSAVED_FORMULA:
                    message = _(
                        "Holds a formula whose result the file does not hold (it was not saved by a spreadsheet):"
                        " open the file in a spreadsheet and save it again, or type the value."
                    )
                elif values[at] == MERGED_ACROSS:
                    message = _(
                        "Merged with the cell to its left (or above it), whose value the merged cells show: unmerge"
                        " them and type each column's value in its own cell."
                    )
                else:
                    message = _(
                        "Holds the spreadsheet error %(code)s, not a value: correct the formula, or type the value."
                    ) % {"code": values[at]}
                self.error(line, column, message)
            if len(self.errors) > before:
                return None
        cells = list(map(str.strip, self.required(values)))
        if not "".join(cells).isascii():
            for at in _CODED:
                if not cells[at].isascii():
                    cells[at] = _cleaned(cells[at])
        # The names, as cheaply: str.isprintable is False for invisible characters, odd
        # spaces and control characters alike.
        if not cells[3].isprintable():
            cells[3] = self.name(line, "family_name", cells[3])
        if not cells[4].isprintable():
            cells[4] = self.name(line, "given_name", cells[4])
        if not all(cells):
            for column, value in zip(REQUIRED_COLUMNS, cells, strict=True):
                if not value:
                    self.error(line, column, _("A value is required."))
        registration_no, case_no, relationship, family_name, given_name, sex, born, nationality, site = cells
        # Text typed or pasted differently looks the same and must compare the same.
        if not registration_no.isascii():
            registration_no = _identifier(registration_no)
        if not case_no.isascii():
            case_no = _identifier(case_no)
        if not family_name.isascii():
            family_name = unicodedata.normalize("NFC", family_name)
            if not _latin(family_name):
                # Out of the Latin columns, a name also escapes the probable duplicates.
                self.error(
                    line,
                    "family_name",
                    _("Family names are written in Latin script here; put the name in its own script in native_name."),
                )
        if not given_name.isascii():
            given_name = unicodedata.normalize("NFC", given_name)
            if not _latin(given_name):
                self.error(
                    line,
                    "given_name",
                    _("Given names are written in Latin script here; put the name in its own script in native_name."),
                )
        if "?" in family_name:
            self.lost(line, "family_name", family_name)
        if "?" in given_name:
            self.lost(line, "given_name", given_name)
        if "+" in registration_no and _SCIENTIFIC.match(registration_no):
            self.scientific(line, "registration_no")
        if "+" in case_no and _SCIENTIFIC.match(case_no):
            self.scientific(line, "case_no")
        # A cell needs a closer look only if it may be a formula or is too long.
        if registration_no[:1] in _FORMULA_STARTS or len(registration_no) > _MAX_REGISTRATION_NO:
            registration_no = self.text(line, "registration_no", registration_no)
        elif registration_no == TEMPLATE_EXAMPLE["registration_no"]:
            self.error(line, "registration_no", _("This is the template's example row: delete it, then add your rows."))
        if case_no[:1] in _FORMULA_STARTS or len(case_no) > _MAX_CASE_NO:
            case_no = self.text(line, "case_no", case_no)
        if family_name[:1] in _FORMULA_STARTS or len(family_name) > _MAX_FAMILY_NAME:
            family_name = self.text(line, "family_name", family_name)
        if given_name[:1] in _FORMULA_STARTS or len(given_name) > _MAX_GIVEN_NAME:
            given_name = self.text(line, "given_name", given_name)

        if relationship:
            value = relationship
            relationship = self.relationships.get(value, "")
            if not relationship:
                relationship = _RELATIONSHIPS.get(value) or _RELATIONSHIPS.get(
                    re.sub(r"[\s\-]+", "_", value).casefold(), ""
                )
                if relationship:
                    self.relationships[value] = relationship
                else:
                    self.error(
                        line,
                        "relationship",
                        _("“%(value)s” is not one of %(allowed)s.")
                        % {"value": _shown(value), "allowed": ", ".join(Relationship.values)},
                    )

        if sex:
            value = sex
            sex = value.upper()
            if sex not in _SEXES:
                self.error(
                    line,
                    "sex",
                    _("“%(value)s” is not one of %(allowed)s.")
                    % {"value": _shown(value), "allowed": ", ".join(Sex.values)},
                )

        birth_year, birth_date = 0, None
        if born:
            known = self.births.get(born)
            if known is None:
                before = len(self.errors)
                known = self._birth(line, born)
                if len(self.errors) == before:
                    self.births[born] = known
            birth_year, birth_date = known

        if nationality:
            value = nationality
            nationality = self.countries.get(value) or _nationality(value, self.countries)
            if not nationality:
                self.error(
                    line,
                    "nationality",
                    _("“%(value)s” is not an ISO 3166 country code (alpha-2 or alpha-3) or English country name.")
                    % {"value": _shown(value)},
                )

        site_id = 0
        if site:
            site_id = (
                self.sites.get(site)
                or self.sites.get(site.casefold())
                or self.sites.get(" ".join(site.split()).casefold(), 0)
            )
            if not site_id:
                self.error(
                    line,
                    "site",
                    _("Unknown site “%(value)s”; sites are not created by an import.") % {"value": _shown(site)},
                )

        needs: frozenset[int] | None = None
        if self.at_needs is not None:
            value = values[self.at_needs].strip()
            if not value.isascii():
                value = _cleaned(value)
            needs = self.needs_of.get(value)
            if needs is None:
                needs = self._needs(line, value)

        at_native, at_phone, at_notes = self.at_optional
        native_name = phone = notes = None
        if at_native is not None:
            native_name = unicodedata.normalize("NFC", values[at_native].strip())
            if not native_name.isprintable():
                native_name = self.name(line, "native_name", native_name, _SPELLING)
            if "?" in native_name and _LOST_WORD.search(native_name):
                self.lost(line, "native_name")
            if native_name[:1] in _FORMULA_STARTS or len(native_name) > _MAX_NATIVE_NAME:
                native_name = self.text(line, "native_name", native_name)
        if at_phone is not None:
            phone = values[at_phone].strip()
            if phone[:1] in _FORMULA_STARTS or len(phone) > _MAX_PHONE:
                phone = self.text(line, "phone", phone)
            elif "+" in phone and _SCIENTIFIC.match(phone):
                self.scientific(line, "phone")
        if at_notes is not None:
            notes = values[at_notes].strip()
            if notes[:1] in _FORMULA_STARTS or len(notes) > _MAX_NOTES:
                notes = self.text(line, "notes", notes)

        if len(self.errors) > count:
            if relationship == Relationship.PRINCIPAL_APPLICANT:
                self.refused_pa.add(case_no)
            return None
        return _Row(
            line,
            registration_no,
            case_no,
            relationship,
            family_name,
            given_name,
            sex,
            birth_year,
            birth_date,
            nationality,
            site_id,
            native_name,
            phone,
            notes,
            needs,
        )

    def _needs(self, line: int, value: str) -> frozenset[int]:
        codes = [code.strip() for code in value.split(";") if code.strip()]
        unknown = [code for code in codes if code.casefold() not in self.needs]
        needs = frozenset(self.needs[code.casefold()] for code in codes if code.casefold() in self.needs)
        if unknown:
            separator = _NEEDS_SEPARATORS.search(value)
            if separator:
                message = _("Separate specific needs codes with semicolons (;), not with “%(separator)s”.") % {
                    "separator": separator.group()
                }
            elif any(
                len(code.split()) > 1 and all(part.casefold() in self.needs for part in code.split())
                for code in unknown
            ):
                message = _("Separate specific needs codes with semicolons (;), not with spaces.")
            else:
                message = _("Unknown specific needs code(s): %(codes)s. The codes are: %(known)s.") % {
                    "codes": _shown(", ".join(unknown)),
                    "known": ", ".join(self.need_codes),
                }
            self.error(line, "specific_needs", message)
        else:
            self.needs_of[value] = needs
        return needs

    def _birth(self, line: int, value: str) -> tuple[int, datetime.date | None]:
        if _YEAR.match(value):
            year, born = int(value), None
        elif match := _DATE.match(value):
            try:
                born = datetime.date(*(int(part) for part in match.groups()))
            except ValueError:
                self.error(line, "date_of_birth", _("“%(value)s” is not a real date.") % {"value": _shown(value)})
                return 0, None
            year = born.year
        else:
            self.error(
                line,
                "date_of_birth",
                _("“%(value)s” is not a date as YYYY-MM-DD or a year as YYYY.") % {"value": _shown(value)},
            )
            return 0, None
        if year < 1900:
            self.error(line, "date_of_birth", _("“%(value)s” is before 1900.") % {"value": _shown(value)})
        elif (born or datetime.date(year, 1, 1)) > self.today:
            self.error(line, "date_of_birth", _("“%(value)s” is in the future.") % {"value": _shown(value)})
        return year, born


# How many rows naming no roster column may stand above a header (a title, a date, a
# note) for the refusal to point at the header below them.
_TITLE_ROWS = 5


def _header_not_first(line: int, above: list[tuple[int, list[str]]]) -> RowError:
    first_line, values = above[0]
    return RowError(
        first_line,
        "",
        _(
            "The header row must be the first row that is not empty: line %(header)d is the header, and the"
            " row(s) above it (“%(title)s”) are not part of the roster. Delete them, and import the file again."
        )
        % {"header": line, "title": _shown(" ".join(value.strip() for value in values if value.strip()))},
    )


def _read(
    content: bytes, result: ImportResult, progress: _Progress, refused_pa: set[str] | None = None
) -> tuple[list[_Row], int]:
    """The rows of the file that pass the checks of one row alone, and the number of
    data rows; errors are appended to `result.errors` (and the sheet read is noted there),
    and the cases of refused principal applicants' rows to `refused_pa`."""
    errors = result.errors
    if len(content) > max_bytes():
        raise _Refused(
            RowError(
                None,
                "",
                too_large(),
            )
        )
    rows: list[_Row] = []
    checker: _Checker | None = None
    limit = max_rows()
    count = 0
    lines, records = _rows(content, result.filename)
    sheet = False
    merges: _Merges | None = None
    hidden: AbstractSet[int] = frozenset()
    if isinstance(records, _SheetReader):
        sheet = True
        merges = records.merges or None
        hidden = records.hidden
        if records.sheets > 1:
            result.sheet, result.sheets = records.name, records.sheets
    # The cells a formula without its result counts in (the roster's columns): elsewhere
    # (a column of the sheet's own, a title above the header) it is as if empty.
    read: AbstractSet[int] = frozenset()
    # Rows before the header that name no roster column (a title above it), and why the
    # first of them is no header.
    above: list[tuple[int, list[str]]] = []
    no_header: _Refused | None = None
    # Closed whatever happens: an XLSX is read by a child process, which this stops.
    with contextlib.closing(records):
        progress.start("reading", lines)
        for line, values in records:
            if line >= progress.next:
                progress.report(line)
            if merges is not None:
                values = merges.apply(line, values, read)
            if sheet and (UNSAVED_FORMULA in values or MERGED_ACROSS in values):
                unsaved = UNSAVED_FORMULA in values
                values = [value if value not in _SHEET_MARKS or at in read else "" for at, value in enumerate(values)]
                if unsaved and checker is None and "".join(values).strip():
                    message = _(
                        "A cell of the header holds a formula whose result the file does not hold: type the"
                        " column's name in it."
                    )
                    raise _Refused(RowError(line, "", message))
            # Rows of empty cells are skipped (a roster's first cell is seldom empty).
            first = bool(values and values[0].strip())
            if not first and not "".join(values).strip():
                continue
            if checker is None:
                try:
                    positions = _map_header(line, values)
                except _Refused as refused:
                    names_a_column = any(_HEADER_KEYS.get(_header_key(value)) for value in values)
                    if not names_a_column and len(above) < _TITLE_ROWS:
                        # Perhaps a title: the next rows tell.
                        above.append((line, values))
                        no_header = no_header or refused
                        continue
                    if above and names_a_column:
                        raise _Refused(_header_not_first(line, above), *refused.errors) from None
                    raise no_header or refused from None
                if above:
                    raise _Refused(_header_not_first(line, above))
                cells = None if sheet else len(values)
                checker = _Checker(
                    positions,
                    errors,
                    nul=b"\x00" in content,
                    cells=cells,
                    excel_text=not sheet and b'="' in content,
                    garbled=sheet or any(part in content for part in _GARBLED_BYTES),
                )
                read = frozenset(checker.positions.values())
                header_line = line
                if merges is not None and (down := merges.below(line, read)):
                    message = _(
                        "Cells of the header are merged with the cells below them (%(cells)s): unmerge them, so"
                        " that the header row alone holds the columns' names."
                    )
                    raise _Refused(RowError(line, "", message % {"cells": ", ".join(down)}))
                names = ((at, value.strip()) for at, value in enumerate(values))
                result.not_read = [_shown(name) for at, name in names if name and at not in read]
                continue
            if not (first and checker.reads_first) and checker.blank(values):
                # Values only in columns not read (a helper column filled down past the
                # roster's end): as empty a row as any.
                continue
            count += 1
            if count > limit:
                raise _Refused(
                    RowError(
                        None,
                        "",
                        _("The file has more than %(max)d rows, the limit for one import. Split it into smaller files.")
                        % {"max": limit},
                    )
                )
            if line in hidden:
                result.hidden.append(line)
            row = checker.row(line, values)
            if row is not None:
                rows.append(row)
            else:
                result.error_people[line] = checker.person(values)
    if no_header is not None:
        raise no_header
    if checker is None:
        raise _Refused(RowError(None, "", _("The file is empty: it has no header row.")))
    if merges is not None:
        result.merged = [cells for cells, at, top in merges.filled if at in read and top > header_line]
    if refused_pa is not None:
        refused_pa |= checker.refused_pa
    if count == 0:
        raise _Refused(RowError(None, "", _("The file has a header row but no persons.")))
    progress.report(lines)
    return rows, count


# Name keys -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65_536)
def _name_part_keys(name: str) -> tuple[str, ...]:
    """The keys cases.names.name_key takes from one name, in its order."""
    parts = words(name)
    keys: dict[str, None] = {}
    for word in parts:
        keys.update(dict.fromkeys(sorted(word_keys(word))))
    if len(parts) > 1:
        keys.update(dict.fromkeys(sorted(word_keys("".join(parts)))))
    return tuple(keys)


def _name_key(family_name: str, given_name: str, native_name: str) -> str:
    """cases.names.name_key, with each name's keys worked out once per import (a roster
    repeats its family and given names): the same value, several times faster."""
    keys = dict.fromkeys((*_name_part_keys(family_name), *_name_part_keys(given_name), *_name_part_keys(native_name)))
    if not keys:
        return ""
    stored = " " + " ".join(keys) + " "
    # A key string too long to store whole is cut by name_key itself.
    return stored if len(stored) <= NAME_KEY_LENGTH else name_key(family_name, given_name, native_name)


def _stored_keys(family_name: str, given_name: str, native_name: str) -> dict[str, str]:
    """cases.names.stored_keys, with _name_key."""
    latin, native = match_keys(family_name, given_name, native_name)
    return {"name_key": _name_key(family_name, given_name, native_name), "match_latin": latin, "match_native": native}


# Probable duplicates ---------------------------------------------------------------------

# Name keys (Mohammad = Muhammad, Arabic and Persian letter forms) live in cases.names.


@dataclass(frozen=True, slots=True)
class _Known:
    """A person on record, as the duplicate search sees them."""

    line: None
    registration_no: str
    name: str
    birth_year: int
    birth_date: datetime.date | None
    sex: str
    case_no: str
    relationship: str
    native_name: str

    @property
    def birth(self) -> str:
        return self.birth_date.isoformat() if self.birth_date else str(self.birth_year)


# A match key (cases.names.match_keys: Latin, or native) and a year of birth.
_Key = tuple[str, int]
# A person on record for the duplicate search: registration_no, family_name, given_name,
# birth_year, birth_date, match_latin, match_native, sex, relationship, native_name,
# case_id, and their case's number (read with them: case__case_no).
_OnRecord = tuple[str, str, str, int, datetime.date | None, str, str, str, str, str, int, str]
_ON_RECORD = (
    "registration_no",
    "family_name",
    "given_name",
    "birth_year",
    "birth_date",
    "match_latin",
    "match_native",
    "sex",
    "relationship",
    "native_name",
    "case_id",
)
# For files of up to this many rows, each key is looked up in its index; beyond, the
# file's keys are joined to the whole persons table at once.
_KEY_LOOKUPS = 20_000


def _placeholder(born: datetime.date) -> bool:
    """Whether a date of birth is 1 January: the date registrations write where only the
    year is known."""
    return born.month == born.day == 1


def _written_otherwise(born: datetime.date) -> list[datetime.date]:
    """The other dates of birth of its year that `born` may be written as: 1 January (a
    year alone, written as a date), and its day and month swapped (a date typed the
    other way round)."""
    dates = [born.replace(month=1, day=1)]
    if born.day <= 12 and born.day != born.month:
        dates.append(born.replace(month=born.day, day=born.month))
    return dates


def _loosely_one(one: datetime.date, other: datetime.date) -> bool:
    """Whether two dates of birth of the same year may be one person's written twice: the
    same, or one is the other written otherwise (_written_otherwise), or is 1 January,
    which may stand for any date of its year."""
    return one == other or _placeholder(one) or other in _written_otherwise(one)


def _may_be_one(row: _Row, other: _Row | _Known) -> bool:
    """Of two records with the same name key: the same birth (the year, which is part of
    the key, and dates that may be one: _loosely_one), and not the same registration number."""
    if row.birth_date and other.birth_date and not _loosely_one(row.birth_date, other.birth_date):
        return False
    return other.registration_no != row.registration_no


def _written_apart(row: _Row, other: _Row | _Known) -> bool:
    """Whether two records alike in Latin letters write their native names (both given)
    as two names: neither's words all among the other's, as Hassan (حسن) and Hussein
    (حسین), whom only the Latin key made one. Not one name written otherwise: its words
    in another order, a compound name run together, a father's name added."""
    if not row.native_name or not other.native_name:
        return False
    if native_spelling(row.native_name) == native_spelling(other.native_name):
        return False
    mine, theirs = native_words(row.native_name), native_words(other.native_name)
    return not (mine <= theirs or theirs <= mine)


def _rank(row: _Row, other: _Row | _Known) -> int:
    """How strongly a look-alike may be the row's person: 0 the same date of birth and
    sex (strong), 1 the same date and another sex, 2 a year of birth alone on a side, or
    1 January (a year alone as registrations write it), or dates that differ but may be
    one (_loosely_one)."""
    if row.birth_date and row.birth_date == other.birth_date and not _placeholder(row.birth_date):
        return 0 if row.sex == other.sex else 1
    return 2


def _strongest(row: _Row, found: list[Any]) -> list[Any]:
    """The look-alikes found, strongest first (in their order within each rank), cut
    to _LOOK_ALIKES and one more if there are more."""
    if len(found) > 1:
        found.sort(key=functools.partial(_rank, row))
    return found[: _LOOK_ALIKES + 1]


# A row lists this many look-alikes of each kind at the most, and a file this many pairs
# at the most (the strong ones first, then the possible ones in file order): a file that
# writes thousands alike (a placeholder name, a year of birth alone) would otherwise list
# millions of pairs, and hold them all in memory.
_LOOK_ALIKES = 10
MAX_DUPLICATES = 50_000
# Up to this many earlier rows with a key are looked at one by one.
_SCANNED = 32
CAPPED_MESSAGE = gettext_lazy(
    "The list stops at %(n)s probable duplicates, keeping strong pairs over possible ones, and there are more:"
    " does the file repeat a placeholder name?"
)
CUT_MESSAGE = gettext_lazy(
    "Rows with more than %(n)s look-alikes list their first %(n)s: a common name with a year of birth alone"
    " may match many persons."
)


# One key's records by date of birth (None: a year alone) and sex.
_ByBirth = dict[tuple[datetime.date | None, str], list[Any]]


def _by_rank(row: _Row, others: list[Any], by_birth: _ByBirth, order: str) -> Iterator[Any]:
    """Of `others` (one key's records, in `order`), those that may be the row's person,
    strongest first (_rank) and in `order` within a rank, from `by_birth`: the same
    records by date of birth (None: a year alone) and sex."""
    born = row.birth_date
    if born is None or _placeholder(born):
        # A year alone (or 1 January, as registrations write one) may be any date of
        # that year: every record with the key, all of one rank.
        return iter(others)
    same_date = [by_birth[born, sex] for sex in Sex.values if sex != row.sex and (born, sex) in by_birth]
    # A year alone, and the date written otherwise.
    dates: list[datetime.date | None] = [None, *_written_otherwise(born)]
    loosely = [by_birth[date, sex] for date in dates for sex in Sex.values if (date, sex) in by_birth]
    return itertools.chain(
        by_birth.get((born, row.sex), ()),
        heapq.merge(*same_date, key=operator.attrgetter(order)),
        heapq.merge(*loosely, key=operator.attrgetter(order)),
    )


def _by_birth(others: Iterable[Any]) -> _ByBirth:
    by_birth: _ByBirth = {}
    for other in others:
        by_birth.setdefault((other.birth_date, other.sex), []).append(other)
    return by_birth


class _Marked:
    """The pairs marked as different persons (DistinctPersons: registration numbers, in
    order), and those of them met by a search: never listed, nor counted among a row's
    look-alikes (the next ones are listed instead)."""

    def __init__(self, pairs: AbstractSet[tuple[str, str]] = frozenset()) -> None:
        self.pairs = pairs
        self.met: set[tuple[str, str]] = set()

    def apart(self, one: str, other: str) -> bool:
        if not self.pairs:
            return False
        pair = DistinctPersons.pair(one, other)
        if pair in self.pairs:
            self.met.add(pair)
            return True
        return False


def _listed(row: _Row, other: _Row | _Known, latin: bool, marked: _Marked) -> bool:
    """Whether a record with the row's key is listed as its look-alike: not the row's
    own person, not written apart in native script (for a Latin key), not marked as
    another person."""
    if other.registration_no == row.registration_no:
        return False
    if latin and _written_apart(row, other):
        return False
    return not marked.apart(row.registration_no, other.registration_no)


def _earlier_look_alikes(
    row: _Row,
    seen: dict[_Key, list[_Row]],
    dated: dict[_Key, _ByBirth],
    key: _Key,
    latin: bool,
    marked: _Marked,
) -> list[_Row]:
    """The _LOOK_ALIKES rows before `row` with its key that may be the same person and
    are listed (_listed; `latin` for a Latin key), strongest first (_rank; in file
    order within a rank), and one more if there are more; `row` is then added under
    its key. Most keys have a few rows, looked at one by one; a key with many more has
    them kept by date of birth and sex as well (`dated`), so that only those that can
    match are looked at, the strongest first."""
    others = seen.get(key)
    if others is None:
        seen[key] = [row]
        return []
    if len(others) <= _SCANNED:
        found = _strongest(
            row, [other for other in others if _may_be_one(row, other) and _listed(row, other, latin, marked)]
        )
    else:
        by_birth = dated.get(key)
        if by_birth is None:
            by_birth = dated[key] = _by_birth(others)
        candidates = (other for other in _by_rank(row, others, by_birth, "line") if _listed(row, other, latin, marked))
        found = list(itertools.islice(candidates, _LOOK_ALIKES + 1))
        by_birth.setdefault((row.birth_date, row.sex), []).append(row)
    others.append(row)
    return found


def _first_look_alikes(
    row: _Row, on_record: list[_Known], by_birth: _ByBirth, latin: bool, marked: _Marked
) -> list[_Known]:
    """The _LOOK_ALIKES persons on record with the row's key (`on_record`, by
    registration number; `by_birth`, the same by date of birth and sex) that may be the
    same person and are listed, strongest first, and one more if there are more."""
    candidates = (
        other for other in _by_rank(row, on_record, by_birth, "registration_no") if _listed(row, other, latin, marked)
    )
    return list(itertools.islice(candidates, _LOOK_ALIKES + 1))


class _DuplicateSearch:
    """Pairs with the same name key (Latin names, or the name in native script) and the
    same birth.

    The file's own pairs are looked for first (`in_file`, pure Python: it may run in a
    thread of its own while the database checks the file); then `result` adds the
    persons on record and lists every pair in file order: for each row, its look-alikes
    by Latin name (on record, then earlier in the file), then by native name.
    """

    def __init__(
        self, rows: list[_Row], match: list[tuple[str, str]] | None = None, marked: _Marked | None = None
    ) -> None:
        self.rows = rows
        # The rows' match keys, if worked out already (_stage).
        self.match = match
        # The pairs marked as different persons.
        self.marked = marked or _Marked()
        # Each row's keys, and the earlier rows it may be one with (by row index).
        self.keys: list[tuple[_Key | None, _Key | None]] = []
        self.matches: dict[int, tuple[list[_Row], list[_Row]]] = {}
        self.failure: BaseException | None = None
        # Whether more pairs were found than MAX_DUPLICATES; whether a row had more
        # look-alikes of a kind than _LOOK_ALIKES.
        self.capped = False
        self.cut = False

    def in_file(self) -> None:
        try:
            self._in_file()
        except BaseException as exc:  # handed to the thread that waits for this one
            self.failure = exc

    def _in_file(self) -> None:
        latin: dict[_Key, list[_Row]] = {}
        native: dict[_Key, list[_Row]] = {}
        latin_dated: dict[_Key, _ByBirth] = {}
        native_dated: dict[_Key, _ByBirth] = {}
        keys = self.keys
        match = self.match or [match_keys(row.family_name, row.given_name, row.native_name or "") for row in self.rows]
        for index, row in enumerate(self.rows):
            latin_name, native_name = match[index]
            key = (latin_name, row.birth_year) if latin_name else None
            key2 = (native_name, row.birth_year) if native_name else None
            marked = self.marked
            latin_match = _earlier_look_alikes(row, latin, latin_dated, key, True, marked) if key is not None else []
            native_match = (
                _earlier_look_alikes(row, native, native_dated, key2, False, marked) if key2 is not None else []
            )
            if len(latin_match) > _LOOK_ALIKES or len(native_match) > _LOOK_ALIKES:
                self.cut = True
                del latin_match[_LOOK_ALIKES:], native_match[_LOOK_ALIKES:]
            keys.append((key, key2))
            if latin_match or native_match:
                self.matches[index] = (latin_match, native_match)

    def result(self, db_people: Iterable[_OnRecord]) -> list[ProbableDuplicate]:
        """Every pair, with the persons on record that share a key with the file."""
        if self.failure is not None:
            raise self.failure
        latin: dict[_Key, list[_Known]] = {}
        native: dict[_Key, list[_Known]] = {}
        in_file = {row.registration_no for row in self.rows}
        for person in db_people:
            registration_no, family_name, given_name, birth_year, birth_date, latin_name, native_name = person[:7]
            if registration_no in in_file:
                # The file's row stands for this person now.
                continue
            sex, relationship, written_native, _case_id, case_no = person[7:]
            name = full_name(family_name, given_name)
            known = _Known(
                *(None, registration_no, name, birth_year, birth_date),
                *(sex, case_no, relationship, written_native),
            )
            if latin_name:
                latin.setdefault((latin_name, birth_year), []).append(known)
            if native_name:
                native.setdefault((native_name, birth_year), []).append(known)
        # The database gives them in no set order: by registration number, a row's first
        # look-alikes on record are the same ten at the check and at the import (whose
        # digest of the pairs must match the check's).
        for people in itertools.chain(latin.values(), native.values()):
            people.sort(key=operator.attrgetter("registration_no"))
        self._by_birth: dict[tuple[int, _Key], _ByBirth] = {}

        found: dict[tuple[str, str], ProbableDuplicate] = {}
        # The possible pairs found, in order: beyond MAX_DUPLICATES, the last of them
        # leaves its place to a strong one.
        possible: list[tuple[str, str]] = []
        reasons = (_("same name in another spelling"), _("same name in native script"))
        same_name = _("same name")

        def flag(row: _Row, others: Iterable[_Row | _Known], reason: str) -> None:
            for other in others:
                pair = (other.registration_no, row.registration_no)
                if pair in found:
                    continue
                strength = DuplicateStrength.POSSIBLE if _rank(row, other) else DuplicateStrength.STRONG
                if len(found) >= MAX_DUPLICATES:
                    # Full: a strong pair takes the place of the last possible one.
                    self.capped = True
                    if strength == DuplicateStrength.POSSIBLE or not possible:
                        continue
                    del found[possible.pop()]
                if strength == DuplicateStrength.POSSIBLE:
                    possible.append(pair)
                name = row.name
                found[pair] = ProbableDuplicate(
                    line=row.line,
                    registration_no=row.registration_no,
                    name=name,
                    other_line=other.line,
                    other_registration_no=other.registration_no,
                    other_name=other.name,
                    birth=row.birth,
                    # Latin names written alike are no "other spelling".
                    reason=same_name if reason == reasons[0] and other.name.casefold() == name.casefold() else reason,
                    other_birth=other.birth,
                    strength=strength,
                    sex=row.sex,
                    other_sex=other.sex,
                    case_no=row.case_no,
                    other_case_no=other.case_no,
                    relationship=row.relationship,
                    other_relationship=other.relationship,
                    native_name=row.native_name or "",
                    other_native_name=other.native_name or "",
                )

        # Without anyone on record to compare with, only the rows with a match count.
        indexes: Iterable[int] = range(len(self.rows)) if latin or native else sorted(self.matches)
        no_match: tuple[list[_Row], list[_Row]] = ([], [])
        for index in indexes:
            if self.capped and not possible:
                break  # full of strong pairs
            row = self.rows[index]
            key, key2 = self.keys[index]
            in_file_latin, in_file_native = self.matches.get(index, no_match)
            if key is not None:
                if on_record := latin.get(key):
                    flag(row, self._first(row, (0, key), on_record, True), reasons[0])
                flag(row, in_file_latin, reasons[0])
            if key2 is not None:
                if on_record2 := native.get(key2):
                    flag(row, self._first(row, (1, key2), on_record2, False), reasons[1])
                flag(row, in_file_native, reasons[1])
        return list(found.values())

    def _first(self, row: _Row, key: tuple[int, _Key], on_record: list[_Known], latin: bool) -> list[_Known]:
        by_birth = self._by_birth.get(key)
        if by_birth is None:
            by_birth = self._by_birth[key] = _by_birth(on_record)
        found = _first_look_alikes(row, on_record, by_birth, latin, self.marked)
        if len(found) > _LOOK_ALIKES:
            self.cut = True
            del found[_LOOK_ALIKES:]
        return found

    def notice(self) -> str:
        """What the lists leave out, if anything, for the user."""
        notices = [CUT_MESSAGE % {"n": _LOOK_ALIKES}] if self.cut else []
        if self.capped:
            notices.append(CAPPED_MESSAGE % {"n": _grouped(MAX_DUPLICATES)})
        return " ".join(notices)


# Checks against the file and the database ---------------------------------------------------


@dataclass
class _Plan:
    """What writing the file would do."""

    new: list[_Row] = field(default_factory=list)
    # Person pk → the row and the names of the fields it changes.
    changed: dict[int, tuple[_Row, list[str]]] = field(default_factory=dict)
    # Person pk → the version on record of the persons it changes (Person.version).
    versions: dict[int, int] = field(default_factory=dict)
    unchanged: int = 0
    # Cases on record (case_no → (pk, site_id, status, the status it is on hold from)) and
    # new ones (case_no → site_id, in file order).
    cases: dict[str, tuple[int, int, str, str]] = field(default_factory=dict)
    new_cases: dict[str, int] = field(default_factory=dict)


_COMPARED = (
    "relationship",
    "family_name",
    "given_name",
    "sex",
    "birth_year",
    "birth_date",
    "nationality",
    "site_id",
    *OPTIONAL_TEXT_COLUMNS,
)
# A row's values of the _COMPARED fields, in that order (also the staging table's order).
_compared_values = operator.attrgetter(*_COMPARED)


def _among(field: str, values: list[Any]) -> Iterator[dict[str, Any]]:
    """Filters for `field` being one of `values`, in as few queries as the database allows."""
    if not values:
        return
    if connection.vendor == "postgresql":
        # One array parameter: binding 100,000 separate parameters alone takes seconds.
        kind = "bigint" if isinstance(values[0], int) else "text"
        yield {f"{field}__in": RawSQL(f"SELECT unnest(%s::{kind}[])", [values])}  # noqa: S611 - no user text in SQL
        return
    # SQLite caps the number of parameters of one query.
    for start in range(0, len(values), 900):
        yield {f"{field}__in": values[start : start + 900]}


def _changes(row: _Row, values: tuple[Any, ...], needs: frozenset[int]) -> list[str]:
    """The fields `row` changes on a person whose _COMPARED fields are `values`."""
    wanted = _compared_values(row)
    changed = [
        name
        for name, value, on_record in zip(_COMPARED, wanted, values, strict=True)
        # An optional column left out of the file (None) changes nothing.
        if value != on_record and (value is not None or name not in OPTIONAL_TEXT_COLUMNS)
    ]
    if row.needs is not None and row.needs != needs:
        changed.append("specific_needs")
    return changed


# The checked rows, on PostgreSQL, for the database to compare and write from, and
# the name keys of the new ones.
_STAGING = "roster_import_rows"
_STAGING_KEYS = "roster_import_keys"
_STAGING_COLUMNS = (
    ("line", "integer PRIMARY KEY"),
    ("registration_no", "text NOT NULL"),
    ("case_no", "text NOT NULL"),
    ("relationship", "text NOT NULL"),
    ("family_name", "text NOT NULL"),
    ("given_name", "text NOT NULL"),
    ("sex", "text NOT NULL"),
    ("birth_year", "integer NOT NULL"),
    ("birth_date", "date"),
    ("nationality", "text NOT NULL"),
    ("site_id", "bigint NOT NULL"),
    # NULL: the column is not in the file.
    ("native_name", "text"),
    ("phone", "text"),
    ("notes", "text"),
    ("needs", "bigint[]"),
    # cases.names.match_keys, for the probable duplicates on record.
    ("match_latin", "text NOT NULL"),
    ("match_native", "text NOT NULL"),
)


# COPY's text format: the marker of NULL, the escapes of the characters it gives a meaning to,
# and the number of rows sent at a time (the database stores a batch while the next is made).
_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_BATCH = 5_000


def _copy_line(fields: tuple[str, ...]) -> str:
    """One row in COPY's text format; `fields` are text, or _NULL itself for NULL."""
    line = "\t".join(fields)
    # Most rows hold nothing to escape: the tabs are the separators, the backslashes the NULLs'.
    if (
        line.count("\t") == len(fields) - 1
        and "\n" not in line
        and "\r" not in line
        and ("\\" not in line or line.count("\\") == sum(field is _NULL for field in fields))
    ):
        return line
    return "\t".join(field if field is _NULL else field.translate(_COPY_ESCAPES) for field in fields)


def _stage(rows: list[_Row], progress: _Progress) -> list[tuple[str, str]]:
    """Copy the checked rows into a temporary table of this connection (the first half
    of the checking stage's progress); returns their match keys, staged with them."""
    needs_literal: dict[frozenset[int] | None, str] = {None: _NULL}
    keys: list[tuple[str, str]] = []
    with connection.cursor() as cursor:
        # Set back by _unstage. Right after a large import (or while one is written)
        # the planner's statistics can say a table of 100,000 rows is empty: it would
        # then join the staged rows to it row by row, for hours. The statements here
        # all join whole tables, which hash joins do in one pass, whatever the counts.
        # They need more than the default working memory for it. And the planner's
        # guesses about the staged rows are rough, often big enough for it to compile
        # a statement to machine code first, which takes longer than running it.
        cursor.execute("SET enable_nestloop = off")
        cursor.execute("SET work_mem = '64MB'")
        cursor.execute("SET jit = off")
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{_STAGING}")
        columns = ", ".join(f"{name} {kind}" for name, kind in _STAGING_COLUMNS)
        cursor.execute(f"CREATE TEMPORARY TABLE {_STAGING} ({columns})")
        names = ", ".join(name for name, _kind in _STAGING_COLUMNS)
        # The rows are written in COPY's text format here rather than by psycopg's
        # write_row: in a quarter less time, for an import whose every step counts.
        with connection.wrap_database_errors, cursor.copy(f"COPY {_STAGING} ({names}) FROM STDIN") as copy:
            for start in range(0, len(rows), _COPY_BATCH):
                if start >= progress.next * 2:
                    progress.report(start // 2)
                lines = []
                for row in rows[start : start + _COPY_BATCH]:
                    needs = needs_literal.get(row.needs)
                    if needs is None:
                        needs = needs_literal[row.needs] = "{" + ",".join(map(str, sorted(row.needs or ()))) + "}"
                    native_name, phone, notes = row.native_name, row.phone, row.notes
                    match = match_keys(row.family_name, row.given_name, native_name or "")
                    keys.append(match)
                    lines.append(
                        _copy_line(
                            (
                                str(row.line),
                                row.registration_no,
                                row.case_no,
                                row.relationship,
                                row.family_name,
                                row.given_name,
                                row.sex,
                                str(row.birth_year),
                                row.birth_date.isoformat() if row.birth_date else _NULL,
                                row.nationality,
                                str(row.site_id),
                                _NULL if native_name is None else native_name,
                                _NULL if phone is None else phone,
                                _NULL if notes is None else notes,
                                needs,
                                *match,
                            )
                        )
                    )
                lines.append("")
                copy.write("\n".join(lines))
    return keys


def _unstage() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{_STAGING}, pg_temp.{_STAGING_KEYS}")
            cursor.execute("RESET enable_nestloop")
            cursor.execute("RESET work_mem")
            cursor.execute("RESET jit")
    except DatabaseError:
        # The transaction it was made in is broken, and the error that broke it is
        # on its way up; the table goes with the connection.
        pass


def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _persons_on_record_sql(rows: list[_Row], plan: _Plan) -> tuple[list[tuple[_Row, str]], list[tuple[_Row, int]]]:
    """PostgreSQL: fill plan.new/changed/unchanged from the staged rows; returns the rows
    of persons on record in another case, with that case, and those of persons on
    record at another site, with that site (an import moves nobody: neither is a change)."""
    by_line = {row.line: row for row in rows}
    person, case = _table(Person), _table(Case)
    through = _table(Person.specific_needs.through)
    present = [name for name in _COMPARED if name not in OPTIONAL_TEXT_COLUMNS or getattr(rows[0], name) is not None]
    flags = [f"s.{name} IS DISTINCT FROM p.{name}" for name in present]
    lookups = len(rows) <= _KEY_LOOKUPS
    if lookups:
        # A file of a few thousand rows: each row's person, case and needs through their
        # indexes (as the duplicate search does), not the whole tables hashed.
        joins = (
            f" LEFT JOIN LATERAL (SELECT * FROM {person} p WHERE p.registration_no = s.registration_no OFFSET 0) p"  # noqa: S608
            f" ON true LEFT JOIN LATERAL (SELECT case_no FROM {case} c WHERE c.id = p.case_id OFFSET 0) c ON true"
        )
        needs_join = (
            "LEFT JOIN LATERAL (SELECT array_agg(specificneed_id ORDER BY specificneed_id) AS needs"  # noqa: S608
            f" FROM {through} WHERE person_id = p.id) n ON true"
        )
    else:
        joins = f" LEFT JOIN {person} p ON p.registration_no = s.registration_no LEFT JOIN {case} c ON c.id = p.case_id"
        # Every person's needs at once: cheaper than looking them up person by person.
        needs_join = (
            "LEFT JOIN (SELECT person_id, array_agg(specificneed_id ORDER BY specificneed_id) AS needs"  # noqa: S608
            f" FROM {through} GROUP BY person_id) n ON n.person_id = p.id"
        )
    if rows[0].needs is not None:
        flags.append("s.needs <> COALESCE(n.needs, '{}')")
    else:
        needs_join = ""
    moved: list[tuple[_Row, str]] = []
    elsewhere: list[tuple[_Row, int]] = []
    with connection.cursor() as cursor, _index_lookups(lookups):
        # Only the new rows and those that change something (or would move a person)
        # come back: an unchanged re-import brings back nothing.
        cursor.execute(
            f"SELECT s.line, p.id, p.version, c.case_no, p.site_id, {', '.join(flags)} FROM {_STAGING} s{joins}"  # noqa: S608
            f" {needs_join} WHERE p.id IS NULL OR c.case_no <> s.case_no OR {' OR '.join(flags)} ORDER BY s.line"
        )
        names = [*present, "specific_needs"]
        for line, pk, version, case_no, site_id, *changed in cursor.fetchall():
            row = by_line[line]
            if pk is None:
                plan.new.append(row)
                continue
            if case_no != row.case_no:
                moved.append((row, case_no))
            if row.site_id != site_id:
                elsewhere.append((row, site_id))
            if changes := [name for name, flag in zip(names, changed, strict=False) if flag and name != "site_id"]:
                plan.changed[pk] = (row, changes)
                plan.versions[pk] = version
    plan.unchanged = len(rows) - len(plan.new) - len(plan.changed)
    return moved, elsewhere


def _persons_on_record_orm(rows: list[_Row], plan: _Plan) -> tuple[list[tuple[_Row, str]], list[tuple[_Row, int]]]:
    """Elsewhere: the same as _persons_on_record_sql, in Python."""
    found: dict[str, tuple[int, str, int, tuple[Any, ...]]] = {}
    for among in _among("registration_no", list({row.registration_no for row in rows})):
        for pk, registration_no, case_no, version, *values in Person.objects.filter(**among).values_list(
            "pk", "registration_no", "case__case_no", "version", *_COMPARED
        ):
            found[registration_no] = (pk, case_no, version, tuple(values))
    needs: dict[int, set[int]] = defaultdict(set)
    through = Person.specific_needs.through
    for among in _among("person_id", [pk for pk, _case, _version, _values in found.values()]):
        for person_id, need_id in through.objects.filter(**among).values_list("person_id", "specificneed_id"):
            needs[person_id].add(need_id)
    moved: list[tuple[_Row, str]] = []
    elsewhere: list[tuple[_Row, int]] = []
    at_site = _COMPARED.index("site_id")
    for row in rows:
        known = found.get(row.registration_no)
        if known is None:
            plan.new.append(row)
            continue
        pk, case_no, version, values = known
        if case_no != row.case_no:
            moved.append((row, case_no))
        if row.site_id != values[at_site]:
            elsewhere.append((row, values[at_site]))
        changes = [name for name in _changes(row, values, frozenset(needs.get(pk, ()))) if name != "site_id"]
        if changes:
            plan.changed[pk] = (row, changes)
            plan.versions[pk] = version
        else:
            plan.unchanged += 1
    return moved, elsewhere


def _cases_on_record(
    case_nos: list[str], case_in_file: dict[str, str], staged: bool
) -> tuple[dict[str, tuple[int, int, str, str]], dict[str, list[str]]]:
    """The file's cases on record (case_no → (pk, site_id, status, status_before_hold)), and their principal
    applicants on record whose rows do not put them in that case (they keep their place:
    a row that puts one in another case is refused). `case_in_file` is each registration
    number's case in the file."""
    cases: dict[str, tuple[int, int, str, str]] = {}
    pa_on_record: dict[str, list[str]] = defaultdict(list)
    if staged:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.case_no, c.id, c.site_id, c.status, c.status_before_hold, p.registration_no"  # noqa: S608
                f" FROM {_table(Case)} c"
                f" LEFT JOIN {_table(Person)} p ON p.case_id = c.id AND p.relationship = %s"
                f" WHERE c.case_no IN (SELECT case_no FROM {_STAGING})",
                [Relationship.PRINCIPAL_APPLICANT.value],
            )
            for case_no, pk, site_id, status, held_from, registration_no in cursor.fetchall():
                cases[case_no] = (pk, site_id, status, held_from)
                if registration_no is not None and case_in_file.get(registration_no) != case_no:
                    pa_on_record[case_no].append(registration_no)
        return cases, pa_on_record
    for among in _among("case_no", case_nos):
        for pk, case_no, site_id, status, held_from in Case.objects.filter(**among).values_list(
            "pk", "case_no", "site_id", "status", "status_before_hold"
        ):
            cases[case_no] = (pk, site_id, status, held_from)
    for among in _among("case_id", [case[0] for case in cases.values()]):
        for case_no, registration_no in Person.objects.filter(
            relationship=Relationship.PRINCIPAL_APPLICANT, **among
        ).values_list("case__case_no", "registration_no"):
            if case_in_file.get(registration_no) != case_no:
                pa_on_record[case_no].append(registration_no)
    return cases, pa_on_record


@contextlib.contextmanager
def _index_lookups(on: bool) -> Iterator[None]:
    """For the statement run inside, when `on`: a scan of a whole table for each looked-up
    row is never the better plan, whatever the statistics say right after an import (set
    back at once: the statement is planned when it is run)."""
    if not on:
        yield
        return
    with connection.cursor() as settings:
        settings.execute("SET enable_seqscan = off")
        try:
            yield
        finally:
            # A failed statement in a transaction makes this fail too, and hide why; the
            # setting goes back with that transaction's rollback anyway.
            with contextlib.suppress(DatabaseError):
                settings.execute("RESET enable_seqscan")


@contextlib.contextmanager
def _people_to_compare(rows: list[_Row], staged: bool) -> Iterator[Iterable[_OnRecord]]:
    """The persons on record who share a match key and a year of birth with a row of the
    file (on PostgreSQL without those the file itself holds), found through their stored
    keys' indexes and read a batch at a time: however many are on record, only the
    file's look-alikes are read."""
    if not staged:
        found: dict[str, _OnRecord] = {}
        pairs = [match_keys(row.family_name, row.given_name, row.native_name or "") for row in rows]
        for at, field in enumerate(("match_latin", "match_native")):
            keys = {(pair[at], row.birth_year) for pair, row in zip(pairs, rows, strict=True) if pair[at]}
            column = _ON_RECORD.index(field)
            for among in _among(field, sorted({key for key, _year in keys})):
                people = Person.objects.filter(**among).values_list(*_ON_RECORD, "case__case_no")
                for person in people.iterator(chunk_size=_BATCH):
                    if (person[column], person[3]) in keys:
                        found[person[0]] = person
        yield found.values()
        return
    person, staging = _table(Person), _STAGING
    columns = ", ".join(f"p.{name}" for name in _ON_RECORD)
    # Their case numbers are joined to the persons found, not to the persons table.
    case_no = f"JOIN {_table(Case)} c ON c.{Case._meta.pk.column} = p.case_id"
    not_in_file = f"NOT EXISTS (SELECT 1 FROM {staging} s WHERE s.registration_no = p.registration_no)"  # noqa: S608
    fields = ("match_latin", "match_native")

    def file_keys(field: str) -> str:
        return f"(SELECT DISTINCT {field} AS key, birth_year AS year FROM {staging} WHERE {field} <> '') k"  # noqa: S608

    # A file of a few thousand rows looks each key up in its index (LATERAL, kept apart
    # by OFFSET 0: a loop over the file's keys, however the planner sees the persons
    # table right after a large import); a larger file is joined to the persons on
    # record but its own (worked out once) in one pass, cheaper than as many lookups.
    # UNION lists a person who matches by both keys once.
    lookups = len(rows) <= _KEY_LOOKUPS
    if lookups:
        matching = " UNION ".join(
            f"SELECT p.* FROM {file_keys(field)} CROSS JOIN LATERAL (SELECT {columns} FROM {person} p"  # noqa: S608
            f" WHERE p.{field} = k.key AND p.birth_year = k.year AND p.{field} <> '' OFFSET 0) p"
            for field in fields
        )
        sql = f"SELECT p.*, c.case_no FROM ({matching}) p {case_no} WHERE {not_in_file}"  # noqa: S608
    else:
        matching = " UNION ".join(
            f"SELECT p.* FROM others p JOIN {file_keys(field)} ON p.{field} = k.key AND p.birth_year = k.year"  # noqa: S608
            for field in fields
        )
        sql = (
            f"WITH others AS MATERIALIZED (SELECT {columns} FROM {person} p WHERE {not_in_file})"  # noqa: S608
            f" SELECT p.*, c.case_no FROM ({matching}) p {case_no}"
        )
    with connection.chunked_cursor() as cursor:
        with _index_lookups(lookups):
            # Out of a transaction, the query is run here, whole.
            cursor.execute(sql)
        yield itertools.chain.from_iterable(iter(functools.partial(cursor.fetchmany, _BATCH), []))


def _not_present_on_record(registration_nos: list[str]) -> dict[str, str]:
    """Of these persons on record, those no longer present (deceased, missing, relocated,
    left): registration number → their status, in words."""
    gone = Person.objects.exclude(residence_status=ResidenceStatus.PRESENT)
    return {
        registration_no: str(ResidenceStatus(status).label).lower()
        for among in _among("registration_no", registration_nos)
        for registration_no, status in gone.filter(**among).values_list("registration_no", "residence_status")
    }


# A spreadsheet saving a column of numbers drops their leading zeros; a number typed
# again may come in other letter case.
_LEADING_ZEROS = re.compile(r"(?<![0-9])0+(?=[0-9])")


def _number_key(number: str) -> str:
    """A registration or case number but for the leading zeros of its digit runs and the
    case of its letters."""
    return _LEADING_ZEROS.sub("", number.lower())


def _number_sieve(number: str) -> str:
    """Looser than _number_key (every zero out, letters lowered), and cheap to compare
    in the database too: only the numbers through it are compared by key."""
    return number.lower().replace("0", "")


def _on_record_but_for_zeros_or_case(
    model: type[models.Model], field: str, numbers: AbstractSet[str], staged: bool
) -> dict[str, str]:
    """Of `numbers`, none of them on record, those equal to a `field` on record but for
    leading zeros or letter case: number → the one on record."""
    if not numbers:
        return {}
    found: Iterable[tuple[str, str]]
    if staged:
        # In the database, from the staged rows: a sieve (every zero out, letters lowered)
        # is hash-joined, and only the pairs through it are compared exactly.
        table = _table(model)

        def sieve(value: str) -> str:
            return f"replace(lower({value}), '0', '')"  # as _number_sieve

        def key(value: str) -> str:
            return f"regexp_replace(lower({value}), %(zeros)s, '', 'g')"  # as _number_key

        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT s.{field}, t.{field} FROM {_STAGING} s JOIN {table} t"  # noqa: S608 - our names
                f" ON {sieve(f't.{field}')} = {sieve(f's.{field}')} AND t.{field} <> s.{field}"
                f" AND {key(f't.{field}')} = {key(f's.{field}')}",
                {"zeros": _LEADING_ZEROS.pattern},
            )
            found = cursor.fetchall()
    else:
        by_sieve: dict[str, list[str]] = {}
        for number in numbers:
            by_sieve.setdefault(_number_sieve(number), []).append(number)
        objects = model._default_manager.all()
        on_record: Iterable[str]
        if len(by_sieve) <= 900:
            sieved = objects.annotate(sieve=Replace(Lower(field), Value("0"), Value("")))
            on_record = itertools.chain.from_iterable(
                sieved.filter(**among).values_list(field, flat=True) for among in _among("sieve", list(by_sieve))
            )
        else:
            # SQLite would go through the table once for every 900 numbers: once is enough.
            on_record = objects.values_list(field, flat=True).iterator(chunk_size=_BATCH)
        found = (
            (number, other)
            for other in on_record
            for number in by_sieve.get(_number_sieve(other), ())
            if number != other and _number_key(number) == _number_key(other)
        )
    near: dict[str, str] = {}
    for number, other in found:
        if number in numbers and (number not in near or other < near[number]):
            near[number] = other
    return near


def _like_a_number_on_record(number: str, on_record: str) -> str:
    if number.lower() == on_record.lower():
        how = _("the same number in other letter case.")
    else:
        how = _(
            "the same number but for its leading zeros, which a spreadsheet drops when the column is not"
            " formatted as Text."
        )
    return _("%(number)s is not on record, but %(on_record)s is: %(how)s Write the number as it is on record.") % {
        "number": _shown(number),
        "on_record": on_record,
        "how": how,
    }


def _no_new_member(case_no: str, status: str, held_from: str) -> str:
    """Why an import adds no member to a case on record in `status` (on hold from
    `held_from`), or "" if it may (cases.workflow.takes_new_members)."""
    if workflow.takes_new_members(status, held_from):
        return ""
    if status == CaseStatus.ON_HOLD:
        message = _("Case %(case)s is on hold from %(status)s, to which it returns: an import adds no member to it.")
        status = held_from
    elif status in workflow.COUNTED_BY_AN_OFFER:
        message = _("Case %(case)s is %(status)s: its offer counts its persons, so an import adds no member to it.")
    elif status == CaseStatus.RELOCATED:
        message = _("Case %(case)s is relocated, a final status: an import adds no member to it.")
    else:
        message = _("Case %(case)s is closed: an import adds no member to it (reopen the case first).")
    return message % {"case": case_no, "status": str(CaseStatus(status).label).lower()}


def _check_against_file_and_database(
    rows: list[_Row],
    errors: list[RowError],
    site_names: dict[int, str],
    staged: bool,
    refused_pa: AbstractSet[str],
) -> _Plan:
    """Duplicate registration numbers, one PA per case, and consistency with the database.

    Returns what writing the rows would do.
    """
    first_line: dict[str, int] = {}
    case_in_file: dict[str, str] = {}
    for row in rows:
        if row.registration_no in first_line:
            errors.append(
                RowError(
                    row.line,
                    "registration_no",
                    _("“%(value)s” is already on line %(line)d of this file.")
                    % {"value": _shown(row.registration_no), "line": first_line[row.registration_no]},
                )
            )
        else:
            first_line[row.registration_no] = row.line
            case_in_file[row.registration_no] = row.case_no

    by_case: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_case[row.case_no].append(row)

    plan = _Plan()
    moved, elsewhere = _persons_on_record_sql(rows, plan) if staged else _persons_on_record_orm(rows, plan)
    cases, pa_on_record = _cases_on_record(list(by_case), case_in_file, staged)
    plan.cases = cases

    # New numbers that are ones on record written otherwise (a spreadsheet saved the
    # file): looked for only when anything is on record.
    if plan.new and (len(plan.new) < len(rows) or cases or Case.objects.exists()):
        new_numbers = {row.registration_no for row in plan.new}
        near = _on_record_but_for_zeros_or_case(Person, "registration_no", new_numbers, staged)
        new_cases = {case_no for case_no in by_case if case_no not in cases}
        near_cases = _on_record_but_for_zeros_or_case(Case, "case_no", new_cases, staged)
        for row in plan.new if near or near_cases else ():
            if row.registration_no in near:
                message = _like_a_number_on_record(row.registration_no, near[row.registration_no])
                errors.append(RowError(row.line, "registration_no", message))
            if row.case_no in near_cases:
                message = _like_a_number_on_record(row.case_no, near_cases[row.case_no])
                errors.append(RowError(row.line, "case_no", message))

    for row, case_no in moved:
        errors.append(
            RowError(
                row.line,
                "case_no",
                _("%(reg)s is in case %(case)s on record; an import does not move persons between cases.")
                % {"reg": row.registration_no, "case": case_no},
            )
        )

    # A site transfer moves a case and its present members, with their site history
    # (cases.services.site_transfer); an import moves nobody. Who is not present stays
    # at the site they were left at, and so may a present member the transfer left
    # behind (missing then): each person on record is where their record says.
    # Lazy: the URLs (every view module) are loaded only for a message that names it.
    transfer = reverse_lazy("cases:transfer_new")
    not_moved = {row.line for row, _case in moved}
    at_site = {row.line: site_id for row, site_id in elsewhere}
    gone = _not_present_on_record([row.registration_no for row, _site in elsewhere]) if elsewhere else {}
    new_lines = {row.line for row in plan.new}
    for case_no, members in by_case.items():
        on_record = cases.get(case_no)
        site_id = on_record[1] if on_record else members[0].site_id
        if on_record is None:
            plan.new_cases[case_no] = site_id
        # Whether its new members may join it: once for the case.
        refusal = _no_new_member(case_no, *on_record[2:]) if on_record else ""

        def case_moves(case_no: str = case_no, site_id: int = site_id) -> str:
            return _(
                "Case %(case)s is at %(site)s on record; an import does not move cases between sites:"
                " a site transfer does (%(page)s)."
            ) % {"case": case_no, "site": site_names.get(site_id, "?"), "page": transfer}

        for row in members:
            if row.line in at_site:
                stays_at = at_site[row.line]
                if row.registration_no in gone:
                    message = _(
                        "%(reg)s is %(status)s, not present, and stays at %(site)s: only present persons move."
                    ) % {
                        "reg": row.registration_no,
                        "status": gone[row.registration_no],
                        "site": site_names.get(stays_at, "?"),
                    }
                elif on_record and row.line not in not_moved and stays_at == site_id:
                    message = case_moves()
                elif on_record and row.line not in not_moved:
                    message = _(
                        "%(reg)s is at %(site)s on record (case %(case)s is at %(case_site)s); an import does not"
                        " move persons between sites: a site transfer does (%(page)s)."
                    ) % {
                        "reg": row.registration_no,
                        "site": site_names.get(stays_at, "?"),
                        "case": case_no,
                        "case_site": site_names.get(site_id, "?"),
                        "page": transfer,
                    }
                else:
                    message = _(
                        "%(reg)s is at %(site)s on record; an import does not move persons between sites:"
                        " a site transfer does (%(page)s)."
                    ) % {"reg": row.registration_no, "site": site_names.get(stays_at, "?"), "page": transfer}
                errors.append(RowError(row.line, "site", message))
                continue
            if row.line not in new_lines:
                continue
            if refusal:
                errors.append(RowError(row.line, "case_no", refusal))
            if row.site_id != site_id:
                if on_record:
                    message = case_moves()
                else:
                    message = _("Case %(case)s is at %(site)s; all its members must be at the same site.") % {
                        "case": case_no,
                        "site": site_names.get(site_id, "?"),
                    }
                errors.append(RowError(row.line, "site", message))
        pas = [row for row in members if row.relationship == Relationship.PRINCIPAL_APPLICANT]
        others = pa_on_record.get(case_no, [])
        # A case whose PA's row is refused has one: its error says what to mend.
        if not pas and not others and case_no not in refused_pa:
            errors.append(
                RowError(
                    members[0].line,
                    "relationship",
                    _("Case %(case)s has no principal applicant (PA).") % {"case": case_no},
                )
            )
        for row in pas[1:]:
            errors.append(
                RowError(
                    row.line,
                    "relationship",
                    _("Case %(case)s already has a principal applicant on line %(line)d.")
                    % {"case": case_no, "line": pas[0].line},
                )
            )
        if pas and others:
            errors.append(
                RowError(
                    pas[0].line,
                    "relationship",
                    _("Case %(case)s already has principal applicant %(reg)s on record.")
                    % {"case": case_no, "reg": ", ".join(others)},
                )
            )
    return plan


# Writing -----------------------------------------------------------------------------------------


def _default(field: models.Field[Any, Any]) -> Any:
    value = field.get_default()
    # Choices defaults are enums, which the database driver would write as their names.
    return value.value if isinstance(value, Enum) else value


def _insert_returning_tracked(
    model: type[models.Model], expressions: dict[str, str], values: dict[str, Any], source: str
) -> tuple[str, list[Any]]:
    """PostgreSQL: INSERT … SELECT … `source`, every field of `model` but its pk taken from
    `expressions` (attname → SQL on the source), else `values`, else its default;
    RETURNING the fields its history tracks."""
    quote = connection.ops.quote_name
    columns, select, params = [], [], []
    for f in model._meta.concrete_fields:
        if f.primary_key:
            continue
        columns.append(quote(f.column or f.attname))
        if f.attname in expressions:
            select.append(expressions[f.attname])
        else:
            select.append(f"CAST(%s AS {f.db_type(connection)})")
            params.append(values[f.attname] if f.attname in values else _default(f))
    tracked = ", ".join(quote(f.column) for f in model.history.model.tracked_fields)  # type: ignore[attr-defined]
    sql = f"INSERT INTO {_table(model)} ({', '.join(columns)}) SELECT {', '.join(select)} {source} RETURNING {tracked}"
    return sql, params


def _history_of(model: type[models.Model], inserted: str, stamp: dict[str, Any]) -> tuple[str, list[Any]]:
    """PostgreSQL: INSERT the "+" history rows of the rows of CTE `inserted`, as simple-history's
    bulk_history_create would; RETURNING history_id and id."""
    quote = connection.ops.quote_name
    history = model.history.model  # type: ignore[attr-defined]
    tracked = ", ".join(quote(f.column) for f in history.tracked_fields)
    stamped = [history._meta.get_field(name) for name in stamp]
    columns = ", ".join(quote(f.column) for f in stamped)
    casts = ", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in stamped)
    sql = (
        f"INSERT INTO {_table(history)} ({tracked}, {columns}) SELECT {tracked}, {casts} FROM {inserted}"  # noqa: S608
        " RETURNING history_id, id"
    )
    return sql, list(stamp.values())


def _write_new_sql(
    plan: _Plan, *, actor: User | None, reason: str, now: datetime.datetime, progress: _Progress, done: int
) -> None:
    """PostgreSQL: the new cases and persons, their history rows and needs, from the staged rows."""
    stamp = {
        "history_date": now,
        "history_user": actor.pk if actor else None,
        "history_change_reason": reason,
        "history_type": "+",
    }
    with connection.cursor() as cursor:
        if plan.new_cases:
            insert, insert_params = _insert_returning_tracked(
                Case,
                {"case_no": "s.case_no", "site_id": "s.site_id"},
                {"status_changed_at": now, "created_at": now, "updated_at": now},
                "FROM unnest(%s::text[], %s::bigint[]) WITH ORDINALITY AS s(case_no, site_id, n) ORDER BY s.n",
            )
            history, history_params = _history_of(Case, "made", stamp)
            cursor.execute(
                f"WITH made AS ({insert}), made_history AS ({history}) SELECT count(*) FROM made",  # noqa: S608
                [*insert_params, list(plan.new_cases), list(plan.new_cases.values()), *history_params],
            )

        if not plan.new:
            return
        optional = [name for name in OPTIONAL_TEXT_COLUMNS if getattr(plan.new[0], name) is not None]
        given = ("registration_no", "relationship", "family_name", "given_name", "sex", "birth_year", "birth_date")
        expressions = {name: f"s.{name}" for name in (*given, "nationality", "site_id", *STORED_KEYS, *optional)}
        expressions["case_id"] = "c.id"
        # The new rows' name keys (worked out now, for the new rows only) go to a
        # table of their own, gone with this transaction; their match keys are staged.
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{_STAGING_KEYS}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_STAGING_KEYS} (line integer PRIMARY KEY, name_key text NOT NULL) ON COMMIT DROP"
        )
        with connection.wrap_database_errors, cursor.copy(f"COPY {_STAGING_KEYS} (line, name_key) FROM STDIN") as copy:
            for row in plan.new:
                copy.write_row((row.line, _name_key(row.family_name, row.given_name, row.native_name or "")))
        # Each statement writes one chunk of the new rows (by line).
        chunk = (
            f"chunk AS MATERIALIZED (SELECT s.*, k.name_key FROM {_STAGING_KEYS} k"  # noqa: S608 - our table names
            f" JOIN {_STAGING} s ON s.line = k.line WHERE k.line BETWEEN %s AND %s)"
        )
        insert, insert_params = _insert_returning_tracked(
            Person,
            expressions,
            {"created_at": now, "updated_at": now},
            f"FROM chunk s JOIN {_table(Case)} c ON c.case_no = s.case_no ORDER BY s.line",
        )
        history, history_params = _history_of(Person, "made", stamp)
        needs = ""
        if plan.new[0].needs is not None:
            through = _table(Person.specific_needs.through)
            needs_history = _table(apps.get_model("cases", "HistoricalPerson_specific_needs"))
            # simple-history keeps a person's needs with each history row; its bulk
            # helpers leave them out, so they are written here.
            needs = (
                f", links AS (INSERT INTO {through} (person_id, specificneed_id)"  # noqa: S608 - our table names
                " SELECT made.id, need FROM made JOIN chunk s ON s.registration_no = made.registration_no"
                " CROSS JOIN LATERAL unnest(s.needs) AS need ORDER BY made.id, need"
                " RETURNING id, person_id, specificneed_id)"
                f", links_history AS (INSERT INTO {needs_history} (id, person_id, specificneed_id, history_id)"
                " SELECT links.id, links.person_id, links.specificneed_id, made_history.history_id"
                " FROM links JOIN made_history ON made_history.id = links.person_id)"
            )
        statement = f"WITH {chunk}, made AS ({insert}), made_history AS ({history}){needs} SELECT count(*) FROM made"  # noqa: S608
        size = max(_BATCH, math.ceil(len(plan.new) / _WRITE_STATEMENTS))
        for start in range(0, len(plan.new), size):
            rows = plan.new[start : start + size]
            cursor.execute(statement, [rows[0].line, rows[-1].line, *insert_params, *history_params])
            (written,) = cursor.fetchone()
            if written != len(rows):
                # A case of the file was deleted meanwhile.
                raise IntegrityError("Rows of the roster have no case.")
            done += written
            progress.report(done)


def _insert_with_history(
    model: type[models.Model], rows: list[dict[str, Any]], *, actor: User | None, reason: str, now: datetime.datetime
) -> tuple[list[int], list[int]]:
    """Insert rows (attname → value) and their "+" history rows; returns their ids and their history rows' ids."""
    if not rows:
        return [], []
    objs = model._default_manager.bulk_create([model(**row) for row in rows], batch_size=_BATCH)
    records = model.history.bulk_history_create(  # type: ignore[attr-defined]
        objs, batch_size=_BATCH, default_user=actor, default_change_reason=reason, default_date=now
    )
    return [obj.pk for obj in objs], [record.pk for record in records]


def _write_new_orm(
    plan: _Plan, *, actor: User | None, reason: str, now: datetime.datetime, progress: _Progress, done: int
) -> None:
    """Elsewhere: the same as _write_new_sql, with bulk_create."""
    # A new case starts as registered (the model's default); later moves go through
    # cases.services.case_transition.
    case_pks, _history = _insert_with_history(
        Case,
        [
            {"case_no": case_no, "site_id": site_id, "status_changed_at": now, "created_at": now, "updated_at": now}
            for case_no, site_id in plan.new_cases.items()
        ],
        actor=actor,
        reason=reason,
        now=now,
    )
    case_ids = {case_no: case[0] for case_no, case in plan.cases.items()}
    case_ids.update(zip(plan.new_cases, case_pks, strict=True))
    through = Person.specific_needs.through
    needs_model = apps.get_model("cases", "HistoricalPerson_specific_needs")
    size = max(_BATCH, math.ceil(len(plan.new) / _WRITE_STATEMENTS))
    for start in range(0, len(plan.new), size):
        chunk = plan.new[start : start + size]
        person_pks, history_pks = _insert_with_history(
            Person,
            [_person_values(row, case_ids[row.case_no], now) for row in chunk],
            actor=actor,
            reason=reason,
            now=now,
        )
        links = through.objects.bulk_create(
            [
                through(person_id=pk, specificneed_id=need)
                for pk, row in zip(person_pks, chunk, strict=True)
                for need in sorted(row.needs or ())
            ],
            batch_size=_BATCH,
        )
        # simple-history keeps a person's needs with each history row; its bulk helpers
        # leave them out, so they are written here.
        history_of = dict(zip(person_pks, history_pks, strict=True))
        needs_model.objects.bulk_create(
            [
                needs_model(
                    id=link.pk,
                    history_id=history_of[link.person_id],
                    person_id=link.person_id,
                    specificneed_id=link.specificneed_id,
                )
                for link in links
            ],
            batch_size=_BATCH,
        )
        done += len(chunk)
        progress.report(done)


def _person_values(row: _Row, case_id: int, now: datetime.datetime) -> dict[str, Any]:
    return {
        "registration_no": row.registration_no,
        "case_id": case_id,
        "relationship": row.relationship,
        "family_name": row.family_name,
        "given_name": row.given_name,
        "sex": row.sex,
        "birth_year": row.birth_year,
        "birth_date": row.birth_date,
        "nationality": row.nationality,
        "site_id": row.site_id,
        "created_at": now,
        "updated_at": now,
        **row.optional,
        **_stored_keys(row.family_name, row.given_name, row.native_name or ""),
    }


def _write_changes(
    changes_by_pk: dict[int, tuple[_Row, list[str]]],
    versions: dict[int, int],
    *,
    actor: User | None,
    reason: str,
    now: datetime.datetime,
) -> int:
    """Update the persons the file changes, each with a "~" history row; returns how many.
    Raises IntegrityError if one of them is no longer the version the check compared."""
    if not changes_by_pk:
        return 0
    through = Person.specific_needs.through
    needs_model = apps.get_model("cases", "HistoricalPerson_specific_needs")
    # The whole person is loaded for the few that changed, so that their history rows
    # carry every field, not only the imported ones.
    changed_people: list[Person] = []
    changed_fields: set[str] = {"updated_at", "version"}
    replaced: list[int] = []
    pks = sorted(changes_by_pk)
    for among in _among("pk", pks):
        # Locked until the import ends: an edit saved meanwhile would be overwritten unseen;
        # one saved since the check makes the import fail whole.
        for person in Person.objects.select_for_update().filter(**among).order_by("pk"):
            if person.version != versions[person.pk]:
                raise IntegrityError(f"Person {person.pk} was changed after the check.")
            row, changes = changes_by_pk[person.pk]
            for name in changes:
                if name == "specific_needs":
                    replaced.append(person.pk)
                else:
                    setattr(person, name, getattr(row, name))
                    changed_fields.add(name.removesuffix("_id"))
            if changed_fields & {"family_name", "given_name", "native_name"}:
                for name, key in _stored_keys(person.family_name, person.given_name, person.native_name).items():
                    setattr(person, name, key)
                changed_fields.update(STORED_KEYS)
            # An edit form opened before the import must not overwrite it unseen.
            person.version += 1
            person.updated_at = now
            changed_people.append(person)
    if not changed_people:
        return 0
    # Writes one "~" history row for every person passed, and only those.
    bulk_update_with_history(
        changed_people,
        Person,
        fields=sorted(changed_fields),
        batch_size=_BATCH,
        default_user=actor,
        default_change_reason=reason,
        default_date=now,
    )
    replaced.sort()
    for among in _among("person_id", replaced):
        through.objects.filter(**among).delete()
    through.objects.bulk_create(
        [
            through(person_id=pk, specificneed_id=need)
            for pk in replaced
            for need in sorted(changes_by_pk[pk][0].needs or ())
        ],
        batch_size=_BATCH,
    )
    current: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for among in _among("person_id", pks):
        for link_id, person_id, need_id in through.objects.filter(**among).values_list(
            "pk", "person_id", "specificneed_id"
        ):
            current[person_id].append((link_id, need_id))
    # bulk_update_with_history returns no rows: find them by this import's time.
    records = Person.history.filter(history_date=now, history_type="~").values_list("history_id", "id")
    needs_model.objects.bulk_create(
        [
            needs_model(id=link_id, history_id=history_id, person_id=pk, specificneed_id=need_id)
            for history_id, pk in records.iterator(chunk_size=_BATCH)
            for link_id, need_id in current.get(pk, ())
        ],
        batch_size=_BATCH,
    )
    return len(changed_people)


def _write(
    rows: list[_Row], plan: _Plan, *, actor: User | None, reason: str, staged: bool, progress: _Progress
) -> tuple[int, int, int, int]:
    """Write the checked rows; returns (new, updated, unchanged, new cases)."""
    now = timezone.now()
    # The unchanged rows are done already (progress.start): nothing is written for them.
    # A case has one principal applicant at a time, checked row by row as rows are
    # written: whoever stops being one is written first, then the new persons (one may
    # be the new PA), then the other changes.
    demoted = {
        pk: change
        for pk, change in plan.changed.items()
        if "relationship" in change[1] and change[0].relationship != Relationship.PRINCIPAL_APPLICANT
    }
    updated = _write_changes(demoted, plan.versions, actor=actor, reason=reason, now=now)
    write_new = _write_new_sql if staged else _write_new_orm
    write_new(plan, actor=actor, reason=reason, now=now, progress=progress, done=plan.unchanged)
    others = {pk: change for pk, change in plan.changed.items() if pk not in demoted}
    updated += _write_changes(others, plan.versions, actor=actor, reason=reason, now=now)
    progress.report(len(rows))
    return len(plan.new), updated, plan.unchanged, len(plan.new_cases)


def _check(
    rows: list[_Row],
    errors: list[RowError],
    staged: bool,
    progress: _Progress,
    refused_pa: AbstractSet[str] = frozenset(),
) -> tuple[_Plan, list[ProbableDuplicate], str, int]:
    """The checks across rows and against the database; returns what writing the rows
    would do, the probable duplicates, what their list leaves out (if anything), and
    how many pairs marked as different persons it leaves out. Errors are appended to
    `errors`."""
    progress.start("checking", len(rows))
    match = _stage(rows, progress) if staged else None
    # The file's own probable duplicates are looked for in a thread of its own: it
    # runs while this one waits for the database to compare the file with it.
    search = _DuplicateSearch(rows, match, _Marked(_marked_different([row.registration_no for row in rows])))
    searching = threading.Thread(target=search.in_file, name="roster-import-duplicates", daemon=True)
    searching.start()
    try:
        site_names = dict(Site.objects.values_list("pk", "name"))
        plan = _check_against_file_and_database(rows, errors, site_names, staged, refused_pa)
        progress.report(len(rows) * 3 // 4)
        with _people_to_compare(rows, staged) as people:
            searching.join()
            duplicates = search.result(people)
    finally:
        searching.join()
    progress.report(len(rows))
    return plan, duplicates, search.notice(), len(search.marked.met)


def _marked_different(numbers: list[str]) -> set[tuple[str, str]]:
    """The pairs with one of these registration numbers marked as different persons."""
    if not DistinctPersons.objects.exists():  # as before any is marked: no lookup of the file's numbers
        return set()
    pairs: set[tuple[str, str]] = set()
    for side in ("first", "second"):
        for among in _among(side, numbers):
            pairs.update(DistinctPersons.objects.filter(**among).values_list("first", "second"))
    return pairs


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector.

    A large roster makes hundreds of thousands of small objects that live until the
    end; the collector would go through all of them again and again (a third of the
    import's time in Python). Reference counting still frees whatever is not in a
    cycle; what is, the collector finds once it runs again.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def read_content(file: IO[bytes] | bytes) -> bytes:
    """At most the byte limit plus one byte, so an oversized upload is not read whole."""
    if isinstance(file, bytes):
        return file
    return file.read(max_bytes() + 1)


def roster_import(
    file: IO[bytes] | bytes,
    *,
    actor: User | None,
    filename: str,
    dry_run: bool,
    progress: Progress | None = None,
    seen: str | None = None,
    written: Callable[[ImportResult], None] | None = None,
) -> ImportResult:
    """Check a roster file and, if it has no error and this is no dry run, import it.

    Records the attempt as a RosterImport whatever the outcome. The checks read the
    database outside the write transaction, so a dry run never holds a write lock; a
    conflicting change made meanwhile by someone else makes the write fail whole.
    `progress(stage, done, total)`, if given, is told how far the import has come.

    `seen` is the `outcome` of the check the user confirmed: if the file would now do
    anything else (other counts, other probable duplicates: the roster on record changed
    in between), nothing is written and the result is a new check to confirm
    (`changed_since_check`).

    `written(result)`, if given, is called once the file is written, inside the write's
    transaction: what it records commits with the rows, or not at all.
    """
    with _collector_paused():
        return _roster_import(
            file, actor=actor, filename=filename, dry_run=dry_run, progress=progress, seen=seen, written=written
        )


def _outcome(plan: _Plan, duplicates: list[ProbableDuplicate]) -> str:
    """What writing a file would do, as a digest: its counts and its probable duplicates."""
    # With their strength: a look-alike on record whose sex was changed meanwhile is shown again.
    pairs = sorted(
        (duplicate.registration_no, duplicate.other_registration_no, duplicate.strength) for duplicate in duplicates
    )
    counts = [len(plan.new), len(plan.changed), plan.unchanged, len(plan.new_cases)]
    # The persons it changes as they are on record: one edited meanwhile is shown again.
    versions = sorted(plan.versions.items())
    return hashlib.sha256(json.dumps([counts, pairs, versions]).encode()).hexdigest()


def _roster_import(
    file: IO[bytes] | bytes,
    *,
    actor: User | None,
    filename: str,
    dry_run: bool,
    progress: Progress | None,
    seen: str | None = None,
    written: Callable[[ImportResult], None] | None = None,
) -> ImportResult:
    started = time.monotonic()
    result = ImportResult(filename=filename, dry_run=dry_run)
    report = _Progress(progress)
    rows: list[_Row] = []
    refused_pa: set[str] = set()
    content = read_content(file)
    check_again = False
    try:
        rows, result.rows = _read(content, result, report, refused_pa)
    except _Refused as refused:
        result.errors = refused.errors
    if seen is None:
        content = b""  # read: only a confirmed check is checked again (below)
    staged = bool(rows) and connection.vendor == "postgresql"
    try:
        plan = _Plan()
        if rows:
            plan, result.duplicates, result.duplicates_notice, result.duplicates_decided = _check(
                rows, result.errors, staged, report, refused_pa
            )
        # In file order; the checks of one line keep their column order.
        result.errors.sort(key=lambda error: error.line or 0)
        # The lines whose rows passed the checks of one row but not those across rows.
        if across := {error.line for error in result.errors if error.line} - result.error_people.keys():
            people = ((row.line, (row.registration_no, row.name)) for row in rows if row.line in across)
            result.error_people.update(people)
        if not result.errors:
            result.outcome = _outcome(plan, result.duplicates)
            if not dry_run and seen is not None and result.outcome != seen:
                result.dry_run = result.changed_since_check = True
        if result.errors:
            result.record = _record(result, actor=actor, started=started)
        elif result.dry_run:
            result.new, result.updated, result.unchanged = len(plan.new), len(plan.changed), plan.unchanged
            result.cases_new = len(plan.new_cases)
            result.record = _record(result, actor=actor, started=started)
        else:
            reason = _("Roster import: %(file)s") % {"file": filename}
            # Said before the transaction: where the progress written inside it is not
            # seen until it ends (SQLite), the page says at least what is being done.
            report.start("writing", len(rows), plan.unchanged)
            try:
                with transaction.atomic():
                    result.new, result.updated, result.unchanged, result.cases_new = _write(
                        rows, plan, actor=actor, reason=reason, staged=staged, progress=report
                    )
                    result.record = _record(result, actor=actor, started=started)
                    if written is not None:
                        written(result)
            except IntegrityError:
                result.new = result.updated = result.unchanged = result.cases_new = 0
                # A confirmed check is checked again, and shown as what the file would do now.
                check_again = seen is not None
                if not check_again:
                    result.errors.append(
                        RowError(
                            None, "", _("The roster changed in the database while this file was imported; try again.")
                        )
                    )
                    result.record = _record(result, actor=actor, started=started)
    finally:
        if staged:
            _unstage()
    if check_again:
        result = _roster_import(content, actor=actor, filename=filename, dry_run=True, progress=progress)
        result.changed_since_check = True
    return result


def value_rules() -> str:
    """How each value of a roster is written, as the checks above read it (for the import page)."""
    relationships = list(Relationship.values)
    return _(
        "Values: date_of_birth as YYYY-MM-DD, or YYYY when only the year is known; sex %(sexes)s;"
        " relationship %(pa)s (one per case), %(others)s; nationality as an ISO code (IR, IRN) or the"
        " English name; site as its name on record; specific_needs as codes separated by semicolons (;);"
        " family_name and given_name in Latin script, the name in its own script in native_name."
    ) % {
        "sexes": ", ".join(Sex.values[:-1]) + " " + _("or") + " " + Sex.values[-1],
        "pa": Relationship.PRINCIPAL_APPLICANT.value,
        "others": ", ".join(value for value in relationships[1:-1]) + " " + _("or") + " " + relationships[-1],
    }


def _template_example() -> list[str]:
    """The example row, at a real site when there is one."""
    example = dict(TEMPLATE_EXAMPLE)
    site = Site.objects.filter(is_active=True).values_list("name", flat=True).first()
    if site:
        example["site"] = site
    return [example[column] for column in COLUMNS]


def template_csv() -> bytes:
    """The header row and an example row, as a UTF-8 CSV with BOM (so Excel reads it as UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerow(_template_example())
    return out.getvalue().encode("utf-8-sig")


# The template's rows offered drop-downs and input messages (a whole column's would make
# every spreadsheet check a million cells).
TEMPLATE_ROWS = 5_000
# Its columns' widths, in characters (a wide one for the notes).
_TEMPLATE_WIDTHS = {"native_name": 24, "site": 20, "specific_needs": 28, "phone": 20, "notes": 40}


def template_xlsx() -> bytes:
    """The header row and an example row, as a workbook that keeps what is typed as typed:
    every column is Text (a spreadsheet would make 00123 the number 123, a long number
    1.23E+17, and drop a phone number's +), the header stays in view, and the coded
    columns offer their codes."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new workbook has its sheet
    sheet.title = _("Roster")
    sheet.append(list(COLUMNS))
    sheet.append(_template_example())
    sheet.freeze_panes = "A2"
    bold = openpyxl.styles.Font(bold=True)
    for at, column in enumerate(COLUMNS, start=1):
        letter = openpyxl.utils.get_column_letter(at)
        # The column's format is what a spreadsheet gives a cell typed into it.
        dimension = sheet.column_dimensions[letter]
        dimension.number_format = "@"
        dimension.width = _TEMPLATE_WIDTHS.get(column, max(12, len(column) + 2))
        sheet.cell(row=1, column=at).font = bold
        sheet.cell(row=2, column=at).number_format = "@"

    def rows_of(column: str) -> str:
        letter = openpyxl.utils.get_column_letter(COLUMNS.index(column) + 1)
        return f"{letter}2:{letter}{TEMPLATE_ROWS + 1}"

    # The codes the checks read (cases.models' choices), as value_rules says them.
    for column, codes in (("sex", Sex.values), ("relationship", Relationship.values)):
        rule = openpyxl.worksheet.datavalidation.DataValidation(
            type="list",
            formula1=f'"{",".join(codes)}"',
            showErrorMessage=True,
            errorTitle=column,
            error=_("One of: %(codes)s.") % {"codes": ", ".join(codes)},
        )
        rule.add(rows_of(column))
        sheet.add_data_validation(rule)
    # Several needs go in one cell, which a list cannot offer: the codes are said as the
    # cell is chosen (a spreadsheet shows at most 255 characters of it).
    need_codes = ", ".join(SpecificNeed.objects.order_by("code").values_list("code", flat=True))
    prompt = _("Codes separated by semicolons (;): %(codes)s") % {"codes": need_codes}
    needs = openpyxl.worksheet.datavalidation.DataValidation(
        showInputMessage=True, promptTitle="specific_needs", prompt=_shown_within(prompt, 255)
    )
    needs.add(rows_of("specific_needs"))
    sheet.add_data_validation(needs)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _shown_within(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def record_attempt(
    *, actor: User | None, filename: str, dry_run: bool, outcome: RosterImportOutcome, reason: str
) -> RosterImport:
    """The record of an attempt that never came to roster_import's own: a file refused on
    upload, a job that failed or was given up. `reason` says why, in the user's words."""
    return RosterImport.objects.create(
        actor=actor,
        filename=filename[:255],
        dry_run=dry_run,
        outcome=outcome,
        error_count=int(outcome == RosterImportOutcome.REFUSED),
        errors=[reason],
    )


def _record(result: ImportResult, *, actor: User | None, started: float) -> RosterImport:
    if result.errors:
        outcome = RosterImportOutcome.REFUSED
    elif result.dry_run:
        outcome = RosterImportOutcome.CHECKED
    else:
        outcome = RosterImportOutcome.IMPORTED
    return RosterImport.objects.create(
        actor=actor,
        filename=result.filename[:255],
        dry_run=result.dry_run,
        outcome=outcome,
        rows=result.rows,
        new=result.new,
        updated=result.updated,
        unchanged=result.unchanged,
        cases_new=result.cases_new,
        error_count=len(result.errors),
        duplicate_count=len(result.duplicates),
        errors=[str(error) for error in result.errors[:RECORDED_ERRORS]],
        duration_ms=int((time.monotonic() - started) * 1000),
    )
