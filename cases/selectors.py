"""Reads on the roster side: one query each, whatever the number of rows."""

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Case as SqlCase
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from cases import workflow
from cases.models import (
    Case,
    CaseDocument,
    CaseStatus,
    CaseStatusChange,
    DocumentKind,
    Incident,
    IncidentPerson,
    Interview,
    InterviewOutcome,
    Person,
    Relationship,
    ResidenceStatus,
    Site,
    SiteHistory,
    SiteTransfer,
)
from cases.scope import Sites, in_sites, limit, sites_of

# A person is in a user's scope when they live at, or their case is at, one of its sites.
PERSON_SITES = ("site", "case__site")


@dataclass(frozen=True)
class StatusCount:
    status: CaseStatus
    cases: int
    persons: int


def case_status_counts(sites: Sites = None) -> list[StatusCount]:
    """Cases and their living persons (present or relocated) per workflow status, every status listed, in one query."""
    rows: dict[str, dict[str, Any]] = {
        row["status"]: dict(row)
        for row in limit(Case.objects.order_by(), sites)
        .values("status")
        .annotate(
            cases=Count("pk", distinct=True),
            persons=Count(
                "members",
                filter=Q(members__residence_status__in=[ResidenceStatus.PRESENT, ResidenceStatus.RELOCATED]),
            ),
        )
    }
    return [
        StatusCount(
            status=status,
            cases=rows.get(status, {}).get("cases", 0),
            persons=rows.get(status, {}).get("persons", 0),
        )
        for status in CaseStatus
    ]


def case_list() -> QuerySet[Case]:
    """Cases with their site, size and principal applicant, for lists (no per-row queries).

    The size is a correlated subquery rather than a join with GROUP BY: the database
    then counts members for the page's rows only, not for every matching case (at a
    million persons, ~1 s less per page), and the paginator's COUNT needs no join.
    """
    members = Person.objects.filter(case=OuterRef("pk")).order_by().values("case").annotate(n=Count("pk")).values("n")
    return (
        Case.objects.select_related("site")
        .annotate(size=Coalesce(Subquery(members), Value(0)))
        .prefetch_related(
            Prefetch(
                "members",
                queryset=Person.objects.filter(relationship=Relationship.PRINCIPAL_APPLICANT),
                to_attr="principal",
            )
        )
        .order_by("case_no")
    )


# How many of a record's latest changes its page shows.
HISTORY_LIMIT = 30
# Fields the history on a page leaves out: bookkeeping, and the status, whose changes
# the status timeline shows with their reason.
_HISTORY_HIDDEN = frozenset({"id", "version", "created_at", "status", "status_changed_at", "status_before_hold"})


@dataclass(frozen=True)
class FieldChange:
    label: str
    old: Any
    new: Any


@dataclass(frozen=True)
class HistoryEntry:
    """One saved version of a record: who, when, why, and which fields changed."""

    record: Any  # a simple-history historical record
    created: bool
    changes: list[FieldChange]


def _history_value(record: Any, field: Any) -> Any:
    if field.is_relation:
        # The caller select_related() every foreign key, so this costs no query.
        return getattr(record, field.name)
    value = getattr(record, field.attname)
    if field.choices:
        return dict(field.flatchoices).get(value, value)
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()  # as the pages show dates of birth
    return value


def _history_entries(records: list[Any], *, more: bool) -> list[HistoryEntry]:
    """Pair each record with the one before it and keep those that changed a shown field.

    `more` says the oldest record is only there as the base of the next one's diff.
    """
    entries = []
    for index, record in enumerate(records):
        older = records[index + 1] if index + 1 < len(records) else None
        if older is None and more:
            break
        changes = []
        if older is not None:
            for field in record.tracked_fields:
                if field.name in _HISTORY_HIDDEN:
                    continue
                if getattr(record, field.attname) != getattr(older, field.attname):
                    changes.append(
                        FieldChange(
                            label=str(field.verbose_name),
                            old=_history_value(older, field),
                            new=_history_value(record, field),
                        )
                    )
        created = record.history_type == "+"
        if created or changes:
            entries.append(HistoryEntry(record=record, created=created, changes=changes))
    return entries


def _latest_history(history: Any, *related: str) -> list[HistoryEntry]:
    records = list(history.select_related("history_user", *related)[: HISTORY_LIMIT + 1])
    return _history_entries(records, more=len(records) > HISTORY_LIMIT)


@dataclass(frozen=True)
class CaseDetail:
    case: Case
    # Incidents that affected a member: each row has .incident, .person and .effect.
    incidents: list[IncidentPerson]
    history: list[HistoryEntry]
    # Newest first; deleted ones too (who deleted them and why), medical reports only
    # for users who may see specific needs.
    documents: list[CaseDocument] = field(default_factory=list)
    site_transfers: list[SiteTransfer] = field(default_factory=list)


def case_detail(pk: int, *, with_specific_needs: bool, sites: Sites = None) -> CaseDetail:
    """Everything the case page shows, in a fixed number of queries whatever the case's size.

    Members (principal applicant first) are `case.members.all()`, each with their specific
    needs when `with_specific_needs`; `case.status_changes`, `case.interviews` and
    `case.nominations` (with their offer; the offers app owns that relation) are
    prefetched. Raises Case.DoesNotExist, also for a case outside `sites` (cases.scope).
    """
    members = Person.objects.order_by(
        SqlCase(When(relationship=Relationship.PRINCIPAL_APPLICANT, then=0), default=1),
        "birth_year",
        "pk",
    )
    if with_specific_needs:
        members = members.prefetch_related("specific_needs")
    case = (
        Case.objects.select_related("site", "assigned_officer")
        .prefetch_related(
            Prefetch("members", queryset=members),
            Prefetch("status_changes", queryset=CaseStatusChange.objects.select_related("actor")),
            Prefetch("interviews", queryset=Interview.objects.select_related("interviewer")),
            "nominations__offer",
        )
        .filter(in_sites(sites))
        .get(pk=pk)
    )
    incidents = list(
        IncidentPerson.objects.filter(person__case=case)
        .select_related("incident", "person")
        .order_by("-incident__occurred_at", "incident_id", "person_id")
    )
    return CaseDetail(
        case=case,
        incidents=incidents,
        history=_latest_history(case.history, "site", "assigned_officer"),
        documents=case_documents(case, with_medical=with_specific_needs),
        site_transfers=case_site_transfers(case),
    )


@dataclass(frozen=True)
class PersonDetail:
    person: Person
    incidents: list[IncidentPerson]
    history: list[HistoryEntry]
    site_history: list[SiteHistory] = field(default_factory=list)


def person_detail(pk: int, *, with_specific_needs: bool, sites: Sites = None) -> PersonDetail:
    """Everything the person page shows, in a fixed number of queries. Raises Person.DoesNotExist,
    also for a person outside `sites`: one who lives at, or whose case is at, none of them."""
    persons = limit(Person.objects.select_related("case", "site"), sites, *PERSON_SITES)
    if with_specific_needs:
        persons = persons.prefetch_related("specific_needs")
    person = persons.get(pk=pk)
    incidents = list(
        IncidentPerson.objects.filter(person=person).select_related("incident").order_by("-incident__occurred_at")
    )
    return PersonDetail(
        person=person,
        incidents=incidents,
        history=_latest_history(person.history, "site", "case"),
        site_history=person_site_history(person),
    )


def case_documents(case: Case, *, with_medical: bool) -> list[CaseDocument]:
    """The case's documents, newest first, in one query."""
    documents = CaseDocument.objects.filter(case=case).select_related("uploaded_by", "deleted_by")
    if not with_medical:
        documents = documents.exclude(kind=DocumentKind.MEDICAL)
    return list(documents)


def document_for_user(pk: int, *, user: Any) -> CaseDocument:
    """A document `user` may download: the access check of case documents.

    Needs cases.view_case, and for a medical report cases.view_specific_needs as well
    (it tells what specific needs tell). Raises CaseDocument.DoesNotExist, also for a
    deleted document or one of a case outside the user's sites, or PermissionDenied.
    """
    if not user.has_perm("cases.view_case"):
        raise PermissionDenied
    document = limit(CaseDocument.objects, sites_of(user), "case__site").get(pk=pk, deleted_at__isnull=True)
    if document.kind == DocumentKind.MEDICAL and not user.has_perm("cases.view_specific_needs"):
        raise PermissionDenied
    return document


def case_site_transfers(case: Case) -> list[SiteTransfer]:
    """The site transfers that moved the case, newest first, in one query."""
    return list(SiteTransfer.objects.filter(cases=case).select_related("from_site", "to_site", "actor"))


def person_site_history(person: Person) -> list[SiteHistory]:
    """The person's moves between sites, newest first, with each transfer's reason, in one query."""
    return list(SiteHistory.objects.filter(person=person).select_related("from_site", "to_site", "transfer__actor"))


def site_transfer_list(sites: Sites = None) -> QuerySet[SiteTransfer]:
    """Site transfers from or to one of `sites`, newest first, for a list (no per-row queries)."""
    return limit(SiteTransfer.objects.select_related("from_site", "to_site", "actor"), sites, "from_site", "to_site")


@dataclass(frozen=True)
class TransferPreview:
    """What a bulk site transfer would move: `cases` is the selection itself."""

    cases: QuerySet[Case]
    case_count: int
    person_count: int


def site_transfer_preview(
    *,
    from_site: Site,
    to_site: Site,
    statuses: list[str] | None = None,
    case_ids: list[int] | None = None,
) -> TransferPreview:
    """The cases of `from_site` with someone present, of `statuses` and among `case_ids` when given.

    Cases where nobody is present any more (all relocated, for instance) stay where they
    were recorded: there is nobody to move. Two count queries.
    """
    present = Person.objects.filter(case=OuterRef("pk"), residence_status=ResidenceStatus.PRESENT)
    cases = Case.objects.filter(Exists(present), site=from_site)
    if statuses:
        cases = cases.filter(status__in=statuses)
    if case_ids is not None:
        cases = cases.filter(pk__in=case_ids)
    persons = Person.objects.filter(case__in=cases, residence_status=ResidenceStatus.PRESENT).exclude(site=to_site)
    return TransferPreview(cases=cases, case_count=cases.count(), person_count=persons.count())


def case_present_members(case: Case) -> int:
    """How many of the case's members are present: those a site transfer moves."""
    return Person.objects.filter(case=case, residence_status=ResidenceStatus.PRESENT).count()


# Worklist -----------------------------------------------------------------------------

# How long in one status before a case shows as stuck on the worklist.
STUCK_AFTER_DAYS = 30
# Interviews listed by name on the worklist; the counts cover them all.
WORKLIST_INTERVIEWS = 10


def case_no_show_to_follow_up() -> Q:
    """Registered cases whose latest interview was a no-show: someone has to book another."""
    later = Interview.objects.filter(case=OuterRef("case"), scheduled_at__gt=OuterRef("scheduled_at"))
    latest_no_show = Interview.objects.filter(case=OuterRef("pk"), outcome=InterviewOutcome.NO_SHOW).exclude(
        Exists(later)
    )
    return Q(status=CaseStatus.REGISTERED) & Q(Exists(latest_no_show))


def case_stuck_since(days: int, *, now: datetime.datetime | None = None) -> Q:
    """Open cases in their current status for more than `days` days."""
    since = (now or timezone.now()) - datetime.timedelta(days=days)
    return Q(status_changed_at__lt=since) & ~Q(status__in=workflow.ENDED)


def _end_of_day(now: datetime.datetime) -> datetime.datetime:
    """The next midnight in the site's time zone."""
    return timezone.make_aware(
        datetime.datetime.combine(timezone.localdate(now) + datetime.timedelta(days=1), datetime.time())
    )


def interview_later_today(*, now: datetime.datetime | None = None) -> Q:
    """Interviews from now to the end of the day (in the site's time zone)."""
    now = now or timezone.now()
    return Q(scheduled_at__gte=now, scheduled_at__lt=_end_of_day(now))


# Each kind of work on the worklist, as the case list's filter for the same cases (by
# the conditions above) and as SQL over cases_case `c` for the worklist's counts. The
# worklist's tests check, on SQLite and PostgreSQL, that each count is what its link lists.
WORK_QUERIES = {
    "no_show": "interview=no_show",
    "interviewed": "status=interviewed",
    "nominated": "status=nominated",
    "stuck": f"in_status={STUCK_AFTER_DAYS}",
    "needs_review": "needs_review=true",
}


def _in(values: list[Any]) -> str:
    """A parenthesised list of one placeholder per value, for SQL IN."""
    return f"({', '.join(['%s'] * len(values))})"


def _work_conditions(since: datetime.datetime) -> dict[str, tuple[str, list[Any]]]:
    """Each kind's condition on cases_case `c`, with its parameters: the SQL twin of the
    case list's filter (case_no_show_to_follow_up, case_stuck_since, ...)."""
    interview = Interview._meta.db_table
    no_show = (
        f"c.status = %s AND EXISTS (SELECT 1 FROM {interview} v WHERE v.case_id = c.id AND v.outcome = %s"  # noqa: S608
        f" AND NOT EXISTS (SELECT 1 FROM {interview} u"
        " WHERE u.case_id = v.case_id AND u.scheduled_at > v.scheduled_at))"
    )
    still_open = [status.value for status in CaseStatus if status not in workflow.ENDED]
    return {
        "no_show": (no_show, [CaseStatus.REGISTERED.value, InterviewOutcome.NO_SHOW.value]),
        "interviewed": ("c.status = %s", [CaseStatus.INTERVIEWED.value]),
        "nominated": ("c.status = %s", [CaseStatus.NOMINATED.value]),
        # The open statuses listed rather than the ended ones excluded: the (status,
        # status_changed_at) index then serves it.
        "stuck": (
            f"c.status IN {_in(still_open)} AND c.status_changed_at < %s",
            [*still_open, connection.ops.adapt_datetimefield_value(since)],
        ),
        "needs_review": ("c.needs_review", []),
    }


def _worklist_counts(user: Any, sites: Sites, *, now: datetime.datetime, since: datetime.datetime) -> dict[str, int]:
    """The worklist's counts in one statement, each part read through its own index: the
    camp's cases one kind at a time (rather than every case's conditions in one pass over
    all cases), the user's cases in one pass over theirs, and the pending interviews (the
    camp's without their cases, the user's through theirs).

    Written as SQL: Django took ~25 ms of CPU to build the same counts as two aggregates of
    eleven filtered counts, more than the database took to count them (100,000 persons).
    Each part is written with its own parameters, in the statement's order.
    """
    if sites is None:
        scope, in_scope, scope_params = "TRUE", "TRUE", []
    elif sites:
        scope, scope_params = f"c.site_id IN {_in(list(sites))}", sorted(sites)
        in_scope = f"i.case_id IN (SELECT c.id FROM {Case._meta.db_table} c WHERE {scope})"  # noqa: S608
    else:
        scope, in_scope, scope_params = "FALSE", "FALSE", []
    case, interview = Case._meta.db_table, Interview._meta.db_table
    conditions = _work_conditions(since)
    ended = [status.value for status in workflow.ENDED]
    at = connection.ops.adapt_datetimefield_value

    # (column, SQL, parameters) in the statement's order.
    camp = [
        (f"all_{key}", f"(SELECT count(*) FROM {case} c WHERE {scope} AND {condition})", [*scope_params, *params])  # noqa: S608
        for key, (condition, params) in conditions.items()
    ]
    mine = [("my_open_cases", f"count(*) FILTER (WHERE c.status NOT IN {_in(ended)})", ended)]
    mine += [
        (f"mine_{key}", f"count(*) FILTER (WHERE {condition})", params)
        for key, (condition, params) in conditions.items()
    ]
    today = "count(*) FILTER (WHERE i.scheduled_at >= %s AND i.scheduled_at < %s)", [at(now), at(_end_of_day(now))]
    overdue = "count(*) FILTER (WHERE i.scheduled_at < %s)", [at(now)]
    pending = InterviewOutcome.PENDING.value

    def select(columns: list[tuple[str, str, list[Any]]]) -> str:
        return ", ".join(f"{sql} AS {name}" for name, sql, _params in columns)

    statement = (
        f"SELECT {select(camp)}, mine.*, interviews.*, my_interviews.*"  # noqa: S608 - no value in the text
        f" FROM (SELECT {select(mine)} FROM {case} c WHERE c.assigned_officer_id = %s AND {scope}) mine,"
        f" (SELECT {today[0]} AS today, {overdue[0]} AS overdue"
        f" FROM {interview} i WHERE i.outcome = %s AND {in_scope}) interviews,"
        f" (SELECT {today[0]} AS today_mine, {overdue[0]} AS overdue_mine FROM {interview} i"
        f" JOIN {case} c ON c.id = i.case_id WHERE i.outcome = %s AND c.assigned_officer_id = %s AND {scope})"
        " my_interviews"
    )
    params = [param for _name, _sql, part in camp for param in part]
    params += [param for _name, _sql, part in mine for param in part] + [user.pk, *scope_params]
    params += [*today[1], *overdue[1], pending, *scope_params]
    params += [*today[1], *overdue[1], pending, user.pk, *scope_params]
    columns = [name for name, _sql, _params in camp + mine] + ["today", "overdue", "today_mine", "overdue_mine"]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    return dict(zip(columns, (int(n or 0) for n in row), strict=True))


@dataclass(frozen=True)
class WorkItem:
    """One kind of work: how many cases, how many of them the user's, and the case list's filter."""

    key: str
    label: str
    help: str
    count: int
    mine: int
    query: str


@dataclass(frozen=True)
class Worklist:
    items: list[WorkItem]
    my_open_cases: int
    # Pending interviews still to come today, and those whose time has passed.
    today: list[Interview]
    overdue: list[Interview]
    today_count: int
    overdue_count: int
    today_mine: int
    overdue_mine: int


def worklist(user: Any, sites: Sites = None) -> Worklist:
    """What needs the user's action, and how much of it is theirs, in three queries whatever the data.

    "Theirs" means cases whose assigned officer is the user. Counts are of cases, except
    for interviews; each item's query is the case list's filter for the same cases. Only
    cases at `sites` count (cases.scope).
    """
    now = timezone.now()
    kinds = [
        ("no_show", _("No-shows to follow up"), _("Registered cases whose latest interview was a no-show.")),
        (
            "interviewed",
            _("Waiting on an eligibility decision"),
            _("Interviewed cases: decide eligible or not eligible."),
        ),
        (
            "nominated",
            _("Waiting on a country or the family"),
            _("Nominated cases: the country's decision or the case's consent is pending."),
        ),
        (
            "stuck",
            _("In one status for more than %(days)d days") % {"days": STUCK_AFTER_DAYS},
            _("Open cases that have not moved for a month."),
        ),
        ("needs_review", _("Needs review"), _("Cases flagged after an incident affected a member.")),
    ]
    counts = _worklist_counts(user, sites, now=now, since=now - datetime.timedelta(days=STUCK_AFTER_DAYS))
    pending = limit(Interview.objects.filter(outcome=InterviewOutcome.PENDING), sites, "case__site")
    later_today = interview_later_today(now=now)
    overdue = Q(scheduled_at__lt=now)
    listed = pending.select_related("case", "interviewer")
    return Worklist(
        items=[
            WorkItem(
                key=key,
                label=label,
                help=help_text,
                count=counts[f"all_{key}"],
                mine=counts[f"mine_{key}"],
                query=WORK_QUERIES[key],
            )
            for key, label, help_text in kinds
        ],
        my_open_cases=counts["my_open_cases"],
        today=list(listed.filter(later_today).order_by("scheduled_at", "pk")[:WORKLIST_INTERVIEWS]),
        overdue=list(listed.filter(overdue).order_by("scheduled_at", "pk")[:WORKLIST_INTERVIEWS]),
        today_count=counts["today"],
        overdue_count=counts["overdue"],
        today_mine=counts["today_mine"],
        overdue_mine=counts["overdue_mine"],
    )


# Incidents ------------------------------------------------------------------------------


def incident_list(sites: Sites = None) -> QuerySet[Incident]:
    """Incidents at `sites`, latest first, with their site, reporter and number of persons affected."""
    return (
        limit(Incident.objects, sites)
        .select_related("site", "reported_by")
        .annotate(persons_affected=Count("affected"))
        .order_by("-occurred_at", "-pk")
    )


def incident_detail(pk: int, sites: Sites = None) -> Incident:
    """An incident with the persons it affected (and their cases). Raises Incident.DoesNotExist,
    also for one outside `sites`."""
    affected = IncidentPerson.objects.select_related("person__case").order_by("person__case__case_no", "person_id")
    return (
        limit(Incident.objects, sites)
        .select_related("site", "reported_by")
        .prefetch_related(Prefetch("affected", queryset=affected))
        .get(pk=pk)
    )


def persons_by_registration_no(numbers: list[str], *, sites: Sites = None) -> dict[str, Person]:
    """The persons (of `sites`) with these registration numbers, by number; unknown numbers are left out."""
    persons = limit(Person.objects.filter(registration_no__in=numbers), sites, *PERSON_SITES)
    return {person.registration_no: person for person in persons}
