"""Two confirmed imports written at the same moment by two workers (README: run more
workers when imports queue up): one writes, the other is checked again and shown to
confirm, its file kept; neither overwrites what the other wrote unseen. PostgreSQL: two
writers at once."""

import threading

import pytest
from django.db import connection, connections

from cases import importing
from cases.import_jobs import job_run
from cases.models import Person, RosterImportJob, RosterImportJobStatus
from tests.cases.test_import import csv_bytes, family, needs, site  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="two writers at once"),
]


def checked_job(actor, rows: list[dict[str, str]], name: str) -> RosterImportJob:
    job = RosterImportJob.objects.create(actor=actor, filename=name, size=1, content=csv_bytes(rows))
    assert job_run(job.pk) == RosterImportJobStatus.CHECKED
    return job


def confirmed_together(monkeypatch, *jobs: RosterImportJob) -> None:
    """Confirm the checked jobs and run them in two threads that check the same roster,
    then write at the same moment."""
    RosterImportJob.objects.filter(pk__in=[job.pk for job in jobs]).update(
        status=RosterImportJobStatus.QUEUED, dry_run=False
    )
    barrier = threading.Barrier(len(jobs), timeout=30)
    write = importing._write

    def write_together(*args, **kwargs):
        barrier.wait()
        return write(*args, **kwargs)

    monkeypatch.setattr(importing, "_write", write_together)
    failures: list[BaseException] = []

    def run(pk: int) -> None:
        try:
            job_run(pk)
        except BaseException as failure:  # reported below
            failures.append(failure)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job.pk,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    for job in jobs:
        job.refresh_from_db()


def written_and_shown_again(first: RosterImportJob, second: RosterImportJob) -> tuple[RosterImportJob, RosterImportJob]:
    done = [job for job in (first, second) if job.status == RosterImportJobStatus.DONE]
    again = [job for job in (first, second) if job.status == RosterImportJobStatus.CHECKED]
    assert len(done) == len(again) == 1, [(job.filename, job.status, job.result) for job in (first, second)]
    return done[0], again[0]


def test_two_imports_of_the_same_new_persons_at_once_one_writes_the_other_is_shown_again(administrator, monkeypatch):
    first = checked_job(administrator, family(), "first.csv")
    second = checked_job(administrator, [dict(row, phone="555") for row in family()], "second.csv")

    confirmed_together(monkeypatch, first, second)

    written, again = written_and_shown_again(first, second)
    assert Person.objects.count() == 3
    assert written.result["new"] == 3
    assert (again.dry_run, again.result["ok"], again.result["changed_since_check"]) == (True, True, True)
    assert bytes(again.content)  # kept, to be confirmed again
    # Checked again against what the other wrote.
    assert again.result["new"] == 0 and again.result["updated"] + again.result["unchanged"] == 3


def test_two_imports_changing_the_same_persons_at_once_one_writes_the_other_is_shown_again(administrator, monkeypatch):
    importing.roster_import(csv_bytes(family()), actor=None, filename="roster.csv", dry_run=False)
    first = checked_job(administrator, [dict(row, phone="111") for row in family()], "first.csv")
    second = checked_job(administrator, [dict(row, phone="222") for row in family()], "second.csv")

    confirmed_together(monkeypatch, first, second)

    written, again = written_and_shown_again(first, second)
    assert set(Person.objects.values_list("phone", flat=True)) == {"111" if written is first else "222"}
    assert (again.dry_run, again.result["changed_since_check"], again.result["updated"]) == (True, True, 3)
    assert bytes(again.content)
