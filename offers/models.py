"""Offers of places by countries, nominations of cases to them, and departures."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_countries import countries
from django_countries.fields import CountryField
from simple_history.models import HistoricalRecords

from cases.models import Case, Person, SpecificNeed


class OfferStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")
    COMPLETED = "completed", _("Completed")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class Offer(models.Model):
    country = CountryField(_("country"))
    reference = models.CharField(_("reference"), max_length=60, unique=True)
    places = models.PositiveIntegerField(_("places (persons)"))
    conditions = models.TextField(_("conditions"), blank=True, help_text=_("As the country wrote them."))
    # The conditions that can be checked, used by the allocation suggestions.
    max_case_size = models.PositiveSmallIntegerField(
        _("largest household"), null=True, blank=True, help_text=_("Empty: any size.")
    )
    nationalities = CountryField(
        _("nationalities accepted"), multiple=True, blank=True, help_text=_("Empty: any nationality.")
    )
    excluded_needs = models.ManyToManyField(
        SpecificNeed,
        blank=True,
        related_name="+",
        verbose_name=_("specific needs it cannot receive"),
    )
    deadline = models.DateField(_("deadline"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=OfferStatus.choices, default=OfferStatus.OPEN)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["deadline", "reference"]
        verbose_name = _("offer")
        verbose_name_plural = _("offers")
        constraints = [
            models.CheckConstraint(condition=Q(places__gt=0), name="offer_places_positive"),
        ]

    def __str__(self) -> str:
        # countries.name() looks the code up; get_country_display() flattens all ~250
        # choices (~0.8 ms), once per offer in every offer select.
        return f"{self.reference} — {countries.name(self.country)} ({self.places})"


class NominationStatus(models.TextChoices):
    NOMINATED = "nominated", _("Nominated")
    ACCEPTED = "accepted", _("Accepted")
    DEPARTURE_SCHEDULED = "departure_scheduled", _("Departure scheduled")
    RELOCATED = "relocated", _("Relocated")
    REJECTED = "rejected", _("Rejected by country")
    DECLINED = "declined", _("Declined by case")
    WITHDRAWN = "withdrawn", _("Withdrawn")


# A live nomination holds places on its offer.
LIVE_NOMINATION_STATUSES = (
    NominationStatus.NOMINATED,
    NominationStatus.ACCEPTED,
    NominationStatus.DEPARTURE_SCHEDULED,
    NominationStatus.RELOCATED,
)


class CountryDecision(models.TextChoices):
    PENDING = "pending", _("Pending")
    ACCEPTED = "accepted", _("Accepted")
    REJECTED = "rejected", _("Rejected")


class Consent(models.TextChoices):
    PENDING = "pending", _("Pending")
    CONSENTED = "consented", _("Consented")
    DECLINED = "declined", _("Declined")


class Nomination(models.Model):
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="nominations", verbose_name=_("offer"))
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="nominations", verbose_name=_("case"))
    # The case's size when nominated: the places it holds on the offer.
    persons = models.PositiveIntegerField(_("persons"))
    status = models.CharField(
        _("status"), max_length=30, choices=NominationStatus.choices, default=NominationStatus.NOMINATED
    )
    country_decision = models.CharField(
        _("country's decision"), max_length=20, choices=CountryDecision.choices, default=CountryDecision.PENDING
    )
    decision_date = models.DateField(_("decision date"), null=True, blank=True)
    decision_reason = models.TextField(_("decision reason"), blank=True)
    consent = models.CharField(_("case's consent"), max_length=20, choices=Consent.choices, default=Consent.PENDING)
    departure = models.ForeignKey(
        "Departure",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="nominations",
        verbose_name=_("departure"),
    )
    nominated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("nominated by")
    )
    nominated_at = models.DateTimeField(_("nominated at"), default=timezone.now)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-nominated_at"]
        verbose_name = _("nomination")
        verbose_name_plural = _("nominations")
        constraints = [
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(status__in=LIVE_NOMINATION_STATUSES),
                name="one_live_nomination_per_case",
                violation_error_message=_("This case already has a live nomination."),
            ),
            models.CheckConstraint(condition=Q(persons__gt=0), name="nomination_persons_positive"),
        ]
        indexes = [models.Index(fields=["offer", "status"])]

    def __str__(self) -> str:
        return f"{self.case} → {self.offer.reference}"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_NOMINATION_STATUSES


class DepartureStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    DEPARTED = "departed", _("Departed")
    CANCELLED = "cancelled", _("Cancelled")


class Departure(models.Model):
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="departures", verbose_name=_("offer"))
    planned_date = models.DateField(_("planned date"))
    route = models.CharField(_("route or flight"), max_length=120, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=DepartureStatus.choices, default=DepartureStatus.PLANNED
    )
    departed_at = models.DateTimeField(_("departed at"), null=True, blank=True)
    persons = models.ManyToManyField(
        Person, through="DeparturePerson", related_name="departures", verbose_name=_("persons")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-planned_date"]
        verbose_name = _("departure")
        verbose_name_plural = _("departures")

    def __str__(self) -> str:
        return f"{self.offer.reference} {self.planned_date:%Y-%m-%d} {self.route}".strip()


class DeparturePerson(models.Model):
    """A person on a departure's manifest, with their readiness checklist."""

    departure = models.ForeignKey(Departure, on_delete=models.CASCADE, related_name="manifest")
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+", verbose_name=_("person"))
    travel_document = models.BooleanField(_("travel document"), default=False)
    medical_clearance = models.BooleanField(_("medical clearance"), default=False)
    exit_permission = models.BooleanField(_("exit permission"), default=False)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("person on departure")
        verbose_name_plural = _("persons on departure")
        constraints = [
            models.UniqueConstraint(fields=["departure", "person"], name="departure_person_once"),
        ]

    def __str__(self) -> str:
        return str(self.person)

    @property
    def is_ready(self) -> bool:
        return self.travel_document and self.medical_clearance and self.exit_permission


class AllocationDecision(models.Model):
    """What a supervisor did with an allocation proposal: kept, dropped and added cases."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="allocation_decisions")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(_("decided at"), default=timezone.now)
    proposed = models.JSONField(_("case numbers proposed"), default=list)
    nominated = models.JSONField(_("case numbers nominated"), default=list)
    overridden = models.JSONField(_("proposed but not nominated"), default=list)
    refused = models.JSONField(_("refused by the service, with reasons"), default=list)
    places_filled = models.PositiveIntegerField(_("persons in the proposal"))
    total_priority = models.PositiveIntegerField(_("total priority of the proposal"))

    class Meta:
        ordering = ["-decided_at"]
        verbose_name = _("allocation decision")
        verbose_name_plural = _("allocation decisions")

    def __str__(self) -> str:
        return f"{self.offer.reference} {self.decided_at:%Y-%m-%d %H:%M}"
