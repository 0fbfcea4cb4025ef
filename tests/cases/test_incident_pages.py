"""Incident pages: the list, one incident, and recording one with the persons it affected."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from cases.models import Incident, IncidentEffect, IncidentKind, IncidentPerson, ResidenceStatus
from cases.services import incident_record
from tests.conftest import ROLES
from tests.factories import CaseFactory, PersonFactory, SiteFactory

pytestmark = pytest.mark.django_db


def _incident(actor, persons=(), effect=IncidentEffect.AFFECTED, summary="Fire in block C"):
    site = persons[0].site if persons else SiteFactory()
    return incident_record(
        actor=actor,
        site=site,
        kind=IncidentKind.FIRE,
        occurred_at=timezone.now() - datetime.timedelta(hours=3),
        summary=summary,
        affected=[(person, effect) for person in persons],
    )


def _form(site, persons="", **extra):
    moment = timezone.localtime() - datetime.timedelta(hours=2)
    return {
        "site": site.pk,
        "kind": IncidentKind.ATTACK,
        "date": moment.date().isoformat(),
        "time": moment.strftime("%H:%M"),
        "summary": "Shelling of the eastern block",
        "description": "At night.",
        "persons": persons,
        **extra,
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ["cases:incident_list", "cases:incident_new", "cases:incident_detail"])
def test_every_role_reaches_the_incident_pages_and_anonymous_visitors_log_in_first(client_for, staff, role, name):
    kwargs = {"pk": _incident(staff).pk} if name == "cases:incident_detail" else {}
    response = client_for(role).get(reverse(name, kwargs=kwargs))
    if role == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    else:
        assert response.status_code == 200


@pytest.mark.parametrize("name", ["cases:incident_list", "cases:incident_new"])
def test_a_user_without_a_role_is_refused(client, nobody, name):
    client.force_login(nobody)
    assert client.get(reverse(name)).status_code == 403
    assert client.post(reverse("cases:incident_new"), {}).status_code == 403


def test_an_unknown_incident_is_not_found(client_for):
    assert client_for("Staff").get(reverse("cases:incident_detail", args=[999999])).status_code == 404


def test_staff_record_an_incident_and_a_person_killed_becomes_deceased_with_the_case_flagged(client_for, staff):
    killed = CaseFactory(size=2).members.first()
    injured = CaseFactory(size=1).members.get()
    bystander = CaseFactory(size=1).members.get()
    persons = f"{killed.registration_no} killed\n{injured.registration_no}, Injured\n\n{bystander.registration_no}\n"
    response = client_for("Staff").post(
        reverse("cases:incident_new"), _form(killed.site, persons, confirm="on"), follow=True
    )
    incident = Incident.objects.get()
    assert response.redirect_chain[-1][0] == reverse("cases:incident_detail", args=[incident.pk])
    assert "The incident is recorded." in response.text
    assert incident.reported_by == staff
    effects = {entry.person_id: entry.effect for entry in incident.affected.all()}
    assert effects == {killed.pk: "killed", injured.pk: "injured", bystander.pk: "affected"}
    killed.refresh_from_db()
    assert killed.residence_status == ResidenceStatus.DECEASED
    assert killed.case.needs_review
    assert not bystander.case.needs_review


def test_unknown_registration_numbers_are_named_and_nothing_is_written(client_for):
    known = CaseFactory(size=1).members.get()
    persons = f"{known.registration_no} killed\nR-NOPE-1 injured\nR-NOPE-2"
    response = client_for("Staff").post(reverse("cases:incident_new"), _form(known.site, persons, confirm="on"))
    assert response.status_code == 200
    assert "Nothing was recorded." in response.text
    assert "Line 2: no person has the registration number R-NOPE-1." in response.text
    assert "Line 3: no person has the registration number R-NOPE-2." in response.text
    assert not Incident.objects.exists()
    assert not IncidentPerson.objects.exists()
    known.refresh_from_db()
    assert known.residence_status == ResidenceStatus.PRESENT
    assert "R-NOPE-1 injured" in response.text  # what was typed stays in the form


def test_an_unknown_effect_and_a_number_given_twice_are_refused(client_for):
    person = CaseFactory(size=1).members.get()
    persons = f"{person.registration_no} hurt\n{person.registration_no.lower()} injured"
    response = client_for("Staff").post(reverse("cases:incident_new"), _form(person.site, persons))
    assert "Line 1: “hurt” is not an effect" in response.text
    assert f"Line 2: {person.registration_no.lower()} is already on line 1." in response.text
    assert not Incident.objects.exists()


def test_every_bad_line_is_named_at_once_in_line_order(client_for):
    """An unknown number, an unknown effect and a number given twice: one answer, not
    one round per kind of mistake."""
    person = CaseFactory(size=1).members.get()
    persons = f"R-NOPE-1\n{person.registration_no} hurt\n{person.registration_no}\nR-NOPE-2 foo"
    response = client_for("Staff").post(reverse("cases:incident_new"), _form(person.site, persons))
    errors = list(response.context["form"].errors["persons"])
    assert errors == [
        "Line 1: no person has the registration number R-NOPE-1.",
        "Line 2: “hurt” is not an effect; use affected, injured, killed or missing.",
        f"Line 3: {person.registration_no} is already on line 2.",
        "Line 4: “foo” is not an effect; use affected, injured, killed or missing.",
        "Line 4: no person has the registration number R-NOPE-2.",
    ]
    assert not Incident.objects.exists()


def test_persons_marked_killed_or_missing_need_a_confirmation(client_for):
    person = CaseFactory(size=1).members.get()
    response = client_for("Staff").post(
        reverse("cases:incident_new"), _form(person.site, f"{person.registration_no} missing")
    )
    assert "Some persons are marked killed or missing" in response.text
    assert not Incident.objects.exists()
    person.refresh_from_db()
    assert person.residence_status == ResidenceStatus.PRESENT


def test_an_incident_in_the_future_is_refused(client_for):
    site = SiteFactory()
    later = timezone.localtime() + datetime.timedelta(days=2)
    data = _form(site, date=later.date().isoformat(), time=later.strftime("%H:%M"))
    response = client_for("Staff").post(reverse("cases:incident_new"), data)
    assert "An incident cannot be recorded before it happens: check its date and time." in response.text
    assert not response.context["form"].has_error("time")
    assert not Incident.objects.exists()


def test_an_incident_without_persons_can_be_recorded(client_for):
    site = SiteFactory()
    response = client_for("Staff").post(reverse("cases:incident_new"), _form(site))
    assert response.status_code == 302
    assert Incident.objects.get().affected.count() == 0


def test_the_detail_page_shows_the_persons_their_effect_and_native_names(client_for, staff):
    case = CaseFactory(case_no="C-HIT")
    person = PersonFactory(case=case, native_name="علی تهرانی")
    incident = _incident(staff, [person], IncidentEffect.INJURED, summary="Rocket attack")
    text = client_for("Staff").get(reverse("cases:incident_detail", args=[incident.pk])).text
    assert "Rocket attack" in text
    assert '<bdi dir="auto">علی تهرانی</bdi>' in text
    assert person.registration_no in text
    assert "C-HIT" in text
    assert "Injured" in text


def test_the_list_shows_incidents_latest_first_with_the_number_affected(client_for, staff):
    older = _incident(staff, summary="Older")
    Incident.objects.filter(pk=older.pk).update(occurred_at=timezone.now() - datetime.timedelta(days=9))
    _incident(staff, [CaseFactory(size=2).members.first()], summary="Newer")
    response = client_for("Staff").get(reverse("cases:incident_list"))
    assert [(i.summary, i.persons_affected) for i in response.context["page"]] == [("Newer", 1), ("Older", 0)]
    assert response.text.index("Newer") < response.text.index("Older")


@pytest.mark.parametrize("n", [1, 20])
def test_the_incident_pages_cost_the_same_queries_at_any_size(client_for, staff, django_assert_num_queries, n):
    persons = [CaseFactory(size=1).members.get() for _ in range(n)]
    for _ in range(n):
        incident = _incident(staff, persons, IncidentEffect.INJURED)
    client = client_for("Staff")
    client.get(reverse("home"))  # a first request may refresh the session
    # session, user, permissions with groups and sites, count, page of incidents
    # with site and reporter
    with django_assert_num_queries(5):
        client.get(reverse("cases:incident_list"))
    # session, user, permissions with groups and sites, the incident with site and
    # reporter, the persons affected with their cases
    with django_assert_num_queries(5):
        client.get(reverse("cases:incident_detail", args=[incident.pk]))
