"""Delete the expired files and lists of roster import jobs (cases.import_jobs.prune_expired).

The worker does this by itself, before each job and when something expires; this command
is for sites that run jobs with TASKS_BACKEND=immediate (no worker), e.g. from cron.
"""

from typing import Any

from django.core.management.base import BaseCommand

from cases.import_jobs import prune_expired


class Command(BaseCommand):
    help = (
        "Delete the files of roster checks left unconfirmed and of jobs given up (stalled, never started),"
        " and the error lists kept too long."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        files = prune_expired()
        self.stdout.write(f"Deleted the files of {files} unconfirmed or given-up roster job(s).")
