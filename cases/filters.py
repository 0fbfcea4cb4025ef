"""The case list's filters, search and ordering, all kept in the URL's query string.

Filters on members (nationality, age band, specific needs) match a case when any
member matches; sex is the principal applicant's. Each is an EXISTS or IN subquery,
so that a case is listed once and its size is counted right.

The search (`q`) runs last, on the cases the other filters leave: one query finds the
matching cases' ids, and the count and the page then take those ids (see `_Search`).
"""

import contextlib
import enum
import functools
from collections.abc import Iterable, Iterator
from typing import Any

import django_filters
from django.apps import apps
from django.contrib.postgres.fields import ArrayField
from django.db import connection, transaction
from django.db.models import Case as SqlCase
from django.db.models import Exists, F, Func, Lookup, Min, OuterRef, Q, QuerySet, TextField, Value, When
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cases import names
from cases.choices import FilterModelChoiceField, ModelChoiceFilter, Select
from cases.countries import country_choices
from cases.forms import _team
from cases.models import Case, CaseStatus, Interview, InterviewOutcome, Person, Relationship, Sex, Site, SpecificNeed
from cases.scope import narrow_site_choices, sites_of
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


class _Rank(enum.IntEnum):
    """How a case matches a search; with no column chosen, the list shows the closest first."""

    NUMBER = 0  # its case number or a member's registration number, as typed (any letter case)
    NUMBER_START = 1  # ... begins with what was typed
    NAME_AS_TYPED = 2  # every word is one of a member's names, spelled as typed
    NAME = 3  # every word is in a member's names in some spelling or script (the name keys)
    NAME_SIMILAR = 4  # words no name key matches, by trigram similarity (PostgreSQL) or as a substring


# At most this many matches are fetched and listed by id; a search matching more is run
# as a subquery of the count and of the page instead (slower, as correct).
MATCH_LIMIT = 20_000
# Words of a search beyond this many are ignored.
MAX_WORDS = 8


class _NameTokens(Func):
    """A person's name keys as an array: what the GIN index of migration 0008 holds, same expression."""

    template = "string_to_array(btrim(%(expressions)s), ' ')"
    output_field = ArrayField(TextField())


class _AnyOf(Lookup):
    """`lhs = ANY(%s)`: a list of values as one array parameter (PostgreSQL), however long."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, list(self.rhs))


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _pk_in(ids: list[int]) -> Q | Lookup:
    return _AnyOf(F("pk"), ids) if _postgres() else Q(pk__in=ids)


def _match_limit() -> int:
    if _postgres():
        return MATCH_LIMIT
    # SQLite: the ids are bound one parameter each, up to twice (the filter, the relevance).
    return min(MATCH_LIMIT, (connection.features.max_query_params or 999) // 3)


def _persons() -> QuerySet[Person]:
    return Person.objects.alias(name_tokens=_NameTokens("name_key")) if _postgres() else Person.objects.all()


def _keys_match(keys: frozenset[str]) -> Q:
    """Persons with any of one word's keys (several for an ambiguous native word)."""
    if _postgres():
        return Q(name_tokens__overlap=sorted(keys))
    condition = Q()
    for key in sorted(keys):
        condition |= Q(name_key__contains=f" {key} ")
    return condition


# At most this many close words of the names are looked for (PostgreSQL).
MAX_CLOSE_WORDS = 50


def _close_words(word: str) -> list[str]:
    """The words of the names closest to `word` by trigram word similarity (pg_trgm's
    threshold): from the table of distinct name words of migration 0013, in a few ms."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT word FROM cases_nameword WHERE word %%> %s ORDER BY %s <<-> word, word LIMIT %s",
            [word.lower(), word.lower(), MAX_CLOSE_WORDS],
        )
        return [close for (close,) in cursor.fetchall()]


def _similar(word: str) -> Q | None:
    """Persons with a name close to `word` (a typo, or the start of a name); None: nobody.

    PostgreSQL: the persons with the keys of the name words close to it, through the name
    keys' index. Elsewhere: the names that hold it."""
    if not _postgres():
        return Q(family_name__icontains=word) | Q(given_name__icontains=word) | Q(native_name__icontains=word)
    keys: set[str] = set()
    for close in _close_words(word):
        keys |= names.word_keys(close)
    return _keys_match(frozenset(keys)) if keys else None


def _as_typed(word: str) -> Q:
    return Q(family_name__iexact=word) | Q(given_name__iexact=word) | Q(native_name__iexact=word)


class _KnownCount:
    """A queryset that answers count() without a query: the search has counted its matches.

    Its clones (a slice, a further filter) are of the same class without the count, and ask
    the database as usual."""

    known_count: int | None = None

    def count(self) -> int:
        if self.known_count is not None:
            return self.known_count
        return super().count()  # type: ignore[misc]


@functools.cache
def _counted_class(cls: type[QuerySet[Any]]) -> type[QuerySet[Any]]:
    return type(f"Counted{cls.__name__}", (_KnownCount, cls), {})


def _counted(queryset: QuerySet[Case], count: int) -> QuerySet[Case]:
    counted: Any = queryset.all()
    counted.__class__ = _counted_class(type(queryset))
    counted.known_count = count
    return counted


@contextlib.contextmanager
def _index_scans() -> Iterator[None]:
    """Queries planned with the indexes (PostgreSQL): whether any person has a key is a
    GIN lookup of a few ms, but with a LIMIT 1 the planner may read the whole table
    instead, hoping to meet one early (over a second at a million persons for a typo)."""
    if not _postgres():
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        yield
        cursor.execute("SET LOCAL enable_seqscan TO DEFAULT")


class _Search:
    """One search of the case list: what was typed, read as numbers and as names.

    A value with a digit and no space is a number: case and registration numbers that
    are it (any letter case) or begin with it. Anything else is an exact case or
    registration number ("C-FIND") or names: every word must be in one member's names,
    in any spelling or script (cases.names keys). When that finds nothing, each word
    whose keys no member of the listed cases has (a typo, part of a name) is looked
    for by similarity instead: on PostgreSQL, the persons with the keys of the name
    words closest to it by trigram word similarity (_similar); a substring elsewhere.
    """

    def __init__(self, value: str, *, relevance: bool) -> None:
        self.relevance = relevance
        self.numbers = sorted({value, value.upper()})
        self.number_like = any(char.isdigit() for char in value) and not any(char.isspace() for char in value)
        # Words without a letter (a number) are no part of a name.
        self.words = [] if self.number_like else [w for w in names.words(value) if any(c.isalpha() for c in w)]
        self.words = self.words[:MAX_WORDS]
        self.keys = {word: names.word_keys(word) for word in self.words}

    def _number_branches(self) -> list[tuple[_Rank, Q]]:
        registered = Person.objects.filter(registration_no__in=self.numbers).values("case_id")
        branches = [
            (_Rank.NUMBER, Q(case_no__in=self.numbers)),
            (_Rank.NUMBER, Q(pk__in=registered)),
        ]
        if self.number_like:
            starts = Q()
            persons = Q()
            for number in self.numbers:
                starts |= Q(case_no__startswith=number)
                persons |= Q(registration_no__startswith=number)
            branches.append((_Rank.NUMBER_START, starts))
            branches.append((_Rank.NUMBER_START, Q(pk__in=Person.objects.filter(persons).values("case_id"))))
        return branches

    def _names(self, similar: Iterable[str] = ()) -> Q | None:
        """Persons whose names match every word: by its keys, or (the words in `similar`) by
        similarity. None when a word is close to no name: nobody matches."""
        condition = Q()
        for word in self.words:
            if word in similar or not self.keys[word]:
                close = _similar(word)
                if close is None:
                    return None
                condition &= close
            else:
                condition &= _keys_match(self.keys[word])
        return condition

    def _name_rank(self, rank: _Rank) -> Any:
        as_typed = Q()
        for word in self.words:
            as_typed &= _as_typed(word)
        return SqlCase(When(as_typed, then=Value(int(_Rank.NAME_AS_TYPED))), default=Value(int(rank)))

    def _find(self, cases: QuerySet[Case], branches: list[tuple[_Rank, Q]], names: tuple[_Rank, Q] | None) -> Any:
        """(case id, rank) of every match, in one query (a UNION ALL), or None when there are too many."""
        scoped = cases.order_by().prefetch_related(None)
        queries: list[Any] = [
            scoped.filter(condition).values_list("pk", Value(int(rank))) for rank, condition in branches
        ]
        if names is not None:
            rank, condition = names
            if self.relevance and rank == _Rank.NAME:
                # From the persons, to rank the cases with names spelled as typed first.
                persons = _persons().filter(condition, case__in=scoped.values("pk")).order_by()
                best = persons.values("case_id").annotate(best=Min(self._name_rank(rank)))
                queries.append(best.values_list("case_id", "best"))
            else:
                # The cases, with the persons as an IN subquery: the planner hashes the (fewer) matches.
                matching = _persons().filter(condition).values("case_id")
                queries.append(scoped.filter(pk__in=matching).values_list("pk", Value(int(rank))))
        limit = _match_limit()
        union = queries[0].union(*queries[1:], all=True).order_by() if len(queries) > 1 else queries[0]
        rows = list(union[: limit + 1])
        if len(rows) > limit:
            return None
        ranks: dict[int, int] = {}
        for pk, rank in rows:
            ranks[pk] = min(rank, ranks.get(pk, rank))
        return ranks

    def _unknown_words(self, cases: QuerySet[Case]) -> list[str]:
        """The words whose keys no member of these cases has: typos, parts of names (or names not here)."""
        if len(self.words) == 1:
            return self.words  # the names query just found none
        scoped = cases.order_by().values("pk")
        with _index_scans():
            return [
                word
                for word in self.words
                if not self.keys[word] or not _persons().filter(_keys_match(self.keys[word]), case__in=scoped).exists()
            ]

    def apply(self, cases: QuerySet[Case]) -> QuerySet[Case]:
        branches = self._number_branches()
        condition = self._names() if self.words else None
        names = (_Rank.NAME, condition) if condition is not None else None
        ranks = self._find(cases, branches, names)
        # Nothing at all: the words no key matches are looked for by similarity.
        if ranks == {} and self.words and (similar := self._unknown_words(cases)):
            condition = self._names(similar)
            names = (_Rank.NAME_SIMILAR, condition) if condition is not None else None
            ranks = self._find(cases, [], names) if names is not None else {}
        if ranks is None:
            return self._subquery(cases, branches, names)
        if not ranks:
            return cases.none()
        listed = cases.filter(_pk_in(list(ranks)))
        tiers = sorted(set(ranks.values()))
        if self.relevance and len(tiers) > 1:
            ordering = SqlCase(
                *(
                    When(_pk_in([pk for pk, rank in ranks.items() if rank == tier]), then=Value(tier))
                    for tier in tiers[:-1]
                ),
                default=Value(tiers[-1]),
            )
            listed = listed.alias(relevance=ordering).order_by("relevance", "case_no")
        # The ids are the matches among these cases, so their number is the count (the
        # paginator's COUNT(*) would fetch every one again).
        return _counted(listed, len(ranks))

    def _subquery(
        self, cases: QuerySet[Case], branches: list[tuple[_Rank, Q]], names: tuple[_Rank, Q] | None
    ) -> QuerySet[Case]:
        """The search as subqueries of the count and of the page: for more matches than MATCH_LIMIT."""
        condition = Q()
        for _rank, branch in branches:
            condition |= branch
        if names is not None:
            condition |= Q(pk__in=_persons().filter(names[1]).values("case_id"))
        return cases.filter(condition)


class _AnyYesNo(django_filters.widgets.BooleanWidget):
    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.choices = [("", _("Any")), ("true", _("Yes")), ("false", _("No"))]


class _UserField(FilterModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.get_full_name() or obj.get_username()


class UserFilter(ModelChoiceFilter):
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
    status = django_filters.ChoiceFilter(
        label=_("Status"), choices=CaseStatus.choices, empty_label=_("Any"), widget=Select
    )
    site = ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all(), empty_label=_("Any"), widget=Select)
    nationality = django_filters.ChoiceFilter(
        label=_("Nationality (any member)"),
        choices=country_choices,
        method="filter_nationality",
        empty_label=_("Any"),
        widget=Select,
    )
    sex = django_filters.ChoiceFilter(
        label=_("Sex of principal applicant"),
        choices=Sex.choices,
        method="filter_sex",
        empty_label=_("Any"),
        widget=Select,
    )
    age = django_filters.ChoiceFilter(
        label=_("Age (any member)"),
        choices=[(value, label) for value, label, _young, _old in AGE_BANDS],
        method="filter_age",
        empty_label=_("Any"),
        widget=Select,
    )
    need = ModelChoiceFilter(
        label=_("Specific need (any member)"),
        queryset=SpecificNeed.objects.order_by("label"),
        method="filter_need",
        empty_label=_("Any"),
        widget=Select,
    )
    officer = UserFilter(
        label=_("Assigned officer"),
        field_name="assigned_officer",
        queryset=lambda request: _team(),
        null_label=_("Nobody"),
        empty_label=_("Any"),
        widget=Select,
    )
    offer = ModelChoiceFilter(
        label=_("Nominated to offer"), queryset=_offers, method="filter_offer", empty_label=_("Any"), widget=Select
    )
    in_status = django_filters.ChoiceFilter(
        label=_("Time in current status"),
        choices=IN_STATUS_DAYS,
        method="filter_in_status",
        empty_label=_("Any"),
        widget=Select,
    )
    interview = django_filters.ChoiceFilter(
        label=_("Interviews"),
        choices=INTERVIEW_CHOICES,
        method="filter_interview",
        empty_label=_("Any"),
        widget=Select,
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
        if user is not None:
            narrow_site_choices(self, sites_of(user))

    def filter_queryset(self, queryset: QuerySet[Case]) -> QuerySet[Case]:
        """As django-filter's, but the search last: it finds its matches among the cases the others leave."""
        data = self.form.cleaned_data
        for name, value in data.items():
            if name != "q":
                queryset = self.filters[name].filter(queryset, value)
        return self.filters["q"].filter(queryset, data.get("q")) if "q" in self.filters else queryset

    def search(self, queryset: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        """Case or registration number, or members' names in any spelling or script.

        Unless a column is chosen, the closest matches come first (see `_Rank`).
        """
        value = value.strip()
        if not value:
            return queryset
        return _Search(value, relevance=not self.form.cleaned_data.get("o")).apply(queryset)

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
