import django_filters
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from cases.models import Case, CaseStatus, Site


class CaseFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label=_("Search"), method="search")
    status = django_filters.ChoiceFilter(label=_("Status"), choices=CaseStatus.choices)
    site = django_filters.ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all())
    needs_review = django_filters.BooleanFilter(label=_("Needs review"))

    class Meta:
        model = Case
        fields = ["q", "status", "site", "needs_review"]

    def search(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        """Case or registration number, or any member's name (Latin or native script)."""
        value = value.strip()
        if not value:
            return queryset
        members = Case.objects.filter(
            Q(members__registration_no__iexact=value)
            | Q(members__family_name__icontains=value)
            | Q(members__given_name__icontains=value)
            | Q(members__native_name__icontains=value)
        ).values("pk")
        return queryset.filter(Q(case_no__iexact=value) | Q(pk__in=members))
