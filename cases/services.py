"""Writes on the roster side: every one runs in a transaction and leaves a trail."""

import datetime
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history

from cases import workflow
from cases.models import (
    Case,
    CaseStatus,
    CaseStatusChange,
    Incident,
    IncidentEffect,
    IncidentPerson,
    Interview,
    InterviewKind,
    InterviewOutcome,
    Person,
    ResidenceStatus,
    Site,
)
from cases.workflow import TransitionRefused

# The acting user (request.user in views). Typed loosely because django-stubs types
# request.user as possibly anonymous; the services check is_active and permissions.
User = Any

# Sent inside the transaction of every status change, so that other apps (offers)
# can keep their records in step without cases importing them.
case_status_changed = Signal()  # sender=Case, case, change, by_nomination


def _permissions(actor: User) -> set[str]:
    if not actor.is_active:
        return set()
    return set(actor.get_all_permissions())


def case_transition(
    case: Case,
    *,
    to: str,
    actor: User,
    reason: str,
    by_nomination: bool = False,
) -> CaseStatusChange:
    """Move `case` to status `to`, or raise TransitionRefused saying why.

    Locks the case row so two users cannot move the same case at once; the check
    runs against the locked, current status, not the one the caller saw.
    """
    reason = (reason or "").strip()
    if not reason:
        raise TransitionRefused(_("Give a reason for the change."))
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        workflow.check(
            locked.status,
            to,
            held_from=locked.status_before_hold,
            by_nomination=by_nomination,
            permissions=_permissions(actor),
        )
        now = timezone.now()
        change = CaseStatusChange.objects.create(
            case=locked,
            from_status=locked.status,
            to_status=to,
            actor=actor,
            reason=reason,
            changed_at=now,
        )
        locked.status_before_hold = locked.status if to == CaseStatus.ON_HOLD else ""
        locked.status = to
        locked.status_changed_at = now
        locked._change_reason = reason  # type: ignore[attr-defined]  # read by simple-history
        locked.save(update_fields=["status", "status_before_hold", "status_changed_at", "updated_at"])
        case_status_changed.send(sender=Case, case=locked, change=change, by_nomination=by_nomination)
    case.status = locked.status
    case.status_before_hold = locked.status_before_hold
    case.status_changed_at = locked.status_changed_at
    return change


def interview_schedule(
    case: Case,
    *,
    actor: User,
    scheduled_at: datetime.datetime,
    place: str,
    interviewer: User | None = None,
    kind: str = InterviewKind.PROTECTION,
) -> Interview:
    """Book an interview; a case not yet scheduled moves to interview_scheduled."""
    with transaction.atomic():
        interview = Interview.objects.create(
            case=case, kind=kind, scheduled_at=scheduled_at, place=place, interviewer=interviewer
        )
        if case.status != CaseStatus.INTERVIEW_SCHEDULED:
            case_transition(
                case,
                to=CaseStatus.INTERVIEW_SCHEDULED,
                actor=actor,
                reason=_("Interview booked for %(when)s at %(place)s.")
                % {"when": f"{scheduled_at:%Y-%m-%d %H:%M}", "place": place},
            )
    return interview


# What an interview's outcome does to its case (interview_scheduled → ...).
_OUTCOME_MOVES = {
    InterviewOutcome.ATTENDED: CaseStatus.INTERVIEWED,
    InterviewOutcome.NO_SHOW: CaseStatus.REGISTERED,
    InterviewOutcome.REFUSED: CaseStatus.DECLINED_PARTICIPATION,
    InterviewOutcome.CANCELLED: CaseStatus.REGISTERED,
}


def interview_record_outcome(interview: Interview, *, actor: User, outcome: str, notes: str = "") -> Interview:
    """Record what happened; the case moves on as the workflow says."""
    if outcome == InterviewOutcome.PENDING:
        raise TransitionRefused(_("Choose an outcome."))
    with transaction.atomic():
        locked = Interview.objects.select_for_update().get(pk=interview.pk)
        if locked.outcome != InterviewOutcome.PENDING:
            raise TransitionRefused(_("This interview's outcome is already recorded."))
        locked.outcome = outcome
        locked.outcome_recorded_at = timezone.now()
        if notes:
            locked.notes = notes
        locked.save()
        target = _OUTCOME_MOVES.get(InterviewOutcome(outcome))
        case = locked.case
        if target and case.status == CaseStatus.INTERVIEW_SCHEDULED:
            case_transition(
                case,
                to=target,
                actor=actor,
                reason=_("Interview outcome: %(outcome)s.") % {"outcome": InterviewOutcome(outcome).label},
            )
    return locked


def incident_record(
    *,
    actor: User,
    site: Site,
    kind: str,
    occurred_at: datetime.datetime,
    summary: str,
    description: str = "",
    affected: Iterable[tuple[Person, str]] = (),
) -> Incident:
    """Log an incident with the persons it affected, and apply what it did to them."""
    with transaction.atomic():
        incident = Incident.objects.create(
            site=site,
            kind=kind,
            occurred_at=occurred_at,
            summary=summary,
            description=description,
            reported_by=actor,
        )
        bulk_create_with_history(
            [IncidentPerson(incident=incident, person=person, effect=effect) for person, effect in affected],
            IncidentPerson,
            default_user=actor,
        )
        incident_apply_effects(incident)
    return incident


# What an incident does to a person's residence status.
_EFFECT_STATUS = {
    IncidentEffect.KILLED: ResidenceStatus.DECEASED,
    IncidentEffect.MISSING: ResidenceStatus.MISSING,
}
# Effects after which someone must look at the person's case again.
_EFFECTS_FOR_REVIEW = {IncidentEffect.KILLED, IncidentEffect.MISSING, IncidentEffect.INJURED}


def incident_apply_effects(incident: Incident) -> None:
    """A person killed becomes deceased, a missing one missing; their cases need review."""
    reason = _("Incident: %(summary)s") % {"summary": incident.summary}
    with transaction.atomic():
        for entry in incident.affected.select_related("person__case"):
            person = entry.person
            new_status = _EFFECT_STATUS.get(IncidentEffect(entry.effect))
            if new_status and person.residence_status != new_status:
                person.residence_status = new_status
                person._change_reason = reason  # type: ignore[attr-defined]
                person.save(update_fields=["residence_status", "updated_at"])
            case = person.case
            if entry.effect in _EFFECTS_FOR_REVIEW and not case.needs_review:
                case.needs_review = True
                case._change_reason = reason  # type: ignore[attr-defined]
                case.save(update_fields=["needs_review", "updated_at"])
