"""Headers, login throttling, idle timeout and deactivation: the controls a user meets."""

import pytest
from django.conf import settings
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.models import Session
from django.db import OperationalError, connection
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts.middleware import LAST_SEEN, IdleTimeoutMiddleware, SessionMiddleware
from tests.factories import UserFactory

LOGIN = "/accounts/login/"


@pytest.mark.django_db
def test_every_page_sends_the_security_headers(client_for):
    response = client_for("Staff").get(reverse("cases:list"))
    csp = response["Content-Security-Policy"]
    script_src = next(part for part in csp.split(";") if part.strip().startswith("script-src"))
    assert "'self'" in script_src
    assert "unsafe-inline" not in script_src
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["home", "cases:list", "offers:list"])
def test_pages_with_personal_data_are_never_stored_by_browsers(client_for, name):
    response = client_for("Supervisor").get(reverse(name))
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


@pytest.mark.django_db
def test_an_unknown_page_shows_a_generic_page_without_details(client_for, settings):
    settings.DEBUG = False
    response = client_for("Staff").get("/cases/999999999/")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert "Traceback" not in response.text


@pytest.mark.django_db
def test_a_refusal_shows_a_page_that_says_so(client_for):
    response = client_for("Staff").get(reverse("reports:dashboard"))
    assert response.status_code == 403
    assert "You are not allowed to see this page" in response.text


def _attempt(username: str, password: str, address: str) -> int:
    client = Client(REMOTE_ADDR=address)
    return client.post(LOGIN, {"username": username, "password": password}).status_code


@pytest.fixture
def worker(db):
    return UserFactory(username="worker", role="Staff")


def test_five_failures_lock_that_username_from_that_address(worker):
    for _ in range(4):
        assert _attempt("worker", "wrong-password-x", "10.0.0.5") == 200  # the form again, with an error
    assert _attempt("worker", "wrong-password-x", "10.0.0.5") == 429
    # Even the right password is refused now, from that address, with a page that says why.
    locked = Client(REMOTE_ADDR="10.0.0.5").post(LOGIN, {"username": "worker", "password": "a-long-test-password"})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.text


def test_a_locked_username_still_logs_in_from_another_address(worker):
    for _ in range(5):
        _attempt("worker", "wrong-password-x", "10.0.0.5")
    assert _attempt("worker", "a-long-test-password", "10.0.0.6") == 302


def test_one_users_failures_do_not_lock_others_on_the_same_shared_address(worker):
    UserFactory(username="colleague", role="Staff")
    for _ in range(5):
        _attempt("worker", "wrong-password-x", "10.0.0.5")
    assert _attempt("colleague", "a-long-test-password", "10.0.0.5") == 302


def test_a_lock_cools_off_by_itself(worker, settings):
    from datetime import timedelta

    from axes.models import AccessAttempt

    for _ in range(5):
        _attempt("worker", "wrong-password-x", "10.0.0.5")
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert _attempt("worker", "a-long-test-password", "10.0.0.5") == 302


@pytest.mark.django_db
def test_a_session_expires_after_the_idle_timeout(client_for, settings):
    client = client_for("Staff")
    client.get(reverse("home"))
    assert client.session.get_expiry_age() == settings.SESSION_IDLE_SECONDS == 30 * 60


def _refresh_due(client) -> None:
    session = client.session
    session[LAST_SEEN] = 0
    session.save()


def _locked(*args, **kwargs):
    raise OperationalError("database is locked")


@pytest.mark.django_db
def test_a_page_is_shown_though_sqlite_is_too_busy_to_refresh_its_session(client_for, monkeypatch):
    # SQLite has one writer: a large roster import holds it for minutes, and the admin
    # watching its progress page used to get a "database is locked" error page.
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's one writer")
    client = client_for("Administrator")
    client.get(reverse("home"))
    _refresh_due(client)
    waits = []

    def locked(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            waits.append(cursor.fetchone()[0])
        _locked()

    monkeypatch.setattr(Session, "save", locked)

    assert client.get(reverse("admin:cases_person_import")).status_code == 200

    assert waits == [0]  # the refresh was tried, without waiting for the database
    monkeypatch.undo()
    assert client.session[LAST_SEEN] == 0  # refreshed by a later request instead
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone() == (settings.DATABASES["default"]["OPTIONS"]["timeout"] * 1000,)
    client.get(reverse("home"))
    assert client.session[LAST_SEEN] > 0


@pytest.mark.django_db
def test_a_session_change_a_page_makes_itself_is_never_dropped(client_for, staff, monkeypatch):
    def page(request):
        request.session["chosen"] = "something"
        return HttpResponse("ok")

    middleware = SessionMiddleware(IdleTimeoutMiddleware(page))
    request = RequestFactory().get("/")
    client = client_for("Staff")
    _refresh_due(client)  # so that the page's own change comes with a refresh
    request.COOKIES[settings.SESSION_COOKIE_NAME] = client.session.session_key
    request.user = staff
    monkeypatch.setattr(Session, "save", _locked)

    with pytest.raises(SessionInterrupted):  # Django's answer: 400, "the session was interrupted"
        middleware(request)


@pytest.mark.django_db
def test_deactivating_a_user_ends_their_sessions(client_for, staff):
    client = client_for("Staff")
    assert client.get(reverse("home")).status_code == 200
    staff.is_active = False
    staff.save()
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


@pytest.mark.django_db
def test_passwords_shorter_than_twelve_or_common_are_refused():
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    for weak in ("short-pw1", "password1234"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("a-long-unusual-passphrase")


@pytest.mark.django_db
@pytest.mark.parametrize("older", ["pbkdf2_sha256", "argon2"])
def test_passwords_are_hashed_with_argon2id_and_older_hashes_upgraded_at_login(settings, older):
    from django.contrib.auth.hashers import Argon2PasswordHasher, make_password

    from relocation import settings as configured

    settings.PASSWORD_HASHERS = configured.PASSWORD_HASHERS  # not the tests' fast one
    user = UserFactory(username="hashed")
    user.set_password("a long enough passphrase")
    user.save()
    # Argon2id at OWASP's parameters: 19 MiB, 2 passes, 1 lane.
    assert user.password.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    if older == "argon2":  # Django's own parameters (100 MiB, 8 lanes), as stored before
        user.password = Argon2PasswordHasher().encode("a long enough passphrase", "somesaltsomesalt")
    else:
        user.password = make_password("a long enough passphrase", hasher=older)
    user.save()
    response = Client().post(LOGIN, {"username": "hashed", "password": "a long enough passphrase"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
