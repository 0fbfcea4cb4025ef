import datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from cases.models import (
    CaseStatus,
    CaseStatusChange,
    IncidentEffect,
    IncidentKind,
    Person,
    Relationship,
    SpecificNeed,
)
from cases.services import case_transition, case_update, incident_record, interview_schedule
from cases.workflow import manual_targets
from offers.services import offer_nominate
from tests.factories import CaseFactory, OfferFactory, PersonFactory, UserFactory

pytestmark = pytest.mark.django_db


def _page(client, case):
    return client.get(reverse("cases:detail", args=[case.pk]))


def test_the_case_url_is_the_case_page():
    case = CaseFactory()
    assert case.get_absolute_url() == f"/cases/{case.pk}/"


@pytest.mark.parametrize(("role", "status"), [("Staff", 200), ("Supervisor", 200), ("Administrator", 200)])
def test_every_role_sees_the_case_page(client_for, role, status):
    case = CaseFactory(size=2)
    response = _page(client_for(role), case)
    assert response.status_code == status
    assert case.case_no in response.text


def test_an_anonymous_visitor_is_sent_to_log_in(client):
    case = CaseFactory()
    response = _page(client, case)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_user_without_a_role_is_refused(client, nobody):
    client.force_login(nobody)
    assert _page(client, CaseFactory()).status_code == 403


def test_an_unknown_case_is_not_found(client_for):
    assert client_for("Staff").get(reverse("cases:detail", args=[999999])).status_code == 404


def test_it_lists_members_with_relationship_sex_age_and_year_only_births(client_for):
    case = CaseFactory(size=2)
    child = case.members.get(relationship=Relationship.CHILD)
    response = _page(client_for("Staff"), case)
    text = response.text
    assert "Principal applicant" in text
    assert "Child" in text
    assert "1980-05-17" in text  # the PA's full date of birth
    assert f'<td class="nowrap">{child.date_of_birth_display} ' in text  # the child's year alone
    assert child.date_of_birth_display == "2015"
    assert "(year only)" in text
    assert f'<td class="num">{child.age}</td>' in text


def test_native_names_are_isolated_for_right_to_left_display(client_for):
    case = CaseFactory(size=1)
    assert '<bdi dir="auto">محمد حسینی</bdi>' in _page(client_for("Staff"), case).text


def test_the_principal_applicant_is_listed_first(client_for):
    case = CaseFactory()
    PersonFactory(case=case, relationship=Relationship.CHILD, family_name="Aaronson", birth_year=2010)
    PersonFactory(case=case, relationship=Relationship.PRINCIPAL_APPLICANT, family_name="Zand", birth_year=1990)
    text = _page(client_for("Staff"), case).text
    assert text.index("ZAND") < text.index("AARONSON")


def test_specific_needs_show_to_roles_allowed_to_see_them(client_for):
    case = CaseFactory(size=1)
    case.members.get().specific_needs.add(SpecificNeed.objects.get(code="disability"))
    assert "Disability" in _page(client_for("Staff"), case).text


def test_specific_needs_are_hidden_from_users_without_the_permission(client, roles):
    case = CaseFactory(size=1)
    case.members.get().specific_needs.add(SpecificNeed.objects.get(code="disability"))
    reader = UserFactory(username="reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_case"))
    client.force_login(reader)
    response = _page(client, case)
    assert response.status_code == 200
    assert "Disability" not in response.text
    assert "Specific needs" not in response.text


def test_the_timeline_shows_who_when_from_to_and_why(client_for, staff):
    case = CaseFactory(size=1)
    case_transition(case, to=CaseStatus.ON_HOLD, actor=staff, reason="Family asked for time")
    text = _page(client_for("Staff"), case).text
    change = case.status_changes.get()
    assert "Family asked for time" in text
    assert "staff-test" in text
    assert timezone.localtime(change.changed_at).strftime("%Y-%m-%d %H:%M") in text
    assert '<span class="status status-registered">Registered</span> → ' in text


def test_it_shows_interviews_nominations_and_incidents(client_for, staff, supervisor):
    case = CaseFactory(size=2, status=CaseStatus.ELIGIBLE)
    offer = OfferFactory(reference="OFFER-CANADA", country="CA")
    offer_nominate(offer, case, actor=supervisor, reason="Fits the offer")
    interview_schedule(
        CaseFactory(size=1), actor=staff, scheduled_at=timezone.now(), place="Elsewhere"
    )  # another case's interview stays off this page
    member = case.members.first()
    incident_record(
        actor=staff,
        site=case.site,
        kind=IncidentKind.MEDICAL,
        occurred_at=timezone.now(),
        summary="Heat stroke",
        affected=[(member, IncidentEffect.INJURED)],
    )
    text = _page(client_for("Staff"), case).text
    assert "OFFER-CANADA" in text
    assert "Canada" in text
    assert "Heat stroke" in text
    assert "Injured" in text
    assert "Elsewhere" not in text


def test_the_change_history_says_what_changed_who_and_why(client_for, staff, supervisor):
    case = CaseFactory(size=1)
    case_update(case, actor=supervisor, version=0, changes={"assigned_officer": staff}, reason="Staff covers block A")
    text = _page(client_for("Staff"), case).text
    assert "Change history" in text
    assert "<strong>Assigned officer</strong>: " in text
    assert '<span class="new">staff-test</span>' in text
    assert "Staff covers block A" in text
    assert "supervisor-test" in text


def test_status_changes_show_in_the_timeline_not_twice_in_the_history(client_for, staff):
    case = CaseFactory(size=1)
    case_transition(case, to=CaseStatus.INTERVIEW_SCHEDULED, actor=staff, reason="Booked by phone")
    response = _page(client_for("Staff"), case)
    assert [entry.created for entry in response.context["detail"].history] == [True]
    assert "Booked by phone" in response.text


def _busy_case(size: int, changes: int, actor, supervisor):
    """A case with members, needs, moves, interviews, an incident and a nomination."""
    case = CaseFactory(size=size)
    needs = list(SpecificNeed.objects.all()[:2])
    for person in Person.objects.filter(case=case):
        person.specific_needs.set(needs)
    for _ in range(changes):
        case_transition(case, to=CaseStatus.ON_HOLD, actor=actor, reason="Hold")
        case_transition(case, to=CaseStatus.REGISTERED, actor=actor, reason="Back")
        interview_schedule(case, actor=actor, scheduled_at=timezone.now(), place="Room", interviewer=actor)
        case_transition(case, to=CaseStatus.REGISTERED, actor=actor, reason="No show")
    incident_record(
        actor=actor,
        site=case.site,
        kind=IncidentKind.OTHER,
        occurred_at=timezone.now(),
        summary="Something",
        affected=[(person, IncidentEffect.AFFECTED) for person in case.members.all()],
    )
    interview_schedule(case, actor=actor, scheduled_at=timezone.now(), place="Room", interviewer=actor)
    case_transition(case, to=CaseStatus.INTERVIEWED, actor=actor, reason="Seen")
    case_transition(case, to=CaseStatus.ELIGIBLE, actor=actor, reason="Needs confirmed")
    offer_nominate(OfferFactory(places=size), case, actor=supervisor)
    return case


@pytest.mark.parametrize(("size", "changes"), [(1, 1), (12, 20)])
def test_the_page_costs_the_same_queries_for_a_small_or_a_large_case(
    client_for, staff, supervisor, django_assert_num_queries, size, changes
):
    case = _busy_case(size, changes, staff, supervisor)
    client = client_for("Staff")
    # session, user, permissions with groups and sites, the case with site and
    # officer, members, their specific needs, status changes, interviews with their
    # interviewer, nominations, their offers, incidents, history, documents, site
    # transfers, the access-log row
    with django_assert_num_queries(15):
        response = _page(client, case)
    assert response.status_code == 200


def test_the_moves_offered_are_exactly_the_workflows_manual_targets(client_for, staff):
    case = CaseFactory(size=1, status=CaseStatus.INTERVIEWED)
    response = _page(client_for("Staff"), case)
    offered = {t.value for t in response.context["targets"]}
    expected = manual_targets(CaseStatus.INTERVIEWED, permissions=staff.get_all_permissions())
    assert offered == {t.value for t in expected} == {"eligible", "not_eligible", "on_hold", "closed"}
    for target in CaseStatus:
        button = f'name="to" value="{target.value}"'
        assert (button in response.text) == (target in expected), target


def test_a_nomination_driven_move_is_not_offered(client_for):
    case = CaseFactory(size=1, status=CaseStatus.ELIGIBLE)
    assert 'value="nominated"' not in _page(client_for("Staff"), case).text


def test_only_administrators_are_offered_to_reopen_a_closed_case(client_for):
    case = CaseFactory(size=1, status=CaseStatus.CLOSED)
    assert 'name="to" value="registered"' not in _page(client_for("Staff"), case).text
    assert 'name="to" value="registered"' not in _page(client_for("Supervisor"), case).text
    assert 'name="to" value="registered"' in _page(client_for("Administrator"), case).text


def _move(client, case, to, reason="Checked with the family", seen=None):
    return client.post(
        reverse("cases:transition", args=[case.pk]),
        {"to": to, "reason": reason, "seen": seen or case.status},
        follow=True,
    )


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (CaseStatus.REGISTERED, CaseStatus.DECLINED_PARTICIPATION),
        (CaseStatus.INTERVIEWED, CaseStatus.ELIGIBLE),
        (CaseStatus.INTERVIEWED, CaseStatus.NOT_ELIGIBLE),
        (CaseStatus.ELIGIBLE, CaseStatus.ON_HOLD),
        (CaseStatus.NOT_ELIGIBLE, CaseStatus.CLOSED),
    ],
)
def test_staff_move_a_case_with_a_reason_and_see_it_in_the_timeline(client_for, start, to):
    case = CaseFactory(size=1, status=start)
    response = _move(client_for("Staff"), case, to)
    case.refresh_from_db()
    assert case.status == to
    change = case.status_changes.get()
    assert (change.from_status, change.to_status, change.reason) == (start, to, "Checked with the family")
    assert change.actor.username == "staff-test"
    assert f"The case is now {to.label}." in response.text
    assert "Checked with the family" in response.text


@pytest.mark.parametrize("role", ["Staff", "Supervisor", "Administrator"])
def test_every_move_offered_is_accepted(client_for, role):
    client = client_for(role)
    for start in CaseStatus:
        case = CaseFactory(size=1, status=start)
        for target in _page(client, case).context["targets"]:
            moved = CaseFactory(size=1, status=start)
            _move(client, moved, target)
            moved.refresh_from_db()
            assert moved.status == target, (start, target)


def test_a_refused_move_shows_why_and_writes_nothing(client_for):
    case = CaseFactory(size=1, status=CaseStatus.REGISTERED)
    response = _move(client_for("Staff"), case, CaseStatus.RELOCATED)
    case.refresh_from_db()
    assert case.status == CaseStatus.REGISTERED
    assert not CaseStatusChange.objects.exists()
    assert "A case cannot move from Registered to Relocated." in response.text


def test_reopening_is_refused_for_staff_even_when_posted(client_for):
    case = CaseFactory(size=1, status=CaseStatus.CLOSED)
    response = _move(client_for("Staff"), case, CaseStatus.REGISTERED)
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED
    assert "Only administrators can reopen a closed case." in response.text


def test_a_move_without_a_reason_is_refused_with_the_field_marked(client_for):
    case = CaseFactory(size=1, status=CaseStatus.INTERVIEWED)
    response = _move(client_for("Staff"), case, CaseStatus.ELIGIBLE, reason="   ")
    case.refresh_from_db()
    assert case.status == CaseStatus.INTERVIEWED
    assert not CaseStatusChange.objects.exists()
    assert "Give a reason for the change." in response.text


def test_a_move_from_a_status_the_case_has_left_is_refused(client_for, staff):
    case = CaseFactory(size=1, status=CaseStatus.INTERVIEWED)
    case_transition(case, to=CaseStatus.ON_HOLD, actor=staff, reason="Someone else")
    # The page showed "interviewed"; closing is still legal from on_hold, but not what was seen.
    response = _move(client_for("Staff"), case, CaseStatus.CLOSED, seen=CaseStatus.INTERVIEWED)
    case.refresh_from_db()
    assert case.status == CaseStatus.ON_HOLD
    assert "Someone else moved this case to On hold in the meantime" in response.text


def test_moving_a_case_is_a_post(client_for):
    case = CaseFactory(size=1)
    assert client_for("Staff").get(reverse("cases:transition", args=[case.pk])).status_code == 405


def test_a_user_without_a_role_cannot_move_a_case(client, nobody):
    client.force_login(nobody)
    case = CaseFactory(size=1, status=CaseStatus.INTERVIEWED)
    response = client.post(
        reverse("cases:transition", args=[case.pk]), {"to": "eligible", "reason": "x", "seen": "interviewed"}
    )
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.status == CaseStatus.INTERVIEWED


def test_an_interview_in_the_past_is_shown_with_its_date(client_for, staff):
    case = CaseFactory(size=1)
    when = timezone.make_aware(datetime.datetime(2026, 3, 4, 9, 30))
    interview_schedule(case, actor=staff, scheduled_at=when, place="Container 7")
    text = _page(client_for("Staff"), case).text
    assert "2026-03-04 09:30" in text
    assert "Container 7" in text


@pytest.mark.parametrize("size", [1, 12])
def test_a_case_open_for_booking_costs_the_same_queries_at_any_size(client_for, staff, django_assert_num_queries, size):
    case = CaseFactory(size=size)
    for person in case.members.all():
        person.specific_needs.set(SpecificNeed.objects.all()[:2])
    interview_schedule(case, actor=staff, scheduled_at=timezone.now(), place="Room", interviewer=staff)
    client = client_for("Staff")
    # session, user, permissions with groups and sites, the case, members, their
    # specific needs, status changes, interviews with their interviewer, nominations
    # (none, so no offers), incidents, history, documents, site transfers, interviewers
    # for the booking form, the access-log row
    with django_assert_num_queries(15):
        response = _page(client, case)
    assert "Book an interview" in response.text
