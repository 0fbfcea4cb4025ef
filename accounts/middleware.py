"""Response and session rules for pages that show protected persons' data."""

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import user_logged_in
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.db import OperationalError, connection
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers, patch_cache_control

LAST_SEEN = "last_seen"
# Refresh the session's expiry at most this often: once a minute is precise enough
# for a 30-minute timeout and spares a session write on every request.
REFRESH_EVERY = 60
# Set on a request whose session's only change is that refresh.
REFRESH_ONLY = "session_refresh_only"
# The query parameter of a page reloading itself (the roster import's progress page):
# not the user at work, so it leaves the session's idle time running.
AUTO_REFRESH = "auto"


class PrivateResponsesMiddleware:
    """Nothing shown to a logged-in user is kept by browsers or proxies."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            add_never_cache_headers(response)
            patch_cache_control(response, no_store=True, private=True)
        return response


class IdleTimeoutMiddleware:
    """Keep a working user's session alive; an idle one expires after SESSION_IDLE_SECONDS.

    The expiry is pushed forward after the page is made, and only if the page itself left
    the session alone: then the refresh is the session's only change (REFRESH_ONLY). A
    page that reloads itself (AUTO_REFRESH) pushes nothing: left open, it would keep the
    session alive for as long as it reloads.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if (
            session is not None
            and not session.modified
            and request.user.is_authenticated
            and AUTO_REFRESH not in request.GET
        ):
            now = int(time.time())
            if now - session.get(LAST_SEEN, 0) >= REFRESH_EVERY:
                session[LAST_SEEN] = now
                session.set_expiry(settings.SESSION_IDLE_SECONDS)
                setattr(request, REFRESH_ONLY, True)
        return response


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's, but on SQLite the idle refresh alone never waits for the database.

    SQLite has one writer at a time, and a large roster import holds it for minutes: a
    page whose only write is its session's refresh (the import's progress page, say)
    would wait for it and fail. That save is tried without waiting; when the database
    is busy, the page is shown all the same and a later request refreshes the session.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not getattr(request, REFRESH_ONLY, False) or connection.vendor != "sqlite":
            return super().process_response(request, response)
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            (waits,) = cursor.fetchone()
            cursor.execute("PRAGMA busy_timeout = 0")
        try:
            return super().process_response(request, response)
        except (OperationalError, SessionInterrupted):  # the latter is how Django reports the former
            return response
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA busy_timeout = {int(waits)}")


@receiver(user_logged_in)
def _start_idle_clock(sender: Any, request: HttpRequest | None, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[LAST_SEEN] = int(time.time())


class AdministratorTwoFactorMiddleware:
    """With REQUIRE_ADMIN_2FA on, an Administrator who has not confirmed a one-time
    code in this session reaches only the two-factor pages (and logout): enrolment
    when they have no authenticator yet, verification otherwise."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.REQUIRE_ADMIN_2FA and _needs_second_factor(request):
            from django.shortcuts import redirect
            from django.urls import reverse
            from django_otp import user_has_device

            allowed = {reverse("two_factor_setup"), reverse("two_factor_verify"), reverse("logout")}
            if request.path not in allowed and not request.path.startswith(settings.STATIC_URL):
                target = "two_factor_verify" if user_has_device(request.user) else "two_factor_setup"
                return redirect(f"{reverse(target)}?next={request.get_full_path()}")
        return self.get_response(request)


def _needs_second_factor(request: HttpRequest) -> bool:
    from accounts.roles import ADMINISTRATOR, role_of

    user = request.user
    return bool(user.is_authenticated and not user.is_verified() and role_of(user) == ADMINISTRATOR)  # type: ignore[attr-defined]


# Pages whose every answer is written to the access log: those that show one protected
# record, hand out a document, or export a list (a roster import's full report too).
LOGGED_VIEWS = {
    "cases:detail": "view",
    "cases:person": "view",
    "cases:edit": "view",
    "cases:person_edit": "view",
    "cases:document_download": "download",
    "offers:departure_manifest": "view",
    "reports:export": "export",
    "admin:cases_person_import_report": "export",
    # The admin's pages of a person or a case, and of their past versions.
    "admin:cases_person_change": "view",
    "admin:cases_person_history": "view",
    "admin:cases_person_simple_history": "view",
    "admin:cases_case_change": "view",
    "admin:cases_case_history": "view",
    "admin:cases_case_simple_history": "view",
}


class AccessLogMiddleware:
    """Record who opened which case, person, document or export, when and from where,
    including refusals (403, 404), which matter most."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        # Any page refusing a record outside the user's sites (cases.scope) is logged too.
        out_of_scope = getattr(request, "scope_refused", False)
        if match is None or not request.user.is_authenticated:
            return response
        if match.view_name not in LOGGED_VIEWS and not out_of_scope:
            return response
        from accounts.models import AccessKind, AccessLog

        kind = AccessKind.REFUSED if response.status_code >= 400 else LOGGED_VIEWS[match.view_name]
        kwargs = match.kwargs
        # simple-history's page of a past version passes the record's id first, by position.
        first = match.args[0] if match.args else ""
        object_id = str(
            kwargs.get("pk") or kwargs.get("object_id") or kwargs.get("list_name") or kwargs.get("job_id") or first
        )
        AccessLog.objects.create(
            user=request.user,
            address=request.META.get("REMOTE_ADDR") or None,
            kind=kind,
            view_name=match.view_name,
            object_id=object_id,
            path=request.get_full_path()[:500],
            status_code=response.status_code,
        )
        return response
