"""The filters of each export, read from the same GET parameters as the page that lists it.

Cases and persons take the case list's parameters (cases.filters.CaseFilter). Every list
also takes the dashboard's where they mean something: site, nationality (a case's is its
principal applicant's) and a date range (date_from, date_to, in local days).
"""

import datetime
from typing import Any

import django_filters
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cases.choices import ModelChoiceFilter
from cases.countries import country_choices
from cases.filters import CaseFilter
from cases.models import (
    IncidentKind,
    IncidentPerson,
    InterviewKind,
    InterviewOutcome,
    Person,
    Relationship,
    ResidenceStatus,
    Sex,
    Site,
)
from offers.models import DepartureStatus, NominationStatus, Offer, OfferStatus


def _countries() -> list[tuple[str, str]]:
    return country_choices()


def _pa_nationality(queryset: QuerySet, value: str, case_path: str) -> QuerySet:
    pa = Person.objects.filter(
        case_id=OuterRef(case_path), relationship=Relationship.PRINCIPAL_APPLICANT, nationality=value
    )
    return queryset.filter(Exists(pa))


class DateRangeFilter(django_filters.FilterSet):
    """date_from and date_to on `date_field`: whole local days, both ends included."""

    date_field = ""
    date_from = django_filters.DateFilter(label=_("From"), method="filter_date_from")
    date_to = django_filters.DateFilter(label=_("To"), method="filter_date_to")

    def _bound(self, day: datetime.date) -> datetime.date | datetime.datetime:
        field = self.queryset.model._meta.get_field(self.date_field.split("__")[0])
        if field.get_internal_type() == "DateTimeField":
            return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))
        return day

    def filter_date_from(self, queryset: QuerySet, name: str, value: datetime.date) -> QuerySet:
        return queryset.filter(**{f"{self.date_field}__gte": self._bound(value)})

    def filter_date_to(self, queryset: QuerySet, name: str, value: datetime.date) -> QuerySet:
        return queryset.filter(**{f"{self.date_field}__lt": self._bound(value + datetime.timedelta(days=1))})


class CaseExportFilter(CaseFilter):
    """The case list's filters, and the principal applicant's nationality."""

    nationality = django_filters.ChoiceFilter(label=_("Nationality"), choices=_countries, method="filter_nationality")

    def filter_nationality(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return _pa_nationality(queryset, value, "pk")


class PersonExportFilter(django_filters.FilterSet):
    """Persons of their own; the case list's filters choose whose cases (see reports.exports)."""

    nationality = django_filters.ChoiceFilter(label=_("Nationality"), choices=_countries)
    residence_status = django_filters.ChoiceFilter(label=_("Residence status"), choices=ResidenceStatus.choices)
    sex = django_filters.ChoiceFilter(label=_("Sex"), choices=Sex.choices)


class InterviewExportFilter(DateRangeFilter):
    date_field = "scheduled_at"
    site = ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all(), field_name="case__site")
    nationality = django_filters.ChoiceFilter(label=_("Nationality"), choices=_countries, method="filter_nationality")
    outcome = django_filters.ChoiceFilter(label=_("Outcome"), choices=InterviewOutcome.choices)
    kind = django_filters.ChoiceFilter(label=_("Kind"), choices=InterviewKind.choices)

    def filter_nationality(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return _pa_nationality(queryset, value, "case_id")


class OfferExportFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(label=_("Status"), choices=OfferStatus.choices)
    country = django_filters.ChoiceFilter(label=_("Country"), choices=_countries)


class NominationExportFilter(DateRangeFilter):
    date_field = "nominated_at"
    offer = ModelChoiceFilter(label=_("Offer"), queryset=Offer.objects.all())
    status = django_filters.ChoiceFilter(label=_("Status"), choices=NominationStatus.choices)
    site = ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all(), field_name="case__site")
    nationality = django_filters.ChoiceFilter(label=_("Nationality"), choices=_countries, method="filter_nationality")

    def filter_nationality(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return _pa_nationality(queryset, value, "case_id")


class DepartureExportFilter(DateRangeFilter):
    date_field = "planned_date"
    offer = ModelChoiceFilter(label=_("Offer"), queryset=Offer.objects.all())
    status = django_filters.ChoiceFilter(label=_("Status"), choices=DepartureStatus.choices)


class IncidentExportFilter(DateRangeFilter):
    date_field = "occurred_at"
    site = ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all())
    kind = django_filters.ChoiceFilter(label=_("Kind"), choices=IncidentKind.choices)
    nationality = django_filters.ChoiceFilter(label=_("Nationality"), choices=_countries, method="filter_nationality")

    def filter_nationality(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """Incidents that affected a person of this nationality."""
        affected = IncidentPerson.objects.filter(incident_id=OuterRef("pk"), person__nationality=value)
        return queryset.filter(Exists(affected))


def filter_errors(filterset: Any) -> dict[str, list[str]]:
    """The filter form's errors by field, empty when every parameter is valid."""
    return {name: [str(e) for e in errors] for name, errors in filterset.form.errors.items()}
