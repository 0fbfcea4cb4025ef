"""Dashboard figures: aggregates in SQL, a fixed number of queries."""

from dataclasses import dataclass

from django.db.models import Count, Q

from cases.models import Person, ResidenceStatus, Site


@dataclass(frozen=True)
class Headline:
    relocated: int
    to_relocate: int

    @property
    def percent_done(self) -> float:
        total = self.relocated + self.to_relocate
        return round(100 * self.relocated / total, 1) if total else 0.0


def persons_per_site() -> list[Site]:
    """Sites with their present and relocated persons (one query)."""
    return list(
        Site.objects.annotate(
            present=Count("persons", filter=Q(persons__residence_status=ResidenceStatus.PRESENT)),
            relocated=Count("persons", filter=Q(persons__residence_status=ResidenceStatus.RELOCATED)),
        ).order_by("name")
    )


def headline() -> Headline:
    """Relocated to date and still to relocate (persons present), in one query."""
    figures = Person.objects.aggregate(
        relocated=Count("pk", filter=Q(residence_status=ResidenceStatus.RELOCATED)),
        to_relocate=Count("pk", filter=Q(residence_status=ResidenceStatus.PRESENT)),
    )
    return Headline(**figures)
