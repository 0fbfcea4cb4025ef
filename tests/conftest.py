import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.test import Client

from accounts.roles import ADMINISTRATOR, STAFF, SUPERVISOR, sync_roles
from tests.factories import UserFactory

ROLES = ("anonymous", STAFF, SUPERVISOR, ADMINISTRATOR)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing costs ~0.5 s per test user; tests do not measure it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def roles(db):
    """The role groups. Data migrations made them, but a transactional test's flush
    removes them for the tests after it, so put them back when they are gone."""
    if Group.objects.filter(name__in=[STAFF, SUPERVISOR, ADMINISTRATOR]).count() != 3:
        sync_roles(django_apps)


@pytest.fixture
def staff(roles):
    return UserFactory(username="staff-test", role=STAFF, is_staff=True)


@pytest.fixture
def supervisor(roles):
    return UserFactory(username="supervisor-test", role=SUPERVISOR, is_staff=True)


@pytest.fixture
def administrator(roles):
    return UserFactory(username="administrator-test", role=ADMINISTRATOR, is_staff=True)


@pytest.fixture
def nobody(db):
    """Logged in, but in no role."""
    return UserFactory(username="nobody-test")


@pytest.fixture
def user_for(staff, supervisor, administrator):
    """The test user of a role, or None for anonymous."""
    return {"anonymous": None, STAFF: staff, SUPERVISOR: supervisor, ADMINISTRATOR: administrator}.get


@pytest.fixture
def client_for(user_for):
    def make(role: str) -> Client:
        client = Client()
        user = user_for(role)
        if user is not None:
            client.force_login(user)
        return client

    return make
