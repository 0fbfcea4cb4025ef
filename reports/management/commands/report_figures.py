"""Check the dashboard's summary tables against the rows they count, or count everything again."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports import figures


class Command(BaseCommand):
    help = (
        "PostgreSQL: compare every count of the dashboard's summary tables with the rows "
        "(--check, the default; fails if any differs), or count everything again (--rebuild)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="count everything again")

    def handle(self, *args: Any, **options: Any) -> None:
        if not figures.enabled():
            raise CommandError("The summary tables are kept on PostgreSQL only.")
        if options["rebuild"]:
            figures.rebuild()
            self.stdout.write("Counted again.")
            return
        mismatches = figures.check()
        for m in mismatches[:50]:
            self.stdout.write(f"{m.table} {m.key}: {m.stored} stored, {m.actual} counted")
        if mismatches:
            raise CommandError(f"{len(mismatches)} counts differ from the rows: run with --rebuild.")
        self.stdout.write("Every count matches the rows.")
