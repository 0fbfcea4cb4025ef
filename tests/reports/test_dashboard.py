import pytest
from django.urls import reverse

from cases.models import ResidenceStatus
from tests.factories import CaseFactory, OfferFactory


@pytest.mark.django_db
def test_the_dashboard_shows_relocated_and_still_to_relocate(client_for):
    case = CaseFactory(size=4)
    case.members.filter(relationship="child").update(residence_status=ResidenceStatus.RELOCATED)
    response = client_for("Supervisor").get(reverse("reports:dashboard"))
    assert response.context["headline"].relocated == 3
    assert response.context["headline"].to_relocate == 1
    assert response.context["headline"].percent_done == 75.0
    assert "75.0%" in response.text


@pytest.mark.django_db
@pytest.mark.parametrize("rows", [1, 20])
def test_the_dashboard_costs_the_same_queries_whatever_the_data(client_for, django_assert_num_queries, rows):
    client = client_for("Supervisor")
    for _ in range(rows):
        CaseFactory(size=2)
        OfferFactory()
    # session, user, user and group permissions, groups (role in the header), headline,
    # persons per site, offers, case pipeline
    with django_assert_num_queries(9):
        client.get(reverse("reports:dashboard"))


@pytest.mark.django_db
@pytest.mark.parametrize("rows", [1, 20])
def test_the_home_page_costs_the_same_queries_whatever_the_data(client_for, django_assert_num_queries, rows):
    client = client_for("Staff")
    for _ in range(rows):
        CaseFactory(size=2)
    # session, user, user and group permissions, groups (role in the header), status counts
    with django_assert_num_queries(6):
        client.get(reverse("home"))
