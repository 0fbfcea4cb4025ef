"""Background tasks (Django's tasks framework; the worker is `manage.py db_worker`)."""

from django.tasks import task

from cases.import_jobs import job_run, prune_expired, watch_running_jobs


@task()
def run_roster_import_job(job_id: int) -> str:
    """Check or import the roster file of a RosterImportJob; returns the job's status."""
    return job_run(job_id)


@task()
def prune_roster_import_jobs() -> int:
    """Delete the expired files and lists of roster import jobs, give up those whose
    worker stopped or that no worker took; returns how many files."""
    files = prune_expired()
    watch_running_jobs()
    return files
