import pytest
from django.contrib.auth.models import Group

from accounts.roles import ADMINISTRATOR, PERMISSIONS, STAFF, SUPERVISOR


@pytest.mark.django_db
def test_the_three_roles_exist_after_migrating_with_their_permissions():
    for role, codes in PERMISSIONS.items():
        group = Group.objects.get(name=role)
        granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert granted == codes


def test_each_role_may_do_all_that_the_role_below_may():
    assert PERMISSIONS[STAFF] < PERMISSIONS[SUPERVISOR] < PERMISSIONS[ADMINISTRATOR]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fixture", "permission", "expected"),
    [
        ("staff", "cases.transition_case", True),
        ("staff", "offers.add_nomination", False),
        ("staff", "reports.view_dashboard", False),
        ("supervisor", "reports.export_data", True),
        ("supervisor", "offers.change_departure", True),
        ("supervisor", "cases.import_person", False),
        ("supervisor", "cases.reopen_case", False),
        ("administrator", "cases.import_person", True),
        ("administrator", "cases.reopen_case", True),
        ("administrator", "auth.change_user", True),
    ],
)
def test_roles_grant_what_design_md_says(request, fixture, permission, expected):
    assert request.getfixturevalue(fixture).has_perm(permission) is expected
