"""Reads on the offers side."""

from django.db.models import F, IntegerField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from offers.models import LIVE_NOMINATION_STATUSES, NominationStatus, Offer


def _persons(*statuses: str) -> Coalesce:
    return Coalesce(
        Sum("nominations__persons", filter=Q(nominations__status__in=statuses)),
        Value(0),
        output_field=IntegerField(),
    )


def offer_list() -> QuerySet[Offer]:
    """Offers with their figures in persons, computed in one query."""
    return (
        Offer.objects.annotate(
            nominated=_persons(NominationStatus.NOMINATED),
            accepted=_persons(NominationStatus.ACCEPTED, NominationStatus.DEPARTURE_SCHEDULED),
            departed=_persons(NominationStatus.RELOCATED),
            taken=_persons(*LIVE_NOMINATION_STATUSES),
        )
        .annotate(remaining=F("places") - F("taken"))
        .order_by("deadline", "reference")
    )
