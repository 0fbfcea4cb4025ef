"""Demo offers, nominations, decisions and departures, made through the services."""

import datetime
import random
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from cases.models import Case, CaseStatus, SpecificNeed
from offers.models import Offer, OfferStatus
from offers.services import (
    departure_mark_departed,
    departure_plan,
    nomination_record_consent,
    nomination_record_decision,
    offer_nominate,
    offer_places_taken,
)


@dataclass(frozen=True)
class DemoOffer:
    reference: str
    country: str
    places: int
    status: str
    deadline_in_days: int
    conditions: str
    max_case_size: int | None = None
    excluded_needs: tuple[str, ...] = ()


OFFERS = [
    DemoOffer(
        "CA-2026-01",
        "CA",
        210,
        OfferStatus.OPEN,
        150,
        "Households of up to 7 persons. Priority to persons with specific needs.",
        7,
    ),
    DemoOffer("AU-2026-01", "AU", 60, OfferStatus.OPEN, 90, "Households of up to 5 persons.", 5),
    DemoOffer(
        "NZ-2026-01",
        "NZ",
        25,
        OfferStatus.OPEN,
        60,
        "Single adults and couples; no serious medical conditions that need hospital care.",
        2,
        ("serious_medical_condition",),
    ),
    DemoOffer("PT-2026-01", "PT", 30, OfferStatus.DRAFT, 200, "Awaiting the government's final confirmation."),
]


def load_offers(*, seed: int, supervisor: Any, rng: random.Random) -> None:
    today = timezone.localdate()
    offers = {}
    for spec in OFFERS:
        offer, created = Offer.objects.get_or_create(
            reference=spec.reference,
            defaults={
                "country": spec.country,
                "places": spec.places,
                "status": spec.status,
                "deadline": today + datetime.timedelta(days=spec.deadline_in_days),
                "conditions": spec.conditions,
                "max_case_size": spec.max_case_size,
            },
        )
        if created:
            offer.excluded_needs.set(SpecificNeed.objects.filter(code__in=spec.excluded_needs))
        offers[offer.reference] = offer
    pool = list(Case.objects.filter(status=CaseStatus.ELIGIBLE).order_by("case_no"))
    rng.shuffle(pool)
    main = offers["CA-2026-01"]
    nominations = _fill(main, pool, supervisor, leave=20)
    _fill(offers["AU-2026-01"], pool, supervisor, leave=25)

    decided = nominations[: int(len(nominations) * 0.75)]
    accepted = []
    for nomination in decided:
        draw = rng.random()
        if draw < 0.1:
            nomination_record_decision(
                nomination, actor=supervisor, accepted=False, reason="Did not meet the country's criteria"
            )
        elif draw < 0.16:
            nomination_record_decision(nomination, actor=supervisor, accepted=True)
            nomination_record_consent(
                nomination, actor=supervisor, consents=False, reason="Prefers to wait for another country"
            )
        else:
            nomination_record_decision(nomination, actor=supervisor, accepted=True)
            nomination_record_consent(nomination, actor=supervisor, consents=True)
            accepted.append(nomination)

    done = departure_plan(
        main,
        actor=supervisor,
        planned_date=today - datetime.timedelta(days=20),
        route="Charter flight AC 9401",
        nominations=accepted[: len(accepted) // 3],
    )
    done.manifest.update(travel_document=True, medical_clearance=True, exit_permission=True)
    departure_mark_departed(done, actor=supervisor)

    upcoming = departure_plan(
        main,
        actor=supervisor,
        planned_date=today + datetime.timedelta(days=12),
        route="Charter flight AC 9417",
        nominations=accepted[len(accepted) // 3 : 2 * len(accepted) // 3],
    )
    entries = list(upcoming.manifest.order_by("pk"))
    for entry in entries[: len(entries) * 2 // 3]:
        entry.travel_document = entry.medical_clearance = entry.exit_permission = True
        entry.save()


def _fill(offer: Offer, pool: list[Case], supervisor: Any, *, leave: int) -> list[Any]:
    """Nominate cases from the pool until about `leave` places remain."""
    made = []
    while pool and offer.places - offer_places_taken(offer) > leave:
        case = pool.pop()
        if case.members.count() > offer.places - offer_places_taken(offer) - leave:
            continue
        made.append(offer_nominate(offer, case, actor=supervisor))
    return made
