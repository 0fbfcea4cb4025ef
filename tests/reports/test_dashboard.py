import datetime
import re

import pytest
from django import forms
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cases.models import Case, CaseStatus, Person, ResidenceStatus, SpecificNeed
from reports.forms import DashboardFilterForm
from tests.factories import CaseFactory, OfferFactory, SiteFactory, UserFactory
from tests.reports.helpers import days_ago, departed, incident, interview

DASHBOARD = reverse("reports:dashboard")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 302), ("Staff", 403), ("Supervisor", 200), ("Administrator", 200)]
)
def test_only_supervisors_and_administrators_see_the_dashboard(client_for, role, status):
    assert client_for(role).get(DASHBOARD).status_code == status


@pytest.mark.django_db
def test_the_dashboard_shows_relocated_and_still_to_relocate(client_for):
    case = CaseFactory(size=4)
    case.members.filter(relationship="child").update(residence_status=ResidenceStatus.RELOCATED)
    response = client_for("Supervisor").get(DASHBOARD)
    assert response.context["headline"].relocated == 3
    assert response.context["headline"].to_relocate == 1
    assert response.context["headline"].percent_done == 75.0
    assert "75.0%" in response.text


def _data(rows: int) -> None:
    """`rows` cases with members, an interview, an incident, a departure and an offer each."""
    need, _ = SpecificNeed.objects.get_or_create(code="disability", defaults={"label": "Disability"})
    for _ in range(rows):
        case = CaseFactory(size=2)
        pa, child = case.members.order_by("pk")
        pa.specific_needs.add(need)
        interview(case, "attended")
        incident(child)
        departed([child])
        OfferFactory()


@pytest.mark.django_db
@pytest.mark.parametrize("rows", [1, 20])
@pytest.mark.parametrize("filtered", [False, True])
def test_the_dashboard_costs_the_same_queries_whatever_the_data(client_for, django_assert_num_queries, rows, filtered):
    client = client_for("Supervisor")
    _data(rows)
    params = {"site": SiteFactory().pk, "nationality": "IR", "date_from": "2024-01-01"} if filtered else {}
    # session, user, permissions with groups and sites (cases.scope): 3; the sites (filter, table), departures per week,
    # interviews per week, persons (headline, sites, sex and age, pipeline), cases per
    # status (pipeline, aging), incidents and persons affected per month (2), specific
    # needs, offers: 9. On PostgreSQL from the summary
    # tables (reports/figures.py), elsewhere from the rows.
    with django_assert_num_queries(12):
        response = client.get(DASHBOARD, params)
    assert response.status_code == 200
    assert not response.context["form"].errors


@pytest.mark.django_db
def test_an_unknown_site_is_refused_and_every_site_shown(client_for):
    here, there = SiteFactory(name="Here"), SiteFactory(name="There")
    CaseFactory(size=2, site=here)
    response = client_for("Supervisor").get(DASHBOARD, {"site": "999999"})
    assert response.status_code == 200
    assert "site" in response.context["form"].errors
    assert response.context["filters"].site is None
    assert [s.name for s in response.context["sites"]] == ["Here", "There"]
    assert response.context["headline"].to_relocate == 2
    filtered = client_for("Supervisor").get(DASHBOARD, {"site": there.pk})
    assert [s.name for s in filtered.context["sites"]] == ["There"]
    assert filtered.context["headline"].to_relocate == 0
    assert f'<option value="{there.pk}" selected>There</option>' in filtered.text


@pytest.mark.django_db
def test_the_page_needs_no_javascript_and_loads_nothing_from_elsewhere(client_for):
    _data(2)
    text = client_for("Supervisor").get(DASHBOARD).text
    assert "<script" not in text
    assert text.count("<svg") >= 7
    # Every address the page loads or links to is this site's (the page's random CSRF
    # token once spelled "cdn": only addresses are looked at).
    addresses = re.findall(r'(?:src|href|action)="([^"]*)"', text)
    assert addresses
    assert [address for address in addresses if address.startswith(("http:", "https:", "//"))] == []


@pytest.mark.django_db
def test_the_site_and_nationality_filters_narrow_the_figures(client_for):
    here, there = SiteFactory(), SiteFactory()
    CaseFactory(size=3, site=here)
    iraqi = CaseFactory(size=2, site=there)
    iraqi.members.update(nationality="IQ")
    client = client_for("Supervisor")
    assert client.get(DASHBOARD).context["headline"].to_relocate == 5
    assert client.get(DASHBOARD, {"site": here.pk}).context["headline"].to_relocate == 3
    response = client.get(DASHBOARD, {"nationality": "IQ"})
    assert response.context["headline"].to_relocate == 2
    pipeline = {row.status: row for row in response.context["status_counts"]}
    assert pipeline[CaseStatus.REGISTERED].cases == 1
    assert pipeline[CaseStatus.REGISTERED].persons == 2


@pytest.mark.django_db
def test_the_date_range_narrows_the_interviews(client_for):
    case = CaseFactory(size=1)
    interview(case, "attended", when=days_ago(3))
    interview(case, "no_show", when=days_ago(400))
    client = client_for("Supervisor")
    assert client.get(DASHBOARD).context["interviews"].total == 1
    old = (timezone.localdate() - datetime.timedelta(days=410)).isoformat()
    assert client.get(DASHBOARD, {"date_from": old}).context["interviews"].total == 2


@pytest.mark.django_db
def test_a_reversed_date_range_is_refused_and_the_default_range_shown(client_for):
    today = timezone.localdate()
    response = client_for("Supervisor").get(
        DASHBOARD, {"date_from": today.isoformat(), "date_to": (today - datetime.timedelta(days=9)).isoformat()}
    )
    assert response.status_code == 200
    assert "The start date must come before the end date." in response.text
    assert response.context["filters"].date_to == today


@pytest.mark.django_db
def test_participation_is_attended_over_attended_no_show_and_refused(client_for):
    case = CaseFactory(size=1)
    for outcome in ["attended", "attended", "attended", "no_show", "pending", "cancelled"]:
        interview(case, outcome)
    figures = client_for("Supervisor").get(DASHBOARD).context["interviews"]
    assert figures.participation == 75.0
    assert figures.total == 6


@pytest.mark.django_db
def test_relocation_over_time_counts_persons_who_left_before_the_range(client_for):
    early, late = CaseFactory(size=2), CaseFactory(size=3)
    departed(list(early.members.all()), when=days_ago(500))
    departed(list(late.members.all()), when=days_ago(2))
    weeks = client_for("Supervisor").get(DASHBOARD).context["departures"]
    assert weeks[0].cumulative == 2
    assert weeks[-1].cumulative == 5
    assert sum(w.persons for w in weeks) == 3


@pytest.mark.django_db
def test_waiting_cases_fall_in_the_bucket_of_their_time_in_status(client_for):
    CaseFactory(size=1)
    waiting = CaseFactory(size=1)
    Case.objects.filter(pk=waiting.pk).update(status_changed_at=days_ago(100))
    Case.objects.filter(pk=CaseFactory(size=1).pk).update(status=CaseStatus.CLOSED)
    aging = {row.status: row for row in client_for("Supervisor").get(DASHBOARD).context["aging"]}
    assert aging[CaseStatus.REGISTERED].buckets == [1, 0, 1, 0, 0]
    assert CaseStatus.CLOSED not in aging


@pytest.mark.django_db
def test_persons_present_are_counted_by_sex_and_age_band(client_for):
    case = CaseFactory(size=1)
    year = timezone.localdate().year
    Person.objects.filter(case=case).update(sex="F", birth_year=year - 2, birth_date=None)
    rows = {row.sex: row for row in client_for("Supervisor").get(DASHBOARD).context["population"]}
    assert rows["F"].bands == [1, 0, 0, 0, 0]
    assert rows["M"].total == 0


@pytest.mark.django_db
def test_incidents_are_counted_per_month_with_the_persons_harmed(client_for):
    incident(CaseFactory(size=1).members.get(), "killed")
    months = client_for("Supervisor").get(DASHBOARD).context["incidents"]
    assert sum(m.total for m in months) == 1
    assert sum(m.harmed for m in months) == 1


@pytest.mark.django_db
def test_specific_needs_are_left_out_for_a_user_who_may_not_see_them(client):
    need = SpecificNeed.objects.create(code="needs-test", label="Shown need")
    CaseFactory(size=1).members.get().specific_needs.add(need)
    user = UserFactory(username="dashboard-only")
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client.force_login(user)
    response = client.get(DASHBOARD)
    assert response.context["needs"] is None
    assert "Shown need" not in response.text


@pytest.mark.django_db
def test_the_export_links_carry_the_dashboards_filters(client_for):
    site = SiteFactory()
    response = client_for("Supervisor").get(DASHBOARD, {"site": site.pk, "nationality": "IQ"})
    assert "/reports/export/persons.csv?date_from=" in response.text
    assert f"site={site.pk}&amp;nationality=IQ" in response.text


@pytest.mark.django_db
def test_the_pipeline_counts_cases_and_their_living_persons(client_for):
    case = CaseFactory(size=3)
    case.members.filter(relationship="child").update(residence_status=ResidenceStatus.DECEASED)
    Case.objects.filter(pk=CaseFactory(size=2).pk).update(status=CaseStatus.ELIGIBLE)
    pipeline = {row.status: row for row in client_for("Supervisor").get(DASHBOARD).context["status_counts"]}
    assert (pipeline[CaseStatus.REGISTERED].cases, pipeline[CaseStatus.REGISTERED].persons) == (1, 1)
    assert (pipeline[CaseStatus.ELIGIBLE].cases, pipeline[CaseStatus.ELIGIBLE].persons) == (1, 2)
    assert pipeline[CaseStatus.CLOSED].cases == 0


@pytest.mark.django_db
def test_the_nationality_list_is_the_html_djangos_select_writes():
    field = DashboardFilterForm({"nationality": "IQ"}).fields["nationality"]
    ours = field.widget.render("nationality", "IQ", {"id": "id_nationality"})
    djangos = forms.Select(choices=field.choices).render("nationality", "IQ", {"id": "id_nationality"})
    assert re.sub(r">\s+<", "><", djangos).strip() == ours
    assert '<option value="IQ" selected>Iraq</option>' in ours
    grouped = [("A & B", [("1", "x<y")]), ("2", "z")]
    assert re.sub(r">\s+<", "><", forms.Select(choices=grouped).render("n", "1")).strip() == type(field.widget)(
        choices=grouped
    ).render("n", "1")


def test_on_sqlite_the_summary_command_says_it_has_nothing_to_do():
    if connection.vendor == "postgresql":
        pytest.skip("kept on PostgreSQL")
    with pytest.raises(CommandError, match="PostgreSQL only"):
        call_command("report_figures")
