"""Django's ModelBackend, reading what a request needs of a user in one query: their
permissions, their groups (for their role, accounts.roles) and the sites they are limited
to (cases.scope)."""

from typing import Any

from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from accounts.roles import remember_groups
from cases.models import SiteAssignment
from cases.scope import remember_sites


def _access_sql() -> str:
    permission, group = Permission._meta.db_table, Group._meta.db_table
    content_type = ContentType._meta.db_table
    user_permissions = Permission.user_set.through._meta.db_table
    group_permissions = Group.permissions.through._meta.db_table
    user_groups = Group.user_set.through._meta.db_table
    named = f"{permission} p JOIN {content_type} ct ON ct.id = p.content_type_id"
    return (
        f"SELECT 'user', ct.app_label, p.codename FROM {named}"  # noqa: S608 - no value in the text
        f" JOIN {user_permissions} up ON up.permission_id = p.id WHERE up.user_id = %s"
        f" UNION ALL SELECT 'group', ct.app_label, p.codename FROM {named}"
        f" JOIN {group_permissions} gp ON gp.permission_id = p.id"
        f" JOIN {user_groups} ug ON ug.group_id = gp.group_id WHERE ug.user_id = %s"
        f" UNION ALL SELECT 'name', '', g.name FROM {group} g"
        f" JOIN {user_groups} ug ON ug.group_id = g.id WHERE ug.user_id = %s"
        f" UNION ALL SELECT 'site', '', CAST(sa.site_id AS varchar(20)) FROM {SiteAssignment._meta.db_table} sa"
        " WHERE sa.user_id = %s"
    )


class ModelBackend(DjangoModelBackend):
    """The same permissions as Django's ModelBackend, read with the user's groups and sites in
    one query instead of four: every page asks for them all. Kept on the user object, as
    Django keeps permissions, so a request reads them once."""

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if (
            user_obj.is_active
            and not user_obj.is_anonymous
            and not user_obj.is_superuser
            and obj is None
            and not hasattr(user_obj, "_user_perm_cache")
            and not hasattr(user_obj, "_group_perm_cache")
        ):
            found: dict[str, set[str]] = {"user": set(), "group": set(), "name": set(), "site": set()}
            with connection.cursor() as cursor:
                cursor.execute(_access_sql(), [user_obj.pk] * 4)
                for kind, app_label, name in cursor.fetchall():
                    # Permissions as Django writes them ("app.codename"); group names and site ids as they are.
                    found[kind].add(f"{app_label}.{name}" if kind in ("user", "group") else name)
            user_obj._user_perm_cache = found["user"]
            user_obj._group_perm_cache = found["group"]
            remember_groups(user_obj, found["name"])
            remember_sites(user_obj, {int(site) for site in found["site"]})
        return super().get_all_permissions(user_obj, obj)
