"""Roster imports as background jobs: the real database queue and its worker, the
progress the admin page shows while a job runs, and failures."""

import datetime
import threading

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, connections, transaction
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.middleware import LAST_SEEN
from cases import import_jobs
from cases.import_jobs import Progress, job_confirm, job_run, job_start
from cases.models import (
    Person,
    RosterImport,
    RosterImportJob,
    RosterImportJobStatus,
    RosterImportOutcome,
    SpecificNeed,
)
from cases.tasks import prune_roster_import_jobs
from tests.cases.test_import import csv_bytes, family
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db

# A page reloading itself in 2 s, as a page that is not the user at work (AUTO_REFRESH).
REFRESH = '<meta http-equiv="refresh" content="2; url=/admin/cases/person/import/'
DATABASE_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


@pytest.fixture(autouse=True)
def site(db):
    return SiteFactory(name="Camp Liberty", code="liberty")


def job_url(job, action="job"):
    return reverse(f"admin:cases_person_import_{action}", args=[job.pk])


def run_worker():
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


def looks_due(after):
    """When the worker is to prune next, at `after` or later (each within a minute of it)."""
    prunes = DBTaskResult.objects.filter(task_path="cases.tasks.prune_roster_import_jobs", status="READY")
    return [prune.run_after for prune in prunes if after <= prune.run_after < after + datetime.timedelta(minutes=1)]


@pytest.mark.django_db(transaction=True)  # the worker closes its connection, as between jobs
def test_with_the_database_queue_the_worker_runs_the_check_then_the_import(client_for, settings, administrator):
    settings.TASKS = DATABASE_QUEUE
    # The need the roster names, made by a data migration: gone if another test flushed.
    SpecificNeed.objects.get_or_create(code="medical_condition", defaults={"label": "Medical condition"})
    client = client_for("Administrator")

    response = client.post(
        reverse("admin:cases_person_import"), {"file": _upload(csv_bytes(family())), "check": "1"}, follow=True
    )

    # The request only queued the job: the page waits for the worker, refreshing itself.
    job = response.context["job"]
    page = response.content.decode()
    assert job.status == RosterImportJobStatus.QUEUED
    assert REFRESH in page
    assert "Waiting for the background worker" in page

    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)

    job.refresh_from_db()
    assert job.status == RosterImportJobStatus.CHECKED, job.result["errors"]
    assert not Person.objects.exists()
    client.post(job_url(job, "confirm"))
    job.refresh_from_db()
    assert job.status == RosterImportJobStatus.QUEUED and not job.dry_run
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    job.refresh_from_db()
    assert (job.status, job.result["new"], bytes(job.content)) == (RosterImportJobStatus.DONE, 3, b"")
    assert Person.objects.count() == 3


@pytest.mark.django_db(transaction=True)  # the worker closes its connection, as between jobs
def test_the_worker_deletes_a_checked_file_when_its_time_to_confirm_is_up(client_for, settings, administrator):
    settings.TASKS = DATABASE_QUEUE
    SpecificNeed.objects.get_or_create(code="medical_condition", defaults={"label": "Medical condition"})
    client = client_for("Administrator")
    client.post(reverse("admin:cases_person_import"), {"file": _upload(csv_bytes(family())), "check": "1"})
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    job = RosterImportJob.objects.get()
    assert job.status == RosterImportJobStatus.CHECKED

    # The check queued a prune for the moment it expires, and nobody has to visit a page.
    prunes = DBTaskResult.objects.filter(task_path="cases.tasks.prune_roster_import_jobs")
    expires = job.updated_at + datetime.timedelta(minutes=settings.ROSTER_IMPORT_CONFIRM_MINUTES)
    assert [expires < prune.run_after < expires + datetime.timedelta(minutes=1) for prune in prunes].count(True) == 1
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    job.refresh_from_db()
    assert job.status == RosterImportJobStatus.CHECKED  # not yet: it waits for its time

    RosterImportJob.objects.update(updated_at=job.updated_at - datetime.timedelta(hours=2))
    DBTaskResult.objects.update(run_after=timezone.now())
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)

    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.CANCELLED, b"")


def test_with_no_worker_to_delete_it_a_check_left_unconfirmed_too_long_can_be_cancelled_at_once(
    client_for, settings, administrator
):
    job = job_start(actor=administrator, filename="roster.csv", content=csv_bytes(family()))
    RosterImportJob.objects.filter(pk=job.pk).update(
        updated_at=timezone.now() - datetime.timedelta(minutes=settings.ROSTER_IMPORT_CONFIRM_MINUTES + 1)
    )
    client = client_for("Administrator")

    page = client.get(job_url(job)).content.decode()

    assert "Not confirmed in time: nothing has been imported" in page
    # Not "deleted": no worker has run since, and the file is still stored.
    assert "The file was deleted from the server" not in page
    assert "cancel to delete it now" in page
    cancelled = client.post(job_url(job, "cancel"), follow=True).content.decode()
    assert "Cancelled: nothing was imported, and the file is deleted." in cancelled
    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.CANCELLED, b"")
    assert "The file was deleted from the server" in client.get(job_url(job)).content.decode()


def _running(actor) -> RosterImportJob:
    return RosterImportJob.objects.create(
        actor=actor, filename="big.csv", size=10, status=RosterImportJobStatus.RUNNING
    )


def test_a_waiting_jobs_page_reloading_itself_does_not_keep_an_idle_session_alive(client_for, administrator):
    # Left open, the page reloads every 2 s for as long as the job waits (up to a day
    # when no worker runs): the session must still end after its idle time.
    job = RosterImportJob.objects.create(actor=administrator, filename="big.csv", size=10)
    client = client_for("Administrator")
    page = client.get(job_url(job)).content.decode()
    reload = f'<meta http-equiv="refresh" content="2; url={job_url(job)}?auto=1">'
    assert reload in page
    session = client.session
    session[LAST_SEEN] = 0  # last active long ago: a refresh of its expiry is due
    session.save()

    assert reload in client.get(f"{job_url(job)}?auto=1").content.decode()

    assert client.session[LAST_SEEN] == 0  # the reload was not taken for the user at work
    client.get(job_url(job))  # the user's own visit is
    assert client.session[LAST_SEEN] > 0


@pytest.mark.django_db(transaction=True)  # as in the worker: progress written outside any transaction
def test_a_running_job_shows_a_progress_bar(client_for, administrator):
    job = _running(administrator)
    Progress(job.pk)("checking", 250, 1000)

    page = client_for("Administrator").get(job_url(job)).content.decode()

    assert '<progress id="import-progress" max="100" value="25">' in page
    assert "250 of 1,000 rows" in page
    assert REFRESH in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("stage", "done", "total", "shown"),
    [
        ("", 0, 0, 'Starting</label>…</p>\n      <progress id="import-progress" max="100"></progress>'),
        ("reading", 648, 1201, "Reading</label>:\n        line 648 of 1,201</p>"),
        ("checking", 90, 1200, "Checking</label>:\n        90 of 1,200 rows</p>"),
    ],
)
def test_a_running_job_names_its_stage_and_counts_lines_while_reading(
    client_for, administrator, stage, done, total, shown
):
    job = _running(administrator)
    if stage:
        Progress(job.pk)(stage, done, total)

    assert shown in client_for("Administrator").get(job_url(job)).content.decode()


@pytest.mark.django_db(transaction=True)
def test_while_writing_on_sqlite_the_page_says_its_progress_is_seen_at_the_end(
    client_for, administrator, django_assert_num_queries
):
    job = _running(administrator)
    Progress(job.pk)("writing", 0, 1200)
    client = client_for("Administrator")
    client.get(job_url(job))  # a first request may refresh the session

    # It reloads every two seconds while the import writes (as ?auto=1): session, user,
    # permissions, the job; nothing written.
    with django_assert_num_queries(4):
        reloaded = client.get(f"{job_url(job)}?auto=1").content.decode()
    # Opened by hand, the same queries.
    with django_assert_num_queries(4):
        opened = client.get(job_url(job)).content.decode()

    for page in (reloaded, opened):
        if connection.vendor == "sqlite":
            assert "is not seen until it ends" in page
            assert '<progress id="import-progress" max="100"></progress>' in page  # moving, without a value
        else:
            assert "0 of 1,200 rows" in page


@pytest.mark.django_db(transaction=True)
def test_the_page_says_writing_as_soon_as_the_check_ends_however_soon_that_is(client_for, administrator, monkeypatch):
    # The writing stage comes right after the check's last report; on SQLite it is the
    # last progress written before the write transaction ends.
    monkeypatch.setattr(import_jobs, "PROGRESS_EVERY", 60)
    job = _running(administrator)
    progress = Progress(job.pk)
    progress("checking", 1200, 1200)

    progress("writing", 0, 1200)

    page = client_for("Administrator").get(job_url(job)).content.decode()
    assert "Writing</label>" in page
    assert "1,200 of 1,200 rows" not in page


@pytest.mark.django_db(transaction=True)  # as in the worker: the import's own transaction, progress outside it
def test_while_a_confirmed_import_writes_its_page_says_writing_not_checking(client_for, administrator, monkeypatch):
    SpecificNeed.objects.get_or_create(code="medical_condition", defaults={"label": "Medical condition"})
    client = client_for("Administrator")
    job = RosterImportJob.objects.create(actor=administrator, filename="r.csv", size=1, content=csv_bytes(family()))
    assert job_run(job.pk) == RosterImportJobStatus.CHECKED
    RosterImportJob.objects.filter(pk=job.pk).update(status=RosterImportJobStatus.QUEUED, dry_run=False)
    pages = []
    original = Progress.__call__

    def look(self, stage, done, total):
        original(self, stage, done, total)
        if stage == "writing" and not connection.in_atomic_block:  # what a page can see meanwhile
            pages.append(client.get(job_url(job)).content.decode())

    monkeypatch.setattr(Progress, "__call__", look)

    assert job_run(job.pk) == RosterImportJobStatus.DONE
    assert pages and "Writing</label>" in pages[0]
    assert "Checking</label>" not in pages[0]


def test_the_import_reports_its_progress_through_the_stages(administrator, monkeypatch):
    seen = []
    monkeypatch.setattr(import_jobs, "PROGRESS_EVERY", 0)
    original = Progress.__call__

    def spy(self, stage, done, total):
        seen.append((stage, done, total))
        original(self, stage, done, total)

    monkeypatch.setattr(Progress, "__call__", spy)
    job = job_start(actor=administrator, filename="roster.csv", content=csv_bytes(family()))

    assert job.status == RosterImportJobStatus.CHECKED, job.result["errors"]
    stages = [stage for stage, _done, _total in seen]
    assert stages[0] == "reading" and "checking" in stages
    assert all(0 <= done <= total for _stage, done, total in seen)


def test_a_job_that_breaks_is_marked_failed_keeps_no_file_and_writes_nothing(client_for, administrator, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(import_jobs, "roster_import", broken)
    job = RosterImportJob.objects.create(actor=administrator, filename="roster.csv", size=3, content=b"abc")

    with pytest.raises(RuntimeError):
        job_run(job.pk)

    job.refresh_from_db()
    assert (job.status, bytes(job.content), job.failure) == (
        RosterImportJobStatus.FAILED,
        b"",
        "RuntimeError: disk full",
    )
    assert "The job failed: nothing has been imported" in client_for("Administrator").get(job_url(job)).content.decode()
    assert not Person.objects.exists()


def _confirmed(administrator):
    """A clean check of the family's roster, confirmed: queued for its import."""
    job = job_start(actor=administrator, filename="roster.csv", content=csv_bytes(family()))
    assert job.status == RosterImportJobStatus.CHECKED, job.result["errors"]
    RosterImportJob.objects.filter(pk=job.pk).update(status=RosterImportJobStatus.QUEUED, dry_run=False)
    return job


def _then(monkeypatch, exception):
    """roster_import as it is, `exception` raised once it has returned (its import committed)."""
    real = import_jobs.roster_import

    def imports_then_raises(*args, **kwargs):
        real(*args, **kwargs)
        raise exception

    monkeypatch.setattr(import_jobs, "roster_import", imports_then_raises)


def test_a_worker_killed_just_after_the_import_committed_leaves_the_job_imported(
    client_for, administrator, monkeypatch, settings
):
    job = _confirmed(administrator)
    _then(monkeypatch, SystemExit("killed"))  # nothing of job_run runs after it

    with pytest.raises(SystemExit):
        job_run(job.pk)

    job.refresh_from_db()
    assert (job.status, bytes(job.content), Person.objects.count()) == (RosterImportJobStatus.DONE, b"", 3)
    # Half an hour on, the worker does not give it up as having written nothing.
    RosterImportJob.objects.filter(pk=job.pk).update(
        updated_at=timezone.now() - datetime.timedelta(minutes=settings.ROSTER_IMPORT_STALLED_MINUTES + 1)
    )
    prune_roster_import_jobs.call()
    page = client_for("Administrator").get(job_url(job)).content.decode()
    assert "<h2>Imported</h2>" in page
    assert "nothing has been imported" not in page
    assert job_url(job, "cancel") not in page


def test_a_job_that_breaks_after_its_import_committed_is_not_said_to_have_written_nothing(
    client_for, administrator, monkeypatch
):
    job = _confirmed(administrator)
    _then(monkeypatch, RuntimeError("disk full"))

    with pytest.raises(RuntimeError):
        job_run(job.pk)

    job.refresh_from_db()
    assert (job.status, Person.objects.count()) == (RosterImportJobStatus.DONE, 3)
    page = client_for("Administrator").get(job_url(job)).content.decode()
    assert "<h2>Imported</h2>" in page
    assert "nothing has been imported" not in page


def test_a_job_that_breaks_is_in_the_record_of_imports_as_failed(administrator, monkeypatch):
    job = _confirmed(administrator)
    monkeypatch.setattr(import_jobs, "roster_import", lambda *args, **kwargs: 1 / 0)

    with pytest.raises(ZeroDivisionError):
        job_run(job.pk)

    job.refresh_from_db()
    failed = RosterImport.objects.get(outcome=RosterImportOutcome.FAILED)
    assert (failed.actor, failed.filename, failed.dry_run, failed.errors, job.record) == (
        administrator,
        "roster.csv",
        False,
        ["An unexpected error stopped it (ZeroDivisionError)."],
        failed,
    )


def test_an_import_given_up_as_stalled_while_its_worker_was_only_slow_writes_nothing(
    administrator, monkeypatch, settings
):
    # Its page said the import stopped and wrote nothing, and the record says it failed:
    # so it writes nothing, however late its worker comes to the write.
    job = _confirmed(administrator)
    real = import_jobs.roster_import

    def slow(*args, **kwargs):
        later = timezone.now() + datetime.timedelta(minutes=settings.ROSTER_IMPORT_STALLED_MINUTES + 1)
        import_jobs.prune_expired(later)  # another worker, meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(import_jobs, "roster_import", slow)

    assert job_run(job.pk) == RosterImportJobStatus.FAILED

    job.refresh_from_db()
    assert (job.status, job.failure, Person.objects.count()) == (RosterImportJobStatus.FAILED, import_jobs.STALLED, 0)
    assert list(RosterImport.objects.order_by("pk").values_list("outcome", flat=True)) == [
        RosterImportOutcome.CHECKED,
        RosterImportOutcome.FAILED,
    ]


def test_an_import_whose_commit_fails_is_checked_again_and_keeps_its_file_to_confirm(administrator, monkeypatch):
    job = _confirmed(administrator)
    real = import_jobs._keep
    failed = []

    def commit_fails_once(job, result):
        real(job, result)
        if not failed:  # as a deferred constraint checked at COMMIT would
            failed.append(True)
            raise IntegrityError("violates foreign key constraint")

    monkeypatch.setattr(import_jobs, "_keep", commit_fails_once)

    assert job_run(job.pk) == RosterImportJobStatus.CHECKED

    job.refresh_from_db()
    assert (job.result["changed_since_check"], Person.objects.count()) == (True, 0)
    assert bytes(job.content) == csv_bytes(family())
    job_confirm(job, actor=administrator)
    job.refresh_from_db()
    assert (job.status, Person.objects.count()) == (RosterImportJobStatus.DONE, 3)


def test_a_job_run_twice_runs_once(administrator):
    job = job_start(actor=administrator, filename="roster.csv", content=csv_bytes(family()))
    assert job_run(job.pk) == RosterImportJobStatus.CHECKED  # not queued any more: nothing done


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer: no progress inside the write")
def test_on_postgresql_progress_written_inside_the_import_transaction_is_seen_at_once(administrator):
    job = RosterImportJob.objects.create(actor=administrator, filename="big.csv", size=1)
    progress = Progress(job.pk)
    seen = {}

    def look():
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute(f"SELECT stage, done FROM {RosterImportJob._meta.db_table} WHERE id = %s", [job.pk])
                seen["row"] = cursor.fetchone()
        finally:
            other.close()

    try:
        with transaction.atomic():
            progress("writing", 40, 100)
            reader = threading.Thread(target=look)
            reader.start()
            reader.join()
    finally:
        progress.close()
    assert seen["row"] == ("writing", 40)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer: no progress inside the write")
def test_on_postgresql_progress_never_waits_for_the_job_row_its_own_transaction_holds(administrator):
    # The immediate backend runs a confirmed import inside job_confirm's transaction,
    # which holds the job's row: progress written aside must not wait for it (forever).
    job = RosterImportJob.objects.create(actor=administrator, filename="big.csv", size=1)
    progress = Progress(job.pk)
    progress.side = connections.create_connection("default")
    with progress.side.cursor() as cursor:
        cursor.execute("SET lock_timeout = '5s'")  # were it to wait, the test fails instead of hanging
    try:
        with transaction.atomic():
            RosterImportJob.objects.select_for_update().get(pk=job.pk)
            progress("writing", 40, 100)
    finally:
        progress.close()
    job.refresh_from_db()
    assert (job.stage, job.done) == ("", 0)  # skipped: nobody could watch it anyway


def _upload(content):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("roster.csv", content, content_type="text/csv")


# Jobs whose worker stopped, and jobs no worker took ------------------------------------


def _left_by_a_stopped_worker(actor, *, minutes_ago, dry_run=True) -> RosterImportJob:
    """A job as a worker killed while it ran (out of memory, a deploy, a reboot) leaves it:
    running, its file in its row, its progress last written `minutes_ago`."""
    job = RosterImportJob.objects.create(
        actor=actor,
        filename="big.csv",
        size=7,
        content=b"secret!",
        dry_run=dry_run,
        status=RosterImportJobStatus.RUNNING,
        stage="checking",
        done=100,
        total=100,
    )
    RosterImportJob.objects.filter(pk=job.pk).update(
        updated_at=timezone.now() - datetime.timedelta(minutes=minutes_ago)
    )
    return job


def test_an_import_whose_worker_stopped_is_given_up_by_the_worker_its_file_deleted(client_for, administrator, settings):
    job = _left_by_a_stopped_worker(
        administrator, minutes_ago=settings.ROSTER_IMPORT_STALLED_MINUTES + 1, dry_run=False
    )

    prune_roster_import_jobs.call()  # what the worker runs meanwhile

    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.FAILED, b"")
    client = client_for("Administrator")
    page = client.get(job_url(job)).content.decode()
    assert '<meta http-equiv="refresh"' not in page
    assert "The import stopped: nothing has been imported" in page
    assert "its progress had not moved for 30 minutes" in page
    assert "Nothing was written: an import writes every row in one transaction" in page
    assert "Its file was deleted from the server." in page
    assert job_url(job, "cancel") not in page
    assert "<td>Failed</td>" in client.get(reverse("admin:cases_person_import")).content.decode()


def test_an_import_given_up_as_stalled_is_in_the_record_of_imports_as_failed(administrator, settings):
    job = _left_by_a_stopped_worker(
        administrator, minutes_ago=settings.ROSTER_IMPORT_STALLED_MINUTES + 1, dry_run=False
    )

    prune_roster_import_jobs.call()
    prune_roster_import_jobs.call()  # recorded once

    job.refresh_from_db()
    record = RosterImport.objects.get()
    assert (record.outcome, record.filename, record.dry_run, record.errors, job.record) == (
        RosterImportOutcome.FAILED,
        job.filename,
        False,
        ["Its worker stopped while it ran: given up."],
        record,
    )


def test_a_running_job_whose_progress_moved_lately_is_left_to_run(client_for, administrator, settings):
    job = _left_by_a_stopped_worker(administrator, minutes_ago=settings.ROSTER_IMPORT_STALLED_MINUTES - 1)

    prune_roster_import_jobs.call()

    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.RUNNING, b"secret!")
    assert REFRESH in client_for("Administrator").get(job_url(job)).content.decode()


def test_with_no_worker_to_give_it_up_a_stalled_job_says_it_stopped_and_can_be_cancelled(
    client_for, administrator, settings
):
    job = _left_by_a_stopped_worker(administrator, minutes_ago=settings.ROSTER_IMPORT_STALLED_MINUTES + 1)
    client = client_for("Administrator")

    page = client.get(job_url(job)).content.decode()

    assert '<meta http-equiv="refresh"' not in page
    assert "The check stopped: nothing has been imported" in page
    assert "A check writes nothing" in page
    assert "cancel to delete it now" in page
    assert job_url(job, "cancel") in page
    assert "<td>Failed</td>" in client.get(reverse("admin:cases_person_import")).content.decode()
    refused = client.post(job_url(job, "confirm"), follow=True).content.decode()
    assert "cannot be imported any more" in refused
    cancelled = client.post(job_url(job, "cancel"), follow=True).content.decode()
    assert "Cancelled: nothing was imported, and the file is deleted." in cancelled
    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.CANCELLED, b"")


def test_a_job_that_is_only_slow_is_not_cancelled(client_for, administrator, settings):
    job = _left_by_a_stopped_worker(administrator, minutes_ago=settings.ROSTER_IMPORT_STALLED_MINUTES - 1)

    response = client_for("Administrator").post(job_url(job, "cancel"), follow=True)

    assert "This job can no longer be cancelled." in response.content.decode()
    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.RUNNING, b"secret!")


def test_a_check_given_up_while_its_worker_was_only_slow_keeps_its_file_deleted(administrator, monkeypatch, settings):
    original = import_jobs.roster_import

    def slow(*args, **kwargs):
        later = timezone.now() + datetime.timedelta(minutes=settings.ROSTER_IMPORT_STALLED_MINUTES + 1)
        import_jobs.prune_expired(later)  # another worker, half an hour on
        return original(*args, **kwargs)

    monkeypatch.setattr(import_jobs, "roster_import", slow)
    job = RosterImportJob.objects.create(actor=administrator, filename="r.csv", size=1, content=csv_bytes(family()))

    assert job_run(job.pk) == RosterImportJobStatus.FAILED

    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.FAILED, b"")


@pytest.mark.django_db(transaction=True)  # the worker closes its connection, as between jobs
def test_the_worker_gives_up_a_job_whose_worker_stopped_without_anyone_visiting_its_page(
    client_for, settings, administrator
):
    settings.TASKS = DATABASE_QUEUE
    SpecificNeed.objects.get_or_create(code="medical_condition", defaults={"label": "Medical condition"})
    stalled = datetime.timedelta(minutes=settings.ROSTER_IMPORT_STALLED_MINUTES)
    client_for("Administrator").post(
        reverse("admin:cases_person_import"), {"file": _upload(csv_bytes(family())), "check": "1"}
    )
    started = timezone.now()
    run_worker()
    # Every job, as it starts, has the worker look again once it would count as stalled.
    assert looks_due(started + stalled)

    # A worker killed while its job ran, the job's progress last written 10 minutes ago:
    # the look due now finds it moving, and comes again when it would count as stalled.
    job = _left_by_a_stopped_worker(administrator, minutes_ago=10)
    DBTaskResult.objects.update(run_after=timezone.now())
    run_worker()
    job.refresh_from_db()
    assert job.status == RosterImportJobStatus.RUNNING
    assert looks_due(job.updated_at + stalled)

    RosterImportJob.objects.filter(pk=job.pk).update(updated_at=job.updated_at - stalled)
    DBTaskResult.objects.update(run_after=timezone.now())
    run_worker()
    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.FAILED, b"")


@pytest.mark.django_db(transaction=True)  # the worker closes its connection, as between jobs
def test_a_job_no_worker_took_within_a_day_is_given_up_its_file_deleted(client_for, settings, administrator):
    settings.TASKS = DATABASE_QUEUE
    client = client_for("Administrator")
    client.post(reverse("admin:cases_person_import"), {"file": _upload(csv_bytes(family())), "check": "1"})
    job = RosterImportJob.objects.get()
    queued = datetime.timedelta(hours=settings.ROSTER_IMPORT_QUEUED_HOURS)
    # The upload has the worker look when the job would be given up.
    assert looks_due(job.updated_at + queued)

    # No worker for a day: the page says so before any worker runs, and offers to cancel.
    RosterImportJob.objects.filter(pk=job.pk).update(updated_at=job.updated_at - queued)
    page = client.get(job_url(job)).content.decode()
    assert '<meta http-equiv="refresh"' not in page
    assert "Not started: nothing has been imported" in page
    assert "No background worker took this job within 24 hours" in page
    assert job_url(job, "cancel") in page

    # A worker started at last gives it up rather than run it a day late.
    run_worker()

    job.refresh_from_db()
    assert (job.status, bytes(job.content)) == (RosterImportJobStatus.FAILED, b"")
    # Recorded as an attempt that failed, with who, when, which file and why.
    record = RosterImport.objects.get()
    assert (record.outcome, record.actor, record.filename, record.errors, job.record) == (
        RosterImportOutcome.FAILED,
        administrator,
        "roster.csv",
        ["No worker took it: given up."],
        record,
    )
    assert "Its file was deleted from the server." in client.get(job_url(job)).content.decode()
