import pytest
from django.urls import reverse

from cases.models import CaseStatus
from tests.factories import CaseFactory, PersonFactory


@pytest.mark.django_db
def test_staff_see_cases_with_their_principal_applicant_and_size(client_for):
    case = CaseFactory(size=3)
    response = client_for("Staff").get(reverse("cases:list"))
    assert response.status_code == 200
    assert case.case_no in response.text
    pa = case.members.get(relationship="PA")
    assert pa.full_name in response.text
    assert '<bdi dir="auto" lang="fa">محمد حسینی</bdi>' in response.text


@pytest.mark.django_db
def test_the_list_filters_by_status_and_keeps_the_filter_in_the_url(client_for):
    CaseFactory(case_no="C-ELIG", status=CaseStatus.ELIGIBLE, size=1)
    CaseFactory(case_no="C-REG", status=CaseStatus.REGISTERED, size=1)
    response = client_for("Staff").get(reverse("cases:list"), {"status": "eligible"})
    assert "C-ELIG" in response.text
    assert "C-REG" not in response.text


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["R-SEARCH-1", "Tehrani", "تهرانی", "C-FIND"])
def test_search_finds_a_case_by_number_registration_or_name_in_either_script(client_for, term):
    case = CaseFactory(case_no="C-FIND")
    PersonFactory(case=case, registration_no="R-SEARCH-1", family_name="Tehrani", native_name="علی تهرانی")
    CaseFactory(case_no="C-OTHER", size=1)
    response = client_for("Staff").get(reverse("cases:list"), {"q": term})
    assert "C-FIND" in response.text
    assert "C-OTHER" not in response.text


@pytest.mark.django_db
@pytest.mark.parametrize(("cases", "per_page", "rows"), [(1, "", 1), (30, "", 25), (101, "100", 100)])
def test_the_list_costs_the_same_queries_for_one_case_or_a_full_page(
    client_for, django_assert_num_queries, cases, per_page, rows
):
    client = client_for("Staff")
    for _ in range(cases):
        CaseFactory(size=2)
    # session, user, permissions with groups and sites, count, page of cases, their principal
    # applicants; sites, specific needs, officers and offers for the filters
    with django_assert_num_queries(10):
        response = client.get(reverse("cases:list"), {"per_page": per_page})
    assert len(response.context["page"]) == rows
