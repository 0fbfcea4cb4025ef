import datetime
import os
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from cases.models import CaseStatus, IncidentEffect, IncidentKind, Person, Relationship, SpecificNeed
from cases.services import case_transition, incident_record
from tests.factories import CaseFactory, PersonFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Set SCREENSHOT_DIR to keep the case page's screenshots for a look.
SCREENSHOT_DIR = os.environ.get("SCREENSHOT_DIR")


def _household(staff):
    case = CaseFactory(case_no="C-WORKFLOW")
    members = [
        ("Rahimi", "Hassan", "حسن رحیمی", Relationship.PRINCIPAL_APPLICANT, "M", 1978, datetime.date(1978, 3, 21)),
        ("Rahimi", "Fatemeh", "فاطمه رحیمی", Relationship.SPOUSE, "F", 1983, None),
        ("Rahimi", "Reza", "رضا رحیمی", Relationship.CHILD, "M", 2009, datetime.date(2009, 11, 2)),
        ("Rahimi", "Narges", "نرگس رحیمی", Relationship.CHILD, "F", 2016, None),
        ("Karimi", "Ahmad", "أحمد كريمي", Relationship.PARENT, "M", 1950, None),
    ]
    for family, given, native, relationship, sex, year, born in members:
        PersonFactory(
            case=case,
            family_name=family,
            given_name=given,
            native_name=native,
            relationship=relationship,
            sex=sex,
            birth_year=year,
            birth_date=born,
        )
    elder = Person.objects.get(given_name="Ahmad")
    elder.specific_needs.add(*SpecificNeed.objects.filter(code__in=["older_person_at_risk", "medical_condition"]))
    incident_record(
        actor=staff,
        site=case.site,
        kind=IncidentKind.MEDICAL,
        occurred_at=timezone.now() - datetime.timedelta(days=3),
        summary="Heat exhaustion during water distribution",
        affected=[(elder, IncidentEffect.INJURED)],
    )
    return case


def _screenshot(page, name):
    if not SCREENSHOT_DIR:
        return
    Path(SCREENSHOT_DIR).mkdir(parents=True, exist_ok=True)
    for width in (1280, 800):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=f"{SCREENSHOT_DIR}/{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_staff_book_and_record_an_interview_then_move_the_case_with_a_reason(page, log_in, staff):
    case = _household(staff)
    log_in("staff-test")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cases").click()
    # The roster says "Hassan"; the staff member types another transliteration.
    page.fill("#id_q", "Hasan Rahimi")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="C-WORKFLOW").click()
    expect(page.get_by_role("heading", name="Case C-WORKFLOW")).to_be_visible()
    expect(page.locator("bdi", has_text="حسن رحیمی")).to_be_visible()
    expect(page.get_by_text("Older person at risk")).to_be_visible()

    # Entered the day after: the interview was held yesterday morning.
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    page.fill("#id_date", yesterday.isoformat())
    page.fill("#id_time", "09:30")
    page.fill("#id_place", "Container 4")
    page.select_option("#id_interviewer", label="staff-test")
    page.get_by_role("button", name="Book interview").click()
    expect(page.get_by_text(f"Interview booked for {yesterday.isoformat()} 09:30.")).to_be_visible()
    expect(page.locator(".status").first).to_have_text("Interview scheduled")

    # Nothing is chosen beforehand: a click without a choice records nothing.
    expect(page.get_by_label("Outcome")).to_have_value("")
    page.get_by_role("button", name="Record outcome").click()
    expect(page.get_by_text("Interview outcome recorded.")).to_have_count(0)
    page.get_by_label("Outcome").select_option("attended")
    page.get_by_role("button", name="Record outcome").click()
    expect(page.get_by_text("Interview outcome recorded.")).to_be_visible()

    page.get_by_label("Reason for the change").fill("Protection needs confirmed at interview")
    page.get_by_role("button", name="Eligible", exact=True).click()
    expect(page.get_by_text("The case is now Eligible.")).to_be_visible()
    timeline = page.locator(".timeline")
    expect(timeline.locator("li").first.get_by_text("Protection needs confirmed at interview")).to_be_visible()
    case.refresh_from_db()
    assert case.status == CaseStatus.ELIGIBLE
    _screenshot(page, "case-page")

    page.get_by_role("link", name="KARIMI, Ahmad").first.click()
    expect(page.get_by_role("heading", name="KARIMI, Ahmad")).to_be_visible()
    expect(page.get_by_text("Heat exhaustion during water distribution")).to_be_visible()
    _screenshot(page, "person-page")
    page.get_by_role("link", name="Edit person details").click()
    _screenshot(page, "person-edit")


def test_a_move_without_a_reason_is_stopped_by_the_page(page, log_in, staff):
    case = CaseFactory(case_no="C-NOREASON", status=CaseStatus.INTERVIEWED, size=1)
    log_in("staff-test")
    page.goto(f"/cases/{case.pk}/")
    page.get_by_role("button", name="Eligible", exact=True).click()
    # The browser asks for the reason; nothing reached the server.
    assert page.get_by_label("Reason for the change").evaluate("el => !el.validity.valid")
    case.refresh_from_db()
    assert case.status == CaseStatus.INTERVIEWED


def test_a_conflicting_edit_from_a_second_browser_is_refused_without_losing_data(
    browser, live_server, page, log_in, staff, supervisor
):
    case = CaseFactory(case_no="C-CONFLICT", size=1)
    case_transition(case, to=CaseStatus.ON_HOLD, actor=staff, reason="Waiting for documents")
    log_in("staff-test")
    page.goto(f"/cases/{case.pk}/edit/")

    other = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    try:
        second = other.new_page()
        second.goto("/accounts/login/")
        second.fill("#id_username", "supervisor-test")
        second.fill("#id_password", "a-long-test-password")
        second.click("button[type=submit]")
        second.goto(f"/cases/{case.pk}/edit/")
        second.fill("#id_notes", "Supervisor: documents arrived")
        second.get_by_role("button", name="Save").click()
        expect(second.get_by_text("Saved.")).to_be_visible()
    finally:
        other.close()

    page.fill("#id_notes", "Staff: family moved to block C")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").get_by_text("Not saved")).to_be_visible()
    assert page.input_value("#id_notes") == "Staff: family moved to block C"
    expect(page.get_by_role("alert").get_by_text("Supervisor: documents arrived")).to_be_visible()
    case.refresh_from_db()
    assert case.notes == "Supervisor: documents arrived"
    _screenshot(page, "edit-conflict")

    page.get_by_role("button", name="Save").click()  # saving again, knowingly, keeps this user's text
    expect(page.get_by_text("Saved.")).to_be_visible()
    case.refresh_from_db()
    assert case.notes == "Staff: family moved to block C"
