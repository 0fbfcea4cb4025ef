import datetime

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from accounts.roles import ADMINISTRATOR
from cases.models import Case, CaseStatus, Person, ResidenceStatus, SiteHistory, SiteTransfer
from cases.services import SiteTransferRefused, site_transfer
from tests.cases.test_import_admin import admin_form
from tests.factories import CaseFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db

ONE_DAY = datetime.timedelta(days=1)


@pytest.fixture
def old_camp():
    return SiteFactory(name="Old camp", code="old-camp")


@pytest.fixture
def new_camp():
    return SiteFactory(name="New camp", code="new-camp")


def _today():
    return timezone.localdate()


def _nothing_written(*cases, site):
    assert not SiteTransfer.objects.exists()
    assert not SiteHistory.objects.exists()
    for case in cases:
        case.refresh_from_db()
        assert case.site == site
        assert set(case.members.values_list("site_id", flat=True)) <= {site.pk}


# The service


def test_a_case_and_its_present_members_move_with_a_history_row_each(staff, old_camp, new_camp):
    case = CaseFactory(size=3, site=old_camp)
    day = _today() - ONE_DAY
    transfer = site_transfer(actor=staff, cases=[case], to_site=new_camp, date=day, reason="Camp closed")
    case.refresh_from_db()
    assert case.site == new_camp
    assert set(case.members.values_list("site_id", flat=True)) == {new_camp.pk}
    rows = SiteHistory.objects.filter(person__case=case)
    assert rows.count() == 3
    assert {(row.from_site, row.to_site, row.date, row.transfer) for row in rows} == {
        (old_camp, new_camp, day, transfer)
    }


def test_a_moved_case_and_its_moved_members_are_each_a_new_version(staff, old_camp, new_camp):
    # So that an edit form opened before the move, or an import checked before it, is
    # refused or checked again rather than written over it.
    case = CaseFactory(size=2, site=old_camp)
    site_transfer(actor=staff, cases=[case], to_site=new_camp, date=_today(), reason="Camp closed")
    case.refresh_from_db()
    assert case.version == 1
    assert set(case.members.values_list("version", flat=True)) == {1}
    assert set(case.members.first().history.values_list("version", flat=True)) == {0, 1}


def test_an_admin_form_opened_before_a_site_transfer_is_refused_not_saved_over_it(
    client_for, staff, old_camp, new_camp
):
    case = CaseFactory(size=1, site=old_camp)
    person = case.members.get()
    client = client_for(ADMINISTRATOR)
    url = reverse("admin:cases_person_change", args=[person.pk])
    opened = admin_form(client, url, notes="Tent 9")  # shows the person at the old camp
    site_transfer(actor=staff, cases=[case], to_site=new_camp, date=_today(), reason="Camp closed")

    response = client.post(url, opened)

    assert response.status_code == 200
    assert "Someone else saved this record while you were editing it." in response.text
    person.refresh_from_db()
    assert (person.site, person.notes) == (new_camp, "")


def test_the_transfer_records_where_when_why_who_and_how_many(staff, old_camp, new_camp):
    case = CaseFactory(size=2, site=old_camp)
    transfer = site_transfer(actor=staff, cases=[case], to_site=new_camp, date=_today(), reason="  Camp closed  ")
    transfer.refresh_from_db()
    assert (transfer.from_site, transfer.to_site, transfer.date) == (old_camp, new_camp, _today())
    assert transfer.reason == "Camp closed"
    assert transfer.actor == staff
    assert (transfer.case_count, transfer.person_count) == (1, 2)
    assert list(transfer.cases.all()) == [case]
    assert transfer.created_at <= timezone.now()


def test_members_who_are_not_present_stay_where_they_were_recorded(staff, old_camp, new_camp):
    case = CaseFactory(size=3, site=old_camp)
    gone = case.members.order_by("pk").last()
    gone.residence_status = ResidenceStatus.RELOCATED
    gone.save()
    transfer = site_transfer(actor=staff, cases=[case], to_site=new_camp, date=_today(), reason="Moved")
    gone.refresh_from_db()
    assert gone.site == old_camp
    assert not SiteHistory.objects.filter(person=gone).exists()
    assert transfer.person_count == 2


def test_cases_and_persons_change_history_says_the_site_changed_and_why(staff, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    person = case.members.get()
    site_transfer(actor=staff, cases=[case], to_site=new_camp, date=datetime.date(2026, 3, 1), reason="Camp closed")
    for record in (case.history.first(), person.history.first()):
        assert record.site_id == new_camp.pk
        assert (record.history_type, record.history_user) == ("~", staff)
        assert record.history_change_reason == "Site transfer of 2026-03-01: Camp closed"
        assert record.prev_record.site_id == old_camp.pk
        assert record.history_date > record.prev_record.history_date
    assert person.history.first().registration_no == person.registration_no  # the whole row is copied
    assert case.history.first().case_no == case.case_no
    assert person.history.count() == case.history.count() == 2


def test_a_long_reason_is_kept_whole_on_the_transfer_and_shortened_in_the_change_history(staff, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    reason = "The camp closed. " * 30
    transfer = site_transfer(actor=staff, cases=[case], to_site=new_camp, date=_today(), reason=reason)
    assert transfer.reason == reason.strip()
    record = case.members.get().history.first()
    assert len(record.history_change_reason) == 100
    assert record.history_change_reason.endswith("…")


def test_a_selection_of_cases_moves_together_as_one_transfer(supervisor, old_camp, new_camp):
    cases = [CaseFactory(size=2, site=old_camp) for _ in range(3)]
    other = CaseFactory(size=1, site=old_camp)
    transfer = site_transfer(
        actor=supervisor,
        cases=Case.objects.filter(pk__in=[case.pk for case in cases]),
        to_site=new_camp,
        date=_today(),
        reason="Block A moved",
    )
    assert (transfer.case_count, transfer.person_count) == (3, 6)
    assert Person.objects.filter(site=new_camp).count() == 6
    other.refresh_from_db()
    assert other.site == old_camp


def test_a_later_transfer_adds_to_the_site_history(staff, old_camp, new_camp):
    third = SiteFactory(name="Third camp", code="third-camp")
    case = CaseFactory(size=1, site=old_camp)
    site_transfer(actor=staff, cases=[case], to_site=new_camp, date=_today() - 2 * ONE_DAY, reason="First")
    site_transfer(actor=staff, cases=[case], to_site=third, date=_today(), reason="Second")
    person = case.members.get()
    assert [(row.from_site, row.to_site) for row in person.site_history.all()] == [
        (new_camp, third),
        (old_camp, new_camp),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"to_site": "same"}, "The cases are already at Old camp."),
        ({"to_site": "inactive"}, "Closed camp is not an active site; choose another one."),
        ({"cases": "none"}, "No case is selected: there is nobody to move."),
        ({"date": "tomorrow"}, "A transfer cannot be dated in the future."),
        ({"reason": "   "}, "Give a reason for the transfer."),
    ],
)
def test_it_refuses_with_a_clear_message_and_writes_nothing(supervisor, old_camp, new_camp, change, message):
    case = CaseFactory(size=2, site=old_camp)
    inactive = SiteFactory(name="Closed camp", code="closed-camp", is_active=False)
    arguments = {
        "cases": [case],
        "to_site": new_camp,
        "date": _today(),
        "reason": "Camp closed",
    }
    if change.get("to_site") == "same":
        arguments["to_site"] = old_camp
    if change.get("to_site") == "inactive":
        arguments["to_site"] = inactive
    if change.get("cases") == "none":
        arguments["cases"] = Case.objects.none()
    if change.get("date") == "tomorrow":
        arguments["date"] = _today() + ONE_DAY
    if "reason" in change:
        arguments["reason"] = change["reason"]
    with pytest.raises(SiteTransferRefused, match=message):
        site_transfer(actor=supervisor, **arguments)
    _nothing_written(case, site=old_camp)


def test_it_refuses_cases_of_several_sites(supervisor, old_camp, new_camp):
    elsewhere = SiteFactory(name="Elsewhere", code="elsewhere")
    one, two = CaseFactory(size=1, site=old_camp), CaseFactory(size=1, site=elsewhere)
    with pytest.raises(SiteTransferRefused, match="at 2 different sites"):
        site_transfer(actor=supervisor, cases=[one, two], to_site=new_camp, date=_today(), reason="x")
    _nothing_written(one, site=old_camp)
    _nothing_written(two, site=elsewhere)


def test_it_refuses_a_case_with_nobody_present(staff, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    case.members.update(residence_status=ResidenceStatus.RELOCATED)
    with pytest.raises(SiteTransferRefused, match="Nobody in the selected cases is present to move."):
        site_transfer(actor=staff, cases=[case], to_site=new_camp, date=_today(), reason="x")
    _nothing_written(case, site=old_camp)


def test_it_refuses_a_date_before_an_earlier_move_of_the_same_persons(staff, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    site_transfer(actor=staff, cases=[case], to_site=new_camp, date=_today(), reason="First")
    with pytest.raises(SiteTransferRefused, match=f"already moved on {_today().isoformat()}"):
        site_transfer(actor=staff, cases=[case], to_site=old_camp, date=_today() - ONE_DAY, reason="Backdated")
    assert SiteTransfer.objects.count() == 1
    case.refresh_from_db()
    assert case.site == new_camp


def test_staff_may_move_one_case_but_not_many_at_once(staff, old_camp, new_camp):
    one, two = CaseFactory(size=1, site=old_camp), CaseFactory(size=1, site=old_camp)
    with pytest.raises(PermissionDenied):
        site_transfer(actor=staff, cases=[one, two], to_site=new_camp, date=_today(), reason="x")
    _nothing_written(one, two, site=old_camp)


def test_a_user_who_may_not_edit_cases_moves_nothing(nobody, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    with pytest.raises(PermissionDenied):
        site_transfer(actor=nobody, cases=[case], to_site=new_camp, date=_today(), reason="x")
    _nothing_written(case, site=old_camp)


# Moving one case from its page


def _case_form(client, case):
    return client.get(reverse("cases:site_transfer", args=[case.pk]))


def _move_case(client, case, site, *, date=None, reason="Camp closed"):
    data = {"to_site": site.pk, "date": (date or _today()).isoformat(), "reason": reason}
    return client.post(reverse("cases:site_transfer", args=[case.pk]), data, follow=True)


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 302), ("Staff", 200), ("Supervisor", 200), ("Administrator", 200)]
)
def test_the_case_transfer_page_answers_each_role(client_for, role, status, old_camp):
    assert _case_form(client_for(role), CaseFactory(size=1, site=old_camp)).status_code == status


def test_a_user_without_a_role_may_not_move_a_case(client, nobody, old_camp, new_camp):
    client.force_login(nobody)
    case = CaseFactory(size=1, site=old_camp)
    assert _case_form(client, case).status_code == 403
    assert client.post(reverse("cases:site_transfer", args=[case.pk]), {"to_site": new_camp.pk}).status_code == 403
    _nothing_written(case, site=old_camp)


def test_the_form_offers_only_active_sites_other_than_the_cases_own(client_for, old_camp, new_camp):
    SiteFactory(name="Closed camp", code="closed-camp", is_active=False)
    case = CaseFactory(size=2, site=old_camp)
    response = _case_form(client_for("Staff"), case)
    offered = {site.name for site in response.context["form"].fields["to_site"].queryset}
    assert offered == {"New camp"}
    assert "Its 2 members present move with it." in response.text


@pytest.mark.parametrize("role", ["Staff", "Supervisor", "Administrator"])
def test_each_role_moves_a_case_and_the_case_page_shows_it(client_for, role, old_camp, new_camp):
    case = CaseFactory(size=2, site=old_camp)
    response = _move_case(client_for(role), case, new_camp, reason="The old camp closed")
    assert response.redirect_chain[-1][0] == case.get_absolute_url()
    assert "2 persons moved from Old camp to New camp." in response.text
    case.refresh_from_db()
    assert case.site == new_camp
    assert "Site history" in response.text
    assert "Old camp → New camp" in response.text
    assert "The old camp closed" in response.text


def test_the_person_page_shows_the_persons_site_history(client_for, staff, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    site_transfer(actor=staff, cases=[case], to_site=new_camp, date=datetime.date(2026, 2, 3), reason="Moved by bus")
    person = case.members.get()
    text = client_for("Staff").get(reverse("cases:person", args=[person.pk])).text
    assert "Site history" in text
    assert "since 2026-02-03" in text
    assert "Old camp → New camp" in text
    assert "Moved by bus" in text


def test_a_person_never_moved_has_been_at_the_site_since_registration(client_for, old_camp):
    person = CaseFactory(size=1, site=old_camp).members.get()
    text = client_for("Staff").get(reverse("cases:person", args=[person.pk])).text
    assert "since registration" in text


def test_a_refused_move_shows_why_keeps_the_input_and_writes_nothing(client_for, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    response = _move_case(client_for("Staff"), case, new_camp, date=_today() + ONE_DAY, reason="Too early")
    assert response.status_code == 200
    assert "A transfer cannot be dated in the future." in response.text
    assert "Too early" in response.text
    _nothing_written(case, site=old_camp)


def test_a_move_without_a_reason_is_refused(client_for, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    response = _move_case(client_for("Staff"), case, new_camp, reason="")
    assert "Give a reason for the transfer." in response.text
    _nothing_written(case, site=old_camp)


def test_a_move_to_an_inactive_site_is_refused(client_for, old_camp):
    closed = SiteFactory(name="Closed camp", code="closed-camp", is_active=False)
    case = CaseFactory(size=1, site=old_camp)
    response = _move_case(client_for("Staff"), case, closed)
    assert response.context["form"].errors["to_site"]
    _nothing_written(case, site=old_camp)


# Moving many cases at once


def _bulk(client, data, **extra):
    return client.post(reverse("cases:transfer_new"), {**data, **extra}, follow=True)


def _bulk_data(from_site, to_site, **changes):
    data = {
        "from_site": from_site.pk,
        "to_site": to_site.pk,
        "date": _today().isoformat(),
        "reason": "The old camp closed",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 302), ("Staff", 403), ("Supervisor", 200), ("Administrator", 200)]
)
def test_the_bulk_transfer_page_answers_each_role(client_for, role, status):
    assert client_for(role).get(reverse("cases:transfer_new")).status_code == status


def test_staff_cannot_move_many_cases_even_by_posting(client_for, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    response = _bulk(client_for("Staff"), _bulk_data(old_camp, new_camp), confirm="1", expected="1:1")
    assert response.status_code == 403
    _nothing_written(case, site=old_camp)


def test_checking_shows_how_many_cases_and_persons_will_move_and_writes_nothing(client_for, old_camp, new_camp):
    cases = [CaseFactory(size=2, site=old_camp) for _ in range(3)]
    relocated = CaseFactory(size=1, site=old_camp, status=CaseStatus.RELOCATED)
    relocated.members.update(residence_status=ResidenceStatus.RELOCATED)
    response = _bulk(client_for("Supervisor"), _bulk_data(old_camp, new_camp), check="1")
    preview = response.context["preview"]
    assert (preview.case_count, preview.person_count) == (3, 6)
    assert "Check before moving" in response.text
    assert "Move 6 persons" in response.text
    _nothing_written(*cases, relocated, site=old_camp)


@pytest.mark.parametrize("role", ["Supervisor", "Administrator"])
def test_confirming_moves_the_whole_site_and_lists_the_transfer(client_for, role, old_camp, new_camp):
    cases = [CaseFactory(size=2, site=old_camp) for _ in range(3)]
    client = client_for(role)
    _bulk(client, _bulk_data(old_camp, new_camp), check="1")
    response = _bulk(client, _bulk_data(old_camp, new_camp), confirm="1", expected="3:6")
    assert response.redirect_chain[-1][0] == reverse("cases:transfer_list")
    assert "6 persons moved from Old camp to New camp." in response.text
    assert "The old camp closed" in response.text
    transfer = SiteTransfer.objects.get()
    assert (transfer.case_count, transfer.person_count) == (3, 6)
    for case in cases:
        case.refresh_from_db()
        assert case.site == new_camp
    assert SiteHistory.objects.count() == 6


def test_only_cases_of_the_statuses_chosen_move(client_for, old_camp, new_camp):
    eligible = CaseFactory(size=2, site=old_camp, status=CaseStatus.ELIGIBLE)
    registered = CaseFactory(size=3, site=old_camp, status=CaseStatus.REGISTERED)
    data = _bulk_data(old_camp, new_camp, statuses=[CaseStatus.ELIGIBLE])
    client = client_for("Supervisor")
    preview = _bulk(client, data, check="1").context["preview"]
    assert (preview.case_count, preview.person_count) == (1, 2)
    _bulk(client, data, confirm="1", expected="1:2")
    eligible.refresh_from_db()
    registered.refresh_from_db()
    assert (eligible.site, registered.site) == (new_camp, old_camp)


def test_a_case_list_can_hand_over_the_cases_to_move(client_for, old_camp, new_camp):
    chosen = [CaseFactory(size=1, site=old_camp) for _ in range(2)]
    left = CaseFactory(size=1, site=old_camp)
    client = client_for("Supervisor")
    query = "&".join(f"case={case.pk}" for case in chosen)
    page = client.get(f"{reverse('cases:transfer_new')}?{query}&site={old_camp.pk}")
    ids = ",".join(str(case.pk) for case in chosen)
    assert f'name="cases" value="{ids}"' in page.text
    assert "Only the cases chosen from the case list are moved" in page.text
    data = _bulk_data(old_camp, new_camp, cases=ids)
    assert _bulk(client, data, check="1").context["preview"].case_count == 2
    _bulk(client, data, confirm="1", expected="2:2")
    left.refresh_from_db()
    assert left.site == old_camp
    assert Case.objects.filter(site=new_camp).count() == 2


def test_a_selection_that_changed_since_it_was_checked_is_shown_again(client_for, old_camp, new_camp):
    cases = [CaseFactory(size=1, site=old_camp) for _ in range(2)]
    response = _bulk(client_for("Supervisor"), _bulk_data(old_camp, new_camp), confirm="1", expected="1:1")
    assert response.context["changed"]
    assert "The selection changed since you checked it" in response.text
    assert "Move 2 persons" in response.text
    _nothing_written(*cases, site=old_camp)


def test_changing_the_selection_goes_back_to_the_filled_form(client_for, old_camp, new_camp):
    CaseFactory(size=1, site=old_camp)
    response = _bulk(client_for("Supervisor"), _bulk_data(old_camp, new_camp), edit="1")
    assert "Check what will move" in response.text
    assert "The old camp closed" in response.text
    assert not SiteTransfer.objects.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"to_site": "same"}, "Choose a site other than the one the cases are at."),
        ({"date": "tomorrow"}, "A transfer cannot be dated in the future."),
        ({"reason": ""}, "Give a reason for the transfer."),
        ({"cases": "1,x"}, "The list of cases is not valid"),
    ],
)
def test_a_bulk_transfer_that_cannot_be_made_is_refused_at_the_check(client_for, old_camp, new_camp, changes, message):
    case = CaseFactory(size=1, site=old_camp)
    data = _bulk_data(old_camp, new_camp)
    if changes.get("to_site") == "same":
        data["to_site"] = old_camp.pk
    elif changes.get("date") == "tomorrow":
        data["date"] = (_today() + ONE_DAY).isoformat()
    else:
        data.update(changes)
    for step in ({"check": "1"}, {"confirm": "1", "expected": "1:1"}):
        response = _bulk(client_for("Supervisor"), data, **step)
        assert message in response.text
        assert "Check before moving" not in response.text
    _nothing_written(case, site=old_camp)


def test_a_site_with_nobody_present_has_nothing_to_move(client_for, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    case.members.update(residence_status=ResidenceStatus.DECEASED)
    response = _bulk(client_for("Supervisor"), _bulk_data(old_camp, new_camp), check="1")
    assert "there is nobody to move" in response.text
    _nothing_written(case, site=old_camp)


def test_a_refusal_at_confirmation_shows_why_and_writes_nothing(client_for, supervisor, old_camp, new_camp):
    case = CaseFactory(size=1, site=old_camp)
    later = _today()
    site_transfer(actor=supervisor, cases=[case], to_site=new_camp, date=later, reason="First")
    site_transfer(actor=supervisor, cases=[case], to_site=old_camp, date=later, reason="Back")
    data = _bulk_data(old_camp, new_camp, date=(later - ONE_DAY).isoformat())
    response = _bulk(client_for("Supervisor"), data, confirm="1", expected="1:1")
    assert "a transfer cannot be dated before it" in response.text
    assert SiteTransfer.objects.count() == 2


# The list of transfers


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 302), ("Staff", 200), ("Supervisor", 200), ("Administrator", 200)]
)
def test_the_transfer_list_answers_each_role(client_for, role, status):
    assert client_for(role).get(reverse("cases:transfer_list")).status_code == status


def test_a_user_without_a_role_cannot_see_the_transfers(client, nobody):
    client.force_login(nobody)
    assert client.get(reverse("cases:transfer_list")).status_code == 403


def test_the_new_transfer_button_shows_only_to_those_who_may_move_many(client_for):
    button = reverse("cases:transfer_new")
    assert button not in client_for("Staff").get(reverse("cases:transfer_list")).text
    assert button in client_for("Supervisor").get(reverse("cases:transfer_list")).text


@pytest.mark.parametrize("transfers", [1, 8])
def test_the_transfer_list_costs_the_same_queries_however_many_transfers(
    client_for, supervisor, django_assert_num_queries, transfers
):
    sites = [SiteFactory(name=f"Camp {index}", code=f"camp-{index}") for index in range(2)]
    case = CaseFactory(size=1, site=sites[0])
    for index in range(transfers):
        site_transfer(actor=supervisor, cases=[case], to_site=sites[(index + 1) % 2], date=_today(), reason="Again")
    client = client_for("Staff")
    client.get(reverse("cases:transfer_list"))  # the session is warm
    # session, user, permissions with groups and sites, count, transfers with their
    # sites and actor
    with django_assert_num_queries(5):
        response = client.get(reverse("cases:transfer_list"))
    assert len(response.context["page"].object_list) == transfers


def test_a_user_who_may_view_cases_only_sees_no_move_link(client, old_camp):
    reader = UserFactory(username="reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_case"))
    client.force_login(reader)
    case = CaseFactory(size=1, site=old_camp)
    text = client.get(case.get_absolute_url()).text
    assert reverse("cases:site_transfer", args=[case.pk]) not in text
