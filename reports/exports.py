"""Spreadsheet exports of every list: the columns, the rows, and streaming writers.

Memory stays bounded whatever the number of rows: rows come from the database in
chunks (`.iterator(chunk_size=...)` over `values_list`), CSV is streamed as it is
written, and XLSX is written by xlsxwriter in constant_memory mode to a temporary
file that is served and then removed.

Every text cell goes through `neutralise`, so that no spreadsheet program reads it
as a formula.
"""

import csv
import datetime
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import xlsxwriter
from django.db.models import Count, FilteredRelation, IntegerField, OuterRef, Q, QuerySet, StringAgg, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cases.filters import CaseFilter
from cases.models import Case, Incident, IncidentEffect, IncidentPerson, Interview, Person, Relationship
from offers.models import Departure, DeparturePerson, Nomination
from offers.selectors import offer_list
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


def export_rows(export: ExportList, data: QueryDict, *, sensitive: bool) -> Iterator[tuple[Any, ...]]:
    """The list's rows as tuples in column order, filtered by the GET parameters `data`,
    fetched in chunks. Raises InvalidFilters, before any row is read, on a bad parameter."""
    queryset = export.queryset()
    filterset = export.filterset(data, queryset=queryset)
    errors = filters.filter_errors(filterset)
    # The case list's parameters that the list's own filters do not take choose the rows' cases.
    case_params = CaseFilter.base_filters.keys() - filterset.base_filters.keys() if export.case_filter_path else set()
    cases = CaseFilter(data, queryset=Case.objects.all())
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
    fetched = rows.order_by(*export.order_by).values_list(*lookups).iterator(chunk_size=CHUNK_SIZE)
    return _with_birth_years(fetched, births[0]) if births else fetched


def _with_birth_years(rows: Iterator[tuple[Any, ...]], index: int) -> Iterator[tuple[Any, ...]]:
    """A year-only birth is exported as the year (an integer), never as a made-up 1 January;
    the year comes last in each row and is dropped."""
    for row in rows:
        born = row[index] if row[index] is not None else row[-1]
        yield (*row[:index], born, *row[index + 1 : -1])


# Writers


def _local(value: datetime.datetime) -> datetime.datetime:
    return value.astimezone(timezone.get_current_timezone())


def _csv_converter(kind: Kind) -> Callable[[Any], Any]:
    if kind == "text":
        return neutralise
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


def csv_stream(rows: Iterable[tuple[Any, ...]], columns: list[Column], on_done: Callable[[int], None]) -> Iterator[str]:
    """CSV text in chunks: a UTF-8 byte order mark, the header, then the rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.header for c in columns])
    yield "\ufeff" + buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
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


def write_xlsx(path: str, title: str, rows: Iterable[tuple[Any, ...]], columns: list[Column]) -> int:
    """Write the rows to an XLSX file with native numbers, dates and booleans; returns the row count."""
    workbook = xlsxwriter.Workbook(
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
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    datetime_format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})

    # A sheet name holds at most 31 characters, none of []:*?/\ (a translated title may not fit).
    name = "".join(" " if ch in "[]:*?/\\" else ch for ch in title)[:25]

    def new_sheet(number: int) -> Any:
        sheet = workbook.add_worksheet(name if number == 1 else f"{name} ({number})")
        sheet.freeze_panes(1, 0)
        for index, column in enumerate(columns):
            width = 18 if column.kind in ("date", "datetime", "birth") else max(10, min(30, len(column.header) + 4))
            sheet.set_column(index, index, width)
        for index, column in enumerate(columns):
            sheet.write_string(0, index, column.header, bold)
        return sheet

    def write_cell(sheet: Any, r: int, c: int, kind: Kind, value: Any) -> None:
        if value is None or value == "":
            return
        if kind == "text":
            sheet.write_string(r, c, neutralise(value))
        elif kind == "codes":
            sheet.write_string(r, c, neutralise(";".join(sorted(value.split(";")))))
        elif kind == "int" or (kind == "birth" and isinstance(value, int)):
            sheet.write_number(r, c, value)
        elif kind == "bool":
            sheet.write_boolean(r, c, value)
        elif kind == "datetime":
            sheet.write_datetime(r, c, _local(value).replace(tzinfo=None), datetime_format)
        else:  # a date
            sheet.write_datetime(r, c, datetime.datetime.combine(value, datetime.time.min), date_format)

    kinds = [c.kind for c in columns]
    sheets = 1
    sheet = new_sheet(sheets)
    r = 0
    count = 0
    for row in rows:
        r += 1
        if r == XLSX_MAX_ROWS:
            sheets += 1
            sheet = new_sheet(sheets)
            r = 1
        for c, value in enumerate(row):
            write_cell(sheet, r, c, kinds[c], value)
        count += 1
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
