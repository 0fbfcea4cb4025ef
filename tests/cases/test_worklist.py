"""The worklist on the home page: what needs the user's action, with counts and links."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from cases.models import CaseStatus, Interview, InterviewOutcome
from cases.selectors import worklist
from tests.conftest import ROLES
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db


def _interview(case, *, hours: float, outcome=InterviewOutcome.PENDING):
    return Interview.objects.create(
        case=case,
        scheduled_at=timezone.now() + datetime.timedelta(hours=hours),
        place="Room 1",
        outcome=outcome,
    )


def _later_today():
    """Hours from now to a moment before midnight (site time), whenever the test runs."""
    now = timezone.localtime()
    midnight = timezone.make_aware(datetime.datetime.combine(now.date() + datetime.timedelta(days=1), datetime.time()))
    return (midnight - now).total_seconds() / 3600 / 2


def _items(user):
    return {item.key: item for item in worklist(user).items}


@pytest.mark.parametrize("role", ROLES)
def test_the_home_page_shows_the_worklist_to_every_role_and_sends_anonymous_visitors_to_log_in(client_for, role):
    response = client_for(role).get(reverse("home"))
    if role == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
        return
    assert response.status_code == 200
    assert "Needs action" in response.text
    assert "Cases by status" in response.text  # the status counts stay


def test_a_user_without_a_role_sees_no_worklist(client, nobody):
    client.force_login(nobody)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert "Needs action" not in response.text


def test_it_counts_overdue_interviews_and_those_later_today(staff):
    # Counts chosen so that the user's and the others' differ, today and overdue alike.
    for hours in (-30, -3):
        _interview(CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED), hours=hours)
    _interview(CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED, assigned_officer=staff), hours=-0.5)
    _interview(CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED), hours=_later_today())
    for _ in range(2):
        mine = CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED, assigned_officer=staff)
        _interview(mine, hours=_later_today())
    _interview(CaseFactory(size=1), hours=-5, outcome=InterviewOutcome.ATTENDED)  # done: not overdue
    _interview(CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED), hours=30)  # not today
    _interview(CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED, assigned_officer=staff), hours=30)
    work = worklist(staff)
    assert (work.overdue_count, work.overdue_mine) == (3, 1)
    assert (work.today_count, work.today_mine) == (3, 2)
    assert [i.scheduled_at < timezone.now() for i in work.overdue] == [True, True, True]
    assert len(work.today) == 3


def test_no_shows_count_only_registered_cases_whose_latest_interview_was_a_no_show(staff):
    missed = CaseFactory(size=1, case_no="C-MISSED")
    _interview(missed, hours=-48, outcome=InterviewOutcome.NO_SHOW)
    rebooked = CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED)
    _interview(rebooked, hours=-48, outcome=InterviewOutcome.NO_SHOW)
    _interview(rebooked, hours=48)
    came_later = CaseFactory(size=1)
    _interview(came_later, hours=-96, outcome=InterviewOutcome.NO_SHOW)
    _interview(came_later, hours=-48, outcome=InterviewOutcome.CANCELLED)
    assert _items(staff)["no_show"].count == 1


def test_it_counts_cases_waiting_on_a_decision(staff, supervisor):
    CaseFactory(status=CaseStatus.INTERVIEWED, assigned_officer=staff)
    CaseFactory(status=CaseStatus.INTERVIEWED)
    CaseFactory(status=CaseStatus.INTERVIEWED, assigned_officer=supervisor)  # a colleague's
    CaseFactory(status=CaseStatus.NOMINATED)
    CaseFactory(status=CaseStatus.ELIGIBLE)
    items = _items(staff)
    assert (items["interviewed"].count, items["interviewed"].mine) == (3, 1)
    assert (items["nominated"].count, items["nominated"].mine) == (1, 0)
    colleague = _items(supervisor)
    assert (colleague["interviewed"].count, colleague["interviewed"].mine) == (3, 1)


def test_cases_stuck_for_more_than_30_days_leave_out_finished_ones(staff):
    long_ago = timezone.now() - datetime.timedelta(days=31)
    CaseFactory(status=CaseStatus.ON_HOLD, status_changed_at=long_ago, assigned_officer=staff)
    CaseFactory(status=CaseStatus.CLOSED, status_changed_at=long_ago)
    CaseFactory(status=CaseStatus.RELOCATED, status_changed_at=long_ago)
    CaseFactory(status=CaseStatus.REGISTERED, status_changed_at=timezone.now() - datetime.timedelta(days=29))
    stuck = _items(staff)["stuck"]
    assert (stuck.count, stuck.mine) == (1, 1)


def test_it_counts_cases_needing_review_and_the_users_open_cases(staff):
    CaseFactory(needs_review=True, assigned_officer=staff)
    CaseFactory(needs_review=True)
    CaseFactory(status=CaseStatus.CLOSED, assigned_officer=staff)
    review = _items(staff)["needs_review"]
    assert (review.count, review.mine) == (2, 1)
    assert worklist(staff).my_open_cases == 1


def test_each_count_links_to_the_case_list_showing_the_same_cases(client_for, staff):
    long_ago = timezone.now() - datetime.timedelta(days=40)
    missed = CaseFactory(size=1, assigned_officer=staff, status_changed_at=long_ago)
    _interview(missed, hours=-48, outcome=InterviewOutcome.NO_SHOW)
    CaseFactory(size=1, status=CaseStatus.INTERVIEWED, needs_review=True)
    CaseFactory(size=1, status=CaseStatus.NOMINATED, assigned_officer=staff)
    _interview(CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED), hours=-3)
    _interview(CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED), hours=_later_today())
    client = client_for("Staff")
    home = client.get(reverse("home")).text
    cases = reverse("cases:list")
    for item in worklist(staff).items:
        assert f'href="{cases}?{item.query}"' in home
        assert f'href="{cases}?{item.query}&amp;officer={staff.pk}"' in home
        listed = client.get(f"{cases}?{item.query}").context["page"].paginator.count
        mine = client.get(f"{cases}?{item.query}&officer={staff.pk}").context["page"].paginator.count
        assert (listed, mine) == (item.count, item.mine), item.key
    for which in ("overdue", "today"):
        assert f'href="{cases}?interview={which}"' in home
        assert client.get(f"{cases}?interview={which}").context["page"].paginator.count == 1


def test_a_scope_of_no_site_counts_nothing(staff):
    _busy_camp(1, staff)
    work = worklist(staff, frozenset())
    assert [(item.count, item.mine) for item in work.items] == [(0, 0)] * len(work.items)
    assert (work.my_open_cases, work.overdue_count, work.today_count, work.overdue, work.today) == (0, 0, 0, [], [])
    assert worklist(staff).my_open_cases == 1  # the same camp, every site


def test_interviews_on_the_worklist_link_to_their_case(client_for):
    case = CaseFactory(size=1, case_no="C-LATE", status=CaseStatus.INTERVIEW_SCHEDULED)
    _interview(case, hours=-2)
    text = client_for("Staff").get(reverse("home")).text
    assert f'<a href="{case.get_absolute_url()}">C-LATE</a>' in text


def test_the_lists_show_at_most_ten_interviews_each(staff):
    for _ in range(12):
        _interview(CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED), hours=-2)
    work = worklist(staff)
    assert work.overdue_count == 12
    assert len(work.overdue) == 10


def _busy_camp(n, staff):
    long_ago = timezone.now() - datetime.timedelta(days=40)
    for _ in range(n):
        _interview(CaseFactory(size=2, status=CaseStatus.INTERVIEW_SCHEDULED, assigned_officer=staff), hours=-2)
        _interview(CaseFactory(size=1, status=CaseStatus.INTERVIEW_SCHEDULED), hours=_later_today())
        _interview(CaseFactory(size=1, status_changed_at=long_ago), hours=-50, outcome=InterviewOutcome.NO_SHOW)
        CaseFactory(size=1, status=CaseStatus.INTERVIEWED, needs_review=True)
        CaseFactory(size=1, status=CaseStatus.NOMINATED)


@pytest.mark.parametrize("n", [1, 15])
def test_the_home_page_costs_the_same_queries_for_a_small_or_a_busy_camp(
    client_for, staff, django_assert_num_queries, n
):
    _busy_camp(n, staff)
    client = client_for("Staff")
    client.get(reverse("home"))  # a first request may refresh the session
    # session, user, permissions with groups and sites, status counts, the worklist's counts
    # (the camp's, the user's, the interviews'), overdue interviews, interviews later today
    with django_assert_num_queries(7):
        response = client.get(reverse("home"))
    assert response.status_code == 200
