"""The case list's filters, search and ordering, all kept in the URL's query string.

Filters on members (nationality, age band, specific needs) match a case when any
member matches; sex is the principal applicant's. Each is an EXISTS or IN subquery,
so that a case is listed once and its size is counted right.
"""

from typing import Any

import django_filters
from django.apps import apps
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from cases import names
from cases.forms import _team
from cases.models import Case, CaseStatus, Interview, InterviewOutcome, Person, Relationship, Sex, Site, SpecificNeed
from cases.selectors import case_no_show_to_follow_up, case_stuck_since, interview_later_today

# (value, label, youngest, oldest): ages are this year minus the year of birth.
AGE_BANDS = [
    ("0-4", _("0–4 years"), 0, 4),
    ("5-11", _("5–11 years"), 5, 11),
    ("12-17", _("12–17 years"), 12, 17),
    ("18-59", _("18–59 years"), 18, 59),
    ("60+", _("60 years and over"), 60, None),
]
# Time in the current status: open cases in it for more than this many days.
IN_STATUS_DAYS = [
    ("30", _("more than 30 days")),
    ("90", _("more than 90 days")),
    ("180", _("more than 180 days")),
]
INTERVIEW_OPEN = "open"
INTERVIEW_TODAY = "today"
INTERVIEW_OVERDUE = "overdue"
INTERVIEW_NO_SHOW = "no_show"
INTERVIEW_CHOICES = [
    (INTERVIEW_OPEN, _("has an open interview")),
    (INTERVIEW_TODAY, _("has an interview later today")),
    (INTERVIEW_OVERDUE, _("has an overdue interview")),
    (INTERVIEW_NO_SHOW, _("no-show to follow up")),
]

# The column the list is sorted by: o=case_no, o=-case_no, ...
ORDERING = (
    ("case_no", "case_no"),
    ("status", "status"),
    ("status_changed_at", "in_status_since"),
    ("size", "persons"),
)
SORTABLE_COLUMNS = [param for _field, param in ORDERING]


def _offers(request: HttpRequest | None) -> QuerySet[Any]:
    # cases never imports offers: the model is looked up when the form is built.
    return apps.get_model("offers", "Offer")._default_manager.order_by("reference")


def _search_words(value: str) -> Q:
    """Persons whose names match every word of `value`, in either script and any spelling."""
    condition = Q()
    for word in names.words(value):
        matches = Q()
        for key in names.word_keys(word):
            matches |= Q(name_key__contains=f" {key} ")
        if connection.vendor == "postgresql":
            # pg_trgm (GIN-indexed): typos and partial words the keys miss ("Nadjafi", "Tehr").
            for field in ("family_name", "given_name", "native_name"):
                matches |= Q(**{f"{field}__trigram_word_similar": word})
        else:
            for field in ("family_name", "given_name", "native_name"):
                matches |= Q(**{f"{field}__icontains": word})
        condition &= matches
    return condition


class _AnyYesNo(django_filters.widgets.BooleanWidget):
    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.choices = [("", _("Any")), ("true", _("Yes")), ("false", _("No"))]


class _UserField(django_filters.fields.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.get_full_name() or obj.get_username()


class UserFilter(django_filters.ModelChoiceFilter):
    field_class = _UserField


class CaseOrderingFilter(django_filters.OrderingFilter):
    def filter(self, qs: QuerySet[Case], value: Any) -> QuerySet[Case]:
        ordered = super().filter(qs, value)
        if value:
            # Equal values (a status, a size) keep one order from page to page.
            return ordered.order_by(*ordered.query.order_by, "case_no")
        return ordered


class CaseFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label=_("Search"),
        method="search",
        help_text=_("Case or registration number, or names in any spelling or script"),
    )
    status = django_filters.ChoiceFilter(label=_("Status"), choices=CaseStatus.choices, empty_label=_("Any"))
    site = django_filters.ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all(), empty_label=_("Any"))
    nationality = django_filters.ChoiceFilter(
        label=_("Nationality (any member)"),
        choices=lambda: list(countries),
        method="filter_nationality",
        empty_label=_("Any"),
    )
    sex = django_filters.ChoiceFilter(
        label=_("Sex of principal applicant"), choices=Sex.choices, method="filter_sex", empty_label=_("Any")
    )
    age = django_filters.ChoiceFilter(
        label=_("Age (any member)"),
        choices=[(value, label) for value, label, _young, _old in AGE_BANDS],
        method="filter_age",
        empty_label=_("Any"),
    )
    need = django_filters.ModelChoiceFilter(
        label=_("Specific need (any member)"),
        queryset=SpecificNeed.objects.order_by("label"),
        method="filter_need",
        empty_label=_("Any"),
    )
    officer = UserFilter(
        label=_("Assigned officer"),
        field_name="assigned_officer",
        queryset=lambda request: _team(),
        null_label=_("Nobody"),
        empty_label=_("Any"),
    )
    offer = django_filters.ModelChoiceFilter(
        label=_("Nominated to offer"), queryset=_offers, method="filter_offer", empty_label=_("Any")
    )
    in_status = django_filters.ChoiceFilter(
        label=_("Time in current status"), choices=IN_STATUS_DAYS, method="filter_in_status", empty_label=_("Any")
    )
    interview = django_filters.ChoiceFilter(
        label=_("Interviews"), choices=INTERVIEW_CHOICES, method="filter_interview", empty_label=_("Any")
    )
    needs_review = django_filters.BooleanFilter(label=_("Needs review"), widget=_AnyYesNo)
    o = CaseOrderingFilter(
        label=_("Sort by"),
        fields=ORDERING,
        field_labels={
            "case_no": _("Case number"),
            "status": _("Status"),
            "status_changed_at": _("In status since"),
            "size": _("Persons"),
        },
    )

    class Meta:
        model = Case
        fields: list[str] = []

    def __init__(self, *args: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
        super().__init__(*args, request=request, **kwargs)
        user = getattr(request, "user", None)
        if user is None or not user.has_perm("cases.view_specific_needs"):
            # Not offered, and ignored when typed into the URL.
            del self.filters["need"]

    def search(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        """Case or registration number, or members' names in any spelling or script."""
        value = value.strip()
        if not value:
            return queryset
        numbers = [value, value.upper()]
        persons = Q(registration_no__in=numbers)
        if words := _search_words(value):
            persons |= words
        return queryset.filter(Q(case_no__in=numbers) | Q(pk__in=Person.objects.filter(persons).values("case_id")))

    def _members(self, queryset: QuerySet[Case], condition: Q) -> QuerySet[Case]:
        return queryset.filter(Exists(Person.objects.filter(condition, case=OuterRef("pk"))))

    def filter_nationality(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        return self._members(queryset, Q(nationality=value)) if value else queryset

    def filter_sex(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        if not value:
            return queryset
        return self._members(queryset, Q(relationship=Relationship.PRINCIPAL_APPLICANT, sex=value))

    def filter_age(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        """Any member whose age this year falls in the band; a range on birth_year, so indexed."""
        year = timezone.localdate().year
        for band, _label, youngest, oldest in AGE_BANDS:
            if band == value:
                born = Q(birth_year__lte=year - youngest)
                if oldest is not None:
                    born &= Q(birth_year__gte=year - oldest)
                return self._members(queryset, born)
        return queryset

    def filter_need(self, queryset: QuerySet[Case], name: str, value: SpecificNeed | None) -> QuerySet[Case]:
        return self._members(queryset, Q(specific_needs=value)) if value else queryset

    def filter_offer(self, queryset: QuerySet[Case], name: str, value: Any) -> QuerySet[Case]:
        if not value:
            return queryset
        # A subquery, not a join: a case nominated twice to one offer is listed once.
        return queryset.filter(pk__in=Case.objects.filter(nominations__offer=value).values("pk"))

    def filter_in_status(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        return queryset.filter(case_stuck_since(int(value))) if value else queryset

    def filter_interview(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        pending = Interview.objects.filter(case=OuterRef("pk"), outcome=InterviewOutcome.PENDING)
        if value == INTERVIEW_OPEN:
            return queryset.filter(Exists(pending))
        if value == INTERVIEW_TODAY:
            return queryset.filter(Exists(pending.filter(interview_later_today())))
        if value == INTERVIEW_OVERDUE:
            return queryset.filter(Exists(pending.filter(scheduled_at__lt=timezone.now())))
        if value == INTERVIEW_NO_SHOW:
            return queryset.filter(case_no_show_to_follow_up())
        return queryset

    def sort_links(self) -> list[dict[str, str]]:
        """Per sortable column: the `o` value its header links to, and how the list is sorted by it now."""
        current = self.form.cleaned_data.get("o") if self.form.is_valid() else None
        current = (current or [""])[0]
        links = []
        for param in SORTABLE_COLUMNS:
            if current == param:
                links.append({"column": param, "next": f"-{param}", "direction": "ascending"})
            elif current == f"-{param}":
                links.append({"column": param, "next": param, "direction": "descending"})
            else:
                links.append({"column": param, "next": param, "direction": ""})
        return links
