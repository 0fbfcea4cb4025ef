"""Every URL, every role: anonymous visitors see the login page and /healthz only."""

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from cases.models import Incident, Interview
from cases.services import case_document_add
from offers.models import Departure, Nomination
from tests.conftest import ROLES
from tests.factories import CaseFactory, OfferFactory, UserFactory

A, ST, SU, AD = ROLES

# name -> expected status for anonymous, Staff, Supervisor, Administrator.
# 302 for anonymous means "sent to the login page".
EXPECTED = {
    "home": {A: 302, ST: 200, SU: 200, AD: 200},
    "healthz": {A: 200, ST: 200, SU: 200, AD: 200},
    "login": {A: 200, ST: 302, SU: 302, AD: 302},  # logged-in users go on to home
    "logout": {A: 302, ST: 405, SU: 405, AD: 405},  # GET is refused: logging out is a POST
    "two_factor_setup": {A: 302, ST: 200, SU: 200, AD: 200},  # anyone may enrol an authenticator
    "two_factor_verify": {A: 302, ST: 302, SU: 302, AD: 302},  # nothing to verify yet: sent to enrol
    "cases:list": {A: 302, ST: 200, SU: 200, AD: 200},
    "cases:detail": {A: 302, ST: 200, SU: 200, AD: 200},
    "cases:edit": {A: 302, ST: 200, SU: 200, AD: 200},
    "cases:transition": {A: 302, ST: 405, SU: 405, AD: 405},  # POST only
    "cases:interview_schedule": {A: 302, ST: 405, SU: 405, AD: 405},  # POST only
    "cases:interview_outcome": {A: 302, ST: 405, SU: 405, AD: 405},  # POST only
    "cases:person": {A: 302, ST: 200, SU: 200, AD: 200},
    "cases:person_edit": {A: 302, ST: 200, SU: 200, AD: 200},
    "cases:site_transfer": {A: 302, ST: 200, SU: 200, AD: 200},  # one case: an edit of its details
    "cases:transfer_list": {A: 302, ST: 200, SU: 200, AD: 200},
    "cases:transfer_new": {A: 302, ST: 403, SU: 200, AD: 200},  # many cases at once
    "cases:document_upload": {A: 302, ST: 405, SU: 405, AD: 405},  # POST only
    "cases:document_download": {A: 302, ST: 200, SU: 200, AD: 200},
    "cases:document_delete": {A: 302, ST: 403, SU: 405, AD: 405},  # POST only
    "cases:incident_list": {A: 302, ST: 200, SU: 200, AD: 200},
    "cases:incident_new": {A: 302, ST: 200, SU: 200, AD: 200},
    "cases:incident_detail": {A: 302, ST: 200, SU: 200, AD: 200},
    "offers:list": {A: 302, ST: 200, SU: 200, AD: 200},
    "offers:new": {A: 302, ST: 403, SU: 200, AD: 200},
    "offers:detail": {A: 302, ST: 200, SU: 200, AD: 200},
    "offers:edit": {A: 302, ST: 403, SU: 200, AD: 200},
    "offers:nominate": {A: 302, ST: 403, SU: 405, AD: 405},  # POST only
    "offers:allocation": {A: 302, ST: 403, SU: 200, AD: 200},
    "offers:allocation_accept": {A: 302, ST: 403, SU: 405, AD: 405},  # POST only
    "offers:departure_plan": {A: 302, ST: 403, SU: 200, AD: 200},
    "offers:nomination_decision": {A: 302, ST: 403, SU: 405, AD: 405},  # POST only
    "offers:nomination_consent": {A: 302, ST: 403, SU: 405, AD: 405},  # POST only
    "offers:nomination_withdraw": {A: 302, ST: 403, SU: 405, AD: 405},  # POST only
    "offers:departure": {A: 302, ST: 200, SU: 200, AD: 200},
    "offers:departure_manifest": {A: 302, ST: 200, SU: 200, AD: 200},
    "offers:departure_checklist": {A: 302, ST: 403, SU: 405, AD: 405},  # POST only
    "offers:departure_depart": {A: 302, ST: 403, SU: 405, AD: 405},  # POST only
    "offers:departure_cancel": {A: 302, ST: 403, SU: 405, AD: 405},  # POST only
    "reports:dashboard": {A: 302, ST: 403, SU: 200, AD: 200},
    "reports:export": {A: 302, ST: 403, SU: 200, AD: 200},
}


def _case_pk():
    return {"pk": CaseFactory(size=1).pk}


def _person_pk():
    return {"pk": CaseFactory(size=1).members.get().pk}


def _interview_pk():
    interview = Interview.objects.create(case=CaseFactory(size=1), scheduled_at=timezone.now(), place="Room 1")
    return {"pk": interview.pk}


def _offer_pk():
    return {"pk": OfferFactory().pk}


def _nomination_pk():
    case = CaseFactory(size=1)
    return {"pk": Nomination.objects.create(offer=OfferFactory(), case=case, persons=1, nominated_by=UserFactory()).pk}


def _departure_pk():
    return {"pk": Departure.objects.create(offer=OfferFactory(), planned_date=timezone.localdate()).pk}


def _document_pk():
    # Stored in the test's own temporary folder (tests/conftest.py).
    upload = SimpleUploadedFile("passport.pdf", b"%PDF-1.4\n%%EOF\n")
    uploader = UserFactory(username="uploader", role=ST)
    return {"pk": case_document_add(CaseFactory(size=1), actor=uploader, kind="identity", upload=upload).pk}


def _incident_pk():
    site = CaseFactory().site
    incident = Incident.objects.create(
        site=site, kind="other", occurred_at=timezone.now(), summary="Fire", reported_by=UserFactory()
    )
    return {"pk": incident.pk}


# URLs of one object: name -> a function that makes the object and returns the URL's kwargs.
KWARGS = {
    "reports:export": lambda: {"list_name": "persons", "fmt": "csv"},
    "cases:detail": _case_pk,
    "cases:edit": _case_pk,
    "cases:transition": _case_pk,
    "cases:interview_schedule": _case_pk,
    "cases:interview_outcome": _interview_pk,
    "cases:person": _person_pk,
    "cases:person_edit": _person_pk,
    "cases:site_transfer": _case_pk,
    "cases:document_upload": _case_pk,
    "cases:document_download": _document_pk,
    "cases:document_delete": _document_pk,
    "cases:incident_detail": _incident_pk,
    "offers:detail": _offer_pk,
    "offers:edit": _offer_pk,
    "offers:nominate": _offer_pk,
    "offers:allocation": _offer_pk,
    "offers:allocation_accept": _offer_pk,
    "offers:departure_plan": _offer_pk,
    "offers:nomination_decision": _nomination_pk,
    "offers:nomination_consent": _nomination_pk,
    "offers:nomination_withdraw": _nomination_pk,
    "offers:departure": _departure_pk,
    "offers:departure_manifest": _departure_pk,
    "offers:departure_checklist": _departure_pk,
    "offers:departure_depart": _departure_pk,
    "offers:departure_cancel": _departure_pk,
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
    kwargs = KWARGS[name]() if name in KWARGS else {}
    response = client_for(role).get(reverse(name, kwargs=kwargs))
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
def test_the_admin_is_the_administrators_and_follows_their_permissions(client_for, user_for, role, rf):
    """Anonymous: the login page. Staff and Supervisors (staff flag and model permissions
    notwithstanding): 403 on every admin page, its index included; they work through
    the app's pages. Administrators: what their permissions allow."""
    client = client_for(role)
    user = user_for(role)
    index = client.get(reverse("admin:index"))
    assert index.status_code == {A: 302, ST: 403, SU: 403, AD: 200}[role]
    for name, _model, model_admin, kind in _admin_pages():
        response = client.get(reverse(name))
        if user is None:
            assert response.status_code == 302, name
            continue
        if role != AD:
            assert response.status_code == 403, (name, role)
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
@pytest.mark.parametrize(("role", "shown"), [(ST, False), (SU, False), (AD, True)])
def test_the_administration_link_is_shown_to_administrators_only(client_for, role, shown):
    page = client_for(role).get(reverse("home")).text
    assert (f'href="{reverse("admin:index")}"' in page) is shown
