from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet, Sum
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from cases.admin_records import HistoryAdmin, RecordAdmin, ScopedHistory, SiteScopedAdmin
from cases.scope import limit, sites_of
from offers.models import (
    LIVE_NOMINATION_STATUSES,
    AllocationDecision,
    Departure,
    DeparturePerson,
    Nomination,
    NominationStatus,
    Offer,
)
from offers.selectors import departures_in
from offers.services import (
    OfferError,
    departure_mark_departed,
    nomination_record_consent,
    nomination_record_decision,
)


class NominationInline(admin.TabularInline):
    model = Nomination
    fk_name = "offer"
    fields = readonly_fields = ("case", "persons", "status", "country_decision", "consent", "departure", "nominated_at")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Nomination]:
        # A user limited to some sites sees their nominations only, as on the offer's page.
        queryset = super().get_queryset(request).select_related("case", "departure")
        return limit(queryset, sites_of(request.user), "case__site")


@admin.register(Offer)
class OfferAdmin(HistoryAdmin):
    list_display = ["reference", "country", "places", "nominated_persons", "places_left", "deadline", "status"]
    list_filter = ["status", "country"]
    search_fields = ["reference", "conditions"]
    autocomplete_fields = ["excluded_needs"]
    inlines = [NominationInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Offer]:
        return (
            super()
            .get_queryset(request)
            .annotate(taken=Sum("nominations__persons", filter=Q(nominations__status__in=LIVE_NOMINATION_STATUSES)))
        )

    @admin.display(description=_("persons nominated (live)"), ordering="taken")
    def nominated_persons(self, obj: Offer) -> int:
        return obj.taken or 0  # type: ignore[attr-defined]

    @admin.display(description=_("places left"))
    def places_left(self, obj: Offer) -> int:
        return obj.places - (obj.taken or 0)  # type: ignore[attr-defined]


def _run_on_each(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any], action: Any, done: Any) -> None:
    ok = 0
    for obj in queryset:
        try:
            action(obj)
            ok += 1
        except OfferError as exc:
            modeladmin.message_user(request, f"{obj}: {exc}", messages.ERROR)
    if ok:
        modeladmin.message_user(request, ngettext("%(n)d %(done)s.", "%(n)d %(done)s.", ok) % {"n": ok, "done": done})


@admin.action(description=_("Record: country accepted"), permissions=["change"])
def country_accepted(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Nomination]) -> None:
    _run_on_each(
        modeladmin,
        request,
        queryset,
        lambda n: nomination_record_decision(n, actor=request.user, accepted=True),
        _("updated"),
    )


@admin.action(description=_("Record: country rejected"), permissions=["change"])
def country_rejected(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Nomination]) -> None:
    _run_on_each(
        modeladmin,
        request,
        queryset,
        lambda n: nomination_record_decision(n, actor=request.user, accepted=False),
        _("updated"),
    )


@admin.action(description=_("Record: case consents"), permissions=["change"])
def case_consents(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Nomination]) -> None:
    _run_on_each(
        modeladmin,
        request,
        queryset,
        lambda n: nomination_record_consent(n, actor=request.user, consents=True),
        _("updated"),
    )


@admin.action(description=_("Record: case declines"), permissions=["change"])
def case_declines(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Nomination]) -> None:
    _run_on_each(
        modeladmin,
        request,
        queryset,
        lambda n: nomination_record_consent(n, actor=request.user, consents=False),
        _("updated"),
    )


@admin.register(Nomination)
class NominationAdmin(SiteScopedAdmin, HistoryAdmin):
    site_paths = ("case__site",)
    list_display = ["case", "offer", "persons", "status", "country_decision", "consent", "departure", "nominated_at"]
    list_filter = ["status", "country_decision", "consent", "offer"]
    search_fields = ["case__case_no", "offer__reference"]
    list_select_related = ["case", "offer", "departure"]
    readonly_fields = [
        "offer",
        "case",
        "persons",
        "status",
        "country_decision",
        "decision_date",
        "consent",
        "departure",
        "nominated_by",
        "nominated_at",
    ]
    actions = [country_accepted, country_rejected, case_consents, case_declines]

    # Nominations are made through the offers service (capacity, eligibility).
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeparturePersonInline(admin.TabularInline):
    model = DeparturePerson
    fields = ["person", "travel_document", "medical_clearance", "exit_permission"]
    readonly_fields = ["person"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeparturePerson]:
        return super().get_queryset(request).select_related("person")


@admin.action(description=_("Mark departed (relocates its cases and persons)"), permissions=["change"])
def mark_departed(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Departure]) -> None:
    _run_on_each(
        modeladmin,
        request,
        queryset,
        lambda d: departure_mark_departed(d, actor=request.user),
        _("departed"),
    )


@admin.register(Departure)
class DepartureAdmin(ScopedHistory, HistoryAdmin):
    list_display = ["offer", "planned_date", "route", "status", "cases", "departed_at"]
    list_filter = ["status", "offer"]
    search_fields = ["route", "offer__reference"]
    list_select_related = ["offer"]
    readonly_fields = ["offer", "status", "departed_at", "created_at"]
    inlines = [DeparturePersonInline]
    actions = [mark_departed]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Departure]:
        return (
            super()
            .get_queryset(request)
            .filter(departures_in(sites_of(request.user)))
            .annotate(
                case_count=Count(
                    "nominations",
                    filter=Q(
                        nominations__status__in=[NominationStatus.DEPARTURE_SCHEDULED, NominationStatus.RELOCATED]
                    ),
                )
            )
        )

    @admin.display(description=_("cases"), ordering="case_count")
    def cases(self, obj: Departure) -> int:
        return obj.case_count  # type: ignore[attr-defined]

    # Departures are planned through the offers service from accepted nominations.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AllocationDecision)
class AllocationDecisionAdmin(RecordAdmin):
    list_display = ["decided_at", "offer", "actor", "places_filled", "total_priority"]
    list_filter = ["offer"]
    list_select_related = ["offer", "actor"]
    date_hierarchy = "decided_at"
