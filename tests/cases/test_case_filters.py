"""The case list's filters, ordering and pagination, each kept in the URL."""

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from cases.models import CaseStatus, Interview, InterviewOutcome, Relationship, SpecificNeed
from offers.models import Nomination, NominationStatus
from tests.conftest import ROLES
from tests.factories import CaseFactory, OfferFactory, PersonFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db


def _listed(client, **params):
    response = client.get(reverse("cases:list"), params)
    assert response.status_code == 200
    return [case.case_no for case in response.context["page"]]


@pytest.fixture
def staff_client(client_for):
    return client_for("Staff")


@pytest.mark.parametrize("role", ROLES)
def test_the_case_list_answers_each_role(client_for, role):
    response = client_for(role).get(reverse("cases:list"))
    assert response.status_code == (302 if role == "anonymous" else 200)


def test_it_filters_by_status_and_site(staff_client):
    north = SiteFactory(name="North")
    CaseFactory(case_no="C-1", status=CaseStatus.ELIGIBLE, site=north)
    CaseFactory(case_no="C-2", status=CaseStatus.ELIGIBLE)
    CaseFactory(case_no="C-3", status=CaseStatus.REGISTERED, site=north)
    assert _listed(staff_client, status="eligible") == ["C-1", "C-2"]
    assert _listed(staff_client, status="eligible", site=north.pk) == ["C-1"]


def test_nationality_matches_any_member(staff_client):
    mixed = CaseFactory(case_no="C-MIXED", size=1)
    PersonFactory(case=mixed, relationship=Relationship.SPOUSE, nationality="IQ")
    CaseFactory(case_no="C-IR", size=2)
    assert _listed(staff_client, nationality="IQ") == ["C-MIXED"]
    assert _listed(staff_client, nationality="IR") == ["C-IR", "C-MIXED"]


def test_sex_is_the_principal_applicants(staff_client):
    woman_led = CaseFactory(case_no="C-F")
    PersonFactory(case=woman_led, sex="F")
    man_led = CaseFactory(case_no="C-M")
    PersonFactory(case=man_led, sex="M")
    PersonFactory(case=man_led, relationship=Relationship.SPOUSE, sex="F")
    assert _listed(staff_client, sex="F") == ["C-F"]
    assert _listed(staff_client, sex="M") == ["C-M"]


@pytest.mark.parametrize(
    ("age", "band", "other_band"),
    [(0, "0-4", "5-11"), (4, "0-4", "5-11"), (5, "5-11", "0-4"), (17, "12-17", "18-59"), (60, "60+", "18-59")],
)
def test_an_age_band_matches_a_case_with_any_member_of_that_age(staff_client, age, band, other_band):
    case = CaseFactory(case_no="C-AGE")
    this_year = timezone.localdate().year
    PersonFactory(case=case, birth_year=this_year - 35)
    PersonFactory(case=case, relationship=Relationship.CHILD, birth_year=this_year - age)
    assert "C-AGE" in _listed(staff_client, age=band)
    assert ("C-AGE" in _listed(staff_client, age=other_band)) == (other_band == "18-59")


def test_a_specific_need_matches_any_member(staff_client):
    disability = SpecificNeed.objects.get(code="disability")
    case = CaseFactory(case_no="C-NEED", size=3)
    case.members.filter(relationship=Relationship.CHILD).first().specific_needs.add(disability)
    CaseFactory(case_no="C-NONE", size=2)
    assert _listed(staff_client, need=disability.pk) == ["C-NEED"]


def test_the_specific_needs_filter_is_neither_offered_nor_applied_without_the_permission(client):
    disability = SpecificNeed.objects.get(code="disability")
    CaseFactory(case_no="C-NEED", size=1).members.get().specific_needs.add(disability)
    CaseFactory(case_no="C-NONE", size=1)
    reader = UserFactory(username="reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_case"))
    client.force_login(reader)
    response = client.get(reverse("cases:list"), {"need": disability.pk})
    assert 'name="need"' not in response.text
    assert [case.case_no for case in response.context["page"]] == ["C-NEED", "C-NONE"]


def test_it_filters_by_assigned_officer_or_nobody(staff_client, staff):
    CaseFactory(case_no="C-MINE", assigned_officer=staff)
    CaseFactory(case_no="C-NOBODY")
    assert _listed(staff_client, officer=staff.pk) == ["C-MINE"]
    assert _listed(staff_client, officer="null") == ["C-NOBODY"]


def test_the_offer_filter_lists_a_case_nominated_twice_once_with_its_true_size(staff_client, supervisor):
    offer = OfferFactory(reference="OFFER-CA")
    twice = CaseFactory(case_no="C-TWICE", size=3)
    Nomination.objects.create(
        offer=offer, case=twice, persons=3, nominated_by=supervisor, status=NominationStatus.WITHDRAWN
    )
    Nomination.objects.create(offer=offer, case=twice, persons=3, nominated_by=supervisor)
    other = CaseFactory(case_no="C-ELSEWHERE", size=1)
    Nomination.objects.create(offer=OfferFactory(), case=other, persons=1, nominated_by=supervisor)
    response = staff_client.get(reverse("cases:list"), {"offer": offer.pk})
    assert [(case.case_no, case.size) for case in response.context["page"]] == [("C-TWICE", 3)]
    assert "OFFER-CA" in response.text  # offered as a choice


def test_time_in_current_status_counts_open_cases_only(staff_client):
    now = timezone.now()
    CaseFactory(case_no="C-40", status_changed_at=now - datetime.timedelta(days=40))
    CaseFactory(case_no="C-100", status=CaseStatus.ON_HOLD, status_changed_at=now - datetime.timedelta(days=100))
    CaseFactory(case_no="C-CLOSED", status=CaseStatus.CLOSED, status_changed_at=now - datetime.timedelta(days=400))
    CaseFactory(case_no="C-NEW", status_changed_at=now - datetime.timedelta(days=3))
    assert _listed(staff_client, in_status="30") == ["C-100", "C-40"]
    assert _listed(staff_client, in_status="90") == ["C-100"]
    assert _listed(staff_client, in_status="180") == []


def _interview(case, hours, outcome=InterviewOutcome.PENDING):
    Interview.objects.create(
        case=case, scheduled_at=timezone.now() + datetime.timedelta(hours=hours), place="Room", outcome=outcome
    )


def test_the_interview_filter_finds_open_overdue_and_no_show_cases(staff_client):
    _interview(CaseFactory(case_no="C-OVERDUE", status=CaseStatus.INTERVIEW_SCHEDULED), -2)
    _interview(CaseFactory(case_no="C-NEXT-WEEK", status=CaseStatus.INTERVIEW_SCHEDULED), 24 * 7)
    _interview(CaseFactory(case_no="C-NO-SHOW"), -48, InterviewOutcome.NO_SHOW)
    _interview(CaseFactory(case_no="C-DONE", status=CaseStatus.INTERVIEWED), -48, InterviewOutcome.ATTENDED)
    assert _listed(staff_client, interview="open") == ["C-NEXT-WEEK", "C-OVERDUE"]
    assert _listed(staff_client, interview="overdue") == ["C-OVERDUE"]
    assert _listed(staff_client, interview="no_show") == ["C-NO-SHOW"]


def test_it_filters_cases_needing_review(staff_client):
    CaseFactory(case_no="C-REVIEW", needs_review=True)
    CaseFactory(case_no="C-FINE")
    assert _listed(staff_client, needs_review="true") == ["C-REVIEW"]
    assert _listed(staff_client, needs_review="false") == ["C-FINE"]


def test_filters_combine(staff_client, staff):
    CaseFactory(case_no="C-BOTH", status=CaseStatus.INTERVIEWED, assigned_officer=staff)
    CaseFactory(case_no="C-STATUS", status=CaseStatus.INTERVIEWED)
    CaseFactory(case_no="C-OFFICER", assigned_officer=staff)
    assert _listed(staff_client, status="interviewed", officer=staff.pk) == ["C-BOTH"]


def test_an_unknown_filter_value_is_shown_as_an_error_not_a_crash(staff_client):
    response = staff_client.get(reverse("cases:list"), {"status": "teleported"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.text


@pytest.mark.parametrize(
    ("o", "expected"),
    [
        ("case_no", ["C-A", "C-B", "C-C"]),
        ("-case_no", ["C-C", "C-B", "C-A"]),
        ("status", ["C-C", "C-A", "C-B"]),  # eligible, on_hold, registered
        ("-in_status_since", ["C-B", "C-C", "C-A"]),
        ("-persons", ["C-B", "C-A", "C-C"]),
        ("persons", ["C-C", "C-A", "C-B"]),
    ],
)
def test_columns_sort_both_ways(staff_client, o, expected):
    now = timezone.now()
    CaseFactory(case_no="C-A", size=2, status=CaseStatus.ON_HOLD, status_changed_at=now - datetime.timedelta(days=9))
    CaseFactory(case_no="C-B", size=3, status_changed_at=now)
    CaseFactory(case_no="C-C", size=1, status=CaseStatus.ELIGIBLE, status_changed_at=now - datetime.timedelta(days=1))
    assert _listed(staff_client, o=o) == expected


def test_a_column_header_links_to_the_other_direction_keeping_the_filters(staff_client):
    CaseFactory(status=CaseStatus.ELIGIBLE)
    text = staff_client.get(reverse("cases:list"), {"status": "eligible", "o": "case_no"}).text
    assert 'href="?status=eligible&amp;o=-case_no"' in text
    assert 'aria-sort="ascending"' in text
    assert 'href="?status=eligible&amp;o=persons"' in text


def test_pages_keep_the_filters_and_the_order_in_their_links(staff_client):
    for _ in range(55):
        CaseFactory(status=CaseStatus.ELIGIBLE)
    CaseFactory(status=CaseStatus.REGISTERED)
    response = staff_client.get(reverse("cases:list"), {"status": "eligible", "o": "-case_no"})
    assert response.context["page"].paginator.count == 55
    assert 'href="?status=eligible&amp;o=-case_no&amp;page=2"' in response.text
    third = staff_client.get(reverse("cases:list"), {"status": "eligible", "o": "-case_no", "page": 3})
    assert len(third.context["page"]) == 5  # 25 a page
    assert 'name="o" value="-case_no"' in third.text  # the search form keeps the order too


def test_rows_per_page_can_be_chosen_and_are_kept_with_the_filters(staff_client):
    for _ in range(55):
        CaseFactory(status=CaseStatus.ELIGIBLE)
    listed = staff_client.get(reverse("cases:list"), {"status": "eligible"})
    assert len(listed.context["page"]) == 25
    assert 'href="?status=eligible&amp;per_page=50"' in listed.text
    assert 'href="?status=eligible&amp;per_page=100"' in listed.text
    assert 'name="per_page"' not in listed.text  # the default needs no field
    fifty = staff_client.get(reverse("cases:list"), {"status": "eligible", "per_page": "50"})
    assert len(fifty.context["page"]) == 50
    assert 'href="?status=eligible&amp;per_page=50&amp;page=2"' in fifty.text
    assert '<input type="hidden" name="per_page" value="50">' in fifty.text  # kept by the search form
    assert 'href="?status=eligible"' in fifty.text  # back to the default
    # Anything else is the default, not an error (nor a page of a million rows).
    for odd in ("7", "100000", "abc", ""):
        assert len(staff_client.get(reverse("cases:list"), {"per_page": odd}).context["page"]) == 25


def _varied_camp(n, staff, supervisor):
    offer = OfferFactory()
    need = SpecificNeed.objects.get(code="disability")
    for index in range(n):
        case = CaseFactory(size=3, status=CaseStatus.ELIGIBLE, assigned_officer=staff)
        case.members.first().specific_needs.add(need)
        _interview(case, -2 - index)
        Nomination.objects.create(offer=offer, case=case, persons=3, nominated_by=supervisor)
    return offer, need


@pytest.mark.parametrize("n", [1, 30])
def test_a_filtered_sorted_page_costs_the_same_queries_at_any_size(
    staff_client, staff, supervisor, django_assert_num_queries, n
):
    offer, need = _varied_camp(n, staff, supervisor)
    params = {
        "q": "Hosseini",
        "status": "eligible",
        "nationality": "IR",
        "sex": "M",
        "age": "5-11",
        "need": need.pk,
        "officer": staff.pk,
        "offer": offer.pk,
        "interview": "overdue",
        "needs_review": "false",
        "o": "-persons",
    }
    staff_client.get(reverse("cases:list"))  # a first request may refresh the session
    # session, user, permissions with groups and sites; the chosen need, officer and offer
    # (checked by the form); the search's matching cases (their number is the count);
    # sites, specific needs, officers and offers for the filters; page of cases, their
    # principal applicants
    with django_assert_num_queries(13):
        response = staff_client.get(reverse("cases:list"), params)
    assert response.context["page"].paginator.count == n
