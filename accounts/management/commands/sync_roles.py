from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand

from accounts.roles import sync_roles


class Command(BaseCommand):
    help = "Give the Staff, Supervisor and Administrator groups exactly the permissions of accounts/roles.py."

    def handle(self, *args: Any, **options: Any) -> None:
        sync_roles(apps)
        self.stdout.write(self.style.SUCCESS("Roles are in step with accounts/roles.py."))
