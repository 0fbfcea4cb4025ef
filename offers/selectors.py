"""Reads on the offers side."""

from collections import defaultdict

from django.db.models import Case as SqlCase
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Prefetch, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from cases.models import Case, CaseStatus, Person, Relationship, ResidenceStatus, SpecificNeed
from cases.scope import Sites, limit
from offers.allocation import Candidate, Conditions, Proposal, propose
from offers.models import (
    LIVE_NOMINATION_STATUSES,
    AllocationDecision,
    Departure,
    DeparturePerson,
    Nomination,
    NominationStatus,
    Offer,
)
from offers.services import offer_places_taken


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


def offer_detail(pk: int) -> Offer:
    """One offer with the same figures as offer_list; Offer.DoesNotExist when there is none."""
    return offer_list().get(pk=pk)


# The order of an offer's nominations on its page: those waiting for a decision first,
# then along the way to departure, the closed ones last.
_NOMINATION_STAGES = [
    NominationStatus.NOMINATED,
    NominationStatus.ACCEPTED,
    NominationStatus.DEPARTURE_SCHEDULED,
    NominationStatus.RELOCATED,
]


def offer_nominations(offer: Offer, sites: Sites = None) -> QuerySet[Nomination]:
    """The offer's nominations of cases at `sites` with their case, principal applicant and
    departure, in two queries."""
    return (
        limit(Nomination.objects.filter(offer=offer), sites, "case__site")
        .select_related("case", "departure")
        .prefetch_related(
            Prefetch(
                "case__members",
                queryset=Person.objects.filter(relationship=Relationship.PRINCIPAL_APPLICANT),
                to_attr="principal",
            )
        )
        .annotate(
            stage=SqlCase(
                *(When(status=status, then=Value(index)) for index, status in enumerate(_NOMINATION_STAGES)),
                default=Value(len(_NOMINATION_STAGES)),
                output_field=IntegerField(),
            )
        )
        .order_by("stage", "case__case_no")
    )


def offer_accepted_nominations(offer: Offer, sites: Sites = None) -> QuerySet[Nomination]:
    """Nominations (of cases at `sites`) that can go on a departure: accepted, not yet on one."""
    return (
        limit(Nomination.objects.filter(offer=offer, status=NominationStatus.ACCEPTED), sites, "case__site")
        .select_related("case")
        .order_by("case__case_no")
    )


# A person on a departure whose readiness checklist is complete.
_READY = Q(manifest__travel_document=True, manifest__medical_clearance=True, manifest__exit_permission=True)


def departures_in(sites: Sites) -> Q:
    """Departures whose every person's case is at one of `sites`: a departure carrying cases
    of another site is that site's record too, so a user limited to some sites sees and
    changes only the departures wholly theirs."""
    if sites is None:
        return Q()
    elsewhere = DeparturePerson.objects.filter(departure=OuterRef("pk")).exclude(person__case__site__in=sites)
    return ~Q(Exists(elsewhere))


def offer_allocation_decisions(offer: Offer, sites: Sites = None) -> QuerySet[AllocationDecision] | None:
    """The suggestions accepted for the offer, newest first, with who accepted them (one
    query); None for a user limited to some sites: a decision names cases of every site."""
    if sites is not None:
        return None
    return offer.allocation_decisions.select_related("actor").order_by("-decided_at", "-pk")


def offer_departures(offer: Offer, sites: Sites = None) -> QuerySet[Departure]:
    """The offer's departures (wholly at `sites`) with their persons, cases and persons ready, in one query."""
    return (
        Departure.objects.filter(departures_in(sites), offer=offer)
        .annotate(
            person_count=Count("manifest", distinct=True),
            case_count=Count("manifest__person__case", distinct=True),
            ready_count=Count("manifest", filter=_READY, distinct=True),
        )
        .order_by("-planned_date", "-pk")
    )


def eligible_cases(*, case_no: str = "", sites: Sites = None) -> QuerySet[Case]:
    """Eligible cases (at `sites`) with their persons present (the places they would take) and
    principal applicant, longest waiting first; `case_no` narrows to case numbers starting with it."""
    cases = limit(Case.objects.filter(status=CaseStatus.ELIGIBLE), sites)
    if case_no.strip():
        cases = cases.filter(case_no__istartswith=case_no.strip())
    return (
        cases.select_related("site")
        .annotate(travelling=Count("members", filter=Q(members__residence_status=ResidenceStatus.PRESENT)))
        .prefetch_related(
            Prefetch(
                "members",
                queryset=Person.objects.filter(relationship=Relationship.PRINCIPAL_APPLICANT),
                to_attr="principal",
            )
        )
        .order_by("status_changed_at", "case_no")
    )


def departure_detail(pk: int, sites: Sites = None) -> Departure:
    """One departure with its offer; Departure.DoesNotExist when there is none at `sites`."""
    return Departure.objects.select_related("offer").filter(departures_in(sites)).get(pk=pk)


def departure_manifest(departure: Departure) -> QuerySet[DeparturePerson]:
    """The persons on a departure with their case, grouped by case, principal applicant first."""
    return (
        DeparturePerson.objects.filter(departure=departure)
        .select_related("person", "person__case")
        .annotate(
            is_pa=SqlCase(
                When(person__relationship=Relationship.PRINCIPAL_APPLICANT, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("person__case__case_no", "is_pa", "person__birth_year", "person__pk")
    )


def allocation_conditions(offer: Offer) -> Conditions:
    """The offer's checkable conditions and its places left (3 queries)."""
    # Every need's label, with whether the offer cannot receive it: one query.
    excluded = offer.excluded_needs.through.objects.filter(offer=offer, specificneed=OuterRef("pk"))
    needs = list(SpecificNeed.objects.annotate(excluded=Exists(excluded)).values_list("code", "label", "excluded"))
    return Conditions(
        places_left=max(offer.places - offer_places_taken(offer), 0),
        max_case_size=offer.max_case_size,
        nationalities=frozenset(str(code) for code in offer.nationalities),
        excluded_needs=frozenset(code for code, _label, is_excluded in needs if is_excluded),
        need_labels={code: label for code, label, _excluded in needs},
    )


def allocation_candidates(sites: Sites = None) -> list[Candidate]:
    """Every eligible case (at `sites`) without a live nomination, as the allocation engine sees it.

    Three queries whatever the number of cases: the cases, their members present, and
    those members' specific needs.
    """
    cases = {
        pk: (case_no, since)
        for pk, case_no, since in limit(Case.objects.filter(status=CaseStatus.ELIGIBLE), sites)
        .exclude(nominations__status__in=LIVE_NOMINATION_STATUSES)
        .values_list("pk", "case_no", "status_changed_at")
    }
    persons: dict[int, int] = defaultdict(int)
    nationalities: dict[int, set[str]] = defaultdict(set)
    present = limit(
        Person.objects.filter(case__status=CaseStatus.ELIGIBLE, residence_status=ResidenceStatus.PRESENT),
        sites,
        "case__site",
    )
    for case_id, nationality in present.values_list("case_id", "nationality"):
        persons[case_id] += 1
        nationalities[case_id].add(str(nationality))
    needs: dict[int, list[str]] = defaultdict(list)
    Need = Person.specific_needs.through
    for case_id, code in Need.objects.filter(person__in=present).values_list("person__case_id", "specificneed__code"):
        needs[case_id].append(code)
    return [
        Candidate(
            case_id=pk,
            case_no=case_no,
            persons=persons[pk],
            nationalities=frozenset(nationalities[pk]),
            needs=tuple(sorted(needs[pk])),
            eligible_since=timezone.localdate(since),
        )
        for pk, (case_no, since) in cases.items()
        if persons[pk]
    ]


def allocation_proposal(offer: Offer, sites: Sites = None) -> Proposal:
    """The optimal set of eligible cases (at `sites`) for the offer's places left, explained."""
    return propose(allocation_candidates(sites), allocation_conditions(offer), today=timezone.localdate())
