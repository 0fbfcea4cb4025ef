import pytest

from cases.models import CaseStatus, ResidenceStatus
from offers.models import DepartureStatus
from tests.factories import CaseFactory, OfferFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def figure(page, label: str) -> str:
    return page.locator(".figure", has=page.locator(".label", has_text=label)).locator(".value").inner_text()


def test_a_supervisor_takes_a_case_from_nomination_to_departure(page, log_in, supervisor):
    offer = OfferFactory(reference="CA-FLOW", places=10)
    case = CaseFactory(case_no="C-FLOW", status=CaseStatus.ELIGIBLE, size=3)
    log_in("supervisor-test")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Offers").click()
    page.get_by_role("link", name="CA-FLOW").click()
    assert (figure(page, "Places"), figure(page, "Remaining")) == ("10", "10")

    # Nominate from the list of eligible cases.
    page.get_by_label("C-FLOW").check()
    page.get_by_role("button", name="Nominate chosen cases").click()
    assert page.get_by_text("1 case nominated: C-FLOW.").is_visible()
    assert (figure(page, "Nominated"), figure(page, "Remaining")) == ("3", "7")
    _decide_and_depart(page, offer, case)


def test_a_supervisor_accepts_a_proposal_and_takes_it_to_departure(page, log_in, supervisor):
    offer = OfferFactory(reference="CA-FLOW", places=3)
    case = CaseFactory(case_no="C-FLOW", status=CaseStatus.ELIGIBLE, size=3)
    CaseFactory(case_no="C-TOO-BIG", status=CaseStatus.ELIGIBLE, size=4)
    log_in("supervisor-test")

    page.goto(f"/offers/{offer.pk}/")
    page.get_by_role("link", name="Suggest cases").click()
    assert page.get_by_role("heading", name="Suggested cases for CA-FLOW").is_visible()
    proposed = page.locator("section", has=page.get_by_role("heading", name="Proposed cases"))
    assert proposed.get_by_role("link", name="C-FLOW").is_visible()
    left_out = page.locator("section", has=page.get_by_role("heading", name="Strong candidates left out, and why"))
    assert "larger than the 3 places left" in left_out.locator("tr", has_text="C-TOO-BIG").inner_text()
    page.get_by_role("button", name="Nominate the ticked cases").click()
    assert page.get_by_text("1 case nominated from the proposal.").is_visible()
    assert (figure(page, "Nominated"), figure(page, "Remaining")) == ("3", "0")
    _decide_and_depart(page, offer, case, remaining="0")


def _decide_and_depart(page, offer, case, remaining="7"):
    # The country accepts, then the case consents.
    row = page.locator("tr", has=page.get_by_role("link", name="C-FLOW"))
    row.get_by_text("Record…").click()
    row.get_by_role("button", name="Country accepted").click()
    assert page.get_by_text("The country accepted C-FLOW.").is_visible()
    row.get_by_text("Record…").click()
    row.get_by_role("button", name="Case consents").click()
    assert page.get_by_text("Case C-FLOW consents.").is_visible()
    assert (figure(page, "Nominated"), figure(page, "Accepted")) == ("0", "3")

    # Plan a departure with the accepted case.
    page.get_by_role("link", name="Plan a departure").click()
    page.get_by_label("Planned date").fill("2027-02-01")
    page.get_by_label("Route or flight").fill("YUL 123")
    page.get_by_label("C-FLOW — 3 persons").check()
    page.get_by_role("button", name="Plan departure").click()
    assert page.get_by_role("heading", name="Departure to Canada on 2027-02-01").is_visible()

    # Marking it departed is refused until the checklist is complete.
    page.get_by_role("button", name="Mark departed").click()
    assert page.get_by_text("The readiness checklist is incomplete for:").is_visible()
    for box in page.locator("table.manifest input[type=checkbox]").all():
        box.check()
    page.get_by_role("button", name="Save checklist").click()
    assert page.get_by_text("Checklist saved: 3 persons changed.").is_visible()
    page.get_by_role("button", name="Mark departed").click()
    assert page.get_by_text("Departed: its cases and persons are now relocated.").is_visible()

    # The offer's figures show the departed persons.
    page.get_by_role("main").get_by_role("link", name="CA-FLOW").first.click()
    assert (figure(page, "Accepted"), figure(page, "Departed"), figure(page, "Remaining")) == ("0", "3", remaining)

    case.refresh_from_db()
    assert case.status == CaseStatus.RELOCATED
    assert set(case.members.values_list("residence_status", flat=True)) == {ResidenceStatus.RELOCATED}
    assert offer.departures.get().status == DepartureStatus.DEPARTED
