"""Writes on the roster side: every one runs in a transaction and leaves a trail."""

import datetime
import functools
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.db import connections, transaction
from django.db.models import F, Max, Q, QuerySet
from django.dispatch import Signal
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history

from cases import names, workflow
from cases.models import (
    Case,
    CaseDocument,
    CaseStatus,
    CaseStatusChange,
    DistinctPersons,
    DocumentKind,
    Incident,
    IncidentEffect,
    IncidentPerson,
    Interview,
    InterviewKind,
    InterviewOutcome,
    Person,
    ResidenceStatus,
    Site,
    SiteHistory,
    SiteTransfer,
)
from cases.storage import private_storage
from cases.workflow import TransitionRefused

# The acting user (request.user in views). Typed loosely because django-stubs types
# request.user as possibly anonymous; the services check is_active and permissions.
User = Any

# Sent inside the transaction of every status change, so that other apps (offers)
# can keep their records in step without cases importing them.
case_status_changed = Signal()  # sender=Case, case, change, by_nomination
# A person is no longer present (deceased, missing): sender=Person, person, reason.
person_gone = Signal()


def _permissions(actor: User) -> set[str]:
    if not actor.is_active:
        return set()
    return set(actor.get_all_permissions())


def case_transition(
    case: Case,
    *,
    to: str,
    actor: User,
    reason: str,
    by_nomination: bool = False,
) -> CaseStatusChange:
    """Move `case` to status `to`, or raise TransitionRefused saying why.

    Locks the case row so two users cannot move the same case at once; the check
    runs against the locked, current status, not the one the caller saw.
    """
    reason = (reason or "").strip()
    if not reason:
        raise TransitionRefused(_("Give a reason for the change."))
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        workflow.check(
            locked.status,
            to,
            held_from=locked.status_before_hold,
            by_nomination=by_nomination,
            permissions=_permissions(actor),
        )
        now = timezone.now()
        change = CaseStatusChange.objects.create(
            case=locked,
            from_status=locked.status,
            to_status=to,
            actor=actor,
            reason=reason,
            changed_at=now,
        )
        locked.status_before_hold = locked.status if to == CaseStatus.ON_HOLD else ""
        locked.status = to
        locked.status_changed_at = now
        locked._change_reason = reason  # type: ignore[attr-defined]  # read by simple-history
        locked.save(update_fields=["status", "status_before_hold", "status_changed_at", "updated_at"])
        case_status_changed.send(sender=Case, case=locked, change=change, by_nomination=by_nomination)
    case.status = locked.status
    case.status_before_hold = locked.status_before_hold
    case.status_changed_at = locked.status_changed_at
    return change


def interview_schedule(
    case: Case,
    *,
    actor: User,
    scheduled_at: datetime.datetime,
    place: str,
    interviewer: User | None = None,
    kind: str = InterviewKind.PROTECTION,
) -> Interview:
    """Book an interview; a case not yet scheduled moves to interview_scheduled."""
    with transaction.atomic():
        interview = Interview.objects.create(
            case=case, kind=kind, scheduled_at=scheduled_at, place=place, interviewer=interviewer
        )
        if case.status != CaseStatus.INTERVIEW_SCHEDULED:
            case_transition(
                case,
                to=CaseStatus.INTERVIEW_SCHEDULED,
                actor=actor,
                reason=_("Interview booked for %(when)s at %(place)s.")
                % {"when": f"{scheduled_at:%Y-%m-%d %H:%M}", "place": place},
            )
    return interview


# What an interview's outcome does to its case (interview_scheduled → ...).
_OUTCOME_MOVES = {
    InterviewOutcome.ATTENDED: CaseStatus.INTERVIEWED,
    InterviewOutcome.NO_SHOW: CaseStatus.REGISTERED,
    InterviewOutcome.REFUSED: CaseStatus.DECLINED_PARTICIPATION,
    InterviewOutcome.CANCELLED: CaseStatus.REGISTERED,
}


# Outcomes that say what happened at the interview: recorded from its time on.
_HAPPENED = {InterviewOutcome.ATTENDED, InterviewOutcome.NO_SHOW, InterviewOutcome.REFUSED}


def interview_record_outcome(interview: Interview, *, actor: User, outcome: str, notes: str = "") -> Interview:
    """Record what happened; the case moves on as the workflow says."""
    if outcome == InterviewOutcome.PENDING:
        raise TransitionRefused(_("Choose an outcome."))
    with transaction.atomic():
        locked = Interview.objects.select_for_update().get(pk=interview.pk)
        if locked.outcome != InterviewOutcome.PENDING:
            raise TransitionRefused(_("This interview's outcome is already recorded."))
        if outcome in _HAPPENED and locked.scheduled_at > timezone.now():
            raise TransitionRefused(
                _(
                    "This interview is on %(when)s: it cannot have been %(outcome)s yet."
                    " Reschedule or cancel it instead."
                )
                % {
                    "when": timezone.localtime(locked.scheduled_at).strftime("%Y-%m-%d %H:%M"),
                    "outcome": InterviewOutcome(outcome).label.lower(),
                }
            )
        locked.outcome = outcome
        locked.outcome_recorded_at = timezone.now()
        if notes:
            locked.notes = notes
        locked.save()
        target = _OUTCOME_MOVES.get(InterviewOutcome(outcome))
        case = locked.case
        if target and case.status == CaseStatus.INTERVIEW_SCHEDULED:
            case_transition(
                case,
                to=target,
                actor=actor,
                reason=_("Interview outcome: %(outcome)s.") % {"outcome": InterviewOutcome(outcome).label},
            )
    return locked


def incident_record(
    *,
    actor: User,
    site: Site,
    kind: str,
    occurred_at: datetime.datetime,
    summary: str,
    description: str = "",
    affected: Iterable[tuple[Person, str]] = (),
) -> Incident:
    """Log an incident with the persons it affected, and apply what it did to them."""
    with transaction.atomic():
        incident = Incident.objects.create(
            site=site,
            kind=kind,
            occurred_at=occurred_at,
            summary=summary,
            description=description,
            reported_by=actor,
        )
        bulk_create_with_history(
            [IncidentPerson(incident=incident, person=person, effect=effect) for person, effect in affected],
            IncidentPerson,
            default_user=actor,
        )
        incident_apply_effects(incident)
    return incident


# What an incident does to a person's residence status.
_EFFECT_STATUS = {
    IncidentEffect.KILLED: ResidenceStatus.DECEASED,
    IncidentEffect.MISSING: ResidenceStatus.MISSING,
}
# Effects after which someone must look at the person's case again.
_EFFECTS_FOR_REVIEW = {IncidentEffect.KILLED, IncidentEffect.MISSING, IncidentEffect.INJURED}


def incident_apply_effects(incident: Incident) -> None:
    """A person killed becomes deceased, a missing one missing; their cases need review."""
    reason = _("Incident: %(summary)s") % {"summary": incident.summary}
    with transaction.atomic():
        entries = list(incident.affected.select_related("person"))
        # Locked, in one query: each change is a new version of the person (an edit form
        # opened before the incident and saved after it is refused, not saved over it).
        people = Person.objects.select_for_update().filter(pk__in=[entry.person_id for entry in entries])
        locked = {person.pk: person for person in people.order_by("pk")}
        for entry in entries:
            person = entry.person = locked[entry.person_id]
            new_status = _EFFECT_STATUS.get(IncidentEffect(entry.effect))
            if new_status and person.residence_status != new_status:
                person.residence_status = new_status
                person.version += 1
                person._change_reason = reason  # type: ignore[attr-defined]
                person.save(update_fields=["residence_status", "version", "updated_at"])
                person_gone.send(sender=Person, person=person, reason=reason)
        # The cases to review, locked in one query, each flagged once.
        to_review = {entry.person.case_id for entry in entries if entry.effect in _EFFECTS_FOR_REVIEW}
        for case in Case.objects.select_for_update().filter(pk__in=to_review, needs_review=False).order_by("pk"):
            case.needs_review = True
            # A new version: an edit form opened before the incident and saved after it
            # must not clear the flag unseen (case_update refuses a stale version).
            case.version += 1
            case._change_reason = reason  # type: ignore[attr-defined]
            case.save(update_fields=["needs_review", "version", "updated_at"])


def case_transition_from(case: Case, *, seen: str, to: str, actor: User, reason: str) -> CaseStatusChange:
    """case_transition, refused when the case is no longer in the status the user saw.

    A page offers moves from the status it showed; if someone moved the case since,
    a move that is still legal may no longer be what the user meant.
    """
    with transaction.atomic():
        current = Case.objects.select_for_update().get(pk=case.pk)
        if current.status != seen:
            raise TransitionRefused(
                _("Someone else moved this case to %(status)s in the meantime; check it and choose again.")
                % {"status": current.get_status_display()}
            )
        return case_transition(case, to=to, actor=actor, reason=reason)


class EditConflict(Exception):
    """Someone saved the record after the editor loaded it. `current` is what is saved now."""

    def __init__(self, current: Case | Person) -> None:
        super().__init__(_("Someone else saved this record while you were editing it."))
        self.current = current


# What the case and person pages may edit. Status has its own service (case_transition);
# residence status changes through incidents and departures.
CASE_EDITABLE_FIELDS = ("assigned_officer", "determination", "needs_review", "notes")
# Seeing (and so editing) a person's specific needs.
NEEDS_PERMISSION = "cases.view_specific_needs"
PERSON_EDITABLE_FIELDS = (
    "family_name",
    "given_name",
    "native_name",
    "sex",
    "birth_year",
    "birth_date",
    "nationality",
    "phone",
    "notes",
)


def _versioned_update[M: (Case, Person)](
    instance: M,
    *,
    actor: User,
    version: int,
    changes: dict[str, Any],
    editable: tuple[str, ...],
    permission: str,
    reason: str,
    derived: dict[str, Any] | None = None,
    then: Callable[[M], None] | None = None,
) -> M:
    """`then(saved)` writes what an UPDATE cannot (a person's needs) before the history row."""
    unknown = set(changes) - set(editable)
    if unknown:
        raise ValueError(f"Not editable here: {', '.join(sorted(unknown))}")
    if permission not in _permissions(actor):
        raise PermissionDenied
    model = type(instance)
    with transaction.atomic():
        # The version the editor started from must still be the saved one; one
        # statement checks and writes, so two saves cannot both pass.
        matched = model._default_manager.filter(pk=instance.pk, version=version).update(
            **changes, **(derived or {}), version=F("version") + 1, updated_at=timezone.now()
        )
        saved = model._default_manager.get(pk=instance.pk)
        if not matched:
            raise EditConflict(saved)
        if then is not None:
            then(saved)
        saved._change_reason = reason  # type: ignore[attr-defined]  # read by simple-history
        # QuerySet.update() sends no signals: write the history row ourselves.
        records = model.history.bulk_history_create([saved], update=True, default_user=actor)
        if model is Person:
            _record_needs(records)
    return saved


def _record_needs(records: list[Any]) -> None:
    """The needs of each person history row (simple-history's bulk writer leaves them out,
    so the row would say the person had none)."""
    through = Person.specific_needs.through
    needs_history = apps.get_model("cases", "HistoricalPerson_specific_needs")
    links = through.objects.filter(person_id__in=[record.id for record in records]).values_list(
        "pk", "person_id", "specificneed_id"
    )
    by_person: dict[int, list[tuple[int, int]]] = {}
    for link_id, person_id, need_id in links:
        by_person.setdefault(person_id, []).append((link_id, need_id))
    needs_history.objects.bulk_create(
        needs_history(id=link_id, history_id=record.history_id, person_id=record.id, specificneed_id=need_id)
        for record in records
        for link_id, need_id in by_person.get(record.id, [])
    )


def _set_needs(person: Person, needs: list[int]) -> None:
    """A person's needs become `needs` (ids), written straight to the link table: the
    person's one history row, written after, carries them."""
    through = Person.specific_needs.through
    through.objects.filter(person_id=person.pk).exclude(specificneed_id__in=needs).delete()
    kept = set(through.objects.filter(person_id=person.pk).values_list("specificneed_id", flat=True))
    through.objects.bulk_create(
        through(person_id=person.pk, specificneed_id=need) for need in sorted(set(needs) - kept)
    )


def case_update(case: Case, *, actor: User, version: int, changes: dict[str, Any], reason: str = "") -> Case:
    """Save edited case details if nobody saved the case since `version`, else raise EditConflict."""
    return _versioned_update(
        case,
        actor=actor,
        version=version,
        changes=changes,
        editable=CASE_EDITABLE_FIELDS,
        permission="cases.change_case",
        reason=reason or _("Case details edited."),
    )


def person_update(person: Person, *, actor: User, version: int, changes: dict[str, Any], reason: str = "") -> Person:
    """Save edited person details if nobody saved the person since `version`, else raise EditConflict.

    `changes` may hold "specific_needs" (need ids), for whoever may see them."""
    changes = dict(changes)
    if changes.get("birth_date") and "birth_year" not in changes:
        # A date of birth brings its year (the edit form lets the user change the date alone).
        changes["birth_year"] = changes["birth_date"].year
    needs = changes.pop("specific_needs", None)
    if needs is not None and not actor.has_perm(NEEDS_PERMISSION):
        raise PermissionDenied
    derived: dict[str, Any] = {}
    if changes.keys() & {"family_name", "given_name", "native_name"}:
        # Written only when `version` still matches, that is when `person` is what is saved.
        named = {
            field: changes.get(field, getattr(person, field)) for field in ("family_name", "given_name", "native_name")
        }
        derived = names.stored_keys(**named)
    return _versioned_update(
        person,
        actor=actor,
        version=version,
        changes=changes,
        editable=PERSON_EDITABLE_FIELDS,
        permission="cases.change_person",
        reason=reason or _("Person details edited."),
        derived=derived,
        then=None if needs is None else functools.partial(_set_needs, needs=list(needs)),
    )


def distinct_persons_mark(pairs: list[tuple[str, str]], *, actor: User) -> set[tuple[str, str]]:
    """Record pairs of registration numbers (probable duplicates of a roster import) as
    different persons, decided by `actor`; a pair recorded already is kept as it was.
    Returns the pairs, each in the order it is kept (DistinctPersons.pair)."""
    kept = {DistinctPersons.pair(one, other) for one, other in pairs}
    DistinctPersons.objects.bulk_create(
        [DistinctPersons(first=first, second=second, decided_by=actor) for first, second in sorted(kept)],
        ignore_conflicts=True,
    )
    return kept


def distinct_persons_renumber(old: str, new: str) -> None:
    """The pairs marked as different persons (by the roster import's check page) follow a
    registration number corrected on the person's page: they are kept by number."""
    for marked in DistinctPersons.objects.filter(Q(first=old) | Q(second=old)).select_for_update():
        first, second = DistinctPersons.pair(new, marked.second if marked.first == old else marked.first)
        marked.delete()
        kept = {"decided_by_id": marked.decided_by_id, "decided_at": marked.decided_at}
        DistinctPersons.objects.get_or_create(first=first, second=second, defaults=kept)


# How many rows one INSERT writes when a transfer moves a whole site.
_BATCH = 2000


class SiteTransferRefused(Exception):
    """A site transfer that cannot be made; the message says why. Nothing is written."""


def _selection(cases: QuerySet[Case] | Iterable[Case]) -> QuerySet[Case]:
    if isinstance(cases, QuerySet):
        # A subquery, so that a whole site's cases never become a long list of ids;
        # the caller's ordering and annotations do not matter here.
        return Case.objects.filter(pk__in=cases.order_by().values_list("pk", flat=True))
    return Case.objects.filter(pk__in=[case.pk for case in cases])


# Columns of a simple-history table that describe the change rather than copy the row.
_HISTORY_OWN_FIELDS = frozenset({"history_id", "history_date", "history_change_reason", "history_type", "history_user"})
# simple-history keeps a change's reason in 100 characters.
_HISTORY_REASON_LENGTH = 100


def _write_history(model: Any, queryset: QuerySet[Any], *, actor: User, reason: str, when: datetime.datetime) -> None:
    """Change-history rows ("~", by `actor`, because `reason`) for rows changed by QuerySet.update().

    update() sends no signals. simple-history's bulk_history_create builds each row in
    Python (about 1,000 rows a second here); a whole site's persons are copied inside the
    database instead, by one INSERT ... SELECT over the columns simple-history tracks.
    """
    history = model.history.model
    source = model._meta
    tracked = [field for field in history._meta.concrete_fields if field.name not in _HISTORY_OWN_FIELDS]
    connection = connections[queryset.db]
    name = connection.ops.quote_name
    columns = ", ".join(name(field.column) for field in tracked)
    values = ", ".join(f"src.{name(source.get_field(field.name).column)}" for field in tracked)
    ids, ids_params = queryset.values("pk").query.sql_with_params()
    # Identifiers come from the models' _meta; every value is a parameter.
    sql = (
        f"INSERT INTO {name(history._meta.db_table)} "  # noqa: S608
        f"({columns}, history_date, history_change_reason, history_type, history_user_id) "
        f"SELECT {values}, %s, %s, %s, %s FROM {name(source.db_table)} src "
        f"WHERE src.{name(source.pk.column)} IN ({ids})"
    )
    params = [
        connection.ops.adapt_datetimefield_value(when),
        Truncator(reason).chars(_HISTORY_REASON_LENGTH),
        "~",
        actor.pk,
        *ids_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def site_transfer(
    *,
    actor: User,
    cases: QuerySet[Case] | Iterable[Case],
    to_site: Site,
    date: datetime.date,
    reason: str,
) -> SiteTransfer:
    """Move `cases` and their present members to `to_site` on `date`, or raise SiteTransferRefused.

    Moving one case is an edit of its details (cases.change_case); moving more needs
    cases.transfer_persons too. Every moved person gets a SiteHistory row, and cases and
    persons a change-history row. Members who are not present (relocated, deceased,
    missing, left) stay at the site they were recorded at.
    """
    reason = (reason or "").strip()
    if not reason:
        raise SiteTransferRefused(_("Give a reason for the transfer."))
    if date > timezone.localdate():
        raise SiteTransferRefused(_("A transfer cannot be dated in the future."))
    permissions = _permissions(actor)
    if "cases.change_case" not in permissions:
        raise PermissionDenied
    selected = _selection(cases)
    with transaction.atomic():
        destination = Site.objects.get(pk=to_site.pk)
        if not destination.is_active:
            raise SiteTransferRefused(
                _("%(site)s is not an active site; choose another one.") % {"site": destination.name}
            )
        # Locked, so that nobody moves or edits these cases while they are moved.
        rows = list(Case.objects.select_for_update().filter(pk__in=selected.values("pk")).values_list("pk", "site_id"))
        if not rows:
            raise SiteTransferRefused(_("No case is selected: there is nobody to move."))
        if len(rows) > 1 and "cases.transfer_persons" not in permissions:
            raise PermissionDenied
        from_sites = {site_id for _pk, site_id in rows}
        if len(from_sites) > 1:
            raise SiteTransferRefused(
                _("The selected cases are at %(count)d different sites; move the cases of one site at a time.")
                % {"count": len(from_sites)}
            )
        from_site = Site.objects.get(pk=from_sites.pop())
        if from_site == destination:
            raise SiteTransferRefused(_("The cases are already at %(site)s.") % {"site": destination.name})
        movers = Person.objects.filter(case__in=selected, residence_status=ResidenceStatus.PRESENT).exclude(
            site=destination
        )
        people = list(movers.values_list("pk", "site_id"))
        if not people:
            raise SiteTransferRefused(_("Nobody in the selected cases is present to move."))
        latest = SiteHistory.objects.filter(person__in=movers, date__gt=date).aggregate(latest=Max("date"))["latest"]
        if latest:
            raise SiteTransferRefused(
                _("Some of these persons were already moved on %(date)s; a transfer cannot be dated before it.")
                % {"date": latest.isoformat()}
            )
        transfer = SiteTransfer.objects.create(
            from_site=from_site,
            to_site=destination,
            date=date,
            reason=reason,
            actor=actor,
            case_count=len(rows),
            person_count=len(people),
        )
        through = SiteTransfer.cases.through
        through.objects.bulk_create(
            [through(sitetransfer=transfer, case_id=pk) for pk, _site in rows], batch_size=_BATCH
        )
        SiteHistory.objects.bulk_create(
            [
                SiteHistory(person_id=pk, transfer=transfer, from_site_id=site_id, to_site=destination, date=date)
                for pk, site_id in people
            ],
            batch_size=_BATCH,
        )
        # From here on the moved rows are found through the transfer, not the selection,
        # which may no longer match them once their site has changed.
        now = timezone.now()
        moved_cases = Case.objects.filter(site_transfers=transfer)
        moved_persons = Person.objects.filter(site_history__transfer=transfer)
        # Each a new version: an edit form opened before the move, or an import checked
        # before it, is refused or checked again rather than written over it.
        moved_cases.update(site=destination, version=F("version") + 1, updated_at=now)
        moved_persons.update(site=destination, version=F("version") + 1, updated_at=now)
        history_reason = _("Site transfer of %(date)s: %(reason)s") % {"date": date.isoformat(), "reason": reason}
        _write_history(Case, moved_cases, actor=actor, reason=history_reason, when=now)
        _write_history(Person, moved_persons, actor=actor, reason=history_reason, when=now)
    return transfer


class DocumentRefused(Exception):
    """An upload or a deletion that cannot be made; the message says why. Nothing is written."""


# Extension -> the content type it is served with, and the bytes every such file starts with.
DOCUMENT_TYPES: dict[str, tuple[str, bytes]] = {
    "pdf": ("application/pdf", b"%PDF-"),
    "jpg": ("image/jpeg", b"\xff\xd8\xff"),
    "jpeg": ("image/jpeg", b"\xff\xd8\xff"),
    "png": ("image/png", b"\x89PNG\r\n\x1a\n"),
}


def _file_name(name: str) -> str:
    """The name as the user would recognise it: no folders (some browsers send them), no control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    # The end, not the start, survives a very long name: it holds the extension.
    return "".join(char for char in base if char.isprintable()).strip()[-255:]


def case_document_add(case: Case, *, actor: User, kind: str, upload: UploadedFile) -> CaseDocument:
    """Attach `upload` to `case`, or raise DocumentRefused.

    Only PDF, JPEG and PNG files up to settings.DOCUMENT_MAX_BYTES; the file's first
    bytes must match its extension, so that a renamed file is refused. It is stored
    under a random name in the private storage; its own name is kept for display.
    """
    if "cases.add_casedocument" not in _permissions(actor):
        raise PermissionDenied
    if kind not in DocumentKind.values:
        raise DocumentRefused(_("Choose what kind of document this is."))
    name = _file_name(upload.name or "")
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    if extension not in DOCUMENT_TYPES:
        raise DocumentRefused(_("Only PDF, JPEG and PNG files can be attached."))
    size = upload.size or 0
    if not size:
        raise DocumentRefused(_("The file is empty."))
    if size > settings.DOCUMENT_MAX_BYTES:
        raise DocumentRefused(
            _("The file is %(size)s; a document may be at most %(limit)s.")
            % {"size": filesizeformat(size), "limit": filesizeformat(settings.DOCUMENT_MAX_BYTES)}
        )
    content_type, magic = DOCUMENT_TYPES[extension]
    upload.seek(0)
    head = upload.read(len(magic))
    upload.seek(0)
    if head != magic:
        raise DocumentRefused(
            _("The file's content is not %(type)s, whatever its name says.") % {"type": extension.upper()}
        )
    document = CaseDocument(
        case=case, kind=kind, original_name=name, size=size, content_type=content_type, uploaded_by=actor
    )
    document._history_user = actor  # type: ignore[attr-defined]  # read by simple-history
    with transaction.atomic():
        document.file.save(f"{uuid.uuid4().hex}.{extension}", upload, save=False)
        try:
            document.save()
        except BaseException:
            document.file.delete(save=False)
            raise
    return document


def case_document_delete(document: CaseDocument, *, actor: User, reason: str) -> CaseDocument:
    """Erase the document's file and mark its row deleted, with who, when and why."""
    if "cases.delete_casedocument" not in _permissions(actor):
        raise PermissionDenied
    reason = (reason or "").strip()
    if not reason:
        raise DocumentRefused(_("Give a reason for deleting the document."))
    with transaction.atomic():
        locked = CaseDocument.objects.select_for_update().get(pk=document.pk)
        if locked.deleted_at:
            raise DocumentRefused(_("This document was already deleted."))
        name = str(locked.file.name)
        locked.file.name = ""
        locked.deleted_at = timezone.now()
        locked.deleted_by = actor
        locked.deletion_reason = reason
        locked._history_user = actor  # type: ignore[attr-defined]  # read by simple-history
        # The whole reason is in deletion_reason; simple-history keeps 100 characters.
        locked._change_reason = Truncator(reason).chars(_HISTORY_REASON_LENGTH)  # type: ignore[attr-defined]
        locked.save()
        # The file goes only once the deletion is saved for good.
        transaction.on_commit(lambda: private_storage().delete(name))
    return locked
