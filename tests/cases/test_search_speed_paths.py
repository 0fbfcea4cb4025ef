"""The case list's search as cases.filters._Search runs it: numbers, names, the similarity
fallback, the closest matches first, the count it gives the paginator, and the indexes
it relies on at a million persons (bench/cases_bench.py measures those)."""

import pytest
from django import forms
from django.db import connection
from django.db.models import QuerySet
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cases import filters
from cases.choices import Select
from cases.filters import CaseFilter
from cases.models import Case, CaseStatus
from cases.selectors import case_list
from tests.factories import CaseFactory, PersonFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client_for):
    return client_for("Staff")


def _listed(client, **params):
    response = client.get(reverse("cases:list"), params)
    assert response.status_code == 200
    return [case.case_no for case in response.context["page"]]


def _person(case_no, family, given, native="", **extra):
    case = CaseFactory(case_no=case_no, **extra.pop("case", {}))
    return PersonFactory(case=case, family_name=family, given_name=given, native_name=native, **extra)


# Numbers -------------------------------------------------------------------------------


def test_a_number_finds_the_cases_it_begins_and_the_exact_one_comes_first(staff_client):
    _person("C-000420", "Karimi", "Reza")
    _person("C-00042", "Karimi", "Ali")
    _person("C-00043", "Karimi", "Sara")
    assert _listed(staff_client, q="c-00042") == ["C-00042", "C-000420"]
    assert _listed(staff_client, q="C-0004") == ["C-00042", "C-000420", "C-00043"]
    # A chosen column orders them as it always does.
    assert _listed(staff_client, q="C-00042", o="-case_no") == ["C-000420", "C-00042"]


def test_a_registration_number_finds_its_case_by_its_beginning_too(staff_client):
    _person("C-1", "Karimi", "Reza", registration_no="RLC01-0000042")
    _person("C-2", "Karimi", "Ali", registration_no="RLC01-0000043")
    assert _listed(staff_client, q="rlc01-000004") == ["C-1", "C-2"]
    assert _listed(staff_client, q="RLC01-0000043") == ["C-2"]


def test_a_number_is_not_read_as_names(staff_client):
    # "R" would be a name key: a number never looks for names.
    _person("C-NAMED", "R", "Reza")
    _person("C-NUMBERED", "Karimi", "Ali", registration_no="R-9")
    assert _listed(staff_client, q="R-9") == ["C-NUMBERED"]


# Names -----------------------------------------------------------------------------------


def test_names_spelled_as_typed_come_first_then_other_spellings(staff_client):
    _person("C-A", "Karimi", "Mohammad")
    _person("C-B", "Karimi", "Mohammed")
    _person("C-C", "Karimi", "Muhammad")
    _person("C-D", "Karimi", "Reza")
    assert _listed(staff_client, q="Mohammed") == ["C-B", "C-A", "C-C"]
    assert _listed(staff_client, q="Mohammed", o="case_no") == ["C-A", "C-B", "C-C"]


def test_a_word_no_key_matches_is_looked_for_by_similarity_beside_the_others(staff_client):
    # "Sadeg" is no whole name: its key matches nobody, so it is looked for by similarity
    # (part of a word, or a typo on PostgreSQL), while "Muhammad" still matches by its key.
    _person("C-FOUND", "Sadeghi", "Mohammad")
    _person("C-OTHER-GIVEN", "Sadeghi", "Reza")
    _person("C-OTHER-FAMILY", "Tehrani", "Mohammad")
    assert _listed(staff_client, q="Muhammad Sadeg") == ["C-FOUND"]


def test_no_similarity_search_beside_a_name_that_matches(staff_client):
    # "Tehr" matches Tahir's key: Tehrani, only similar, is not added to the list.
    _person("C-TAHIR", "Tahir", "Ali")
    _person("C-TEHRANI", "Tehrani", "Ali")
    assert _listed(staff_client, q="Tehr") == ["C-TAHIR"]
    assert _listed(staff_client, q="Tehrani") == ["C-TEHRANI"]


def test_the_search_runs_within_the_other_filters(staff_client):
    _person("C-ELIGIBLE", "Karimi", "Reza", case={"status": CaseStatus.ELIGIBLE})
    _person("C-REGISTERED", "Karimi", "Reza", case={"status": CaseStatus.REGISTERED})
    _person("C-OTHER", "Tehrani", "Ali", case={"status": CaseStatus.ELIGIBLE})
    assert _listed(staff_client, q="Karimi", status="eligible") == ["C-ELIGIBLE"]
    # The similarity fallback too: no eligible Karimi spelled "Karim", none found.
    assert _listed(staff_client, q="Karimi Reza", status="interviewed") == []


def test_nothing_found_lists_nothing(staff_client):
    _person("C-1", "Karimi", "Reza")
    response = staff_client.get(reverse("cases:list"), {"q": "Zzyzx Qwrtp"})
    assert response.context["page"].paginator.count == 0
    assert "No case matches these filters." in response.text


# The count and the pages -----------------------------------------------------------------


def test_the_matches_are_counted_once_and_paged_through(staff_client):
    for index in range(55):
        _person(f"C-{index:03d}", "Karimi", "Reza")
    _person("C-OTHER", "Tehrani", "Ali")
    with CaptureQueriesContext(connection) as captured:
        response = staff_client.get(reverse("cases:list"), {"q": "Karimi", "o": "case_no"})
    assert response.context["page"].paginator.count == 55
    assert not [q for q in captured.captured_queries if '"__count"' in q["sql"]]
    third = staff_client.get(reverse("cases:list"), {"q": "Karimi", "o": "case_no", "page": 3})
    assert [case.case_no for case in third.context["page"]] == [f"C-{index:03d}" for index in range(50, 55)]


def test_the_known_count_is_not_kept_by_a_narrower_queryset():
    for index in range(3):
        _person(f"C-{index}", "Karimi", "Reza", case={"status": CaseStatus.ELIGIBLE if index else "registered"})
    request = RequestFactory().get("/cases/", {"q": "Karimi"})
    request.user = None
    found = CaseFilter(request.GET, queryset=case_list(), request=request).qs
    assert found.count() == 3
    assert found.filter(status=CaseStatus.ELIGIBLE).count() == 2
    assert Case.objects.filter(pk__in=found.values("pk")).count() == 3


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        # As typed first (C-060 ... C-069 spelled "Mohammed"), then the others by case number.
        ({}, [f"C-{i:03d}" for i in [*range(60, 70), *range(0, 60), *range(70, 80)]]),
        ({"o": "case_no"}, [f"C-{i:03d}" for i in range(80)]),
        ({"o": "-case_no"}, [f"C-{i:03d}" for i in range(79, -1, -1)]),
        ({"o": "status"}, [f"C-{i:03d}" for i in range(80)]),  # one status: by case number within it
    ],
)
def test_the_pages_of_a_search_follow_one_another_in_its_order(staff_client, order, expected):
    for index in range(80):
        _person(f"C-{index:03d}", "Karimi", "Mohammed" if 60 <= index < 70 else "Mohammad")
    pages = []
    for number in (1, 2, 3, 4):
        pages += _listed(staff_client, q="Mohammed", page=str(number), **order)
    assert pages == expected


def test_more_matches_than_are_fetched_by_id_are_still_all_listed_and_counted(staff_client, monkeypatch):
    monkeypatch.setattr(filters, "MATCH_LIMIT", 3)
    for index in range(6):
        _person(f"C-{index}", "Karimi", "Reza")
    response = staff_client.get(reverse("cases:list"), {"q": "Karimi", "o": "-case_no"})
    assert response.context["page"].paginator.count == 6
    assert [case.case_no for case in response.context["page"]] == [f"C-{index}" for index in range(5, -1, -1)]


# The filter form's selects -----------------------------------------------------------------


def test_the_selects_are_djangos_html_exactly(staff, client_for):
    CaseFactory(size=1)
    request = RequestFactory().get("/cases/", {"status": "eligible", "nationality": "IR", "officer": "null"})
    request.user = staff
    form = CaseFilter(request.GET, queryset=case_list(), request=request).form
    checked = 0
    for field in form:
        if isinstance(field.field.widget, Select):
            ours = str(field)
            field.field.widget.__class__ = forms.Select
            assert str(field) == ours, field.name
            checked += 1
    assert checked >= 9
    assert '<option value="IR" selected>' in str(form["nationality"])


def test_the_selects_read_their_short_lists_in_one_plain_query_each(staff_client, monkeypatch):
    # queryset.iterator() opens a server-side cursor on PostgreSQL: four round trips for a
    # list of a dozen sites, needs, officers or offers (cases.choices).
    def no_cursor(self, *args, **kwargs):
        raise AssertionError(f"iterator() over {self.model.__name__}")

    monkeypatch.setattr(QuerySet, "iterator", no_cursor)
    page = staff_client.get(reverse("cases:list")).text
    for name in ("site", "need", "officer", "offer"):
        assert f'<select name="{name}"' in page


def test_a_select_with_groups_or_odd_text_is_djangos_html_exactly():
    choices = [
        ("", "Any"),
        ("Asia & more", [("IR", "Iran"), ("AF", "<Afghanistan>")]),
        ("x", 'Other "one"'),
        (None, "-"),
    ]
    for value in ("AF", "x", "", None, "nothing"):
        assert Select(choices=choices).render("c", value) == forms.Select(choices=choices).render("c", value)


# PostgreSQL: the indexes the search is planned with ------------------------------------------


def _plan(sql, params):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is tiny: ask what can be used
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
def test_on_postgresql_the_name_keys_are_matched_through_the_token_index():
    if connection.vendor != "postgresql":
        pytest.skip("the token index exists on PostgreSQL only")
    _person("C-1", "Hosseini", "Zahra")
    persons = filters._persons().filter(filters._keys_match(frozenset({"hsn"})))
    # Unordered, as the search's subqueries are: ordered by name, the planner may walk the
    # (family, given name) index instead, which a tiny table makes as cheap.
    sql, params = persons.order_by().query.sql_with_params()
    assert "cases_person_name_tokens_gin" in _plan(sql, params)
    assert [p.case.case_no for p in persons] == ["C-1"]


@pytest.mark.postgres
def test_on_postgresql_the_cases_of_a_site_and_status_have_an_index_holding_their_ids():
    # Which plan a tiny test table gets is the planner's guess; the index's definition is
    # what makes the index-only scan possible at a million persons (bench/cases_bench.py).
    if connection.vendor != "postgresql":
        pytest.skip("the index exists on PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'cases_case_site_status_ids'")
        (definition,) = cursor.fetchone()
    assert definition.endswith("USING btree (site_id, status) INCLUDE (id)")
