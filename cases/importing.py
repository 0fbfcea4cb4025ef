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
birth date or year) are reported, never merged.

On PostgreSQL new rows (cases, persons, their history and needs) are written with
COPY; elsewhere with bulk_create. Updates go through simple-history's
bulk_update_with_history. Either way every new or changed person gets a history row.
"""

import csv
import datetime
import io
import re
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import IO, Any

import openpyxl
from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_countries import countries
from python_calamine import CalamineError, CalamineWorkbook
from simple_history.utils import bulk_update_with_history

from cases.models import (
    Case,
    Person,
    Relationship,
    RosterImport,
    RosterImportOutcome,
    Sex,
    Site,
    SpecificNeed,
)
from cases.names import latin_key, name_key, native_key

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
TEMPLATE_EXAMPLE = {
    "registration_no": "RLC-0000001",
    "case_no": "C-00001",
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
# Errors kept on the RosterImport record (all of them are in the result and report).
RECORDED_ERRORS = 200
_BATCH = 2000


def max_rows() -> int:
    return settings.ROSTER_IMPORT_MAX_ROWS


def max_bytes() -> int:
    return settings.ROSTER_IMPORT_MAX_BYTES


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class ProbableDuplicate:
    """Two records that look like one person. Shown for a person to decide; never merged."""

    line: int
    registration_no: str
    name: str
    # other_line is None when the other record is already in the database.
    other_line: int | None
    other_registration_no: str
    other_name: str
    birth: str
    reason: str

    def __str__(self) -> str:
        where = _("line %(line)d") % {"line": self.other_line} if self.other_line is not None else _("the database")
        return _("Line %(line)d: %(name)s (%(reg)s) may be %(other)s (%(other_reg)s) in %(where)s: %(reason)s") % {
            "line": self.line,
            "name": self.name,
            "reg": self.registration_no,
            "other": self.other_name,
            "other_reg": self.other_registration_no,
            "where": where,
            "reason": self.reason,
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
    record: RosterImport | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if not self.ok:
            return ngettext(
                "%(file)s refused: %(n)d error; nothing was imported.",
                "%(file)s refused: %(n)d errors; nothing was imported.",
                len(self.errors),
            ) % {"file": self.filename, "n": len(self.errors)}
        text = _("%(rows)d rows: %(new)d new, %(updated)d updated, %(unchanged)d unchanged; %(cases)d new cases.") % {
            "rows": self.rows,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "cases": self.cases_new,
        }
        if self.dry_run:
            return _("Dry run, nothing written. %(text)s") % {"text": text}
        return text

    def report_lines(self) -> list[str]:
        lines = [self.summary()]
        lines += [str(error) for error in self.errors]
        if self.duplicates:
            lines.append(_("Probable duplicates (not merged; check them):"))
            lines += [str(duplicate) for duplicate in self.duplicates]
        return lines


class _Refused(Exception):
    """The file cannot be read at all (format, size, encoding, header)."""

    def __init__(self, *errors: RowError) -> None:
        super().__init__(errors)
        self.errors = list(errors)


# Reading ---------------------------------------------------------------------------------


def _cell_text(value: Any) -> str:
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
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _csv_rows(content: bytes) -> Iterator[tuple[int, list[str]]]:
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
    first_line = text.split("\n", 1)[0]
    # Spreadsheets in many locales save CSV with semicolons.
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for values in reader:
            yield start, values
            start = reader.line_num + 1
    except csv.Error as exc:
        raise _Refused(RowError(start, "", _("This line cannot be read as CSV (%(error)s).") % {"error": exc})) from exc


def _xlsx_rows(content: bytes) -> Iterator[tuple[int, list[str]]]:
    # calamine (Rust) reads the sheet ten times faster than openpyxl, and its XML
    # parser expands no entity declarations: an XML bomb fails at once. Formula cells
    # are read as the value the spreadsheet last computed; no formula is ever stored.
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise _Refused(RowError(None, "", _("The file is not a readable XLSX workbook."))) from exc
    if unpacked > max_bytes() * XLSX_MAX_EXPANSION:
        raise _Refused(RowError(None, "", _("The XLSX file unpacks to an implausible size; it was not read.")))
    try:
        sheet = CalamineWorkbook.from_filelike(io.BytesIO(content)).get_sheet_by_index(0)
        # iter_rows starts at the sheet's first row, empty rows included: row numbers hold.
        for number, values in enumerate(sheet.iter_rows(), start=1):
            yield number, [_cell_text(value) for value in values]
    except CalamineError as exc:
        raise _Refused(RowError(None, "", _("The file is not a readable XLSX workbook."))) from exc


def _rows(content: bytes, filename: str) -> Iterator[tuple[int, list[str]]]:
    if content.startswith(b"PK\x03\x04"):
        return _xlsx_rows(content)
    if filename.lower().endswith((".xlsx", ".xls", ".xlsm", ".ods")) or content.startswith(b"\xd0\xcf\x11\xe0"):
        raise _Refused(RowError(None, "", _("Only CSV (UTF-8) and XLSX files can be imported.")))
    return _csv_rows(content)


def _header_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).casefold()


_HEADER_KEYS = {_header_key(column): column for column in COLUMNS}


def _map_header(line: int, values: list[str]) -> dict[str, int]:
    """Column name → index. Raises _Refused naming every missing required column."""
    positions: dict[str, int] = {}
    errors = []
    for index, value in enumerate(values):
        column = _HEADER_KEYS.get(_header_key(value))
        if column is None:
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
# + and - start a formula unless the cell is a number or a phone number.
_SIGNED_NUMBER = re.compile(r"^[+-][\d\s().]*$")


def plain_text(value: str) -> str:
    """A stripped cell value that no spreadsheet will run as a formula."""
    value = value.strip()
    if value and (value[0] in "=@" or (value[0] in "+-" and not _SIGNED_NUMBER.match(value))):
        return "'" + value
    return value


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
} | {"case_no": Case._meta.get_field("case_no").max_length}


def _nationality(value: str, cache: dict[str, str]) -> str:
    if value not in cache:
        code = ""
        if value.isalpha() and len(value) in (2, 3):
            code = countries.alpha2(value)
        if not code:
            found = countries.by_name(value)
            code = found if isinstance(found, str) else ""
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
    # Only the optional columns present in the file.
    optional: dict[str, str]
    needs: frozenset[int] | None

    @property
    def name(self) -> str:
        return f"{self.family_name.upper()}, {self.given_name}"

    @property
    def birth(self) -> str:
        return self.birth_date.isoformat() if self.birth_date else str(self.birth_year)


class _Checker:
    """Checks one row at a time, collecting every error; keeps lookups warm."""

    def __init__(self, positions: dict[str, int], errors: list[RowError]) -> None:
        self.positions = positions
        self.errors = errors
        self.today = timezone.localdate()
        sites = list(Site.objects.values_list("pk", "name", "code"))
        self.sites = {name: pk for pk, name, _code in sites} | {name.casefold(): pk for pk, name, _code in sites}
        self.sites.update({code.casefold(): pk for pk, _name, code in sites if code.casefold() not in self.sites})
        self.site_names = {pk: name for pk, name, _code in sites}
        self.needs = {code.casefold(): pk for pk, code in SpecificNeed.objects.values_list("pk", "code")}
        self.countries: dict[str, str] = {}
        self.optional = [column for column in OPTIONAL_TEXT_COLUMNS if column in positions]

    def error(self, line: int, column: str, message: str) -> None:
        self.errors.append(RowError(line, column, message))

    def text(self, line: int, column: str, value: str) -> str:
        if value[:1] in _FORMULA_STARTS:
            value = plain_text(value)
        limit = _MAX_LENGTH.get(column)
        if limit and len(value) > limit:
            self.error(line, column, _("Longer than %(max)d characters (%(n)d).") % {"max": limit, "n": len(value)})
        return value

    def row(self, line: int, values: list[str]) -> _Row | None:
        count = len(self.errors)
        width = len(values)
        # Each known column's value, stripped; cells missing at the end of a row are empty.
        cell = {column: values[index].strip() if index < width else "" for column, index in self.positions.items()}
        for column in REQUIRED_COLUMNS:
            if not cell[column]:
                self.error(line, column, _("A value is required."))
        registration_no = self.text(line, "registration_no", cell["registration_no"])
        case_no = self.text(line, "case_no", cell["case_no"])
        family_name = self.text(line, "family_name", cell["family_name"])
        given_name = self.text(line, "given_name", cell["given_name"])

        relationship = ""
        if value := cell["relationship"]:
            relationship = _RELATIONSHIPS.get(value) or _RELATIONSHIPS.get(
                re.sub(r"[\s\-]+", "_", value).casefold(), ""
            )
            if not relationship:
                self.error(
                    line,
                    "relationship",
                    _("“%(value)s” is not one of %(allowed)s.")
                    % {"value": value, "allowed": ", ".join(Relationship.values)},
                )

        sex = ""
        if value := cell["sex"]:
            sex = value.upper()
            if sex not in _SEXES:
                self.error(line, "sex", _("“%(value)s” is not one of F, M, X.") % {"value": value})

        birth_year, birth_date = self._birth(line, cell["date_of_birth"])

        nationality = ""
        if value := cell["nationality"]:
            nationality = _nationality(value, self.countries)
            if not nationality:
                self.error(
                    line,
                    "nationality",
                    _("“%(value)s” is not an ISO 3166 country code (alpha-2 or alpha-3) or English country name.")
                    % {"value": value},
                )

        site_id = 0
        if value := cell["site"]:
            site_id = self.sites.get(value) or self.sites.get(value.casefold(), 0)
            if not site_id:
                self.error(
                    line, "site", _("Unknown site “%(value)s”; sites are not created by an import.") % {"value": value}
                )

        needs: frozenset[int] | None = None
        if "specific_needs" in cell:
            codes = [code.strip() for code in cell["specific_needs"].split(";") if code.strip()]
            unknown = [code for code in codes if code.casefold() not in self.needs]
            if unknown:
                self.error(
                    line,
                    "specific_needs",
                    _("Unknown specific needs code(s): %(codes)s.") % {"codes": ", ".join(unknown)},
                )
            needs = frozenset(self.needs[code.casefold()] for code in codes if code.casefold() in self.needs)

        optional = {column: self.text(line, column, cell[column]) for column in self.optional}
        if len(self.errors) > count:
            return None
        return _Row(
            line=line,
            registration_no=registration_no,
            case_no=case_no,
            relationship=relationship,
            family_name=family_name,
            given_name=given_name,
            sex=sex,
            birth_year=birth_year,
            birth_date=birth_date,
            nationality=nationality,
            site_id=site_id,
            optional=optional,
            needs=needs,
        )

    def _birth(self, line: int, value: str) -> tuple[int, datetime.date | None]:
        if not value:
            return 0, None
        if _YEAR.match(value):
            year, born = int(value), None
        elif match := _DATE.match(value):
            try:
                born = datetime.date(*(int(part) for part in match.groups()))
            except ValueError:
                self.error(line, "date_of_birth", _("“%(value)s” is not a real date.") % {"value": value})
                return 0, None
            year = born.year
        else:
            self.error(
                line,
                "date_of_birth",
                _("“%(value)s” is not a date as YYYY-MM-DD or a year as YYYY.") % {"value": value},
            )
            return 0, None
        if year < 1900:
            self.error(line, "date_of_birth", _("“%(value)s” is before 1900.") % {"value": value})
        elif (born or datetime.date(year, 1, 1)) > self.today:
            self.error(line, "date_of_birth", _("“%(value)s” is in the future.") % {"value": value})
        return year, born


# Probable duplicates ---------------------------------------------------------------------

# Name keys (Mohammad = Muhammad, Arabic and Persian letter forms) live in cases.names.


@dataclass(frozen=True, slots=True)
class _Known:
    line: int | None
    registration_no: str
    name: str
    birth_year: int
    birth_date: datetime.date | None


def _same_birth(a: _Known, b: _Known) -> bool:
    if a.birth_date and b.birth_date:
        return a.birth_date == b.birth_date
    return a.birth_year == b.birth_year


def _name_keys(family_name: str, given_name: str, native_name: str, birth_year: int) -> Iterator[tuple[str, ...]]:
    family, given = latin_key(family_name), latin_key(given_name)
    if family and given:
        yield ("latin", family, given, str(birth_year))
    if native := native_key(native_name):
        yield ("native", native, str(birth_year))


def _find_duplicates(
    rows: list[_Row], db_people: Iterable[tuple[str, str, str, str, int, Any]]
) -> list[ProbableDuplicate]:
    index: dict[tuple[str, ...], list[_Known]] = defaultdict(list)
    in_file = {row.registration_no for row in rows}
    for registration_no, family_name, given_name, native_name, birth_year, birth_date in db_people:
        if registration_no in in_file:
            # The file's row stands for this person now.
            continue
        known = _Known(None, registration_no, f"{family_name.upper()}, {given_name}", birth_year, birth_date)
        for key in _name_keys(family_name, given_name, native_name, birth_year):
            index[key].append(known)
    found: dict[tuple[str, str], ProbableDuplicate] = {}
    reasons = {"latin": _("same name in another spelling"), "native": _("same name in native script")}
    for row in rows:
        this = _Known(row.line, row.registration_no, row.name, row.birth_year, row.birth_date)
        for key in _name_keys(row.family_name, row.given_name, row.optional.get("native_name", ""), row.birth_year):
            for other in index[key]:
                pair = (other.registration_no, row.registration_no)
                if other.registration_no == row.registration_no or pair in found or not _same_birth(this, other):
                    continue
                found[pair] = ProbableDuplicate(
                    line=row.line,
                    registration_no=row.registration_no,
                    name=row.name,
                    other_line=other.line,
                    other_registration_no=other.registration_no,
                    other_name=other.name,
                    birth=row.birth,
                    reason=reasons[key[0]],
                )
            index[key].append(this)
    return list(found.values())


# The import --------------------------------------------------------------------------------


@dataclass(slots=True)
class _OnRecord:
    pk: int
    case_no: str
    # The values of _COMPARED, in that order (a tuple: a re-import holds 100,000 of them).
    values: tuple[Any, ...]
    needs: frozenset[int]


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
_POSITION = {name: index for index, name in enumerate(_COMPARED)}


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


def _persons_on_record(registration_nos: list[str]) -> dict[str, _OnRecord]:
    found: dict[str, _OnRecord] = {}
    for among in _among("registration_no", registration_nos):
        for pk, registration_no, case_no, *values in Person.objects.filter(**among).values_list(
            "pk", "registration_no", "case__case_no", *_COMPARED
        ):
            found[registration_no] = _OnRecord(pk=pk, case_no=case_no, values=tuple(values), needs=frozenset())
    by_pk = {person.pk: person for person in found.values()}
    through = Person.specific_needs.through
    needs: dict[int, set[int]] = defaultdict(set)
    for among in _among("person_id", list(by_pk)):
        for person_id, need_id in through.objects.filter(**among).values_list("person_id", "specificneed_id"):
            needs[person_id].add(need_id)
    for pk, codes in needs.items():
        by_pk[pk].needs = frozenset(codes)
    return found


def _check_against_file_and_database(
    rows: list[_Row], errors: list[RowError], site_names: dict[int, str]
) -> tuple[dict[str, _OnRecord], dict[str, tuple[int, int]]]:
    """Duplicate registration numbers, one PA per case, and consistency with the database.

    Returns the persons on record (by registration_no) and the cases on record
    (case_no → (pk, site_id)).
    """
    first_line: dict[str, int] = {}
    for row in rows:
        if row.registration_no in first_line:
            errors.append(
                RowError(
                    row.line,
                    "registration_no",
                    _("“%(value)s” is already on line %(line)d of this file.")
                    % {"value": row.registration_no, "line": first_line[row.registration_no]},
                )
            )
        else:
            first_line[row.registration_no] = row.line

    by_case: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_case[row.case_no].append(row)

    on_record = _persons_on_record(list(first_line))
    cases: dict[str, tuple[int, int]] = {}
    for among in _among("case_no", list(by_case)):
        for pk, case_no, site_id in Case.objects.filter(**among).values_list("pk", "case_no", "site_id"):
            cases[case_no] = (pk, site_id)
    # Principal applicants on record who are not in this file keep their place.
    pa_on_record: dict[str, list[str]] = defaultdict(list)
    for among in _among("case_id", [pk for pk, _site in cases.values()]):
        for case_no, registration_no in Person.objects.filter(
            relationship=Relationship.PRINCIPAL_APPLICANT, **among
        ).values_list("case__case_no", "registration_no"):
            if registration_no not in first_line:
                pa_on_record[case_no].append(registration_no)

    for row in rows:
        person = on_record.get(row.registration_no)
        if person and person.case_no != row.case_no:
            errors.append(
                RowError(
                    row.line,
                    "case_no",
                    _("%(reg)s is in case %(case)s on record; an import does not move persons between cases.")
                    % {"reg": row.registration_no, "case": person.case_no},
                )
            )

    for case_no, members in by_case.items():
        site_id = cases[case_no][1] if case_no in cases else members[0].site_id
        for row in members:
            if row.site_id != site_id:
                errors.append(
                    RowError(
                        row.line,
                        "site",
                        _("Case %(case)s is at %(site)s; all its members must be at the same site.")
                        % {"case": case_no, "site": site_names.get(site_id, "?")},
                    )
                )
        pas = [row for row in members if row.relationship == Relationship.PRINCIPAL_APPLICANT]
        others = pa_on_record.get(case_no, [])
        if not pas and not others:
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
    return on_record, cases


def _changes(row: _Row, person: _OnRecord) -> list[str]:
    wanted = {
        "relationship": row.relationship,
        "family_name": row.family_name,
        "given_name": row.given_name,
        "sex": row.sex,
        "birth_year": row.birth_year,
        "birth_date": row.birth_date,
        "nationality": row.nationality,
        "site_id": row.site_id,
        **row.optional,
    }
    changed = [name for name, value in wanted.items() if person.values[_POSITION[name]] != value]
    if row.needs is not None and row.needs != person.needs:
        changed.append("specific_needs")
    return changed


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
        "name_key": name_key(row.family_name, row.given_name, row.optional.get("native_name", "")),
    }


def _copy(model: type[models.Model], rows: list[dict[str, Any]]) -> list[int]:
    """PostgreSQL: insert rows (attname → value) with COPY; returns their new primary keys.

    Several times faster than bulk_create, which builds model instances and then its
    INSERT value by value in Python. Fields a row leaves out take their default.
    """
    if not rows:
        return []
    opts = model._meta
    pk = opts.pk
    assert pk is not None and pk.column is not None
    fields = [f for f in opts.concrete_fields if f is not pk]
    # Choices defaults are enums, which psycopg would write as their names.
    defaults = {
        f.attname: (value.value if isinstance(value := f.get_default(), Enum) else value)
        for f in fields
        if f.has_default() or f.null or f.empty_strings_allowed
    }
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column or f.attname) for f in [pk, *fields])
    names = [f.attname for f in fields]
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [opts.db_table, pk.column, len(rows)],
        )
        ids = [pk_value for (pk_value,) in cursor.fetchall()]
        with cursor.copy(f"COPY {quote(opts.db_table)} ({columns}) FROM STDIN") as copy:
            for pk_value, row in zip(ids, rows, strict=True):
                values = defaults | row
                copy.write_row([pk_value, *[values[name] for name in names]])
    return ids


def _insert(model: type[models.Model], rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows (attname → value); returns their primary keys."""
    if connection.vendor == "postgresql":
        return _copy(model, rows)
    objs = model._default_manager.bulk_create([model(**row) for row in rows], batch_size=_BATCH)
    return [obj.pk for obj in objs]


def _insert_with_history(
    model: type[models.Model], rows: list[dict[str, Any]], *, actor: User | None, reason: str, now: datetime.datetime
) -> tuple[list[int], list[int]]:
    """Insert rows and their "+" history rows; returns their ids and their history rows' ids."""
    if not rows:
        return [], []
    manager = model.history  # type: ignore[attr-defined]
    if connection.vendor != "postgresql":
        objs = model._default_manager.bulk_create([model(**row) for row in rows], batch_size=_BATCH)
        records = manager.bulk_history_create(
            objs, batch_size=_BATCH, default_user=actor, default_change_reason=reason, default_date=now
        )
        return [obj.pk for obj in objs], [record.pk for record in records]
    ids = _copy(model, rows)
    # The rows simple-history's bulk_history_create would make, written with COPY too.
    history_model = manager.model
    defaults = {
        f.attname: (value.value if isinstance(value := f.get_default(), Enum) else value)
        for f in history_model.tracked_fields
    }
    stamp = {
        "history_date": now,
        "history_user_id": actor.pk if actor else None,
        "history_change_reason": reason,
        "history_type": "+",
    }
    tracked = [f.attname for f in history_model.tracked_fields]
    history_rows = []
    for pk_value, row in zip(ids, rows, strict=True):
        values = defaults | row
        values["id"] = pk_value
        history_rows.append({**{name: values[name] for name in tracked}, **stamp})
    return ids, _copy(history_model, history_rows)


def _write(
    rows: list[_Row],
    on_record: dict[str, _OnRecord],
    cases: dict[str, tuple[int, int]],
    *,
    actor: User,
    reason: str,
) -> tuple[int, int, int, int]:
    """Write the checked rows; returns (new, updated, unchanged, new cases)."""
    now = timezone.now()
    new_cases: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.case_no not in cases and row.case_no not in new_cases:
            # A new case starts as registered (the model's default); later moves go
            # through cases.services.case_transition.
            new_cases[row.case_no] = {
                "case_no": row.case_no,
                "site_id": row.site_id,
                "status_changed_at": now,
                "created_at": now,
                "updated_at": now,
            }
    case_pks, _history = _insert_with_history(Case, list(new_cases.values()), actor=actor, reason=reason, now=now)
    case_ids = {case_no: pk for case_no, (pk, _site) in cases.items()}
    case_ids.update(zip(new_cases, case_pks, strict=True))

    new_rows: list[_Row] = []
    changes_by_pk: dict[int, tuple[_Row, list[str]]] = {}
    needs_after: dict[int, frozenset[int]] = {}
    replaced_needs: set[int] = set()
    unchanged = 0
    for row in rows:
        known = on_record.get(row.registration_no)
        if known is None:
            new_rows.append(row)
        elif changes := _changes(row, known):
            changes_by_pk[known.pk] = (row, changes)
            needs_after[known.pk] = known.needs if row.needs is None else row.needs
            if "specific_needs" in changes:
                replaced_needs.add(known.pk)
        else:
            unchanged += 1

    through = Person.specific_needs.through
    needs_model = apps.get_model("cases", "HistoricalPerson_specific_needs")
    person_pks, history_pks = _insert_with_history(
        Person,
        [_person_values(row, case_ids[row.case_no], now) for row in new_rows],
        actor=actor,
        reason=reason,
        now=now,
    )
    links = [
        {"person_id": pk, "specificneed_id": need}
        for pk, row in zip(person_pks, new_rows, strict=True)
        for need in sorted(row.needs or ())
    ]
    link_pks = _insert(through, links)
    # simple-history keeps a person's needs with each history row; its bulk helpers
    # leave them out, so they are written here.
    history_of = dict(zip(person_pks, history_pks, strict=True))
    _insert(
        needs_model,
        [
            {"id": link_pk, "history_id": history_of[link["person_id"]], **link}
            for link_pk, link in zip(link_pks, links, strict=True)
        ],
    )

    # The whole person is loaded for the few that changed, so that their history rows
    # carry every field, not only the imported ones.
    changed_people: list[Person] = []
    changed_fields: set[str] = {"updated_at", "version"}
    pks = list(changes_by_pk)
    for among in _among("pk", pks):
        for person in Person.objects.filter(**among):
            row, changes = changes_by_pk[person.pk]
            for name in changes:
                if name != "specific_needs":
                    setattr(person, name, row.optional[name] if name in row.optional else getattr(row, name))
                    changed_fields.add(name.removesuffix("_id"))
            if changed_fields & {"family_name", "given_name", "native_name"}:
                person.name_key = name_key(person.family_name, person.given_name, person.native_name)
                changed_fields.add("name_key")
            # An edit form opened before the import must not overwrite it unseen.
            person.version += 1
            person.updated_at = now
            changed_people.append(person)
    if changed_people:
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
        replaced = sorted(replaced_needs)
        for among in _among("person_id", replaced):
            through.objects.filter(**among).delete()
        through.objects.bulk_create(
            [through(person_id=pk, specificneed_id=need) for pk in replaced for need in sorted(needs_after[pk])],
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
    return len(new_rows), len(changed_people), unchanged, len(new_cases)


def _read(content: bytes, filename: str, errors: list[RowError]) -> tuple[list[_Row], int]:
    """The rows of the file that pass the checks of one row alone, and the number of
    data rows; errors are appended to `errors`."""
    if len(content) > max_bytes():
        raise _Refused(
            RowError(
                None,
                "",
                _("The file is larger than the limit of %(max)s MB for one import. Split it into smaller files.")
                % {"max": f"{max_bytes() / 1_048_576:.1f}"},
            )
        )
    rows: list[_Row] = []
    checker: _Checker | None = None
    limit = max_rows()
    count = 0
    for line, values in _rows(content, filename):
        if not "".join(values).strip():
            continue
        if checker is None:
            checker = _Checker(_map_header(line, values), errors)
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
        row = checker.row(line, values)
        if row is not None:
            rows.append(row)
    if checker is None:
        raise _Refused(RowError(None, "", _("The file is empty: it has no header row.")))
    if count == 0:
        raise _Refused(RowError(None, "", _("The file has a header row but no persons.")))
    return rows, count


def read_content(file: IO[bytes] | bytes) -> bytes:
    """At most the byte limit plus one byte, so an oversized upload is not read whole."""
    if isinstance(file, bytes):
        return file
    return file.read(max_bytes() + 1)


def roster_import(file: IO[bytes] | bytes, *, actor: User | None, filename: str, dry_run: bool) -> ImportResult:
    """Check a roster file and, if it has no error and this is no dry run, import it.

    Records the attempt as a RosterImport whatever the outcome. The checks read the
    database outside the write transaction, so a dry run never holds a write lock; a
    conflicting change made meanwhile by someone else makes the write fail whole.
    """
    started = time.monotonic()
    result = ImportResult(filename=filename, dry_run=dry_run)
    rows: list[_Row] = []
    on_record: dict[str, _OnRecord] = {}
    cases: dict[str, tuple[int, int]] = {}
    try:
        rows, result.rows = _read(read_content(file), filename, result.errors)
    except _Refused as refused:
        result.errors = refused.errors
    if rows:
        site_names = dict(Site.objects.values_list("pk", "name"))
        on_record, cases = _check_against_file_and_database(rows, result.errors, site_names)
        people = Person.objects.filter(birth_year__in={row.birth_year for row in rows}).values_list(
            "registration_no", "family_name", "given_name", "native_name", "birth_year", "birth_date"
        )
        result.duplicates = _find_duplicates(rows, people.iterator(chunk_size=_BATCH))
    # In file order; the checks of one line keep their column order.
    result.errors.sort(key=lambda error: error.line or 0)
    if result.errors:
        result.record = _record(result, actor=actor, started=started)
    elif dry_run:
        result.new = sum(1 for row in rows if row.registration_no not in on_record)
        result.unchanged = sum(
            1 for row in rows if row.registration_no in on_record and not _changes(row, on_record[row.registration_no])
        )
        result.updated = len(rows) - result.new - result.unchanged
        result.cases_new = len({row.case_no for row in rows} - set(cases))
        result.record = _record(result, actor=actor, started=started)
    else:
        reason = _("Roster import: %(file)s") % {"file": filename}
        try:
            with transaction.atomic():
                result.new, result.updated, result.unchanged, result.cases_new = _write(
                    rows, on_record, cases, actor=actor, reason=reason
                )
                result.record = _record(result, actor=actor, started=started)
        except IntegrityError:
            result.new = result.updated = result.unchanged = result.cases_new = 0
            result.errors.append(
                RowError(None, "", _("The roster changed in the database while this file was imported; try again."))
            )
            result.record = _record(result, actor=actor, started=started)
    return result


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


def template_xlsx() -> bytes:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(_("Roster"))
    sheet.append(list(COLUMNS))
    sheet.append(_template_example())
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


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
