import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.roles import ADMINISTRATOR, STAFF, SUPERVISOR
from tests.factories import UserFactory

ROLES = ("anonymous", STAFF, SUPERVISOR, ADMINISTRATOR)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing costs ~0.5 s per test user; tests do not measure it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _private_media_root(settings, tmp_path):
    # Case documents a test uploads go to its own temporary folder, never to var/.
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "documents"


@pytest.fixture(autouse=True)
def _jobs_run_at_once(settings):
    # Background jobs run inside the request that queues them; tests of the real
    # worker (tests/cases/test_import_jobs.py) switch back to the database backend.
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture
def roles(db):
    """The three role groups by name (made by migrate, and again after every flush)."""
    return {group.name: group for group in Group.objects.filter(name__in=[STAFF, SUPERVISOR, ADMINISTRATOR])}


@pytest.fixture
def staff(db):
    return UserFactory(username="staff-test", role=STAFF, is_staff=True)


@pytest.fixture
def supervisor(db):
    return UserFactory(username="supervisor-test", role=SUPERVISOR, is_staff=True)


@pytest.fixture
def administrator(db):
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
