"""`manage.py import_roster PATH [--dry-run]`: the admin's roster import, from a shell."""

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from cases.importing import roster_import


class Command(BaseCommand):
    help = "Import a roster file (CSV or XLSX). A file with any error is refused whole; the exit status is then 1."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="the CSV (UTF-8) or XLSX file")
        parser.add_argument("--dry-run", action="store_true", help="check the file and report, but write nothing")
        parser.add_argument("--user", help="username recorded as the importing user (default: none)")

    def handle(self, *args: Any, path: Path, dry_run: bool, user: str | None, **options: Any) -> None:
        actor = None
        if user:
            try:
                actor = get_user_model()._default_manager.get_by_natural_key(user)
            except get_user_model().DoesNotExist as exc:
                raise CommandError(_("No user named %(user)s.") % {"user": user}) from exc
        try:
            with path.open("rb") as file:
                result = roster_import(file, actor=actor, filename=path.name, dry_run=dry_run)
        except OSError as exc:
            raise CommandError(_("Cannot read %(path)s: %(error)s") % {"path": path, "error": exc.strerror}) from exc
        lines = result.report_lines()
        if not result.ok:
            for line in lines[1:]:
                self.stderr.write(line)
            raise CommandError(lines[0])
        self.stdout.write(self.style.SUCCESS(lines[0]))
        for line in lines[1:]:
            self.stdout.write(line)
