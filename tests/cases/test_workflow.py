"""The case workflow, checked against DESIGN.md's table: every move and every refusal."""

import pytest

from cases.models import Case, CaseStatus, CaseStatusChange
from cases.services import case_transition
from cases.workflow import COUNTED_BY_AN_OFFER, NOMINATION_DRIVEN, TRANSITIONS, TransitionRefused
from offers.models import LIVE_NOMINATION_STATUSES, NominationStatus
from tests.factories import CaseFactory

S = CaseStatus

# DESIGN.md's table, written out again on purpose: the code's table must match it.
DESIGN_TABLE = {
    "registered": {"interview_scheduled", "declined_participation", "on_hold", "closed"},
    "interview_scheduled": {"interviewed", "registered", "declined_participation", "on_hold", "closed"},
    "interviewed": {"eligible", "not_eligible", "on_hold", "closed"},
    "eligible": {"nominated", "on_hold", "closed"},
    "not_eligible": {"interview_scheduled", "closed"},
    "nominated": {"accepted", "eligible", "on_hold", "closed"},
    "accepted": {"departure_scheduled", "eligible", "on_hold", "closed"},
    "departure_scheduled": {"relocated", "accepted", "on_hold", "closed"},
    "declined_participation": {"interview_scheduled", "registered", "closed"},
    "on_hold": {"closed"},  # and the status it was held from
    "relocated": set(),
    "closed": {"registered"},
}

ALLOWED = [(a, b) for a, targets in DESIGN_TABLE.items() for b in sorted(targets)]
REFUSED = [(a, b) for a in DESIGN_TABLE for b in S.values if b not in DESIGN_TABLE[a] and a != "on_hold"]


def case_in(status: str, **kwargs) -> Case:
    return CaseFactory(status=status, **kwargs)


def test_the_code_table_is_the_design_table():
    assert {k.value: {t.value for t in v} for k, v in TRANSITIONS.items()} == DESIGN_TABLE


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_every_allowed_move_is_made_and_recorded(current, target, administrator):
    case = case_in(current)
    by_nomination = (S(current), S(target)) in NOMINATION_DRIVEN
    change = case_transition(
        case, to=target, actor=administrator, reason="Checked with the family", by_nomination=by_nomination
    )
    case.refresh_from_db()
    assert case.status == target
    assert (change.from_status, change.to_status, change.actor, change.reason) == (
        current,
        target,
        administrator,
        "Checked with the family",
    )
    assert case.history.first().history_change_reason == "Checked with the family"


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "target"), REFUSED)
def test_every_move_outside_the_table_is_refused_and_nothing_is_written(current, target, administrator):
    case = case_in(current)
    with pytest.raises(TransitionRefused) as refused:
        case_transition(case, to=target, actor=administrator, reason="Trying", by_nomination=True)
    assert str(refused.value)  # a message a person can read
    case.refresh_from_db()
    assert case.status == current
    assert not CaseStatusChange.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "target"), sorted(NOMINATION_DRIVEN))
def test_moves_that_belong_to_a_nomination_are_refused_by_hand(current, target, administrator):
    case = case_in(current)
    with pytest.raises(TransitionRefused, match="through the case's nomination"):
        case_transition(case, to=target, actor=administrator, reason="By hand")
    case.refresh_from_db()
    assert case.status == current


@pytest.mark.django_db
@pytest.mark.parametrize("held_from", ["registered", "interview_scheduled", "interviewed", "eligible", "nominated"])
def test_a_case_on_hold_returns_only_to_the_status_it_was_held_from(held_from, staff):
    case = case_in(held_from)
    case_transition(case, to=S.ON_HOLD, actor=staff, reason="Medical report awaited")
    for other in S.values:
        if other in (held_from, "on_hold", "closed"):
            continue
        with pytest.raises(TransitionRefused):
            case_transition(case, to=other, actor=staff, reason="Wrong way", by_nomination=True)
    case_transition(case, to=held_from, actor=staff, reason="Report received")
    case.refresh_from_db()
    assert case.status == held_from
    assert case.status_before_hold == ""


@pytest.mark.django_db
def test_a_case_on_hold_can_be_closed(staff):
    case = case_in(S.REGISTERED)
    case_transition(case, to=S.ON_HOLD, actor=staff, reason="Unreachable")
    case_transition(case, to=S.CLOSED, actor=staff, reason="Left the camp")
    assert Case.objects.get(pk=case.pk).status == S.CLOSED


@pytest.mark.django_db
def test_only_administrators_reopen_a_closed_case(staff, supervisor, administrator):
    case = case_in(S.CLOSED)
    for user in (staff, supervisor):
        with pytest.raises(TransitionRefused, match="Only administrators"):
            case_transition(case, to=S.REGISTERED, actor=user, reason="Reopen")
    case_transition(case, to=S.REGISTERED, actor=administrator, reason="Closed by mistake")
    assert Case.objects.get(pk=case.pk).status == S.REGISTERED


@pytest.mark.django_db
def test_a_relocated_case_is_final(administrator):
    case = case_in(S.RELOCATED)
    with pytest.raises(TransitionRefused, match="cannot change status"):
        case_transition(case, to=S.CLOSED, actor=administrator, reason="Tidy up")


@pytest.mark.django_db
def test_a_move_needs_a_reason(staff):
    case = case_in(S.REGISTERED)
    with pytest.raises(TransitionRefused, match="reason"):
        case_transition(case, to=S.CLOSED, actor=staff, reason="  ")
    assert not CaseStatusChange.objects.exists()


@pytest.mark.django_db
def test_a_user_without_a_role_cannot_move_a_case(nobody):
    case = case_in(S.REGISTERED)
    with pytest.raises(TransitionRefused, match="not allowed"):
        case_transition(case, to=S.CLOSED, actor=nobody, reason="Because")


@pytest.mark.django_db
def test_the_check_uses_the_current_status_not_the_callers_copy(staff):
    case = case_in(S.REGISTERED)
    stale = Case.objects.get(pk=case.pk)
    case_transition(case, to=S.CLOSED, actor=staff, reason="Left")
    # The stale copy still says registered; the service reads the locked row.
    with pytest.raises(TransitionRefused, match="Closed"):
        case_transition(stale, to=S.INTERVIEW_SCHEDULED, actor=staff, reason="Booking")


@pytest.mark.django_db
def test_a_long_reason_is_kept_whole_in_the_timeline_and_the_history(staff):
    case = case_in(S.REGISTERED)
    reason = "The family asked to pause the process while the father is in hospital. " * 8
    case_transition(case, to=S.ON_HOLD, actor=staff, reason=reason)
    assert case.status_changes.get().reason == reason.strip()
    assert case.history.first().history_change_reason == reason.strip()


def test_the_case_statuses_an_offer_counts_are_those_of_its_live_nominations_before_relocation():
    # Two enumerations of one rule: a live nomination holds places on its offer
    # (offers.models), and its case takes no new member meanwhile (cases.workflow).
    live = {status.value for status in LIVE_NOMINATION_STATUSES if status != NominationStatus.RELOCATED}
    assert live == {status.value for status in COUNTED_BY_AN_OFFER}
