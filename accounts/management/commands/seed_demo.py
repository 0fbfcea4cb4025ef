"""Load a realistic, deterministic demo: two sites, a roster, cases in every status,
offers, nominations, a departure done and an incident. Safe to run twice."""

import datetime
import os
import random
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from accounts.roles import ADMINISTRATOR, STAFF, SUPERVISOR
from cases import demo
from cases.models import (
    Case,
    CaseStatus,
    CaseStatusChange,
    IncidentEffect,
    IncidentKind,
    Interview,
    InterviewOutcome,
    Person,
    Site,
    SpecificNeed,
)
from cases.names import stored_keys
from cases.services import case_transition, incident_record, interview_record_outcome, interview_schedule
from offers.demo import load_offers

# Births are drawn against a fixed day so the roster is the same whenever it is made.
BIRTHS_AS_OF = datetime.date(2026, 1, 1)

DEMO_USERS = [
    ("admin", ADMINISTRATOR, "Amina", "Haddad"),
    ("supervisor", SUPERVISOR, "Jonas", "Berg"),
    ("staff", STAFF, "Lucia", "Moreno"),
]

# Where the demo's cases end up: (status, share of cases). Nominations, acceptances
# and departures are made through the offers services afterwards.
SPREAD = [
    (CaseStatus.REGISTERED, 14),
    (CaseStatus.INTERVIEW_SCHEDULED, 12),
    (CaseStatus.DECLINED_PARTICIPATION, 5),
    (CaseStatus.INTERVIEWED, 8),
    (CaseStatus.NOT_ELIGIBLE, 4),
    (CaseStatus.ELIGIBLE, 50),
    (CaseStatus.ON_HOLD, 4),
    (CaseStatus.CLOSED, 3),
]


class Command(BaseCommand):
    help = "Load deterministic demo data and the demo users admin, supervisor and staff."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--persons", type=int, default=3000, help="persons on the roster (default 3000)")
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument("--if-empty", action="store_true", help="load the roster only when no person exists yet")

    def handle(self, *args: Any, persons: int, seed: int, if_empty: bool, **options: Any) -> None:
        password, generated = _demo_password()
        users = _ensure_users(password)
        first_case = f"C{seed:02d}-00001"
        if Case.objects.filter(case_no=first_case).exists():
            self.stdout.write("Demo roster already loaded; nothing added.")
        elif if_empty and Person.objects.exists():
            self.stdout.write("The database already holds persons; demo roster not loaded.")
        else:
            started = timezone.now()
            with transaction.atomic():
                _load(persons=persons, seed=seed, users=users)
            seconds = (timezone.now() - started).total_seconds()
            self.stdout.write(
                self.style.SUCCESS(
                    f"Loaded {Person.objects.count()} persons in {Case.objects.count()} cases ({seconds:.1f} s)."
                )
            )
        self.stdout.write("Demo logins (one per role):")
        for username, role, *_ in DEMO_USERS:
            shown = password if password else "(unchanged: set DEMO_PASSWORD to reset it)"
            self.stdout.write(f"  {username:<11} {role:<14} password: {shown}")
        if generated:
            self.stdout.write("The password was generated; set DEMO_PASSWORD to choose one.")


def _demo_password() -> tuple[str, bool]:
    """DEMO_PASSWORD, else a new one when the demo users do not exist yet."""
    chosen = os.environ.get("DEMO_PASSWORD", "")
    if chosen:
        return chosen, False
    if get_user_model().objects.filter(username__in=[u for u, *_ in DEMO_USERS]).count() == len(DEMO_USERS):
        return "", False
    return secrets.token_urlsafe(12), True


def _ensure_users(password: str) -> dict[str, Any]:
    User = get_user_model()
    users = {}
    for username, role, first, last in DEMO_USERS:
        # The admin is the Administrators' (relocation.admin): only they get its flag.
        user, created = User.objects.get_or_create(
            username=username, defaults={"first_name": first, "last_name": last, "is_staff": role == ADMINISTRATOR}
        )
        if password:
            user.set_password(password)
            user.save()
        user.groups.set([Group.objects.get(name=role)])
        users[role] = User.objects.get(pk=user.pk)  # fresh: no cached permissions
    return users


def _load(*, persons: int, seed: int, users: dict[str, Any]) -> None:
    rng = random.Random(seed)
    staff, supervisor, admin = users[STAFF], users[SUPERVISOR], users[ADMINISTRATOR]
    former, current = _sites()
    rows = demo.roster(persons, seed, BIRTHS_AS_OF)
    cases = _roster(rows, current, staff, rng)
    now = timezone.now()

    shares = [share for _, share in SPREAD]
    targets = [rng.choices([s for s, _ in SPREAD], weights=shares)[0] for _ in cases]
    for case, target in zip(cases, targets, strict=True):
        _walk(case, target, staff=staff, admin=admin, rng=rng, now=now)
    _spread_history(cases, rng, now)

    load_offers(seed=seed, supervisor=supervisor, rng=rng)

    _incident(current, staff, rng, now)
    # The camp the residents were moved from stays on record, closed.
    former.is_active = False
    former.save()


def _sites() -> tuple[Site, Site]:
    former, _ = Site.objects.get_or_create(
        code="northern-camp", defaults={"name": "Northern Camp", "location": "Former camp, closed after the transfer"}
    )
    current, _ = Site.objects.get_or_create(
        code="riverside-camp", defaults={"name": "Riverside Camp", "location": "Temporary transit camp"}
    )
    return former, current


def _roster(rows: list[demo.DemoPerson], site: Site, staff: Any, rng: random.Random) -> list[Case]:
    """Create cases and persons in bulk (with their history rows)."""
    from simple_history.utils import bulk_create_with_history

    case_nos = list(dict.fromkeys(r.case_no for r in rows))
    bulk_create_with_history(
        [Case(case_no=no, site=site, assigned_officer=staff if rng.random() < 0.5 else None) for no in case_nos],
        Case,
        default_user=staff,
        default_change_reason="Demo roster",
    )
    by_no = {c.case_no: c for c in Case.objects.filter(case_no__in=case_nos)}
    bulk_create_with_history(
        [
            Person(
                registration_no=r.registration_no,
                case=by_no[r.case_no],
                relationship=r.relationship,
                family_name=r.family_name,
                given_name=r.given_name,
                native_name=r.native_name,
                **stored_keys(r.family_name, r.given_name, r.native_name),  # bulk_create skips save()
                sex=r.sex,
                birth_year=r.birth_year,
                birth_date=r.birth_date,
                nationality=r.nationality,
                site=site,
                phone=r.phone,
            )
            for r in rows
        ],
        Person,
        default_user=staff,
        default_change_reason="Demo roster",
    )
    needs = {n.code: n for n in SpecificNeed.objects.all()}
    person_ids = dict(
        Person.objects.filter(registration_no__in=[r.registration_no for r in rows]).values_list(
            "registration_no", "pk"
        )
    )
    Through = Person.specific_needs.through
    Through.objects.bulk_create(
        Through(person_id=person_ids[r.registration_no], specificneed_id=needs[code].pk)
        for r in rows
        for code in r.needs
    )
    return [by_no[no] for no in case_nos]


def _walk(case: Case, target: str, *, staff: Any, admin: Any, rng: random.Random, now: datetime.datetime) -> None:
    """Move one case towards `target` the way staff would, through the services."""

    def move(to: str, reason: str) -> None:
        case_transition(case, to=to, actor=staff, reason=reason)

    def interview(outcome: str | None, days: int) -> None:
        booked = interview_schedule(
            case,
            actor=staff,
            scheduled_at=(now + datetime.timedelta(days=days)).replace(hour=rng.choice([9, 10, 11, 14, 15]), minute=0),
            place=rng.choice(["Interview room 1", "Interview room 2", "Community centre"]),
            interviewer=staff,
        )
        if outcome:
            interview_record_outcome(booked, actor=staff, outcome=outcome)

    if target == CaseStatus.REGISTERED:
        if rng.random() < 0.35:  # a missed appointment, back on the list
            interview(InterviewOutcome.NO_SHOW, -rng.randint(5, 60))
        return
    if target == CaseStatus.CLOSED:
        move(CaseStatus.CLOSED, rng.choice(["Left the camp by other means", "Duplicate registration"]))
        return
    if target == CaseStatus.ON_HOLD:
        move(CaseStatus.ON_HOLD, "Awaiting medical report")
        return
    if target == CaseStatus.INTERVIEW_SCHEDULED:
        interview(None, rng.randint(-3, 21))  # some today or overdue
        return
    if target == CaseStatus.DECLINED_PARTICIPATION:
        interview(InterviewOutcome.REFUSED, -rng.randint(10, 90))
        return
    interview(InterviewOutcome.ATTENDED, -rng.randint(20, 150))
    if target == CaseStatus.INTERVIEWED:
        return
    if target == CaseStatus.NOT_ELIGIBLE:
        case.determination = "not_confirmed"
        case.save(update_fields=["determination"])
        move(CaseStatus.NOT_ELIGIBLE, "Protection needs not confirmed")
        return
    case.determination = "confirmed"
    case.save(update_fields=["determination"])
    move(CaseStatus.ELIGIBLE, "Protection needs confirmed")


def _spread_history(cases: list[Case], rng: random.Random, now: datetime.datetime) -> None:
    """Date each case's status changes over the past months, oldest first, so that
    'time in status' and aging look like a real camp rather than one afternoon."""
    changes: list[CaseStatusChange] = []
    updated: list[Case] = []
    by_case: dict[int, list[CaseStatusChange]] = {}
    for change in CaseStatusChange.objects.filter(case__in=cases).order_by("pk"):
        by_case.setdefault(change.case_id, []).append(change)
    for case in cases:
        steps = by_case.get(case.pk, [])
        when = now - datetime.timedelta(days=rng.randint(40, 240))
        for change in steps:
            when += datetime.timedelta(days=rng.randint(3, 30), hours=rng.randint(0, 8))
            change.changed_at = min(when, now - datetime.timedelta(hours=1))
            changes.append(change)
        if steps:
            case.status_changed_at = steps[-1].changed_at
            updated.append(case)
    CaseStatusChange.objects.bulk_update(changes, ["changed_at"], batch_size=500)
    Case.objects.bulk_update(updated, ["status_changed_at"], batch_size=500)
    # Interviews that already happened keep their dates; their outcome time follows.
    Interview.objects.filter(case__in=cases).exclude(outcome=InterviewOutcome.PENDING).update(
        outcome_recorded_at=now - datetime.timedelta(days=1)
    )


def _incident(site: Site, staff: Any, rng: random.Random, now: datetime.datetime) -> None:
    present = list(Person.objects.filter(site=site, residence_status="present").order_by("pk")[:400])
    killed, *injured = rng.sample(present, 4)
    incident_record(
        actor=staff,
        site=site,
        kind=IncidentKind.ATTACK,
        occurred_at=now - datetime.timedelta(days=45),
        summary="Rocket attack on the camp's eastern block",
        description="Several rockets hit the eastern block at night; one resident was killed and three injured.",
        affected=[(killed, IncidentEffect.KILLED)] + [(p, IncidentEffect.INJURED) for p in injured],
    )
