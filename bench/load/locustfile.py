"""Staff at work, for bench/load_test.sh (which sets the environment below and reads the results).

Each virtual user logs in once through the login form (CSRF token from the form), then,
with a think time between clicks, opens the home page (worklist), the case list
(filtered), searches by name and by case or registration number, opens case and person
pages, and edits a case: it loads the edit form (with its version field), takes a moment
to type, and saves. The cases it edits are few (LOAD_TARGETS' edit_case_ids), so two
users sometimes save the same case at once: the second save is refused with 409 and the
page showing both versions. That is the expected outcome of a concurrent edit, counted
as a success in locust's figures and separately in the outcomes file; the user then saves
its kept input again (the rebased form), as the conflict page asks, which must succeed.

Every request is made without following redirects, so a page that sends the user back to
the login form (a lost session) is a failure, not a quiet 200.

Environment: LOAD_TARGETS (JSON from stack.sample_targets), LOAD_PASSWORD, LOAD_USERNAMES
(comma-separated, default "staff"), LOAD_OUTCOMES (JSON written at the end),
LOAD_WAIT ("min,max" think time in seconds, default "1,3").
"""

import json
import os
import random
import sys
import uuid
from collections import Counter
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, between, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent))
from htmlform import form_fields

TARGETS: dict[str, Any] = json.loads(Path(os.environ["LOAD_TARGETS"]).read_text())
USERNAMES = [u for u in os.environ.get("LOAD_USERNAMES", "staff").split(",") if u]
PASSWORD = os.environ["LOAD_PASSWORD"]
WAIT_MIN, WAIT_MAX = (float(x) for x in os.environ.get("LOAD_WAIT", "1,3").split(","))
# Seconds between opening the edit form and saving it (reading, typing).
TYPING = (0.5, 2.0)
CONFLICT_MARK = 'id="conflict-title"'
SERVER_ERROR_MARKS = ("Traceback", "Something went wrong")

OUTCOMES: dict[str, Any] = {
    "logins": 0,
    "edit_saved": 0,
    "edit_conflict_409": 0,
    "edit_saved_after_conflict": 0,
    "edit_given_up_after_conflicts": 0,
    "saved_per_case": Counter(),
    # Saves sent but not answered when the run stopped (locust ends its users): each may or may not be saved.
    "unanswered_per_case": Counter(),
}


class BehindTheProxy(DefaultCookiePolicy):
    """Send the Secure cookies (session, CSRF) over loopback HTTP: between the browser and
    the proxy it is HTTPS, which is all Secure asks for."""

    def return_ok_secure(self, cookie: Any, request: Any) -> bool:
        return True


class Staff(FastHttpUser):
    wait_time = between(WAIT_MIN, WAIT_MAX)
    # Behind the TLS-terminating proxy that production has (docs/deploy.md): Django sees
    # HTTPS, so DEBUG-off settings (secure cookies, SSL redirect, HSTS) stay as they are.
    default_headers = {"X-Forwarded-Proto": "https"}
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.client.cookiejar.set_policy(BehindTheProxy())
        self.origin = "https://" + self.host.split("://", 1)[1].rstrip("/")
        self.username = random.choice(USERNAMES)
        self.login()

    # -- helpers ---------------------------------------------------------------------

    def _browser_headers(self, path: str) -> dict[str, str]:
        # Django checks Origin (or Referer) of a POST over HTTPS against the host.
        return {"Origin": self.origin, "Referer": self.origin + path}

    def page(self, path: str, name: str) -> Any:
        """GET a page that must answer 200 (no redirect to the login form, no error page)."""
        with self.client.get(path, name=name, allow_redirects=False, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code} {response.headers.get('Location', '')}")
            elif any(mark in (response.text or "") for mark in SERVER_ERROR_MARKS):
                response.failure("error page with status 200")
            return response

    def login(self) -> None:
        page = self.page("/accounts/login/", "GET /accounts/login/")
        if page.status_code != 200:
            return
        token = form_fields(page.text, action="/accounts/login/")["csrfmiddlewaretoken"]
        data = {"csrfmiddlewaretoken": token, "username": self.username, "password": PASSWORD, "next": ""}
        with self.client.post(
            "/accounts/login/",
            data=data,
            headers=self._browser_headers("/accounts/login/"),
            name="POST /accounts/login/",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code == 302 and response.headers.get("Location") == "/":
                OUTCOMES["logins"] += 1
            else:
                response.failure(f"login refused: {response.status_code}")
                return
        self.page("/", "GET / (home, worklist)")

    # -- what staff do ----------------------------------------------------------------

    @task(2)
    def home(self) -> None:
        self.page("/", "GET / (home, worklist)")

    @task(2)
    def case_list(self) -> None:
        choice = random.random()
        if choice < 0.4:
            path = "/cases/"
        elif choice < 0.8:
            path = f"/cases/?status={random.choice(TARGETS['statuses'])}&o=-in_status_since"
        else:
            path = f"/cases/?page={random.randint(2, 50)}"
        self.page(path, "GET /cases/ (list, filters, pages)")

    @task(3)
    def search_name(self) -> None:
        self.page(f"/cases/?q={_quote(random.choice(TARGETS['names']))}", "GET /cases/?q=name")

    @task(1)
    def search_number(self) -> None:
        number = random.choice(TARGETS["case_nos"] if random.random() < 0.5 else TARGETS["registration_nos"])
        self.page(f"/cases/?q={_quote(number)}", "GET /cases/?q=case or registration no")

    @task(4)
    def open_case(self) -> None:
        self.page(f"/cases/{random.choice(TARGETS['case_ids'])}/", "GET /cases/[id]/ (case page)")

    @task(2)
    def open_person(self) -> None:
        self.page(f"/cases/persons/{random.choice(TARGETS['person_ids'])}/", "GET /cases/persons/[id]/")

    @task(1)
    def edit_case(self) -> None:
        pk = random.choice(TARGETS["edit_case_ids"])
        path = f"/cases/{pk}/edit/"
        form_page = self.page(path, "GET /cases/[id]/edit/")
        if form_page.status_code != 200:
            return
        fields = form_fields(form_page.text, css_class="edit-form")
        gevent.sleep(random.uniform(*TYPING))
        fields["notes"] = f"Load test edit {uuid.uuid4().hex[:12]}"
        for attempt in range(3):
            name = "POST /cases/[id]/edit/" if attempt == 0 else "POST /cases/[id]/edit/ (again after 409)"
            OUTCOMES["unanswered_per_case"][str(pk)] += 1
            with self.client.post(
                path,
                data=fields,
                headers=self._browser_headers(path),
                name=name,
                allow_redirects=False,
                catch_response=True,
            ) as response:
                OUTCOMES["unanswered_per_case"][str(pk)] -= 1
                if response.status_code == 302 and response.headers.get("Location") == f"/cases/{pk}/":
                    OUTCOMES["edit_saved"] += 1
                    OUTCOMES["edit_saved_after_conflict"] += attempt > 0
                    OUTCOMES["saved_per_case"][str(pk)] += 1
                    return
                if response.status_code == 409 and CONFLICT_MARK in (response.text or ""):
                    # Refused, as it must be, with both versions shown and the input kept.
                    OUTCOMES["edit_conflict_409"] += 1
                    kept = form_fields(response.text, css_class="edit-form")
                    if kept.get("notes") != fields["notes"]:
                        response.failure("409 page lost the typed notes")
                        return
                    response.success()
                    fields = kept  # the rebased form: the new version, the user's input
                    continue
                response.failure(f"unexpected {response.status_code}")
                return
        OUTCOMES["edit_given_up_after_conflicts"] += 1


def _quote(text: str) -> str:
    from urllib.parse import quote_plus

    return quote_plus(text)


# Every request: when it started (epoch s), its name, its time (ms), whether it succeeded;
# run_load.py computes exact percentiles from these (locust's CSV rounds them).
SAMPLES: list[tuple[float, str, float, bool]] = []


@events.request.add_listener
def _sample(request_type: str, name: str, response_time: float, exception: Any, start_time: float, **kw: Any) -> None:
    SAMPLES.append((start_time, name, response_time, exception is None))


@events.test_stop.add_listener
def _write_outcomes(environment: Any, **kwargs: Any) -> None:
    path = os.environ.get("LOAD_OUTCOMES")
    if path:
        outcomes = {
            **OUTCOMES,
            "saved_per_case": dict(OUTCOMES["saved_per_case"]),
            "unanswered_per_case": {k: v for k, v in OUTCOMES["unanswered_per_case"].items() if v},
        }
        Path(path).write_text(json.dumps({**outcomes, "samples": SAMPLES}))
