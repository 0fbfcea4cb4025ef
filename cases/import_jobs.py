"""Roster imports as background jobs: upload → check → confirm → import, each step run
by the worker (cases.tasks), with its progress readable by the admin page meanwhile.

The one import code path is still cases.importing.roster_import; this module only
stores the file for the worker, runs it and keeps the outcome. A job's file is kept in
its row (never on disk) until the import has run or the check is refused, cancelled or
left unconfirmed for settings.ROSTER_IMPORT_CONFIRM_MINUTES.

The page shows the first errors and probable duplicates; all of them are kept as a
gzipped CSV (the job's report) to download. Both lists go after
settings.ROSTER_IMPORT_REPORT_DAYS; the counts stay.
"""

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
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.importing import ImportResult, roster_import
from cases.models import RosterImportJob, RosterImportJobStatus

logger = logging.getLogger(__name__)

# The result keeps this many errors and duplicates for the page; the job's report (and
# manage.py import_roster --dry-run) has them all.
SHOWN = 500
# Progress is written at most this often (seconds), whatever the rows.
PROGRESS_EVERY = 0.5
Status = RosterImportJobStatus


class JobRefused(Exception):
    """The job is not at a step where this can be done."""


def job_start(*, actor: User, filename: str, content: bytes) -> RosterImportJob:
    """Store the file and queue its check (a dry run)."""
    from cases.tasks import run_roster_import_job

    prune_expired()
    with transaction.atomic():
        job = RosterImportJob.objects.create(actor=actor, filename=filename[:255], size=len(content), content=content)
        run_roster_import_job.enqueue(job.pk)
    job.refresh_from_db()
    return job


def job_confirm(job: RosterImportJob, *, actor: User) -> RosterImportJob:
    """Queue the import of a file whose check found no error."""
    from cases.tasks import run_roster_import_job

    with transaction.atomic():
        locked = RosterImportJob.objects.select_for_update().defer("content", "report").get(pk=job.pk)
        if locked.actor_id != actor.pk:
            raise JobRefused("Only the person who uploaded the file can confirm its import.")
        if locked.status != Status.CHECKED or not locked.result.get("ok") or not locked.size:
            raise JobRefused("This file cannot be imported now: check it again.")
        _set(locked, status=Status.QUEUED, dry_run=False, stage="", done=0, total=0)
        run_roster_import_job.enqueue(locked.pk)
    job.refresh_from_db()
    return job


def job_cancel(job: RosterImportJob) -> None:
    """Give up a job before its import: its file is dropped at once."""
    with transaction.atomic():
        locked = RosterImportJob.objects.select_for_update().defer("content", "report").get(pk=job.pk)
        if locked.status not in (Status.QUEUED, Status.CHECKED):
            raise JobRefused("Only a job waiting for the worker or for confirmation can be cancelled.")
        _set(locked, status=Status.CANCELLED, content=b"")


def prune_expired(now: datetime.datetime | None = None) -> int:
    """Drop the files of checks left unconfirmed too long, and the lists of errors and
    probable duplicates (the report, and those kept for the page) of jobs older than
    ROSTER_IMPORT_REPORT_DAYS, keeping their counts; returns how many files."""
    now = now or timezone.now()
    old = now - datetime.timedelta(days=settings.ROSTER_IMPORT_REPORT_DAYS)
    expired = RosterImportJob.objects.filter(updated_at__lt=old, result__has_key="errors")
    for pk, result in expired.exclude(result__has_key="details_deleted").values_list("pk", "result"):
        kept = {key: value for key, value in result.items() if key not in ("errors", "duplicates")}
        RosterImportJob.objects.filter(pk=pk).update(result={**kept, "details_deleted": True}, report=b"")
    cutoff = now - datetime.timedelta(minutes=settings.ROSTER_IMPORT_CONFIRM_MINUTES)
    return RosterImportJob.objects.filter(status=Status.CHECKED, updated_at__lt=cutoff).update(
        status=Status.CANCELLED, content=b"", updated_at=timezone.now()
    )


def job_run(job_id: int) -> str:
    """Run the job's current step (check or import). Called by the worker."""
    prune_expired()
    with transaction.atomic():
        job = RosterImportJob.objects.select_for_update().select_related("actor").defer("report").get(pk=job_id)
        if job.status != Status.QUEUED:
            return job.status  # cancelled meanwhile, or run already
        _set(job, status=Status.RUNNING, stage="", done=0, total=0)
    progress = Progress(job.pk)
    try:
        result = roster_import(
            bytes(job.content), actor=job.actor, filename=job.filename, dry_run=job.dry_run, progress=progress
        )
    except Exception as exc:
        logger.exception("Roster import job %s failed", job.pk)
        _set(job, status=Status.FAILED, content=b"", failure=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        progress.close()
    kept = job.dry_run and result.ok  # waiting for its confirmation
    _set(
        job,
        status=Status.CHECKED if kept else Status.DONE,
        content=job.content if kept else b"",
        result=result_summary(result),
        report=report_gzip(result) if result.errors or result.duplicates else b"",
        record=result.record,
        stage="",
        done=result.rows,
        total=result.rows,
    )
    return job.status


def result_summary(result: ImportResult) -> dict[str, Any]:
    """What the job page shows of an ImportResult, as JSON."""
    return {
        "ok": result.ok,
        "dry_run": result.dry_run,
        "summary": result.summary(),
        "rows": result.rows,
        "new": result.new,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "cases_new": result.cases_new,
        "error_count": len(result.errors),
        "errors": [dataclasses.asdict(error) for error in result.errors[:SHOWN]],
        "duplicate_count": len(result.duplicates),
        "duplicates": [dataclasses.asdict(duplicate) for duplicate in result.duplicates[:SHOWN]],
    }


def report_gzip(result: ImportResult) -> bytes:
    """Every error, then every probable duplicate, in file order, as a gzipped CSV (UTF-8
    with a BOM, for spreadsheet programs), compressed as it is written; no cell is one a
    spreadsheet would run."""
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
                _("found in"),
            ]
        )
        for error in result.errors:
            line = "" if error.line is None else error.line
            writer.writerow([line, neutralise(error.column), neutralise(error.message)])
        on_record, in_file = _("the roster"), _("line %(line)d")
        for duplicate in result.duplicates:
            where = on_record if duplicate.other_line is None else in_file % {"line": duplicate.other_line}
            cells = [duplicate.registration_no, duplicate.name, duplicate.birth]
            cells += [duplicate.other_registration_no, duplicate.other_name, where]
            writer.writerow([duplicate.line, "", neutralise(duplicate.reason), *map(neutralise, cells)])
    return compressed.getvalue()


def _set(job: RosterImportJob, **fields: Any) -> None:
    fields["updated_at"] = timezone.now()
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=list(fields))


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
        self.side: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY and done < total:
            return
        self.last = now
        values = {"stage": stage[:20], "done": done, "total": total, "updated_at": timezone.now()}
        if not connection.in_atomic_block:
            RosterImportJob.objects.filter(pk=self.job_id).update(**values)
        elif connection.vendor == "postgresql":
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
