import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from cases.models import CaseStatus, CaseStatusChange, Interview, InterviewKind, InterviewOutcome
from cases.services import interview_record_outcome, interview_schedule
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db

TOMORROW = timezone.localdate() + datetime.timedelta(days=1)


def _book(client, case, **overrides):
    data = {"date": TOMORROW.isoformat(), "time": "09:30", "place": "Container 4", "kind": "protection"}
    data.update(overrides)
    return client.post(reverse("cases:interview_schedule", args=[case.pk]), data, follow=True)


def _record(client, interview, outcome, notes=""):
    return client.post(
        reverse("cases:interview_outcome", args=[interview.pk]), {"outcome": outcome, "notes": notes}, follow=True
    )


@pytest.mark.parametrize("role", ["Staff", "Supervisor", "Administrator"])
def test_every_role_books_an_interview_and_the_case_is_scheduled(client_for, user_for, role):
    case = CaseFactory(size=2)
    interviewer = user_for("Supervisor")
    response = _book(client_for(role), case, interviewer=interviewer.pk, kind=InterviewKind.RESETTLEMENT)
    interview = case.interviews.get()
    assert timezone.localtime(interview.scheduled_at).replace(tzinfo=None) == datetime.datetime.combine(
        TOMORROW, datetime.time(9, 30)
    )
    assert (interview.place, interview.interviewer, interview.kind) == ("Container 4", interviewer, "resettlement")
    case.refresh_from_db()
    assert case.status == CaseStatus.INTERVIEW_SCHEDULED
    assert f"Interview booked for {TOMORROW.isoformat()} 09:30." in response.text
    assert "Container 4" in response.text


def test_an_anonymous_visitor_cannot_book(client):
    case = CaseFactory(size=1)
    response = client.post(reverse("cases:interview_schedule", args=[case.pk]), {})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not Interview.objects.exists()


def test_a_user_without_a_role_cannot_book(client, nobody):
    client.force_login(nobody)
    case = CaseFactory(size=1)
    assert _book(client, case).status_code == 403
    assert not Interview.objects.exists()


def test_booking_needs_a_date_time_and_place_and_keeps_the_input(client_for):
    case = CaseFactory(size=1)
    response = _book(client_for("Staff"), case, date="", place="Tent 9")
    assert response.status_code == 200
    assert "This field is required." in response.text
    assert 'value="Tent 9"' in response.text
    assert not Interview.objects.exists()
    case.refresh_from_db()
    assert case.status == CaseStatus.REGISTERED


def test_a_case_that_cannot_be_scheduled_is_not_offered_a_booking(client_for):
    case = CaseFactory(size=1, status=CaseStatus.ELIGIBLE)
    assert "Book an interview" not in client_for("Staff").get(case.get_absolute_url()).text


def test_a_booking_the_workflow_refuses_writes_nothing_and_says_why(client_for):
    case = CaseFactory(size=1, status=CaseStatus.ELIGIBLE)
    response = _book(client_for("Staff"), case)
    assert "The interview was not booked: A case cannot move from Eligible to Interview scheduled." in response.text
    assert not Interview.objects.exists()
    assert not CaseStatusChange.objects.exists()


def test_a_second_interview_for_a_scheduled_case_keeps_its_status(client_for, staff):
    case = CaseFactory(size=1)
    interview_schedule(case, actor=staff, scheduled_at=timezone.now(), place="Room 1")
    _book(client_for("Staff"), case)
    case.refresh_from_db()
    assert case.interviews.count() == 2
    assert case.status == CaseStatus.INTERVIEW_SCHEDULED
    assert case.status_changes.count() == 1


@pytest.fixture
def booked(staff):
    case = CaseFactory(size=2)
    return interview_schedule(case, actor=staff, scheduled_at=timezone.now(), place="Room 1")


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (InterviewOutcome.ATTENDED, CaseStatus.INTERVIEWED),
        (InterviewOutcome.NO_SHOW, CaseStatus.REGISTERED),
        (InterviewOutcome.REFUSED, CaseStatus.DECLINED_PARTICIPATION),
        (InterviewOutcome.CANCELLED, CaseStatus.REGISTERED),
        (InterviewOutcome.RESCHEDULED, CaseStatus.INTERVIEW_SCHEDULED),
    ],
)
def test_recording_an_outcome_moves_the_case_as_the_workflow_says(client_for, booked, outcome, status):
    response = _record(client_for("Staff"), booked, outcome, notes="Came with an interpreter")
    booked.refresh_from_db()
    assert booked.outcome == outcome
    assert booked.notes == "Came with an interpreter"
    booked.case.refresh_from_db()
    assert booked.case.status == status
    assert "Interview outcome recorded." in response.text


def test_a_pending_interview_in_the_past_is_marked_overdue(client_for, staff):
    case = CaseFactory(size=1)
    interview_schedule(case, actor=staff, scheduled_at=timezone.now() - datetime.timedelta(hours=2), place="Room")
    interview_schedule(case, actor=staff, scheduled_at=timezone.now() + datetime.timedelta(days=2), place="Room")
    assert client_for("Staff").get(case.get_absolute_url()).text.count(">overdue</span>") == 1


def test_a_rescheduled_interview_invites_booking_the_new_time(client_for, booked):
    response = _record(client_for("Staff"), booked, InterviewOutcome.RESCHEDULED)
    assert "Book the new date and time below." in response.text
    assert "Book an interview" in response.text


def test_the_page_offers_every_outcome_but_pending(client_for, booked):
    text = client_for("Staff").get(booked.case.get_absolute_url()).text
    assert "Record outcome" in text
    for outcome in InterviewOutcome:
        assert (f'<option value="{outcome.value}">' in text) == (outcome != InterviewOutcome.PENDING)


def test_an_outcome_already_recorded_is_refused(client_for, booked, staff):
    interview_record_outcome(booked, actor=staff, outcome=InterviewOutcome.ATTENDED)
    response = _record(client_for("Staff"), booked, InterviewOutcome.NO_SHOW)
    booked.refresh_from_db()
    assert booked.outcome == InterviewOutcome.ATTENDED
    assert "This interview&#x27;s outcome is already recorded." in response.text


def test_no_outcome_is_chosen_beforehand_and_none_chosen_is_refused(client_for, booked):
    page = client_for("Staff").get(reverse("cases:detail", args=[booked.case_id])).text
    assert re.search(
        rf'<select name="outcome" id="outcome-{booked.pk}" required>\s*<option value="">— choose —</option>', page
    )
    response = _record(client_for("Staff"), booked, "")
    booked.refresh_from_db()
    assert booked.outcome == InterviewOutcome.PENDING
    assert "Choose an outcome." in response.text


def test_attendance_at_an_interview_still_to_come_is_refused_on_the_page(client_for, staff):
    interview = interview_schedule(
        CaseFactory(size=1), actor=staff, scheduled_at=timezone.now() + datetime.timedelta(days=2), place="Room 1"
    )
    response = _record(client_for("Staff"), interview, InterviewOutcome.ATTENDED)
    interview.refresh_from_db()
    assert interview.outcome == InterviewOutcome.PENDING
    assert "cannot have been attended yet. Reschedule or cancel it instead." in response.text


def test_pending_is_not_an_outcome(client_for, booked):
    response = _record(client_for("Staff"), booked, InterviewOutcome.PENDING)
    booked.refresh_from_db()
    assert booked.outcome == InterviewOutcome.PENDING
    assert "Choose an outcome." in response.text


def test_a_user_without_a_role_cannot_record_an_outcome(client, nobody, booked):
    client.force_login(nobody)
    assert _record(client, booked, InterviewOutcome.ATTENDED).status_code == 403
    booked.refresh_from_db()
    assert booked.outcome == InterviewOutcome.PENDING


@pytest.mark.parametrize("name", ["cases:interview_schedule", "cases:interview_outcome"])
def test_interview_actions_are_posts(client_for, booked, name):
    pk = booked.case.pk if name == "cases:interview_schedule" else booked.pk
    assert client_for("Staff").get(reverse(name, args=[pk])).status_code == 405
