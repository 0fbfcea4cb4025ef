"""Reads on the roster side: one query each, whatever the number of rows."""

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from cases.models import Case, CaseStatus, Person, Relationship, ResidenceStatus


@dataclass(frozen=True)
class StatusCount:
    status: CaseStatus
    cases: int
    persons: int


def case_status_counts() -> list[StatusCount]:
    """Cases and their living persons (present or relocated) per workflow status, every status listed, in one query."""
    rows: dict[str, dict[str, Any]] = {
        row["status"]: dict(row)
        for row in Case.objects.order_by()
        .values("status")
        .annotate(
            cases=Count("pk", distinct=True),
            persons=Count(
                "members",
                filter=Q(members__residence_status__in=[ResidenceStatus.PRESENT, ResidenceStatus.RELOCATED]),
            ),
        )
    }
    return [
        StatusCount(
            status=status,
            cases=rows.get(status, {}).get("cases", 0),
            persons=rows.get(status, {}).get("persons", 0),
        )
        for status in CaseStatus
    ]


def case_list() -> QuerySet[Case]:
    """Cases with their site, size and principal applicant, for lists (no per-row queries)."""
    return (
        Case.objects.select_related("site", "assigned_officer")
        .annotate(size=Count("members"))
        .prefetch_related(
            Prefetch(
                "members",
                queryset=Person.objects.filter(relationship=Relationship.PRINCIPAL_APPLICANT),
                to_attr="principal",
            )
        )
        .order_by("case_no")
    )
