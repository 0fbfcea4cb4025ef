import datetime

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from cases.models import Case, Determination, IncidentEffect, IncidentKind, Person, SpecificNeed
from cases.services import EditConflict, case_update, incident_record, person_update
from tests.factories import CaseFactory, UserFactory

pytestmark = pytest.mark.django_db


def _case_form(case, **overrides):
    data = {
        "version": case.version,
        "assigned_officer": case.assigned_officer_id or "",
        "determination": case.determination,
        "notes": case.notes,
    }
    if case.needs_review:
        data["needs_review"] = "on"
    data.update(overrides)
    return data


def _person_form(person, **overrides):
    data = {
        "version": person.version,
        "family_name": person.family_name,
        "given_name": person.given_name,
        "native_name": person.native_name,
        "sex": person.sex,
        "birth_year": person.birth_year,
        "birth_date": person.birth_date.isoformat() if person.birth_date else "",
        "nationality": person.nationality.code,
        "phone": person.phone,
        "notes": person.notes,
    }
    data.update(overrides)
    return data


# Case details


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 302), ("Staff", 200), ("Supervisor", 200), ("Administrator", 200)]
)
def test_the_case_edit_page_answers_each_role(client_for, role, status):
    case = CaseFactory(size=1)
    assert client_for(role).get(reverse("cases:edit", args=[case.pk])).status_code == status


def test_a_user_without_a_role_cannot_edit_a_case(client, nobody):
    client.force_login(nobody)
    case = CaseFactory(size=1)
    assert client.post(reverse("cases:edit", args=[case.pk]), _case_form(case, notes="x")).status_code == 403


def test_staff_assign_an_officer_and_write_notes(client_for, supervisor):
    case = CaseFactory(size=1)
    response = client_for("Staff").post(
        reverse("cases:edit", args=[case.pk]),
        _case_form(case, assigned_officer=supervisor.pk, notes="Prefers a female interviewer"),
        follow=True,
    )
    case.refresh_from_db()
    assert case.assigned_officer == supervisor
    assert case.notes == "Prefers a female interviewer"
    assert case.version == 1
    assert "Saved." in response.text
    assert "Prefers a female interviewer" in response.text
    latest = case.history.first()
    assert latest.history_user.username == "staff-test"
    assert latest.history_change_reason == "Case details edited."


def test_the_case_edit_form_has_no_status(client_for):
    case = CaseFactory(size=1)
    response = client_for("Staff").get(reverse("cases:edit", args=[case.pk]))
    assert 'name="status"' not in response.text
    assert 'name="determination"' in response.text


def test_a_posted_status_is_ignored(client_for):
    case = CaseFactory(size=1)
    client_for("Staff").post(reverse("cases:edit", args=[case.pk]), _case_form(case, status="relocated", notes="n"))
    case.refresh_from_db()
    assert case.status == "registered"
    assert case.notes == "n"


def test_saving_without_a_change_writes_nothing(client_for):
    case = CaseFactory(size=1)
    response = client_for("Staff").post(reverse("cases:edit", args=[case.pk]), _case_form(case), follow=True)
    case.refresh_from_db()
    assert case.version == 0
    assert "Nothing was changed." in response.text


def test_a_second_save_from_an_older_version_is_refused_and_loses_nothing(client_for, staff, supervisor):
    case = CaseFactory(size=1)
    first, second = client_for("Staff"), client_for("Supervisor")
    opened = _case_form(case)  # both open the form at version 0
    first.post(reverse("cases:edit", args=[case.pk]), {**opened, "notes": "Staff's note"})
    response = second.post(
        reverse("cases:edit", args=[case.pk]),
        {**opened, "notes": "Supervisor's note", "determination": Determination.CONFIRMED},
    )
    assert response.status_code == 409
    case.refresh_from_db()
    assert case.notes == "Staff's note"
    assert case.determination == Determination.PENDING
    assert case.version == 1
    text = response.text
    assert "Not saved: someone else changed this record while you were editing it" in text
    assert "Saved by staff-test" in text
    # What the second user typed is still in the form, and next to what is saved now.
    assert "Supervisor&#x27;s note</textarea>" in text
    assert '<option value="confirmed" selected>' in text
    assert '<bdi dir="auto">Supervisor&#x27;s note</bdi>' in text
    assert '<bdi dir="auto">Staff&#x27;s note</bdi>' in text
    assert 'name="version" value="1"' in text


def test_after_a_conflict_saving_again_keeps_the_second_users_values(client_for):
    case = CaseFactory(size=1)
    first, second = client_for("Staff"), client_for("Supervisor")
    opened = _case_form(case)
    first.post(reverse("cases:edit", args=[case.pk]), {**opened, "notes": "Staff's note"})
    second.post(reverse("cases:edit", args=[case.pk]), {**opened, "notes": "Supervisor's note"})
    # The refused page carried version 1; submitting it again is a deliberate choice.
    second.post(reverse("cases:edit", args=[case.pk]), {**opened, "version": 1, "notes": "Supervisor's note"})
    case.refresh_from_db()
    assert case.notes == "Supervisor's note"
    assert case.version == 2


def test_a_status_change_does_not_make_an_edit_conflict(client_for, staff):
    from cases.services import case_transition

    case = CaseFactory(size=1)
    opened = _case_form(case)
    case_transition(case, to="on_hold", actor=staff, reason="Waiting")
    client_for("Staff").post(reverse("cases:edit", args=[case.pk]), {**opened, "notes": "Still fine"})
    case.refresh_from_db()
    assert (case.notes, case.status) == ("Still fine", "on_hold")


def test_case_update_refuses_a_stale_version(staff):
    case = CaseFactory(size=1)
    case_update(case, actor=staff, version=0, changes={"notes": "one"})
    with pytest.raises(EditConflict) as refused:
        case_update(case, actor=staff, version=0, changes={"notes": "two"})
    assert refused.value.current.notes == "one"
    assert Case.objects.get().notes == "one"


def test_an_edit_opened_before_an_incident_cannot_clear_the_review_it_asked_for(staff):
    """The incident flags the case for review and makes a new version: the older form's
    unticked box is refused, not saved over the flag."""
    case = CaseFactory(size=1)
    seen = case.version
    incident_record(
        actor=staff,
        site=case.site,
        kind=IncidentKind.ATTACK,
        occurred_at=timezone.now(),
        summary="Attack",
        affected=[(case.members.get(), IncidentEffect.INJURED)],
    )
    with pytest.raises(EditConflict):
        case_update(case, actor=staff, version=seen, changes={"needs_review": False, "notes": "Seen"})
    case.refresh_from_db()
    assert case.needs_review
    assert case.history.first().history_change_reason == "Incident: Attack"


def test_case_update_edits_only_case_details(staff):
    case = CaseFactory(size=1)
    with pytest.raises(ValueError, match="status"):
        case_update(case, actor=staff, version=0, changes={"status": "relocated"})


def test_case_update_needs_the_permission(roles):
    case = CaseFactory(size=1)
    with pytest.raises(PermissionDenied):
        case_update(case, actor=UserFactory(), version=0, changes={"notes": "x"})


# Person details


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 302), ("Staff", 200), ("Supervisor", 200), ("Administrator", 200)]
)
def test_the_person_edit_page_answers_each_role(client_for, role, status):
    person = CaseFactory(size=1).members.get()
    assert client_for(role).get(reverse("cases:person_edit", args=[person.pk])).status_code == status


def test_staff_correct_a_name_and_a_year_only_birth(client_for):
    person = CaseFactory(size=1).members.get()
    response = client_for("Staff").post(
        reverse("cases:person_edit", args=[person.pk]),
        _person_form(person, given_name="Mohammed", birth_year=1979, birth_date="", native_name="محمد رضایی"),
        follow=True,
    )
    person.refresh_from_db()
    assert (person.given_name, person.birth_year, person.birth_date) == ("Mohammed", 1979, None)
    assert person.native_name == "محمد رضایی"
    assert person.version == 1
    assert "Saved." in response.text
    assert '<span class="old">1980-05-17</span>' in response.text  # the history shows the old date


def test_a_date_of_birth_changed_alone_brings_its_year(client_for):
    person = CaseFactory(size=1).members.get()
    response = client_for("Staff").post(
        reverse("cases:person_edit", args=[person.pk]), _person_form(person, birth_date="1982-02-03"), follow=True
    )
    assert "Saved." in response.text
    person.refresh_from_db()
    assert (person.birth_year, person.birth_date) == (1982, datetime.date(1982, 2, 3))


def test_neither_a_year_nor_a_date_of_birth_is_refused_and_nothing_is_saved(client_for):
    person = CaseFactory(size=1).members.get()
    response = client_for("Staff").post(
        reverse("cases:person_edit", args=[person.pk]), _person_form(person, birth_year="", birth_date="")
    )
    assert response.status_code == 200
    assert response.context["form"].errors["birth_year"] == ["Enter the year of birth, or the date."]
    person.refresh_from_db()
    assert (person.birth_year, person.version) == (1980, 0)


def test_person_update_gives_a_date_of_birth_changed_alone_its_year(staff):
    """The rule is the service's, whoever calls it: the year and the date never disagree."""
    person = CaseFactory(size=1).members.get()
    person_update(person, actor=staff, version=0, changes={"birth_date": datetime.date(1983, 4, 5)})
    person.refresh_from_db()
    assert (person.birth_year, person.birth_date) == (1983, datetime.date(1983, 4, 5))


def test_a_date_of_birth_in_the_future_gets_one_error_about_the_future(client_for):
    person = CaseFactory(size=1).members.get()
    future = timezone.localdate().replace(year=timezone.localdate().year + 2, month=1, day=1)
    response = client_for("Staff").post(
        reverse("cases:person_edit", args=[person.pk]),
        _person_form(person, birth_year=future.year, birth_date=future.isoformat()),
    )
    errors = response.context["form"].errors
    assert list(errors) == ["birth_date"]
    assert "must fall in the year of birth" not in response.text
    person.refresh_from_db()
    assert person.birth_year == 1980


def test_a_date_of_birth_outside_the_year_is_refused(client_for):
    person = CaseFactory(size=1).members.get()
    response = client_for("Staff").post(
        reverse("cases:person_edit", args=[person.pk]), _person_form(person, birth_year=1981)
    )
    assert response.status_code == 200
    assert "The date of birth must fall in the year of birth." in response.text
    person.refresh_from_db()
    assert person.birth_year == 1980


def test_a_conflicting_person_edit_is_refused_and_shows_both_values(client_for):
    person = CaseFactory(size=1).members.get()
    opened = _person_form(person)
    client_for("Staff").post(reverse("cases:person_edit", args=[person.pk]), {**opened, "phone": "+98 111"})
    response = client_for("Supervisor").post(
        reverse("cases:person_edit", args=[person.pk]), {**opened, "phone": "+98 222"}
    )
    assert response.status_code == 409
    person.refresh_from_db()
    assert person.phone == "+98 111"
    assert 'value="+98 222"' in response.text
    assert '<bdi dir="auto">+98 111</bdi>' in response.text


def _need(code, label):
    return SpecificNeed.objects.get_or_create(code=code, defaults={"label": label})[0]


@pytest.mark.parametrize("role", ["Staff", "Supervisor"])
def test_a_persons_specific_needs_are_recorded_on_their_edit_page_with_history(client_for, role):
    """Casework records a new need (a medical condition, an unaccompanied child) where the
    person is edited; the history row of the edit carries the needs as they now are."""
    medical, disability = _need("medical_condition", "Medical condition"), _need("disability", "Disability")
    person = CaseFactory(size=1).members.get()
    person.specific_needs.add(disability)
    url = reverse("cases:person_edit", args=[person.pk])
    client = client_for(role)
    assert client.get(url).context["form"]["specific_needs"].value() == [disability.pk]
    before = person.history.count()
    response = client.post(url, {**_person_form(person), "specific_needs": [medical.pk]}, follow=True)
    assert "Saved." in response.text
    person.refresh_from_db()
    assert list(person.specific_needs.values_list("code", flat=True)) == ["medical_condition"]
    assert person.version == 1
    record = person.history.first()
    assert [link.specificneed.code for link in record.specific_needs.all()] == ["medical_condition"]
    assert person.history.count() == before + 1  # this edit, once


def test_an_edit_of_other_details_keeps_the_needs_in_its_history_row(staff):
    person = CaseFactory(size=1).members.get()
    person.specific_needs.add(_need("disability", "Disability"))
    person_update(person, actor=staff, version=person.version, changes={"phone": "+98 1"})
    assert [link.specificneed.code for link in person.history.first().specific_needs.all()] == ["disability"]
    assert list(person.specific_needs.values_list("code", flat=True)) == ["disability"]


def test_needs_changed_on_a_stale_page_are_refused_with_both_values(client_for):
    disability = _need("disability", "Disability")
    person = CaseFactory(size=1).members.get()
    opened = _person_form(person)
    client_for("Staff").post(reverse("cases:person_edit", args=[person.pk]), {**opened, "phone": "+98 111"})
    response = client_for("Supervisor").post(
        reverse("cases:person_edit", args=[person.pk]), {**opened, "specific_needs": [disability.pk]}
    )
    assert response.status_code == 409
    assert not person.specific_needs.exists()
    rows = {row.label: row for row in response.context["conflict"]}
    assert (rows["Specific needs"].yours, rows["Specific needs"].saved) == ("Disability", "")


def test_needs_are_neither_shown_nor_saved_without_the_permission_to_see_them(client):
    """A user who may edit persons but not see their needs (no role has that today)."""
    editor = UserFactory(username="editor")
    editor.user_permissions.add(*Permission.objects.filter(codename__in=["view_person", "change_person"]))
    person = CaseFactory(size=1).members.get()
    client.force_login(editor)
    page = client.get(reverse("cases:person_edit", args=[person.pk]))
    assert "specific_needs" not in page.context["form"].fields
    with pytest.raises(PermissionDenied):
        person_update(person, actor=editor, version=0, changes={"specific_needs": []})


def test_person_update_refuses_a_stale_version(staff):
    person = CaseFactory(size=1).members.get()
    person_update(person, actor=staff, version=0, changes={"phone": "1"})
    with pytest.raises(EditConflict):
        person_update(person, actor=staff, version=0, changes={"phone": "2"})
    assert Person.objects.get().phone == "1"


def test_person_update_edits_no_relationship_or_residence(staff):
    person = CaseFactory(size=1).members.get()
    with pytest.raises(ValueError):
        person_update(person, actor=staff, version=0, changes={"residence_status": "deceased"})


@pytest.mark.parametrize("edits", [0, 30])
def test_the_edit_pages_cost_a_fixed_number_of_queries(client_for, staff, django_assert_num_queries, edits):
    case = CaseFactory(size=1)
    person = case.members.get()
    for version in range(edits):
        case_update(case, actor=staff, version=version, changes={"notes": str(version)})
        person_update(person, actor=staff, version=version, changes={"phone": str(version)})
    client = client_for("Staff")
    # session, user, permissions with groups and sites, the case with its site,
    # users to assign, the access-log row
    with django_assert_num_queries(6):
        assert client.get(reverse("cases:edit", args=[case.pk])).status_code == 200
    # session, user, permissions with groups and sites, the person with their case,
    # their needs, the needs to choose from, the access-log row
    with django_assert_num_queries(7):
        assert client.get(reverse("cases:person_edit", args=[person.pk])).status_code == 200
