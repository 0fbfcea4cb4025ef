"""Roster imports as background jobs: upload → check → confirm → import, each step run
by the worker (cases.tasks), with its progress readable by the admin page meanwhile.

The one import code path is still cases.importing.roster_import; this module only
stores the file for the worker, runs it and keeps the outcome. A job's file is kept in
its row (never on disk) until the import has run or the check is refused, cancelled or
left unconfirmed for settings.ROSTER_IMPORT_CONFIRM_MINUTES, or until the job is given
up: its worker stopped while it ran (its progress still for
settings.ROSTER_IMPORT_STALLED_MINUTES), or no worker took it within
settings.ROSTER_IMPORT_QUEUED_HOURS.

Pages never write here: on SQLite a running import holds the one write lock for as long
as it writes, and a page waiting for it would fail. The worker deletes what has expired
before each job and at the time each check or report expires (a task scheduled for
then); until it has, pages show a job as that deletion will leave it (`as_pruned`).

The page shows the first errors and probable duplicates (the strong ones first); all of
them are kept as a gzipped CSV (the job's report) to download. Both lists go after
settings.ROSTER_IMPORT_REPORT_DAYS, and so do the first errors kept on the record of the
check or import (RosterImport.errors); the counts stay.
"""

import copy
import csv
import dataclasses
import datetime
import gzip
import io
import logging
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Min, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cases.importing import (
    STRENGTH_LINES,
    DuplicateStrength,
    ImportResult,
    RowError,
    record_attempt,
    roster_import,
    strength_counts,
    strength_line,
    strongest_first,
)
from cases.models import RosterImport, RosterImportJob, RosterImportJobStatus, RosterImportOutcome
from cases.services import distinct_persons_mark

logger = logging.getLogger(__name__)

# The result keeps this many errors and duplicates for the page; the job's report (and
# manage.py import_roster --dry-run) has them all.
SHOWN = 500
# The page sums up the errors in this many kinds at the most (cases.import_jobs._error_kinds).
ERROR_KINDS = 20
# Progress is written at most this often (seconds), whatever the rows; the first report
# of a stage always is.
PROGRESS_EVERY = 0.5
Status = RosterImportJobStatus
# The `failure` of a job given up by prune_expired (the page says why in the user's words).
STALLED = "Stalled: its worker stopped while it ran."
NOT_STARTED = "Not started: no worker took it."


class JobRefused(Exception):
    """The job is not at a step where this can be done."""


def job_start(*, actor: User, filename: str, content: bytes) -> RosterImportJob:
    """Store the file and queue its check (a dry run)."""
    from cases.tasks import run_roster_import_job

    with transaction.atomic():
        job = RosterImportJob.objects.create(actor=actor, filename=filename[:255], size=len(content), content=content)
        run_roster_import_job.enqueue(job.pk)
        _prune_later(_queued_for())
    job.refresh_from_db()
    return job


def job_confirm(job: RosterImportJob, *, actor: User) -> RosterImportJob:
    """Queue the import of a file whose check found no error."""
    from cases.tasks import run_roster_import_job

    with transaction.atomic():
        locked = RosterImportJob.objects.select_for_update().defer("content", "report").get(pk=job.pk)
        if locked.actor_id != actor.pk:
            raise JobRefused(_("Only the person who uploaded the file can confirm its import."))
        as_pruned(locked)
        if locked.is_working:
            raise JobRefused(_("This file is already being imported."))
        if locked.status == Status.DONE:
            raise JobRefused(_("This file has been imported already."))
        if locked.status != Status.CHECKED or not locked.result.get("ok") or not locked.size:
            raise JobRefused(_("This file cannot be imported any more; choose it again to check it."))
        _set(locked, status=Status.QUEUED, dry_run=False, stage="", done=0, total=0)
        run_roster_import_job.enqueue(locked.pk)
        _prune_later(_queued_for())
    job.refresh_from_db()
    return job


def job_mark_different(job: RosterImportJob, *, actor: User, chosen: list[tuple[str, str]]) -> int:
    """Record the chosen probable duplicates of a check waiting for its confirmation
    (pairs of registration numbers, as its page lists them) as different persons, and
    check the file again: they are listed no more, in this file or any later one.
    Returns how many pairs. A pair the page lists no more (a page left open while the
    list changed) refuses them all: nothing is recorded that was not seen."""
    from cases.tasks import run_roster_import_job

    with transaction.atomic():
        locked = RosterImportJob.objects.select_for_update().defer("content", "report").get(pk=job.pk)
        as_pruned(locked)
        if locked.actor_id != actor.pk or locked.status != Status.CHECKED:
            raise JobRefused(_("This check is no longer waiting for confirmation; choose the file again."))
        if not chosen:
            raise JobRefused(_("Choose the pairs that are different persons first."))
        shown = {
            (duplicate["registration_no"], duplicate["other_registration_no"])
            for duplicate in locked.result.get("duplicates", [])
        }
        if not shown.issuperset(chosen):
            raise JobRefused(_("The list of probable duplicates changed since the page was shown: look at it again."))
        pairs = distinct_persons_mark(chosen, actor=actor)
        _set(locked, status=Status.QUEUED, dry_run=True, stage="", done=0, total=0)
        run_roster_import_job.enqueue(locked.pk)
        _prune_later(_queued_for())
    job.refresh_from_db()
    return len(pairs)


def job_cancel(job: RosterImportJob) -> None:
    """Give up a job before its import, or one whose worker stopped while it ran (the
    worker may not be running to give it up): its file is dropped at once."""
    with transaction.atomic():
        locked = RosterImportJob.objects.select_for_update().defer("content", "report").get(pk=job.pk)
        if locked.status not in (Status.QUEUED, Status.CHECKED) and not _stalled(locked, timezone.now()):
            raise JobRefused(_("Only a job waiting for the worker or for confirmation can be cancelled."))
        _set(locked, status=Status.CANCELLED, content=b"")


def _confirm_cutoff(now: datetime.datetime) -> datetime.datetime:
    """Checks last changed before this were left unconfirmed too long."""
    return now - datetime.timedelta(minutes=settings.ROSTER_IMPORT_CONFIRM_MINUTES)


def _stalled_for() -> datetime.timedelta:
    return datetime.timedelta(minutes=settings.ROSTER_IMPORT_STALLED_MINUTES)


def _queued_for() -> datetime.timedelta:
    return datetime.timedelta(hours=settings.ROSTER_IMPORT_QUEUED_HOURS)


def _stalled(job: RosterImportJob, now: datetime.datetime) -> bool:
    """Whether the job runs no more: its progress (written as it goes, Progress) has not
    moved for too long, its worker having stopped."""
    return job.status == Status.RUNNING and job.updated_at < now - _stalled_for()


def _lists_cutoff(now: datetime.datetime) -> datetime.datetime:
    """The lists of errors and duplicates of jobs last changed before this are deleted."""
    return now - datetime.timedelta(days=settings.ROSTER_IMPORT_REPORT_DAYS)


def lists_deleted(made: datetime.datetime) -> bool:
    """Whether lists of errors or duplicates made then are past their days: deleted, or
    about to be by the worker (pages show them as deleted either way)."""
    return made < _lists_cutoff(timezone.now())


# What the lists leave in a job's result: the most frequent problems are messages, which
# name values of the file (registration numbers, births) as the errors do.
_LISTS = ("errors", "duplicates", "error_kinds")


def _without_lists(result: dict[str, Any]) -> dict[str, Any]:
    kept = {key: value for key, value in result.items() if key not in _LISTS}
    return {**kept, "details_deleted": True}


def prune_expired(now: datetime.datetime | None = None) -> int:
    """Drop the files of checks left unconfirmed too long, and the lists of errors and
    probable duplicates (the report, and those kept for the page) of jobs, and the first
    errors of records, older than ROSTER_IMPORT_REPORT_DAYS, keeping their counts; give
    up the jobs whose worker stopped while they ran and those no worker took, dropping
    their files. Returns how many files."""
    now = now or timezone.now()
    with_lists = Q(result__has_key="errors") | Q(result__has_key="error_kinds")
    expired = RosterImportJob.objects.filter(with_lists, updated_at__lt=_lists_cutoff(now))
    for pk, result in expired.values_list("pk", "result"):
        RosterImportJob.objects.filter(pk=pk).update(result=_without_lists(result), report=b"")
    RosterImport.objects.filter(created_at__lt=_lists_cutoff(now)).exclude(errors=[]).update(errors=[])
    files = RosterImportJob.objects.filter(status=Status.CHECKED, updated_at__lt=_confirm_cutoff(now)).update(
        status=Status.CANCELLED, content=b"", updated_at=timezone.now()
    )
    # Their last change is left as it was: when the job last moved (the page's lists
    # of a confirmed check still go ROSTER_IMPORT_REPORT_DAYS after the check).
    given_up = [
        (Q(status=Status.RUNNING, updated_at__lt=now - _stalled_for()), STALLED, _GIVEN_UP[STALLED]),
        (Q(status=Status.QUEUED, updated_at__lt=now - _queued_for()), NOT_STARTED, _GIVEN_UP[NOT_STARTED]),
    ]
    for which, failure, reason in given_up:
        for job in RosterImportJob.objects.filter(which).only("actor", "filename", "dry_run"):
            with transaction.atomic():
                # Unless it moved meanwhile (its worker was only slow, or took it).
                if RosterImportJob.objects.filter(which, pk=job.pk).update(
                    status=Status.FAILED, content=b"", failure=failure
                ):
                    files += 1
                    record = _record_failed(job, str(reason))
                    RosterImportJob.objects.filter(pk=job.pk).update(record=record)
    return files


# What the record of imports says of a job given up (prune_expired).
_GIVEN_UP = {
    STALLED: gettext_lazy("Its worker stopped while it ran: given up."),
    NOT_STARTED: gettext_lazy("No worker took it: given up."),
}


def _record_failed(job: RosterImportJob, reason: str) -> RosterImport:
    return record_attempt(
        actor=job.actor, filename=job.filename, dry_run=job.dry_run, outcome=RosterImportOutcome.FAILED, reason=reason
    )


def watch_running_jobs() -> None:
    """Have the worker look again when the running job silent for longest would be taken
    for stalled: a job whose worker stopped after the look its start asked for (job_run)
    is given up then, without another job or a page to notice it."""
    last_moved = RosterImportJob.objects.filter(status=Status.RUNNING).aggregate(Min("updated_at"))
    if last_moved["updated_at__min"] is not None:
        _prune_later(last_moved["updated_at__min"] + _stalled_for() - timezone.now())


def as_pruned(job: RosterImportJob, now: datetime.datetime | None = None) -> RosterImportJob:
    """The job (in memory) as prune_expired leaves it, whether or not it has run yet:
    a check left unconfirmed too long is cancelled, a job stalled or never started has
    failed, lists kept too long are gone. The result and the report's size (report_bytes)
    are left alone if they were not loaded."""
    now = now or timezone.now()
    if job.status == Status.CHECKED and job.updated_at < _confirm_cutoff(now):
        job.status = Status.CANCELLED
    elif _stalled(job, now):
        job.status, job.failure = Status.FAILED, STALLED
    elif job.status == Status.QUEUED and job.updated_at < now - _queued_for():
        job.status, job.failure = Status.FAILED, NOT_STARTED
    if job.updated_at < _lists_cutoff(now) and "result" not in job.get_deferred_fields():
        if any(key in job.result for key in _LISTS):
            job.result = _without_lists(job.result)
        if hasattr(job, "report_bytes"):
            job.report_bytes = 0
    return job


def reports_kept() -> QuerySet[RosterImportJob]:
    """The jobs whose report may still be downloaded."""
    return RosterImportJob.objects.filter(updated_at__gte=_lists_cutoff(timezone.now()))


def _prune_later(after: datetime.timedelta) -> None:
    """Have the worker prune when something expires (a few seconds after, to be past it)."""
    from cases.tasks import prune_roster_import_jobs

    # The immediate backend has no worker to run it later: its jobs prune as they start,
    # and so does manage.py prune_roster_imports.
    if prune_roster_import_jobs.get_backend().supports_defer:
        prune_roster_import_jobs.using(run_after=timezone.now() + after + datetime.timedelta(seconds=5)).enqueue()


def job_run(job_id: int) -> str:
    """Run the job's current step (check or import). Called by the worker."""
    prune_expired()
    with transaction.atomic():
        job = RosterImportJob.objects.select_for_update().select_related("actor").defer("report").get(pk=job_id)
        if job.status != Status.QUEUED:
            return job.status  # cancelled meanwhile, or run already
        _set(job, status=Status.RUNNING, stage="", done=0, total=0)
    # Should this worker stop while the job runs, another (or this one restarted) gives it up.
    _prune_later(_stalled_for())
    progress = Progress(job.pk)
    imported: list[RosterImportJob] = []

    def written(result: ImportResult) -> None:
        """Inside the import's transaction, once written: the job recorded as imported
        (should the worker stop just after the commit, the job is not left running, to be
        given up as having written nothing). On a copy: if the commit fails after all,
        the job is as it was, its file kept for the check made again."""
        if not RosterImportJob.objects.select_for_update().filter(pk=job.pk, status=Status.RUNNING).exists():
            # Given up meanwhile (taken for stalled, its worker only slow): said to have
            # written nothing, and recorded as failed. So it writes nothing.
            raise _GivenUp
        done = copy.copy(job)
        _keep(done, result)
        imported.append(done)

    try:
        result = roster_import(
            bytes(job.content),
            actor=job.actor,
            filename=job.filename,
            dry_run=job.dry_run,
            progress=progress,
            # What the user saw and confirmed: if the file would now do otherwise, it
            # is shown again instead of written.
            seen=None if job.dry_run else job.result.get("outcome", ""),
            written=written,
        )
    except _GivenUp:
        return RosterImportJob.objects.values_list("status", flat=True).get(pk=job.pk)
    except Exception as exc:
        logger.exception("Roster import job %s failed", job.pk)
        # Unless it failed after its import was written (and so recorded, above).
        if RosterImportJob.objects.filter(pk=job.pk, status=Status.RUNNING).exists():
            record = _record_failed(
                job, _("An unexpected error stopped it (%(error)s).") % {"error": type(exc).__name__}
            )
            _set(job, status=Status.FAILED, content=b"", failure=f"{type(exc).__name__}: {exc}", record=record)
        raise
    finally:
        progress.close()
    if not result.dry_run and result.ok:  # written, and recorded as imported with it
        job = imported[-1]
    else:
        if not RosterImportJob.objects.filter(pk=job.pk, status=Status.RUNNING).exists():
            # Given up meanwhile (stalled, though its worker was only slow): it wrote
            # nothing, and its file stays deleted.
            return RosterImportJob.objects.values_list("status", flat=True).get(pk=job.pk)
        _keep(job, result)
    if job.status == Status.CHECKED:
        _prune_later(datetime.timedelta(minutes=settings.ROSTER_IMPORT_CONFIRM_MINUTES))
    if result.errors or result.duplicates:
        _prune_later(datetime.timedelta(days=settings.ROSTER_IMPORT_REPORT_DAYS))
    return job.status


class _GivenUp(Exception):
    """The job was given up while its import was being written."""


def _keep(job: RosterImportJob, result: ImportResult) -> None:
    """The job's outcome: a check found clean waits for its confirmation, with its file;
    anything else is done, its file dropped."""
    kept = result.dry_run and result.ok
    _set(
        job,
        status=Status.CHECKED if kept else Status.DONE,
        dry_run=job.dry_run or kept,
        content=job.content if kept else b"",
        result=result_summary(result),
        report=report_gzip(result) if result.errors or result.duplicates else b"",
        record=result.record,
        stage="",
        done=result.rows,
        total=result.rows,
    )


def result_summary(result: ImportResult) -> dict[str, Any]:
    """What the job page shows of an ImportResult, as JSON."""
    return {
        "ok": result.ok,
        "dry_run": result.dry_run,
        "summary": result.summary(),
        "sheet_line": result.sheet_line(),
        "not_read_line": result.not_read_line(),
        "merged_line": result.merged_line(),
        "hidden_line": result.hidden_line(),
        "rows": result.rows,
        "new": result.new,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "cases_new": result.cases_new,
        "error_count": len(result.errors),
        "error_kinds": _error_kinds(result.errors),
        "errors": [dataclasses.asdict(error) for error in result.errors[:SHOWN]],
        "duplicate_count": len(result.duplicates),
        "duplicate_strengths": strength_line(*strength_counts(result.duplicates)) if result.duplicates else "",
        "outcome": result.outcome,
        "changed_since_check": result.changed_since_check,
        "duplicates_notice": result.duplicates_notice,
        "duplicates_decided": result.decided_line() if result.duplicates_decided else "",
        "duplicates": [dataclasses.asdict(duplicate) for duplicate in strongest_first(result.duplicates)[:SHOWN]],
    }


def _error_kinds(errors: list[RowError]) -> list[dict[str, Any]]:
    """The most frequent problems (the same message in the same column), most frequent
    first, each with how often and on which line first: a file refused for thousands of
    errors often has a few mistakes made on every row."""
    kinds: dict[tuple[str, str], list[int]] = {}
    for error in errors:
        kind = kinds.setdefault((error.column, error.message), [0, error.line or 0])
        kind[0] += 1
    ranked = sorted(kinds.items(), key=lambda item: -item[1][0])[:ERROR_KINDS]
    return [
        {"column": column, "message": message, "count": count, "first_line": first_line}
        for (column, message), (count, first_line) in ranked
    ]


def report_gzip(result: ImportResult) -> bytes:
    """Every error, then every probable duplicate (strong ones first, as on the page), in
    file order, as a gzipped CSV (UTF-8 with a BOM, for spreadsheet programs), compressed
    as it is written; no cell is one a spreadsheet would run. A duplicate's row gives both
    persons' sex, case, relationship and native name, as written."""
    from reports.exports import neutralise

    compressed = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=compressed, mode="wb") as zipped,
        io.TextIOWrapper(zipped, encoding="utf-8", newline="") as text,
    ):
        text.write("\ufeff")
        writer = csv.writer(text)
        writer.writerow(
            [
                _("line"),
                _("column"),
                _("problem"),
                _("registration no."),
                _("name"),
                _("born"),
                _("may be (registration no.)"),
                _("may be (name)"),
                _("may be (born)"),
                _("found in"),
                _("strength"),
                _("sex"),
                _("case no."),
                _("relationship"),
                _("native name"),
                _("may be (sex)"),
                _("may be (case no.)"),
                _("may be (relationship)"),
                _("may be (native name)"),
            ]
        )
        for error in result.errors:
            line = "" if error.line is None else error.line
            person = result.error_people.get(error.line or 0, ("", ""))
            writer.writerow([line, neutralise(error.column), neutralise(error.message), *map(neutralise, person)])
        on_record, in_file = _("the roster"), _("line %(line)d")
        for duplicate in strongest_first(result.duplicates):
            where = on_record if duplicate.other_line is None else in_file % {"line": duplicate.other_line}
            cells = [duplicate.registration_no, duplicate.name, duplicate.birth]
            cells += [duplicate.other_registration_no, duplicate.other_name, duplicate.other_birth, where]
            cells += [str(STRENGTH_LINES[DuplicateStrength(duplicate.strength)])]
            cells += [duplicate.sex, duplicate.case_no, duplicate.relationship, duplicate.native_name]
            cells += [duplicate.other_sex, duplicate.other_case_no, duplicate.other_relationship]
            cells += [duplicate.other_native_name]
            writer.writerow([duplicate.line, "", neutralise(duplicate.reason), *map(neutralise, cells)])
    return compressed.getvalue()


def _set(job: RosterImportJob, **fields: Any) -> None:
    fields["updated_at"] = timezone.now()
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=list(fields))


def progress_seen_while_writing() -> bool:
    """Whether a page sees the progress of an import while it writes (Progress: not on
    SQLite, whose one writer is the import's own transaction)."""
    return connection.vendor == "postgresql"


class Progress:
    """Writes a job's progress where the admin page can read it during the import.

    roster_import writes in one transaction; rows written on its connection would stay
    invisible to the page until the end. On PostgreSQL the progress therefore goes
    through a second connection of its own, committed at once. It never waits for the
    job's row: when the job runs inside a transaction that holds it (the immediate
    backend runs a confirmed import inside job_confirm's), waiting would be waiting for
    itself; the progress is skipped instead, as nobody can watch it then. SQLite has one
    writer at a time: there the progress inside the transaction is skipped, and the page
    shows the writing stage until it ends.
    """

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.last = 0.0
        self.stage = ""
        self.side: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        # A new stage is never dropped: on SQLite the writing stage is reported once, just
        # after the check's last report and before the write transaction, inside which
        # nothing more is written; dropped, the page would show the check at 100 % until the end.
        if stage == self.stage and now - self.last < PROGRESS_EVERY and done < total:
            return
        self.last, self.stage = now, stage
        values = {"stage": stage[:20], "done": done, "total": total, "updated_at": timezone.now()}
        if not connection.in_atomic_block:
            RosterImportJob.objects.filter(pk=self.job_id).update(**values)
        elif progress_seen_while_writing():
            self._write_aside(values)

    def _write_aside(self, values: dict[str, Any]) -> None:
        if self.side is None:
            self.side = connections.create_connection(DEFAULT_DB_ALIAS)
        quote = self.side.ops.quote_name
        table = quote(RosterImportJob._meta.db_table)
        assignments = ", ".join(f"{quote(name)} = %s" for name in values)
        with self.side.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {assignments}"  # noqa: S608 - our table and column names
                f" WHERE id = (SELECT id FROM {table} WHERE id = %s FOR UPDATE SKIP LOCKED)",
                [*values.values(), self.job_id],
            )

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
            self.side = None
