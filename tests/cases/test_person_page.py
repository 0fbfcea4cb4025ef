import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from cases.models import IncidentEffect, IncidentKind, SpecificNeed
from cases.services import incident_record, person_update
from tests.factories import CaseFactory, PersonFactory, UserFactory

pytestmark = pytest.mark.django_db


def _page(client, person):
    return client.get(reverse("cases:person", args=[person.pk]))


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 302), ("Staff", 200), ("Supervisor", 200), ("Administrator", 200)]
)
def test_the_person_page_answers_each_role(client_for, role, status):
    person = CaseFactory(size=1).members.get()
    response = _page(client_for(role), person)
    assert response.status_code == status
    if status == 302:
        assert response["Location"].startswith(reverse("login"))


def test_a_user_without_a_role_is_refused(client, nobody):
    client.force_login(nobody)
    assert _page(client, CaseFactory(size=1).members.get()).status_code == 403


def test_an_unknown_person_is_not_found(client_for):
    assert client_for("Staff").get(reverse("cases:person", args=[999999])).status_code == 404


def test_it_shows_the_persons_details_and_case(client_for):
    case = CaseFactory(case_no="C-PERSON")
    person = PersonFactory(case=case, registration_no="R-42", given_name="Zahra", birth_year=1990, phone="+98 555")
    text = _page(client_for("Staff"), person).text
    assert "HOSSEINI, Zahra" in text
    assert '<bdi dir="auto" class="native">محمد حسینی</bdi>' in text
    assert "R-42" in text
    assert "C-PERSON" in text
    assert '1990 <span class="muted">(year only)</span>' in text
    assert "Iran" in text
    assert "+98 555" in text


def test_the_case_page_links_to_its_members(client_for):
    case = CaseFactory(size=2)
    text = client_for("Staff").get(case.get_absolute_url()).text
    for person in case.members.all():
        assert reverse("cases:person", args=[person.pk]) in text


def test_specific_needs_are_hidden_without_the_permission(client, roles):
    person = CaseFactory(size=1).members.get()
    person.specific_needs.add(SpecificNeed.objects.get(code="survivor_of_torture"))
    reader = UserFactory(username="reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_person"))
    client.force_login(reader)
    assert "Survivor of torture" not in _page(client, person).text


def test_specific_needs_show_to_staff(client_for):
    person = CaseFactory(size=1).members.get()
    person.specific_needs.add(SpecificNeed.objects.get(code="survivor_of_torture"))
    assert "Survivor of torture" in _page(client_for("Staff"), person).text


def test_it_shows_incidents_and_the_history_of_changes(client_for, staff):
    person = CaseFactory(size=1).members.get()
    incident_record(
        actor=staff,
        site=person.site,
        kind=IncidentKind.FIRE,
        occurred_at=timezone.now(),
        summary="Tent fire",
        affected=[(person, IncidentEffect.INJURED)],
    )
    person_update(person, actor=staff, version=0, changes={"phone": "+98 777"})
    text = _page(client_for("Staff"), person).text
    assert "Tent fire" in text
    assert "Injured" in text
    assert '<span class="new">+98 777</span>' in text
    assert "Person details edited." in text


@pytest.mark.parametrize("edits", [1, 40])
def test_the_page_costs_the_same_queries_however_long_its_history(client_for, staff, django_assert_num_queries, edits):
    person = CaseFactory(size=1).members.get()
    person.specific_needs.set(SpecificNeed.objects.all()[:3])
    for version in range(edits):
        person_update(person, actor=staff, version=version, changes={"phone": str(version)})
    client = client_for("Staff")
    # session, user, permissions with groups and sites, the person with case and site,
    # specific needs, incidents, history, site history,
    # the access-log row
    with django_assert_num_queries(9):
        assert _page(client, person).status_code == 200
