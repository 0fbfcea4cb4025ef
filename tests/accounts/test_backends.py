"""The permissions backend: Django's permissions, read with the user's groups in one query."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.models import Group, Permission

from accounts.roles import ADMINISTRATOR, STAFF, SUPERVISOR, role_of
from cases.models import SiteAssignment
from cases.scope import sites_of
from tests.factories import SiteFactory, UserFactory

pytestmark = pytest.mark.django_db


def _fresh(user):
    """The user as a request loads them: nothing read yet."""
    return get_user_model().objects.get(pk=user.pk)


def test_it_gives_djangos_permissions_the_role_and_the_sites_in_one_query(django_assert_num_queries):
    user = UserFactory(role=STAFF)
    user.groups.add(Group.objects.get(name=SUPERVISOR))
    north, south = SiteFactory(), SiteFactory()
    SiteFactory()
    for site in (north, south):
        SiteAssignment.objects.create(user=user, site=site)
    user.user_permissions.add(Permission.objects.get(codename="view_logentry"))
    expected = DjangoModelBackend().get_all_permissions(_fresh(user))
    assert "admin.view_logentry" in expected and "reports.view_dashboard" in expected
    fresh = _fresh(user)
    with django_assert_num_queries(1):
        assert fresh.get_all_permissions() == expected
        assert fresh.has_perm("reports.view_dashboard")
        assert not fresh.has_perm("cases.import_person")
        assert role_of(fresh) == SUPERVISOR
        assert sites_of(fresh) == {north.pk, south.pk}


def test_a_user_without_a_group_has_only_their_own_permissions(django_assert_num_queries):
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_case"))
    fresh = _fresh(user)
    with django_assert_num_queries(1):
        assert fresh.get_all_permissions() == {"cases.view_case"}
        assert role_of(fresh) is None
        assert sites_of(fresh) is None  # every site


def test_an_inactive_user_has_no_permission():
    user = UserFactory(role=ADMINISTRATOR, is_active=False)
    SiteAssignment.objects.create(user=user, site=SiteFactory())
    assert _fresh(user).get_all_permissions() == set()
    assert role_of(_fresh(user)) == ADMINISTRATOR  # the role they hold, though they cannot log in
    assert len(sites_of(_fresh(user)) or ()) == 1


def test_a_superuser_has_every_permission():
    user = UserFactory(is_superuser=True)
    assert _fresh(user).get_all_permissions() == DjangoModelBackend().get_all_permissions(_fresh(user))
    assert _fresh(user).has_perm("cases.import_person")
