"""Every URL, every role: anonymous visitors see the login page and /healthz only."""

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.conftest import ROLES

A, ST, SU, AD = ROLES

# name -> expected status for anonymous, Staff, Supervisor, Administrator.
# 302 for anonymous means "sent to the login page".
EXPECTED = {
    "home": {A: 302, ST: 200, SU: 200, AD: 200},
    "healthz": {A: 200, ST: 200, SU: 200, AD: 200},
    "login": {A: 200, ST: 302, SU: 302, AD: 302},  # logged-in users go on to home
    "logout": {A: 302, ST: 405, SU: 405, AD: 405},  # GET is refused: logging out is a POST
    "cases:list": {A: 302, ST: 200, SU: 200, AD: 200},
    "offers:list": {A: 302, ST: 200, SU: 200, AD: 200},
    "reports:dashboard": {A: 302, ST: 403, SU: 200, AD: 200},
}


def _app_url_names(patterns=None, namespace=""):
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin":
                continue
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _app_url_names(entry.url_patterns, ns)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}{entry.name}"


def test_every_app_url_has_an_expected_status_per_role():
    assert set(_app_url_names()) == set(EXPECTED)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_url_answers_each_role_as_designed(client_for, name, role):
    response = client_for(role).get(reverse(name))
    assert response.status_code == EXPECTED[name][role]
    if role == A and response.status_code == 302:
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_logging_out_is_a_post_that_ends_the_session(client_for):
    client = client_for(ST)
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302


def _admin_pages():
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        yield f"admin:{opts.app_label}_{opts.model_name}_changelist", model, model_admin, "view"
        yield f"admin:{opts.app_label}_{opts.model_name}_add", model, model_admin, "add"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_admin_pages_follow_each_roles_permissions(client_for, user_for, role, rf):
    client = client_for(role)
    user = user_for(role)
    assert client.get(reverse("admin:index")).status_code == (302 if user is None else 200)
    for name, _model, model_admin, kind in _admin_pages():
        response = client.get(reverse(name))
        if user is None:
            assert response.status_code == 302, name
            continue
        request = rf.get("/")
        request.user = user
        allowed = (
            model_admin.has_view_or_change_permission(request)
            if kind == "view"
            else model_admin.has_add_permission(request)
        )
        assert response.status_code == (200 if allowed else 403), (name, role)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "page", "allowed"),
    [
        (ST, "admin:cases_person_changelist", True),
        (ST, "admin:offers_offer_add", False),
        (SU, "admin:offers_offer_add", True),
        (SU, "admin:auth_user_changelist", False),
        (AD, "admin:auth_user_changelist", True),
        (ST, "admin:cases_casestatuschange_changelist", True),
    ],
)
def test_roles_reach_the_admin_pages_of_their_work_and_no_others(client_for, role, page, allowed):
    assert client_for(role).get(reverse(page)).status_code == (200 if allowed else 403)
