from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_roles(sender: AppConfig, **kwargs: Any) -> None:
    from django.apps import apps

    from accounts.roles import sync_roles

    sync_roles(apps)


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts and roles")

    def ready(self) -> None:
        # After every migrate (and every test flush) the roles match accounts/roles.py,
        # also for permissions of models added after the roles' data migration.
        post_migrate.connect(_sync_roles, sender=self)
        from accounts import middleware  # noqa: F401  (connects the idle clock to user_logged_in)
