import re

import pytest
from playwright.sync_api import expect

from cases.models import CaseStatus
from tests.factories import CaseFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_visitor_is_sent_to_the_login_page(page):
    page.goto("/cases/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/cases/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_a_wrong_password_says_so_and_lets_nobody_in(page, log_in, staff):
    log_in("staff-test", "not-the-password")
    expect(page.get_by_role("alert")).to_contain_text(re.compile("^Your username and password did not match"))


def test_staff_log_in_find_a_case_and_see_no_reports(page, log_in, staff):
    CaseFactory(case_no="C-BROWSER", status=CaseStatus.ELIGIBLE, size=2)
    log_in("staff-test")
    expect(page.get_by_role("heading", name="Welcome, staff-test")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Cases")).to_be_visible()
    assert nav.get_by_role("link", name="Reports").count() == 0
    nav.get_by_role("link", name="Cases").click()
    page.fill("#id_q", "C-BROWSER")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("cell", name="C-BROWSER")).to_be_visible()
    expect(page).to_have_url(re.compile("q=C-BROWSER"))


def test_a_supervisor_sees_the_dashboard_and_logs_out(page, log_in, supervisor):
    log_in("supervisor-test")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Progress")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile("/accounts/login/"))
