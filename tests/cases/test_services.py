import datetime

import pytest
from django.utils import timezone

from cases.models import CaseStatus, IncidentEffect, IncidentKind, InterviewOutcome, ResidenceStatus
from cases.services import incident_record, interview_record_outcome, interview_schedule
from cases.workflow import TransitionRefused
from tests.factories import CaseFactory


@pytest.fixture
def booked(staff):
    """An interview booked for an hour ago: its outcome can be recorded."""
    case = CaseFactory(size=2)
    interview = interview_schedule(
        case, actor=staff, scheduled_at=timezone.now() - datetime.timedelta(hours=1), place="Room 1"
    )
    return case, interview


@pytest.mark.django_db
@pytest.mark.parametrize("outcome", [InterviewOutcome.ATTENDED, InterviewOutcome.NO_SHOW, InterviewOutcome.REFUSED])
def test_what_happened_at_an_interview_still_to_come_is_refused(staff, outcome):
    case = CaseFactory(size=2)
    interview = interview_schedule(
        case, actor=staff, scheduled_at=timezone.now() + datetime.timedelta(days=1), place="Room 1"
    )
    with pytest.raises(TransitionRefused, match="cannot have been .* yet. Reschedule or cancel it instead"):
        interview_record_outcome(interview, actor=staff, outcome=outcome)
    interview.refresh_from_db()
    case.refresh_from_db()
    assert (interview.outcome, case.status) == (InterviewOutcome.PENDING, CaseStatus.INTERVIEW_SCHEDULED)


@pytest.mark.django_db
@pytest.mark.parametrize("outcome", [InterviewOutcome.CANCELLED, InterviewOutcome.RESCHEDULED])
def test_an_interview_still_to_come_can_be_cancelled_or_rescheduled(staff, outcome):
    case = CaseFactory(size=2)
    interview = interview_schedule(
        case, actor=staff, scheduled_at=timezone.now() + datetime.timedelta(days=1), place="Room 1"
    )
    interview_record_outcome(interview, actor=staff, outcome=outcome)
    interview.refresh_from_db()
    assert interview.outcome == outcome


@pytest.mark.django_db
def test_booking_an_interview_schedules_the_case(booked):
    case, _ = booked
    case.refresh_from_db()
    assert case.status == CaseStatus.INTERVIEW_SCHEDULED
    assert case.status_changes.get().reason.startswith("Interview booked for")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (InterviewOutcome.ATTENDED, CaseStatus.INTERVIEWED),
        (InterviewOutcome.NO_SHOW, CaseStatus.REGISTERED),
        (InterviewOutcome.REFUSED, CaseStatus.DECLINED_PARTICIPATION),
        (InterviewOutcome.CANCELLED, CaseStatus.REGISTERED),
    ],
)
def test_an_interview_outcome_moves_the_case(booked, staff, outcome, status):
    case, interview = booked
    interview_record_outcome(interview, actor=staff, outcome=outcome)
    case.refresh_from_db()
    assert case.status == status


@pytest.mark.django_db
def test_an_outcome_cannot_be_recorded_twice(booked, staff):
    _, interview = booked
    interview_record_outcome(interview, actor=staff, outcome=InterviewOutcome.ATTENDED)
    with pytest.raises(TransitionRefused, match="already recorded"):
        interview_record_outcome(interview, actor=staff, outcome=InterviewOutcome.NO_SHOW)


@pytest.mark.django_db
def test_a_person_killed_in_an_incident_is_deceased_and_the_case_needs_review(staff):
    case = CaseFactory(size=3)
    killed, injured, _ = case.members.order_by("pk")
    incident_record(
        actor=staff,
        site=case.site,
        kind=IncidentKind.ATTACK,
        occurred_at=timezone.now(),
        summary="Rocket attack",
        affected=[(killed, IncidentEffect.KILLED), (injured, IncidentEffect.INJURED)],
    )
    killed.refresh_from_db()
    injured.refresh_from_db()
    case.refresh_from_db()
    assert killed.residence_status == ResidenceStatus.DECEASED
    assert injured.residence_status == ResidenceStatus.PRESENT
    assert case.needs_review
    assert killed.history.first().history_change_reason == "Incident: Rocket attack"


@pytest.mark.django_db
def test_an_incident_affecting_several_members_flags_their_case_once(staff):
    case = CaseFactory(size=3)
    before = case.history.count()
    incident_record(
        actor=staff,
        site=case.site,
        kind=IncidentKind.ATTACK,
        occurred_at=timezone.now(),
        summary="Attack",
        affected=[(person, IncidentEffect.INJURED) for person in case.members.all()],
    )
    case.refresh_from_db()
    assert (case.needs_review, case.version) == (True, 1)
    assert case.history.count() == before + 1
