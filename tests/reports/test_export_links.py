import pytest
from django.urls import reverse


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "shown"), [("Staff", False), ("Supervisor", True)])
def test_the_case_list_offers_its_export_with_the_filters_applied(client_for, role, shown):
    page = client_for(role).get(reverse("cases:list"), {"status": "eligible", "page": "1"})
    link = reverse("reports:export", args=["cases", "xlsx"]) + "?status=eligible"
    assert (link in page.text) is shown


@pytest.mark.django_db
def test_an_exported_list_holds_what_the_filtered_page_shows(client_for):
    from cases.models import CaseStatus
    from tests.factories import CaseFactory

    CaseFactory(case_no="C-ELIGIBLE", status=CaseStatus.ELIGIBLE, size=1)
    CaseFactory(case_no="C-CLOSED", status=CaseStatus.CLOSED, size=1)
    response = client_for("Supervisor").get(reverse("reports:export", args=["cases", "csv"]), {"status": "eligible"})
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert "C-ELIGIBLE" in text
    assert "C-CLOSED" not in text
