"""The three roles of DESIGN.md as Django groups, and what each may do.

One table, applied by a data migration and by `manage.py sync_roles`. Each role
includes everything of the role before it.
"""

from typing import Any

STAFF = "Staff"
SUPERVISOR = "Supervisor"
ADMINISTRATOR = "Administrator"
ROLES = (STAFF, SUPERVISOR, ADMINISTRATOR)

_STAFF = {
    "cases.view_site",
    "cases.view_specificneed",
    "cases.view_person",
    "cases.change_person",
    "cases.view_specific_needs",
    "cases.view_case",
    "cases.change_case",
    "cases.transition_case",
    "cases.view_casestatuschange",
    "cases.view_interview",
    "cases.add_interview",
    "cases.change_interview",
    "cases.view_incident",
    "cases.add_incident",
    "cases.change_incident",
    "cases.view_incidentperson",
    "cases.add_incidentperson",
    "cases.change_incidentperson",
    # Site transfers and documents. Moving one case to another site needs change_case
    # (an edit of the case's details); moving many at once needs transfer_persons.
    "cases.view_sitetransfer",
    "cases.add_casedocument",
    "offers.view_offer",
    "offers.view_nomination",
    "offers.view_departure",
    "offers.view_departureperson",
}

_SUPERVISOR = _STAFF | {
    "reports.view_dashboard",
    "reports.export_data",
    "offers.add_offer",
    "offers.change_offer",
    "offers.add_nomination",
    "offers.change_nomination",
    "offers.add_departure",
    "offers.change_departure",
    "offers.add_departureperson",
    "offers.change_departureperson",
    "offers.delete_departureperson",
    "offers.view_allocationdecision",
    "cases.transfer_persons",
    "cases.delete_casedocument",
}

_ADMINISTRATOR = _SUPERVISOR | {
    "cases.add_site",
    "cases.change_site",
    "cases.add_specificneed",
    "cases.change_specificneed",
    "cases.add_person",
    "cases.import_person",
    "cases.add_case",
    "cases.reopen_case",
    # Limiting a user to some sites (cases.scope) is part of managing users.
    "cases.view_siteassignment",
    "cases.add_siteassignment",
    "cases.change_siteassignment",
    "cases.delete_siteassignment",
    "auth.view_user",
    "auth.add_user",
    "auth.change_user",
    "auth.view_group",
    "auth.change_group",
    "admin.view_logentry",
    "reports.view_exportlog",
    "accounts.view_accesslog",
}

PERMISSIONS: dict[str, frozenset[str]] = {
    STAFF: frozenset(_STAFF),
    SUPERVISOR: frozenset(_SUPERVISOR),
    ADMINISTRATOR: frozenset(_ADMINISTRATOR),
}


def sync_roles(apps: Any, *, strict: bool = True) -> None:
    """Make the three groups hold exactly the permissions of the table above.

    Takes an app registry so that migrations can pass their historical one. A
    migration runs before later models exist, so it passes strict=False and skips
    their permissions; the post_migrate hook (accounts.apps) then adds them.
    """
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; a fresh database needs them now.
    # Historical app configs have no models_module, which create_permissions skips.
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True
        try:
            create_permissions(app_config, verbosity=0, apps=apps)
        finally:
            app_config.models_module = models_module

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codes in PERMISSIONS.items():
        wanted = []
        for code in sorted(codes):
            app_label, codename = code.split(".")
            perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if perm is None and not strict:
                continue
            if perm is None:
                raise LookupError(f"Permission {code} does not exist; check accounts/roles.py")
            wanted.append(perm)
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(wanted)


_CACHE = "_relocation_role"


def remember_groups(user: Any, names: set[str]) -> None:
    """Keep the role that the groups named `names` give `user` on the user object."""
    setattr(user, _CACHE, next((role for role in reversed(ROLES) if role in names), None))


def role_of(user: Any) -> str | None:
    """The highest role a user holds, or None. Kept on the user object, as Django keeps
    its permissions (accounts.backends reads the groups with them): a request asks once."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMINISTRATOR
    if not hasattr(user, _CACHE):
        user.get_all_permissions()  # every page asks for them; accounts.backends reads the groups too
    if not hasattr(user, _CACHE):
        remember_groups(user, {g.name for g in user.groups.all()})
    return getattr(user, _CACHE)
