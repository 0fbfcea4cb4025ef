import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from accounts.models import AccessKind, AccessLog
from cases.models import Case, CaseStatus, Person
from tests.factories import CaseFactory, PersonFactory, SiteFactory

CHANGELIST = reverse("admin:cases_case_changelist")


@pytest.mark.django_db
def test_the_admin_moves_cases_through_the_workflow_with_a_reason(client_for):
    ok = CaseFactory(status=CaseStatus.INTERVIEWED, size=1)
    refused = CaseFactory(status=CaseStatus.REGISTERED, size=1)
    client = client_for("Administrator")
    ask = client.post(CHANGELIST, {"action": "transition_cases", ACTION_CHECKBOX_NAME: [ok.pk, refused.pk]})
    assert ask.status_code == 200
    assert "Reason" in ask.text
    done = client.post(
        CHANGELIST,
        {
            "action": "transition_cases",
            ACTION_CHECKBOX_NAME: [ok.pk, refused.pk],
            "apply": "1",
            "to": "eligible",
            "reason": "Protection needs confirmed",
        },
        follow=True,
    )
    messages = [str(m) for m in done.context["messages"]]
    assert "1 case moved." in messages
    assert any(refused.case_no in m and "cannot move from Registered to Eligible" in m for m in messages)
    assert Case.objects.get(pk=ok.pk).status == CaseStatus.ELIGIBLE
    assert Case.objects.get(pk=refused.pk).status == CaseStatus.REGISTERED


@pytest.mark.django_db
def test_the_admin_shows_status_read_only(client_for):
    case = CaseFactory(status=CaseStatus.ELIGIBLE, size=1)
    client = client_for("Administrator")
    page = client.get(reverse("admin:cases_case_change", args=[case.pk]))
    assert 'name="status"' not in page.text
    client.post(
        reverse("admin:cases_case_change", args=[case.pk]),
        {"case_no": case.case_no, "site": case.site.pk, "status": "relocated", "determination": "pending"},
    )
    assert Case.objects.get(pk=case.pk).status == CaseStatus.ELIGIBLE


@pytest.mark.django_db
def test_a_past_version_is_shown_never_written_back(client_for):
    """simple-history's "Revert" would write an old version past the services; the
    history is read-only, for Administrators too."""
    person = PersonFactory(family_name="Hosseini", notes="first")
    old = person.history.get().history_id
    person.notes = "second"
    person.save()
    url = reverse("admin:cases_person_simple_history", args=[person.pk, old])
    client = client_for("Administrator")

    page = client.get(url)
    assert page.status_code == 200
    assert "Revert" not in page.text
    form = {
        "registration_no": person.registration_no,
        "relationship": person.relationship,
        "family_name": person.family_name,
        "given_name": person.given_name,
        "sex": person.sex,
        "birth_year": person.birth_year,
        "nationality": person.nationality.code,
        "residence_status": person.residence_status,
        "notes": "first",
    }
    assert client.post(url, form).status_code == 403
    person.refresh_from_db()
    assert person.notes == "second"
    assert person.history.count() == 2


@pytest.mark.django_db
def test_the_admin_moves_no_case_or_person_between_sites_or_cases(client_for):
    """A move is a site transfer, which moves the whole case and records its site history."""
    case = CaseFactory(size=2)
    elsewhere = SiteFactory(name="Elsewhere", code="elsewhere")
    other_case = CaseFactory(size=1)
    client = client_for("Administrator")

    client.post(
        reverse("admin:cases_case_change", args=[case.pk]),
        {"case_no": case.case_no, "site": elsewhere.pk, "determination": "pending"},
    )
    person = case.members.order_by("pk").first()
    page = client.get(reverse("admin:cases_person_change", args=[person.pk]))
    assert 'name="site"' not in page.text
    assert 'name="case"' not in page.text
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update({"site": elsewhere.pk, "case": other_case.pk, "notes": "checked"})
    data = {name: value for name, value in data.items() if value is not None}
    assert client.post(reverse("admin:cases_person_change", args=[person.pk]), data).status_code == 302

    case.refresh_from_db()
    person.refresh_from_db()
    assert case.site_id != elsewhere.pk
    assert (person.site_id, person.case_id, person.notes) == (case.site_id, case.pk, "checked")


@pytest.mark.django_db
def test_the_admins_pages_of_a_person_or_a_case_are_in_the_access_log(client_for, administrator):
    person = PersonFactory()
    client = client_for("Administrator")
    pages = [
        reverse("admin:cases_person_change", args=[person.pk]),
        reverse("admin:cases_person_history", args=[person.pk]),
        reverse("admin:cases_person_simple_history", args=[person.pk, person.history.get().history_id]),
        reverse("admin:cases_case_change", args=[person.case_id]),
    ]
    for page in pages:
        assert client.get(page).status_code == 200
    logged = AccessLog.objects.filter(user=administrator).order_by("pk")
    assert list(logged.values_list("kind", "object_id", "status_code")) == [
        (AccessKind.VIEW, str(person.pk), 200),
        (AccessKind.VIEW, str(person.pk), 200),
        (AccessKind.VIEW, str(person.pk), 200),
        (AccessKind.VIEW, str(person.case_id), 200),
    ]


@pytest.mark.parametrize(
    ("status", "held_from", "added"),
    [
        (CaseStatus.REGISTERED, "", True),
        (CaseStatus.ELIGIBLE, "", True),
        (CaseStatus.NOMINATED, "", False),
        (CaseStatus.DEPARTURE_SCHEDULED, "", False),
        (CaseStatus.CLOSED, "", False),
        (CaseStatus.ON_HOLD, CaseStatus.ACCEPTED, False),
        (CaseStatus.ON_HOLD, CaseStatus.ELIGIBLE, True),
    ],
)
def test_a_person_added_in_the_admin_joins_only_a_case_that_takes_new_members(
    client_for, administrator, status, held_from, added
):
    # The rule of a roster import (cases.workflow.takes_new_members): an offer counts the
    # persons of a nominated case as they are; an ended case waits for nobody.
    case = CaseFactory(size=1)
    Case.objects.filter(pk=case.pk).update(status=status, status_before_hold=held_from)
    client = client_for("Administrator")
    url = reverse("admin:cases_person_add")
    values = {
        "registration_no": "R-NEW",
        "case": case.pk,
        "relationship": "child",
        "family_name": "Karimi",
        "given_name": "Sara",
        "sex": "F",
        "birth_year": 2020,
        "nationality": "AF",
        "site": case.site_id,
        "residence_status": "present",
    }
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None} | values

    response = client.post(url, data)

    assert Person.objects.filter(registration_no="R-NEW").exists() is added
    if not added:
        label = CaseStatus(status).label.lower()
        assert response.context["adminform"].form.errors == {
            "case": [
                f"Case {case.case_no} is {label}: it takes no new member (an offer counts its persons, or the case"
                " has ended)."
            ]
        }
