"""Small builders for the reports tests: interviews, incidents and departures as rows."""

import datetime

from django.utils import timezone

from cases.models import Case, Incident, IncidentPerson, Interview, Person
from offers.models import Departure, DeparturePerson, DepartureStatus, Offer
from tests.factories import OfferFactory, UserFactory


def days_ago(days: float) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=days)


def interview(case: Case, outcome: str, *, when: datetime.datetime | None = None, notes: str = "") -> Interview:
    return Interview.objects.create(
        case=case, scheduled_at=when or days_ago(1), place="Room 1", outcome=outcome, notes=notes
    )


def incident(person: Person, effect: str = "injured", *, when: datetime.datetime | None = None) -> Incident:
    made = Incident.objects.create(
        site=person.site,
        kind="attack",
        occurred_at=when or days_ago(2),
        summary="Shelling",
        description="At night",
        reported_by=UserFactory(username="reporter"),
    )
    IncidentPerson.objects.create(incident=made, person=person, effect=effect)
    return made


def departed(persons: list[Person], *, when: datetime.datetime | None = None, offer: Offer | None = None) -> Departure:
    when = when or days_ago(3)
    departure = Departure.objects.create(
        offer=offer or OfferFactory(),
        planned_date=timezone.localdate(when),
        status=DepartureStatus.DEPARTED,
        departed_at=when,
        route="Flight 1",
    )
    DeparturePerson.objects.bulk_create(DeparturePerson(departure=departure, person=p) for p in persons)
    return departure
