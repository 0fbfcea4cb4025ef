"""The case workflow: the one table of allowed status changes.

Every change of a case's status goes through cases.services.case_transition, which
checks this table. Nothing else decides what may follow what.
"""

from collections.abc import Iterable

from django.utils.translation import gettext_lazy as _

from cases.models import CaseStatus

S = CaseStatus

# DESIGN.md's workflow table. on_hold is special: it may return only to the status
# it was put on hold from (held on the case), or be closed.
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    S.REGISTERED: frozenset({S.INTERVIEW_SCHEDULED, S.DECLINED_PARTICIPATION, S.ON_HOLD, S.CLOSED}),
    S.INTERVIEW_SCHEDULED: frozenset({S.INTERVIEWED, S.REGISTERED, S.DECLINED_PARTICIPATION, S.ON_HOLD, S.CLOSED}),
    S.INTERVIEWED: frozenset({S.ELIGIBLE, S.NOT_ELIGIBLE, S.ON_HOLD, S.CLOSED}),
    S.ELIGIBLE: frozenset({S.NOMINATED, S.ON_HOLD, S.CLOSED}),
    S.NOT_ELIGIBLE: frozenset({S.INTERVIEW_SCHEDULED, S.CLOSED}),
    S.NOMINATED: frozenset({S.ACCEPTED, S.ELIGIBLE, S.ON_HOLD, S.CLOSED}),
    S.ACCEPTED: frozenset({S.DEPARTURE_SCHEDULED, S.ELIGIBLE, S.ON_HOLD, S.CLOSED}),
    S.DEPARTURE_SCHEDULED: frozenset({S.RELOCATED, S.ACCEPTED, S.ON_HOLD, S.CLOSED}),
    S.DECLINED_PARTICIPATION: frozenset({S.INTERVIEW_SCHEDULED, S.REGISTERED, S.CLOSED}),
    S.ON_HOLD: frozenset({S.CLOSED}),  # plus the status it was held from
    S.RELOCATED: frozenset(),
    S.CLOSED: frozenset({S.REGISTERED}),
}

# Changes that belong to the offers process (nominations and departures). They are
# made by the offers services, never offered as a manual move, so that a case is
# never "nominated" without a nomination behind it.
NOMINATION_DRIVEN: frozenset[tuple[CaseStatus, CaseStatus]] = frozenset(
    {
        (S.ELIGIBLE, S.NOMINATED),
        (S.NOMINATED, S.ACCEPTED),
        (S.NOMINATED, S.ELIGIBLE),
        (S.ACCEPTED, S.DEPARTURE_SCHEDULED),
        (S.ACCEPTED, S.ELIGIBLE),
        (S.DEPARTURE_SCHEDULED, S.RELOCATED),
        (S.DEPARTURE_SCHEDULED, S.ACCEPTED),
    }
)

# Reopening a closed case is for administrators only.
REOPEN = (S.CLOSED, S.REGISTERED)
REOPEN_PERMISSION = "cases.reopen_case"
TRANSITION_PERMISSION = "cases.transition_case"
ALL_PERMISSIONS = frozenset({TRANSITION_PERMISSION, REOPEN_PERMISSION})

FINAL = frozenset({S.RELOCATED})
# Statuses in which nobody has to act on a case any more: left out of "time in current
# status", the worklist's open cases and the dashboard's aging. A closed case can be
# reopened, but until then it waits for nothing.
ENDED = frozenset({S.RELOCATED, S.CLOSED})
# Statuses in which an offer counts a case's persons as they are (DESIGN.md's offer
# rules; a departure's manifest lists them): nobody joins the case then.
COUNTED_BY_AN_OFFER = frozenset({S.NOMINATED, S.ACCEPTED, S.DEPARTURE_SCHEDULED})
TAKES_NO_NEW_MEMBER = COUNTED_BY_AN_OFFER | ENDED


def takes_new_members(status: str, held_from: str = "") -> bool:
    """Whether a case in `status` (on hold from `held_from`) may have a member added: not
    while an offer counts its persons, nor once it ended; on hold, as the status it
    returns to."""
    if status == S.ON_HOLD:
        status = held_from
    return status not in TAKES_NO_NEW_MEMBER


class TransitionRefused(Exception):
    """A status change the workflow does not allow; the message says why."""


def allowed_targets(current: str, *, held_from: str = "") -> frozenset[CaseStatus]:
    """Every status the table allows after `current`."""
    status = CaseStatus(current)
    targets = set(TRANSITIONS[status])
    if status == S.ON_HOLD and held_from:
        targets.add(CaseStatus(held_from))
    return frozenset(targets)


def check(
    current: str,
    target: str,
    *,
    held_from: str = "",
    by_nomination: bool = False,
    permissions: Iterable[str] = (),
) -> None:
    """Raise TransitionRefused unless moving from current to target is allowed."""
    try:
        status, to = CaseStatus(current), CaseStatus(target)
    except ValueError as exc:
        raise TransitionRefused(_("Unknown status: %(status)s.") % {"status": target}) from exc
    granted = set(permissions)
    if status == to:
        raise TransitionRefused(_("The case is already %(status)s.") % {"status": status.label})
    if to not in allowed_targets(status, held_from=held_from):
        if status in FINAL:
            raise TransitionRefused(_("A %(status)s case cannot change status.") % {"status": status.label})
        raise TransitionRefused(
            _("A case cannot move from %(from)s to %(to)s.") % {"from": status.label, "to": to.label}
        )
    if TRANSITION_PERMISSION not in granted:
        raise TransitionRefused(_("You are not allowed to change a case's status."))
    if (status, to) == REOPEN and REOPEN_PERMISSION not in granted:
        raise TransitionRefused(_("Only administrators can reopen a closed case."))
    if (status, to) in NOMINATION_DRIVEN and not by_nomination:
        raise TransitionRefused(
            _("A move from %(from)s to %(to)s is made through the case's nomination.")
            % {"from": status.label, "to": to.label}
        )


def manual_targets(current: str, *, held_from: str = "", permissions: Iterable[str] = ()) -> list[CaseStatus]:
    """The moves a user may make by hand from `current`, in table order."""
    granted = set(permissions)
    result = []
    for to in CaseStatus:
        try:
            check(current, to, held_from=held_from, permissions=granted)
        except TransitionRefused:
            continue
        result.append(to)
    return result
