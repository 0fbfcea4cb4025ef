"""Background tasks (Django's tasks framework; the worker is `manage.py db_worker`)."""

from django.tasks import task

from cases.import_jobs import job_run, prune_expired


@task()
def run_roster_import_job(job_id: int) -> str:
    """Check or import the roster file of a RosterImportJob; returns the job's status."""
    return job_run(job_id)


@task()
def prune_roster_import_jobs() -> int:
    """Delete the expired files and lists of roster import jobs; returns how many files."""
    return prune_expired()
