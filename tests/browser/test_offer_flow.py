import pytest
from playwright.sync_api import expect

from cases.models import CaseStatus, ResidenceStatus
from offers.models import DepartureStatus
from tests.factories import CaseFactory, OfferFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def expect_figures(page, **figures: str) -> None:
    """The offer page's headline figures, e.g. expect_figures(page, Places="10"); waits for the page."""
    for label, value in figures.items():
        box = page.locator(".figure", has=page.locator(".label", has_text=label))
        expect(box.locator(".value")).to_have_text(value)


def test_a_supervisor_takes_a_case_from_nomination_to_departure(page, log_in, supervisor):
    offer = OfferFactory(reference="CA-FLOW", places=10)
    case = CaseFactory(case_no="C-FLOW", status=CaseStatus.ELIGIBLE, size=3)
    log_in("supervisor-test")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Offers").click()
    page.get_by_role("link", name="CA-FLOW").click()
    expect_figures(page, Places="10", Remaining="10")

    # Nominate from the list of eligible cases.
    page.get_by_label("C-FLOW").check()
    page.get_by_role("button", name="Nominate chosen cases").click()
    expect(page.get_by_text("1 case nominated: C-FLOW.")).to_be_visible()
    expect_figures(page, Nominated="3", Remaining="7")
    _decide_and_depart(page, offer, case)


def test_a_supervisor_accepts_a_proposal_and_takes_it_to_departure(page, log_in, supervisor):
    offer = OfferFactory(reference="CA-FLOW", places=3)
    case = CaseFactory(case_no="C-FLOW", status=CaseStatus.ELIGIBLE, size=3)
    CaseFactory(case_no="C-TOO-BIG", status=CaseStatus.ELIGIBLE, size=4)
    log_in("supervisor-test")

    page.goto(f"/offers/{offer.pk}/")
    page.get_by_role("link", name="Suggest cases").click()
    expect(page.get_by_role("heading", name="Suggested cases for CA-FLOW")).to_be_visible()
    proposed = page.locator("section", has=page.get_by_role("heading", name="Proposed cases"))
    expect(proposed.get_by_role("link", name="C-FLOW")).to_be_visible()
    left_out = page.locator("section", has=page.get_by_role("heading", name="Strong candidates left out, and why"))
    expect(left_out.locator("tr", has_text="C-TOO-BIG")).to_contain_text("larger than the 3 places left")
    page.get_by_role("button", name="Nominate the ticked cases").click()
    expect(page.get_by_text("1 case nominated from the proposal.")).to_be_visible()
    expect_figures(page, Nominated="3", Remaining="0")
    _decide_and_depart(page, offer, case, remaining="0")


def _decide_and_depart(page, offer, case, remaining="7"):
    # The country accepts, then the case consents.
    row = page.locator("tr", has=page.get_by_role("link", name="C-FLOW"))
    row.get_by_text("Record…").click()
    row.get_by_role("button", name="Country accepted").click()
    expect(page.get_by_text("The country accepted C-FLOW.")).to_be_visible()
    row.get_by_text("Record…").click()
    row.get_by_role("button", name="Case consents").click()
    expect(page.get_by_text("Case C-FLOW consents.")).to_be_visible()
    expect_figures(page, Nominated="0", Accepted="3")

    # Plan a departure with the accepted case.
    page.get_by_role("link", name="Plan a departure").click()
    page.get_by_label("Planned date").fill("2027-02-01")
    page.get_by_label("Route or flight").fill("YUL 123")
    page.get_by_label("C-FLOW — 3 persons").check()
    page.get_by_role("button", name="Plan departure").click()
    expect(page.get_by_role("heading", name="Departure to Canada on 2027-02-01")).to_be_visible()

    # Marking it departed waits for the checklist: the button is off, and says why.
    expect(page.get_by_role("button", name="Mark departed")).to_be_disabled()
    expect(page.get_by_text("3 persons are not ready yet")).to_be_visible()
    for box in page.locator("table.manifest input[type=checkbox]").all():
        box.check()
    page.get_by_role("button", name="Save checklist").click()
    expect(page.get_by_text("Checklist saved: 3 persons changed.")).to_be_visible()
    page.get_by_role("button", name="Mark departed").click()
    expect(page.get_by_text("Departed: its cases and persons are now relocated.")).to_be_visible()

    # The offer's figures show the departed persons.
    page.get_by_role("main").get_by_role("link", name="CA-FLOW").first.click()
    expect_figures(page, Accepted="0", Departed="3", Remaining=remaining)

    case.refresh_from_db()
    assert case.status == CaseStatus.RELOCATED
    assert set(case.members.values_list("residence_status", flat=True)) == {ResidenceStatus.RELOCATED}
    assert offer.departures.get().status == DepartureStatus.DEPARTED
