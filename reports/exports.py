"""Spreadsheet exports of every list: the columns, the rows, and streaming writers.

Memory stays bounded whatever the number of rows: rows come from the database in
chunks (`.iterator(chunk_size=...)` over `values_list`), CSV is streamed as it is
written, and XLSX is written by xlsxwriter in constant_memory mode to a temporary
file that is served and then removed.

Speed (100,000 persons): on PostgreSQL the database writes the CSV itself (COPY, see
_copy), byte for byte what the csv module writes; XLSX rows go straight into
xlsxwriter's row file (_Sheet.append_rows) rather than through a call per cell.

Every text cell goes through `neutralise` (or its SQL twin), so that no spreadsheet
program reads it as a formula.
"""

import csv
import datetime
import io
import itertools
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
import xlsxwriter
from django.db import connection
from django.db.models import Count, FilteredRelation, IntegerField, OuterRef, Q, QuerySet, StringAgg, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import Worksheet
from xlsxwriter.xmlwriter import XMLwriter

from cases.filters import CaseFilter
from cases.models import Case, Incident, IncidentEffect, IncidentPerson, Interview, Person, Relationship
from cases.scope import Sites, in_sites, narrow_site_choices
from offers.models import Departure, DeparturePerson, Nomination
from offers.selectors import departures_in, offer_list
from reports import filters

CHUNK_SIZE = 2000
# XLSX holds 1,048,576 rows a sheet; longer exports go on to another sheet.
XLSX_MAX_ROWS = 1_048_576
# Characters that make a spreadsheet program read a cell as a formula (or run one, after
# a tab or carriage return), per OWASP's advice on CSV injection.
FORMULA_START = frozenset("=+-@\t\r")

Kind = Literal["text", "int", "bool", "date", "datetime", "birth", "codes"]


def neutralise(value: str) -> str:
    """Text that no spreadsheet program runs: a formula-like start, also after leading
    spaces, is made inert with a leading apostrophe."""
    first = value[:1]  # one look at the first character: most cells stop here
    if first in FORMULA_START or (first.isspace() and value.lstrip()[:1] in FORMULA_START):
        return "'" + value
    return value


@dataclass(frozen=True)
class Column:
    header: str
    lookup: str
    kind: Kind = "text"
    sensitive: bool = False


@dataclass(frozen=True)
class ExportList:
    name: str
    title: Any  # lazy translation
    columns: tuple[Column, ...]
    queryset: Callable[[], QuerySet]
    filterset: type
    # The path to the rows' case ("case"): the case list's parameters (cases.filters.CaseFilter)
    # that the list's own filters do not take then choose those cases.
    case_filter_path: str = ""
    order_by: tuple[str, ...] = ("pk",)
    # The rows of a user limited to some sites (cases.scope); offers belong to no site.
    in_scope: Callable[[Sites], Q] = lambda sites: Q()

    def columns_for(self, *, sensitive: bool) -> list[Column]:
        return [c for c in self.columns if sensitive or not c.sensitive]

    @property
    def has_sensitive(self) -> bool:
        return any(c.sensitive for c in self.columns)


class InvalidFilters(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items()))
        self.errors = errors


def _count(queryset: QuerySet, fk: str) -> Coalesce:
    """The number of rows of `queryset` pointing at the outer row through `fk`, as a subquery."""
    counted = queryset.filter(**{fk: OuterRef("pk")}).order_by().values(fk).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _persons() -> QuerySet:
    Through = Person.specific_needs.through
    codes = (
        Through.objects.filter(person_id=OuterRef("pk"))
        .order_by()
        .values("person_id")
        .annotate(codes=StringAgg("specificneed__code", delimiter=Value(";")))
        .values("codes")  # type: ignore[misc]  # django-stubs does not see the annotation
    )
    return Person.objects.annotate(needs=Subquery(codes))


def _cases() -> QuerySet:
    return Case.objects.annotate(
        pa=FilteredRelation("members", condition=Q(members__relationship=Relationship.PRINCIPAL_APPLICANT)),
        size=_count(Person.objects.all(), "case"),
    )


def _departures() -> QuerySet:
    ready = DeparturePerson.objects.filter(travel_document=True, medical_clearance=True, exit_permission=True)
    return Departure.objects.annotate(
        size=_count(DeparturePerson.objects.all(), "departure"), ready=_count(ready, "departure")
    )


def _incidents() -> QuerySet:
    def affected(effect: str | None = None) -> Coalesce:
        rows = IncidentPerson.objects.all()
        return _count(rows.filter(effect=effect) if effect else rows, "incident")

    return Incident.objects.annotate(
        affected_count=affected(),
        injured=affected(IncidentEffect.INJURED),
        killed=affected(IncidentEffect.KILLED),
        missing=affected(IncidentEffect.MISSING),
    )


EXPORTS: dict[str, ExportList] = {
    export.name: export
    for export in [
        ExportList(
            name="persons",
            title=_("Persons"),
            queryset=_persons,
            filterset=filters.PersonExportFilter,
            case_filter_path="case",
            in_scope=lambda sites: in_sites(sites, "site", "case__site"),
            order_by=("registration_no",),
            # The roster import's columns, so that an export can be read back.
            columns=(
                Column("registration_no", "registration_no"),
                Column("case_no", "case__case_no"),
                Column("relationship", "relationship"),
                Column("family_name", "family_name"),
                Column("given_name", "given_name"),
                Column("native_name", "native_name"),
                Column("sex", "sex"),
                Column("date_of_birth", "birth_date", kind="birth"),
                Column("nationality", "nationality"),
                Column("site", "site__name"),
                Column("residence_status", "residence_status"),
                Column("case_status", "case__status"),
                Column("specific_needs", "needs", kind="codes", sensitive=True),
                Column("phone", "phone", sensitive=True),
                Column("notes", "notes", sensitive=True),
            ),
        ),
        ExportList(
            name="cases",
            title=_("Cases"),
            queryset=_cases,
            filterset=filters.CaseExportFilter,
            in_scope=in_sites,
            order_by=("case_no",),
            columns=(
                Column("case_no", "case_no"),
                Column("site", "site__name"),
                Column("status", "status"),
                Column("in_status_since", "status_changed_at", kind="datetime"),
                Column("determination", "determination"),
                Column("persons", "size", kind="int"),
                Column("pa_registration_no", "pa__registration_no"),
                Column("pa_family_name", "pa__family_name"),
                Column("pa_given_name", "pa__given_name"),
                Column("pa_native_name", "pa__native_name"),
                Column("pa_nationality", "pa__nationality"),
                Column("assigned_officer", "assigned_officer__username"),
                Column("needs_review", "needs_review", kind="bool"),
                Column("created", "created_at", kind="datetime"),
                Column("notes", "notes", sensitive=True),
            ),
        ),
        ExportList(
            name="interviews",
            title=_("Interviews"),
            queryset=Interview.objects.all,
            filterset=filters.InterviewExportFilter,
            case_filter_path="case",
            in_scope=lambda sites: in_sites(sites, "case__site"),
            order_by=("scheduled_at", "pk"),
            columns=(
                Column("case_no", "case__case_no"),
                Column("site", "case__site__name"),
                Column("kind", "kind"),
                Column("scheduled_at", "scheduled_at", kind="datetime"),
                Column("place", "place"),
                Column("interviewer", "interviewer__username"),
                Column("outcome", "outcome"),
                Column("outcome_recorded_at", "outcome_recorded_at", kind="datetime"),
                Column("notes", "notes", sensitive=True),
            ),
        ),
        ExportList(
            name="offers",
            title=_("Offers"),
            queryset=offer_list,
            filterset=filters.OfferExportFilter,
            order_by=("deadline", "reference"),
            columns=(
                Column("reference", "reference"),
                Column("country", "country"),
                Column("places", "places", kind="int"),
                Column("nominated", "nominated", kind="int"),
                Column("accepted", "accepted", kind="int"),
                Column("departed", "departed", kind="int"),
                Column("remaining", "remaining", kind="int"),
                Column("deadline", "deadline", kind="date"),
                Column("status", "status"),
                Column("largest_household", "max_case_size", kind="int"),
                Column("conditions", "conditions"),
            ),
        ),
        ExportList(
            name="nominations",
            title=_("Nominations"),
            queryset=Nomination.objects.all,
            filterset=filters.NominationExportFilter,
            case_filter_path="case",
            in_scope=lambda sites: in_sites(sites, "case__site"),
            order_by=("nominated_at", "pk"),
            columns=(
                Column("offer", "offer__reference"),
                Column("country", "offer__country"),
                Column("case_no", "case__case_no"),
                Column("site", "case__site__name"),
                Column("persons", "persons", kind="int"),
                Column("status", "status"),
                Column("country_decision", "country_decision"),
                Column("decision_date", "decision_date", kind="date"),
                Column("consent", "consent"),
                Column("departure_date", "departure__planned_date", kind="date"),
                Column("nominated_by", "nominated_by__username"),
                Column("nominated_at", "nominated_at", kind="datetime"),
                Column("decision_reason", "decision_reason", sensitive=True),
            ),
        ),
        ExportList(
            name="departures",
            title=_("Departures"),
            queryset=_departures,
            filterset=filters.DepartureExportFilter,
            in_scope=departures_in,
            order_by=("planned_date", "pk"),
            columns=(
                Column("offer", "offer__reference"),
                Column("country", "offer__country"),
                Column("planned_date", "planned_date", kind="date"),
                Column("route", "route"),
                Column("status", "status"),
                Column("departed_at", "departed_at", kind="datetime"),
                Column("persons", "size", kind="int"),
                Column("persons_ready", "ready", kind="int"),
            ),
        ),
        ExportList(
            name="incidents",
            title=_("Incidents"),
            queryset=_incidents,
            filterset=filters.IncidentExportFilter,
            in_scope=in_sites,
            order_by=("occurred_at", "pk"),
            columns=(
                Column("occurred_at", "occurred_at", kind="datetime"),
                Column("site", "site__name"),
                Column("kind", "kind"),
                Column("summary", "summary"),
                Column("persons_affected", "affected_count", kind="int"),
                Column("injured", "injured", kind="int"),
                Column("killed", "killed", kind="int"),
                Column("missing", "missing", kind="int"),
                Column("reported_by", "reported_by__username"),
                Column("description", "description", sensitive=True),
            ),
        ),
    ]
}


def _given(data: QueryDict, names: Iterable[str]) -> bool:
    return any(data.get(name) for name in names)


def export_rows(export: ExportList, data: QueryDict, *, sensitive: bool, sites: Sites = None) -> "ExportRows":
    """The list's rows within `sites` (cases.scope), filtered by the GET parameters `data`:
    iterate for tuples in column order, fetched in chunks. Raises InvalidFilters, before any
    row is read, on a bad parameter."""
    queryset = export.queryset().filter(export.in_scope(sites))
    filterset = export.filterset(data, queryset=queryset)
    # Another site than the user's is refused as a bad value, not answered with no rows.
    narrow_site_choices(filterset, sites)
    errors = filters.filter_errors(filterset)
    # The case list's parameters that the list's own filters do not take choose the rows' cases.
    case_params = CaseFilter.base_filters.keys() - filterset.base_filters.keys() if export.case_filter_path else set()
    cases = CaseFilter(data, queryset=Case.objects.all())
    narrow_site_choices(cases, sites)
    if case_params:
        errors |= {k: v for k, v in filters.filter_errors(cases).items() if k in case_params}
    if errors:
        raise InvalidFilters(errors)
    rows = filterset.qs
    if _given(data, case_params):
        rows = rows.filter(**{f"{export.case_filter_path}__in": cases.qs.values("pk")})
    columns = export.columns_for(sensitive=sensitive)
    births = [index for index, c in enumerate(columns) if c.kind == "birth"]
    lookups = [c.lookup for c in columns] + (["birth_year"] if births else [])
    return ExportRows(rows.order_by(*export.order_by).values_list(*lookups), columns, births[0] if births else None)


@dataclass(frozen=True)
class ExportRows:
    """The rows of an export: a values_list queryset of the columns' lookups in order (and,
    with a birth column, the year of birth last). Iterating gives the rows as tuples."""

    queryset: QuerySet
    columns: list[Column]
    birth: int | None = None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        fetched = self.queryset.iterator(chunk_size=CHUNK_SIZE)
        return _with_birth_years(fetched, self.birth) if self.birth is not None else fetched


def _with_birth_years(rows: Iterator[tuple[Any, ...]], index: int) -> Iterator[tuple[Any, ...]]:
    """A year-only birth is exported as the year (an integer), never as a made-up 1 January;
    the year comes last in each row and is dropped."""
    for row in rows:
        born = row[index] if row[index] is not None else row[-1]
        yield (*row[:index], born, *row[index + 1 : -1])


# Writers

# What str.isspace() calls white space (neutralise() looks past it).
WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
# A cell starting otherwise needs no neutralising.
_SUSPECT = frozenset(FORMULA_START | set(WHITESPACE))


def _local(value: datetime.datetime) -> datetime.datetime:
    return value.astimezone(timezone.get_current_timezone())


def _csv_converter(kind: Kind) -> Callable[[Any], Any]:
    if kind == "text":
        return lambda v: neutralise(v) if v[:1] in _SUSPECT else v
    if kind == "codes":
        return lambda v: neutralise(";".join(sorted(v.split(";"))))
    if kind == "bool":
        return lambda v: "TRUE" if v else "FALSE"
    if kind == "date":
        return datetime.date.isoformat
    if kind == "birth":
        return lambda v: v.isoformat() if isinstance(v, datetime.date) else v
    if kind == "datetime":
        return lambda v: _local(v).strftime("%Y-%m-%d %H:%M")
    return lambda v: v


def _csv_header(columns: list[Column]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([c.header for c in columns])
    return "\ufeff" + buffer.getvalue()


def csv_stream(rows: Iterable[tuple[Any, ...]], columns: list[Column], on_done: Callable[[int], None]) -> Iterator[Any]:
    """CSV in chunks: a UTF-8 byte order mark, the header, then the rows.
    On PostgreSQL the server writes an export's rows (see _copy); elsewhere, and for
    lists with date-times (local time is Python's to work out), Python's csv module."""
    if isinstance(rows, ExportRows):
        copy = _copy(rows)
        if copy is not None:
            return _copy_stream(*copy, header=_csv_header(columns), on_done=on_done)
    return _csv_stream(rows, columns, on_done)


def _csv_stream(
    rows: Iterable[tuple[Any, ...]], columns: list[Column], on_done: Callable[[int], None]
) -> Iterator[str]:
    yield _csv_header(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    converters = [(index, _csv_converter(c.kind)) for index, c in enumerate(columns) if c.kind != "int"]
    count = 0
    for row in rows:
        cells = list(row)
        for index, convert in converters:
            if cells[index] is not None:
                cells[index] = convert(cells[index])
        writer.writerow(cells)
        count += 1
        if count % CHUNK_SIZE == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
    on_done(count)


def _sql_class(characters: str) -> str:
    """These characters for a bracket expression of PostgreSQL's regular expressions."""
    return "".join(f"\\u{ord(ch):04x}" for ch in characters)


# neutralise() in SQL: a first character of FORMULA_START, or white space (as str.isspace()
# has it) up to one of = + - @ (a tab or a carriage return after white space is white space).
_FORMULA_SQL = f"^([{_sql_class(''.join(sorted(FORMULA_START)))}]|[{_sql_class(WHITESPACE)}]+[{_sql_class('=+-@')}])"
# Tested first, faster than the regular expression: the first character is one of _SUSPECT
# (all below "A" but some white space) or the text is empty.
_SUSPECT_ABOVE_A = ",".join(str(ord(ch)) for ch in sorted(_SUSPECT) if ch >= "A")
# (A template for str.format(): braces doubled.)
_SUSPECT_SQL = "(ascii({0}) < 65 OR ascii({0}) = ANY('{{" + _SUSPECT_ABOVE_A + "}}'::int[]))"
# Each kind of cell as _csv_converter() writes it; "" as NULL (the csv module writes both as
# nothing, COPY would write "" as "").
_COPY_CELLS: dict[str, str] = {
    "text": (
        "NULLIF(CASE WHEN " + _SUSPECT_SQL + " AND {0} ~ '" + _FORMULA_SQL + "' THEN '''' || {0} ELSE {0} END, '')"
    ),
    "int": "{0}",
    "bool": "CASE WHEN {0} THEN 'TRUE' WHEN NOT {0} THEN 'FALSE' END",
    "date": "to_char({0}, 'YYYY-MM-DD')",
    "birth": "COALESCE(to_char({0}, 'YYYY-MM-DD'), {1}::text)",
}
# Codes in code point order, as Python's sorted(), then neutralised as text.
_SORTED_CODES = (
    "array_to_string(ARRAY(SELECT code FROM unnest(string_to_array({0}, ';')) AS code"
    " ORDER BY code COLLATE \"C\"), ';')"
)


def _copy(rows: ExportRows) -> tuple[str, tuple[Any, ...]] | None:
    """PostgreSQL: a COPY … TO STDOUT statement (and its parameters) writing the rows as the
    csv module would: the same values, neutralised, quoted where needed (lines end in LF
    there: see _crlf). None where it cannot: another database, or local date-times."""
    if connection.vendor != "postgresql" or any(c.kind == "datetime" for c in rows.columns):
        return None
    sql, params = rows.queryset.query.sql_with_params()
    names = [f"c{index}" for index in range(len(rows.columns) + (rows.birth is not None))]
    cells = []
    for index, column in enumerate(rows.columns):
        name = f"t.{names[index]}"
        if column.kind == "codes":
            cells.append(_COPY_CELLS["text"].format(_SORTED_CODES.format(name)))
        else:
            cells.append(_COPY_CELLS[column.kind].format(name, f"t.{names[-1]}"))
    select = f"SELECT {', '.join(cells)} FROM ({sql}) AS t({', '.join(names)})"  # noqa: S608 - our SQL
    return f"COPY ({select}) TO STDOUT WITH (FORMAT csv)", tuple(params)


def _copy_stream(
    statement: str, params: tuple[Any, ...], *, header: str, on_done: Callable[[int], None]
) -> Iterator[Any]:
    yield header
    with connection.cursor() as cursor:
        # COPY takes no parameters: bound here, on the client (as Django's psycopg cursors do).
        statement = psycopg.ClientCursor(cursor.connection).mogrify(statement, params)
        with cursor.copy(statement) as copy:
            yield from _crlf(_gathered(copy))
        count = cursor.rowcount
    on_done(count)


# Bytes of CSV passed on at a time.
COPY_CHUNK = 1 << 16


def _gathered(copy: Iterable[Any]) -> Iterator[bytes]:
    """COPY's data (a message a row) in chunks of COPY_CHUNK bytes or so."""
    chunk = bytearray()
    for data in copy:
        chunk += data
        if len(chunk) >= COPY_CHUNK:
            yield bytes(chunk)
            chunk.clear()
    if chunk:
        yield bytes(chunk)


def _crlf(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """COPY's CSV with its lines ending in CR LF, as the csv module ends them: every LF
    outside quotes ends a line (a quote inside a field is doubled, so after an odd count of
    quotes so far we are inside one)."""
    inside = False
    for chunk in chunks:
        parts = chunk.split(b'"')
        for index in range(1 if inside else 0, len(parts), 2):
            parts[index] = parts[index].replace(b"\n", b"\r\n")
        inside ^= len(parts) % 2 == 0
        yield b'"'.join(parts)


class _Sheet(Worksheet):
    """xlsxwriter's worksheet (constant_memory mode) with append_rows(): rows written straight
    to its row file, as the XML xlsxwriter writes, without its method calls per cell (15 µs a
    cell: 18 s for a hundred thousand persons). xlsxwriter does the rest: the package, the
    styles, the header row, widths and frozen panes."""

    def append_rows(
        self, first_row: int, rows: Iterator[tuple[Any, ...]], kinds: list[Kind], formats: dict[str, Any]
    ) -> int:
        """Write rows of `rows` from row `first_row` (0-based) down to the sheet's last;
        returns how many. Text is neutralised."""
        self._write_single_row(first_row)  # what xlsxwriter holds (the header) first
        refs = [xl_col_to_name(c) for c in range(len(kinds))]
        texts = [c for c, kind in enumerate(kinds) if kind == "text"]
        date_style = f' s="{formats["date"]._get_xf_index()}"'
        datetime_style = f' s="{formats["datetime"]._get_xf_index()}"'
        serial = self._convert_date_time
        lines: list[str] = []
        r = first_row
        for row in itertools.islice(rows, XLSX_MAX_ROWS - first_row):
            number = r + 1
            # One look at the row's text: most rows hold nothing to escape or neutralise.
            joined = "\n" + "\n".join(filter(None, [row[c] for c in texts])) + "\n"
            plain = not (_ROW_CHARS.search(joined) or _ROW_STARTS.search(joined) or _ROW_ENDS.search(joined))
            cells = []
            for c, value in enumerate(row):
                if value is None or value == "":
                    continue
                kind = kinds[c]
                if kind == "text":
                    if plain and len(value) <= XLSX_MAX_CHARS:
                        cells.append(f'<c r="{refs[c]}{number}" t="inlineStr"><is><t>{value}</t></is></c>')
                    else:
                        cells.append(_inline_string(f"{refs[c]}{number}", value))
                elif kind == "codes":
                    cells.append(_inline_string(f"{refs[c]}{number}", ";".join(sorted(value.split(";")))))
                elif kind == "int" or (kind == "birth" and not isinstance(value, datetime.date)):
                    cells.append(f'<c r="{refs[c]}{number}"><v>{value:.16G}</v></c>')
                elif kind == "bool":
                    cells.append(f'<c r="{refs[c]}{number}" t="b"><v>{1 if value else 0}</v></c>')
                elif kind == "datetime":
                    excel = serial(_local(value).replace(tzinfo=None))
                    cells.append(f'<c r="{refs[c]}{number}"{datetime_style}><v>{excel:.16G}</v></c>')
                else:  # a date
                    cells.append(f'<c r="{refs[c]}{number}"{date_style}><v>{excel_day(value)}</v></c>')
            lines.append(f'<row r="{number}">{"".join(cells)}</row>')
            r += 1
            if len(lines) == XLSX_LINES:
                self.fh.write("".join(lines))
                lines.clear()
        self.fh.write("".join(lines))
        if r > first_row:
            self.dim_rowmax = r - 1  # rows come in order, after the header
            self.previous_row = r
        return r - first_row


# Rows written to the sheet's file at a time.
XLSX_LINES = 1000
_EXCEL_EPOCH = datetime.date(1899, 12, 31).toordinal()


def excel_day(day: datetime.date) -> int:
    """The serial number of a day in Excel's 1900 system, as xlsxwriter works it out (with
    Excel's 29 February 1900, which never was); but 1 January 1900 is 1, where xlsxwriter
    takes it for a time of day and writes 0 (shown as 1900-01-00)."""
    serial = day.toordinal() - _EXCEL_EPOCH
    return serial + 1 if serial > 59 else serial


# Text that xlsxwriter writes otherwise than it is (control characters, XML's special
# characters, its _xHHHH_ escapes, white space to preserve), or that neutralise() may change.
_NOT_PLAIN = re.compile(r"[\x00-\x08\x0b-\x1f&<>\ufffe\uffff]|_x[0-9a-fA-F]{4}_|^[=+@\-\s]|\s$")
# The same for a row's texts, each after a LF, and a LF last: one of these matches wherever
# _NOT_PLAIN matches a text (and sometimes elsewhere: then each text is looked at). Three
# simple searches take half the time of one with every branch.
_ROW_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f&<>\ufffe\uffff_]")
_ROW_STARTS = re.compile(r"\n[=+@\-\s]")
_ROW_ENDS = re.compile(r"[^\S\n]\n")  # (a text ending in LF: its LF starts the next one)
_EDGE_SPACE = re.compile(r"^\s|\s$")
# A cell holds 32,767 characters at most (xlsxwriter cuts longer text there too).
XLSX_MAX_CHARS = 32_767


def _inline_string(ref: str, value: str) -> str:
    """A text cell as xlsxwriter writes it in constant_memory mode, neutralised."""
    if len(value) > XLSX_MAX_CHARS:
        value = value[:XLSX_MAX_CHARS]
    elif not _NOT_PLAIN.search(value):
        return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'
    value = neutralise(value)[:XLSX_MAX_CHARS]
    # As xlsxwriter's _escape_control_characters, _preserve_whitespace and _escape_data; but
    # text between <r> and </r> is escaped too, never written as rich text.
    value = XMLwriter._escape_control_characters(value)
    space = ' xml:space="preserve"' if _EDGE_SPACE.search(value) else ""
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<c r="{ref}" t="inlineStr"><is><t{space}>{value}</t></is></c>'


class _Workbook(xlsxwriter.Workbook):
    def add_worksheet(self, name: str | None = None, worksheet_class: Any = None) -> _Sheet:
        return super().add_worksheet(name, worksheet_class=_Sheet)


def write_xlsx(path: str, title: str, rows: Iterable[tuple[Any, ...]], columns: list[Column]) -> int:
    """Write the rows to an XLSX file with native numbers, dates and booleans; returns the row count."""
    workbook = _Workbook(
        path,
        {
            "constant_memory": True,
            # Text stays text: never a formula, a link or a number.
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    bold = workbook.add_format({"bold": True})
    formats = {
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
        "datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"}),
    }

    # A sheet name holds at most 31 characters, none of []:*?/\ (a translated title may not fit).
    name = "".join(" " if ch in "[]:*?/\\" else ch for ch in title)[:25]

    def new_sheet(number: int) -> _Sheet:
        sheet = workbook.add_worksheet(name if number == 1 else f"{name} ({number})")
        sheet.freeze_panes(1, 0)
        for index, column in enumerate(columns):
            width = 18 if column.kind in ("date", "datetime", "birth") else max(10, min(30, len(column.header) + 4))
            sheet.set_column(index, index, width)
        for index, column in enumerate(columns):
            sheet.write_string(0, index, column.header, bold)
        return sheet

    kinds = [c.kind for c in columns]
    remaining = iter(rows)
    count = 0
    sheets = 1
    while True:
        written = new_sheet(sheets).append_rows(1, remaining, kinds, formats)
        count += written
        if written < XLSX_MAX_ROWS - 1:
            break
        sheets += 1
    workbook.close()
    return count


def xlsx_file(title: str, rows: Iterable[tuple[Any, ...]], columns: list[Column]) -> tuple[io.BufferedReader, int]:
    """The XLSX as an open file whose directory entry is already gone: closing it frees the disk space."""
    handle, path = tempfile.mkstemp(prefix="export-", suffix=".xlsx")
    os.close(handle)
    try:
        count = write_xlsx(path, title, rows, columns)
        return open(path, "rb"), count  # the response closes it
    finally:
        os.unlink(path)
