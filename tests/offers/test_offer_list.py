import pytest
from django.urls import reverse

from cases.models import CaseStatus
from offers.services import offer_nominate
from tests.factories import CaseFactory, OfferFactory


@pytest.mark.django_db
def test_the_offer_list_shows_places_in_persons(client_for, supervisor):
    offer = OfferFactory(reference="CA-TEST", places=12)
    offer_nominate(offer, CaseFactory(status=CaseStatus.ELIGIBLE, size=4), actor=supervisor)
    response = client_for("Staff").get(reverse("offers:list"))
    row = response.text.split("CA-TEST", 1)[1].split("</tr>", 1)[0]
    cells = [c.split(">", 1)[1] for c in row.split("</td>")[1:7]]
    # country, places, nominated, accepted, departed, remaining
    assert cells == ["Canada", "12", "4", "0", "0", "8"]


@pytest.mark.django_db
@pytest.mark.parametrize("offers", [1, 10])
def test_the_offer_list_costs_the_same_queries_for_any_number_of_offers(client_for, django_assert_num_queries, offers):
    client = client_for("Staff")
    for _ in range(offers):
        OfferFactory()
    # session, user, permissions with groups and sites,
    # offers with their figures
    with django_assert_num_queries(4):
        client.get(reverse("offers:list"))
