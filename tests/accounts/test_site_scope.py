"""A user limited to some sites sees, searches, exports and changes only their records:
everything else answers 404, as if it did not exist, and the refusal is logged."""

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessKind, AccessLog
from accounts.roles import ADMINISTRATOR, STAFF, SUPERVISOR
from cases.models import CaseStatus, DocumentKind, IncidentKind, Interview, Relationship, SiteAssignment
from cases.scope import sites_of
from cases.services import case_document_add, incident_record, interview_schedule
from offers.models import Nomination, NominationStatus
from offers.services import departure_plan, nomination_record_consent, nomination_record_decision, offer_nominate
from tests.factories import CaseFactory, OfferFactory, PersonFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def north():
    return SiteFactory(name="North camp", code="north")


@pytest.fixture
def south():
    return SiteFactory(name="South camp", code="south")


def _limited(role, *sites, username=None):
    user = UserFactory(username=username or f"{role.lower()}-north", role=role, is_staff=True)
    for site in sites:
        SiteAssignment.objects.create(user=user, site=site)
    return user


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def ours(north):
    return CaseFactory(case_no="C-NORTH", site=north, size=2, status=CaseStatus.ELIGIBLE)


@pytest.fixture
def theirs(south):
    return CaseFactory(case_no="C-SOUTH", site=south, size=2, status=CaseStatus.ELIGIBLE)


@pytest.fixture
def north_staff(north):
    return _limited(STAFF, north)


def _refusals():
    refused = AccessLog.objects.filter(kind=AccessKind.REFUSED).order_by("pk")
    return list(refused.values_list("view_name", "status_code"))


def test_a_user_with_no_site_is_not_limited_and_one_with_sites_is(staff, north_staff, north):
    assert sites_of(staff) is None
    assert sites_of(north_staff) == frozenset({north.pk})


def test_the_case_list_and_its_search_show_only_the_users_sites(north_staff, ours, theirs):
    client = _client(north_staff)

    def listed(**query):
        return [case.case_no for case in client.get("/cases/", query).context["page"]]

    assert listed() == ["C-NORTH"]
    # The other site's family name, a transliteration of it and its numbers find nothing.
    for person in theirs.members.all():
        person.family_name = "Sadeghi"
        person.save()
    for q in ["Sadeghi", "Sadeqi", "C-SOUTH", theirs.members.first().registration_no]:
        assert listed(q=q) == [], q
    for person in ours.members.all():
        person.family_name = "Sadeghi"
        person.save()  # the search keys follow the name
    assert listed(q="Sadeqi") == ["C-NORTH"]
    # The other site is not a choice: asking for it is refused, and shows nothing of it.
    refused = client.get("/cases/", {"site": theirs.site_id})
    assert "site" in refused.context["filter"].form.errors
    assert "C-SOUTH" not in refused.content.decode()


def test_an_unlimited_user_sees_every_site(client_for, ours, theirs):
    page = client_for(STAFF).get("/cases/").context["page"]
    assert sorted(case.case_no for case in page) == ["C-NORTH", "C-SOUTH"]


def test_another_sites_case_and_person_answer_404_and_the_refusal_is_logged(north_staff, ours, theirs):
    client = _client(north_staff)
    assert client.get(f"/cases/{ours.pk}/").status_code == 200
    person = theirs.members.first()
    assert client.get(f"/cases/{theirs.pk}/").status_code == 404
    assert client.get(f"/cases/persons/{person.pk}/").status_code == 404
    assert client.get(f"/cases/{theirs.pk}/edit/").status_code == 404
    assert client.get(f"/cases/persons/{person.pk}/edit/").status_code == 404
    assert _refusals() == [
        ("cases:detail", 404),
        ("cases:person", 404),
        ("cases:edit", 404),
        ("cases:person_edit", 404),
    ]
    refusal = AccessLog.objects.filter(kind=AccessKind.REFUSED).order_by("pk").first()
    assert (refusal.user, refusal.object_id) == (north_staff, str(theirs.pk))


def test_a_record_that_does_not_exist_is_a_plain_404_not_a_scope_refusal(north_staff):
    client = _client(north_staff)
    assert (
        client.post("/cases/999999/transition/", {"seen": "eligible", "to": "on_hold", "reason": "x"}).status_code
        == 404
    )
    assert _refusals() == []


def test_a_person_living_at_the_users_site_is_visible_though_their_case_is_elsewhere(north_staff, north, theirs):
    moved = PersonFactory(case=theirs, site=north, relationship=Relationship.CHILD)
    assert _client(north_staff).get(f"/cases/persons/{moved.pk}/").status_code == 200


def test_another_sites_case_cannot_be_moved_edited_or_given_an_interview(north_staff, theirs, staff):
    client = _client(north_staff)
    version = theirs.version
    moved = client.post(
        f"/cases/{theirs.pk}/transition/", {"seen": CaseStatus.ELIGIBLE, "to": CaseStatus.ON_HOLD, "reason": "No"}
    )
    edited = client.post(f"/cases/{theirs.pk}/edit/", {"version": version, "notes": "Changed"})
    booked = client.post(
        f"/cases/{theirs.pk}/interviews/",
        {"date": "2030-01-01", "time": "09:00", "place": "Tent", "kind": "protection"},
    )
    theirs.refresh_from_db()
    assert (moved.status_code, edited.status_code, booked.status_code) == (404, 404, 404)
    assert (theirs.status, theirs.notes, theirs.version) == (CaseStatus.ELIGIBLE, "", version)
    assert not Interview.objects.exists()
    assert [view for view, _status in _refusals()] == ["cases:transition", "cases:edit", "cases:interview_schedule"]


def test_another_sites_interview_outcome_cannot_be_recorded(north_staff, south, staff):
    case = CaseFactory(site=south, size=1, status=CaseStatus.REGISTERED)
    interview = interview_schedule(
        case, actor=staff, scheduled_at=timezone.now() + datetime.timedelta(hours=1), place="Tent 1"
    )
    response = _client(north_staff).post(f"/cases/interviews/{interview.pk}/outcome/", {"outcome": "attended"})
    assert response.status_code == 404
    interview.refresh_from_db()
    assert interview.outcome == "pending"


def test_another_sites_documents_are_neither_downloaded_nor_attached(north_staff, theirs, administrator):
    document = case_document_add(
        theirs, actor=administrator, kind=DocumentKind.IDENTITY, upload=SimpleUploadedFile("id.pdf", PDF)
    )
    client = _client(north_staff)
    assert client.get(f"/cases/documents/{document.pk}/").status_code == 404
    upload = {"kind": DocumentKind.IDENTITY, "file": SimpleUploadedFile("other.pdf", PDF)}
    assert client.post(f"/cases/{theirs.pk}/documents/", upload).status_code == 404
    assert theirs.documents.count() == 1
    assert [view for view, _status in _refusals()] == ["cases:document_download", "cases:document_upload"]


def test_incidents_of_another_site_are_hidden_and_its_persons_unknown(north_staff, north, south, ours, theirs, staff):
    incident = incident_record(
        actor=staff, site=south, kind=IncidentKind.FIRE, occurred_at=timezone.now(), summary="Fire in block S"
    )
    client = _client(north_staff)
    assert "Fire in block S" not in client.get("/cases/incidents/").content.decode()
    assert client.get(f"/cases/incidents/{incident.pk}/").status_code == 404
    form = client.get("/cases/incidents/new/").context["form"]
    assert list(form.fields["site"].queryset) == [north]
    stranger = theirs.members.first()
    now = timezone.localtime()
    response = client.post(
        "/cases/incidents/new/",
        {
            "site": north.pk,
            "kind": IncidentKind.FIRE,
            "date": now.date().isoformat(),
            "time": (now - datetime.timedelta(minutes=5)).strftime("%H:%M"),
            "summary": "Fire in block N",
            "persons": f"{stranger.registration_no} injured",
        },
    )
    assert response.status_code == 200
    assert f"no person has the registration number {stranger.registration_no}" in response.content.decode()


def test_site_transfers_stay_among_the_users_sites(north_staff, north, south, ours, theirs):
    third = SiteFactory(name="West camp", code="west")
    SiteAssignment.objects.create(user=north_staff, site=third)
    north_staff.user_permissions.add(*_permissions("transfer_persons", "view_sitetransfer"))
    client = _client(north_staff)
    form = client.get(f"/cases/{ours.pk}/site/").context["form"]
    assert list(form.fields["to_site"].queryset) == [third]
    assert client.get(f"/cases/{theirs.pk}/site/").status_code == 404
    bulk = client.get("/cases/transfers/new/").context["form"]
    assert set(bulk.fields["from_site"].queryset) == {north, third}
    refused = client.post(
        "/cases/transfers/new/",
        {"from_site": south.pk, "to_site": north.pk, "date": "2026-01-01", "reason": "Camp closed"},
    )
    assert "from_site" in refused.context["form"].errors
    theirs.refresh_from_db()
    assert theirs.site == south


def _permissions(*codenames):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(codename__in=codenames)


def test_offers_show_and_nominate_only_the_users_cases(north, ours, theirs, supervisor):
    boss = _limited(SUPERVISOR, north)
    offer = OfferFactory(reference="CA-SCOPE", places=20)
    nomination = offer_nominate(offer, theirs, actor=supervisor)
    client = _client(boss)
    page = client.get(f"/offers/{offer.pk}/").content.decode()
    assert "C-NORTH" in page  # among the eligible cases to nominate
    assert "C-SOUTH" not in page  # neither its nomination nor anything else
    refused = client.post(f"/offers/{offer.pk}/nominate/", {"cases": [theirs.pk]})
    assert refused.status_code == 302
    assert Nomination.objects.filter(case=theirs).count() == 1
    decided = client.post(f"/offers/nominations/{nomination.pk}/decision/", {"decision": "accepted"})
    assert decided.status_code == 404
    nomination.refresh_from_db()
    assert nomination.status == NominationStatus.NOMINATED
    proposal = client.get(f"/offers/{offer.pk}/allocation/").context["proposal"]
    assert ours.pk in proposal.case_ids and theirs.pk not in proposal.case_ids


def test_a_departure_carrying_another_sites_case_is_not_the_limited_users(north, ours, theirs, supervisor):
    boss = _limited(SUPERVISOR, north)
    offer = OfferFactory(places=20)
    nominations = []
    for case in (ours, theirs):
        nomination = offer_nominate(offer, case, actor=supervisor)
        nomination_record_decision(nomination, actor=supervisor, accepted=True, reason="")
        nominations.append(nomination_record_consent(nomination, actor=supervisor, consents=True))
    mixed = departure_plan(
        offer, actor=supervisor, planned_date=datetime.date(2027, 1, 5), route="YUL 1", nominations=nominations[1:]
    )
    own = departure_plan(
        offer, actor=supervisor, planned_date=datetime.date(2027, 1, 6), route="YUL 2", nominations=nominations[:1]
    )
    client = _client(boss)
    assert client.get(f"/offers/departures/{own.pk}/").status_code == 200
    for url in (f"/offers/departures/{mixed.pk}/", f"/offers/departures/{mixed.pk}/manifest/"):
        assert client.get(url).status_code == 404
    assert client.post(f"/offers/departures/{mixed.pk}/depart/").status_code == 404
    assert "YUL 1" not in client.get(f"/offers/{offer.pk}/").content.decode()


def test_the_worklist_counts_only_the_users_sites(north_staff, ours, theirs):
    long_ago = timezone.now() - datetime.timedelta(days=40)
    for case in (ours, theirs):
        case.status = CaseStatus.INTERVIEWED
        case.status_changed_at = long_ago
        case.needs_review = True
        case.assigned_officer = north_staff
        case.save()
        Interview.objects.create(case=case, scheduled_at=timezone.now() - datetime.timedelta(hours=2), place="Room 1")
    worklist = _client(north_staff).get("/").context["worklist"]
    for item in worklist.items:
        expected = (0, 0) if item.key in ("no_show", "nominated") else (1, 1)
        assert (item.count, item.mine) == expected, item.key
    assert (worklist.my_open_cases, worklist.overdue_count, worklist.overdue_mine) == (1, 1, 1)
    assert [interview.case for interview in worklist.overdue] == [ours]


def test_the_admin_lists_only_the_users_sites_too(north, ours, theirs):
    admin = _limited(ADMINISTRATOR, north, username="admin-north")
    client = _client(admin)
    page = client.get(reverse("admin:cases_case_changelist")).content.decode()
    assert "C-NORTH" in page and "C-SOUTH" not in page
    assert client.get(reverse("admin:cases_case_change", args=[theirs.pk])).status_code == 302  # "doesn't exist"
    persons = client.get(reverse("admin:cases_person_changelist")).content.decode()
    assert ours.members.first().registration_no in persons
    assert theirs.members.first().registration_no not in persons


def test_the_admins_history_pages_of_another_sites_record_answer_not_found(north, ours, theirs):
    """simple-history's pages read the history table: they are held to the user's sites too."""
    admin = _limited(ADMINISTRATOR, north, username="admin-north")
    client = _client(admin)
    person = theirs.members.first()
    version = person.history.first().history_id
    pages = [
        reverse("admin:cases_person_history", args=[person.pk]),
        reverse("admin:cases_person_simple_history", args=[person.pk, version]),
        reverse("admin:cases_case_history", args=[theirs.pk]),
        reverse("admin:cases_case_simple_history", args=[theirs.pk, theirs.history.first().history_id]),
    ]
    assert [client.get(page).status_code for page in pages] == [404] * 4
    # Refusals are logged, as on the app's pages.
    assert [status for _view, status in _refusals()] == [404] * 4
    mine = ours.members.first()
    assert client.get(reverse("admin:cases_person_history", args=[mine.pk])).status_code == 200
    assert (
        client.get(
            reverse("admin:cases_person_simple_history", args=[mine.pk, mine.history.first().history_id])
        ).status_code
        == 200
    )


def test_the_history_of_another_sites_departure_answers_not_found_in_the_admin(north, theirs, administrator):
    offer = OfferFactory(places=10)
    nomination = offer_nominate(offer, theirs, actor=administrator)
    nomination_record_decision(nomination, actor=administrator, accepted=True)
    nomination_record_consent(nomination, actor=administrator, consents=True)
    departure = departure_plan(
        offer, actor=administrator, planned_date=datetime.date(2026, 12, 1), route="", nominations=[nomination]
    )
    client = _client(_limited(ADMINISTRATOR, north, username="admin-north"))
    history = departure.history.first().history_id
    assert client.get(reverse("admin:offers_departure_history", args=[departure.pk])).status_code == 404
    assert client.get(reverse("admin:offers_departure_simple_history", args=[departure.pk, history])).status_code == 404
    everywhere = _client(administrator)
    assert everywhere.get(reverse("admin:offers_departure_history", args=[departure.pk])).status_code == 200


def test_the_offer_admin_lists_only_the_users_sites_nominations(north, ours, theirs, administrator):
    offer = OfferFactory(places=10)
    for case in (ours, theirs):
        offer_nominate(offer, case, actor=administrator)
    admin = _limited(ADMINISTRATOR, north, username="admin-north")
    page = _client(admin).get(reverse("admin:offers_offer_change", args=[offer.pk])).text
    assert "C-NORTH" in page
    assert "C-SOUTH" not in page


def test_administrators_limit_a_user_to_sites_on_the_user_page(client_for, north, staff):
    client = client_for(ADMINISTRATOR)
    url = reverse("admin:auth_user_change", args=[staff.pk])
    page = client.get(url)
    assert "Limited to these sites" in page.content.decode()
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(
        {
            "username": staff.username,
            "groups": [group.pk for group in staff.groups.all()],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
            "site_assignments-TOTAL_FORMS": "1",
            "site_assignments-INITIAL_FORMS": "0",
            "site_assignments-0-site": north.pk,
            "is_active": "on",
            "is_staff": "on",
        }
    )
    data.pop("last_login", None)
    data.pop("user_permissions", None)
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert list(staff.site_assignments.values_list("site", flat=True)) == [north.pk]


def test_the_case_list_offers_only_the_users_sites_to_filter_by(north_staff, north, south):
    form = _client(north_staff).get("/cases/").context["filter"].form
    assert list(form.fields["site"].queryset) == [north]
    assert south.name not in str(form["site"])


def test_the_dashboard_counts_only_the_users_sites(north, ours, theirs):
    boss = _limited(SUPERVISOR, north)
    client = _client(boss)
    response = client.get("/reports/")
    assert [site.name for site in response.context["sites"]] == ["North camp"]
    assert response.context["headline"].to_relocate == 2  # ours; theirs' two persons are not counted
    pipeline = response.context["status_counts"]
    assert (sum(row.cases for row in pipeline), sum(row.persons for row in pipeline)) == (1, 2)
    assert south_choice(response) is False
    # Asking for the other site is an invalid choice: the page keeps to the user's sites.
    other = client.get("/reports/", {"site": theirs.site_id})
    assert "site" in other.context["form"].errors
    assert other.context["headline"].to_relocate == 2


def south_choice(response):
    return "South camp" in str(response.context["form"]["site"])


def test_exports_hold_only_the_users_sites_records(north, south, ours, theirs, supervisor, staff):
    offer = OfferFactory(reference="CA-EXPORT", places=20)
    nominations = []
    for case in (ours, theirs):
        waiting = CaseFactory(case_no=f"{case.case_no}-I", site=case.site, size=1, status=CaseStatus.REGISTERED)
        interview_schedule(
            waiting, actor=staff, scheduled_at=timezone.now() + datetime.timedelta(hours=1), place="Tent"
        )
        nomination = offer_nominate(offer, case, actor=supervisor)
        nomination_record_decision(nomination, actor=supervisor, accepted=True, reason="")
        nominations.append(nomination_record_consent(nomination, actor=supervisor, consents=True))
    departure_plan(
        offer, actor=supervisor, planned_date=datetime.date(2027, 1, 5), route="NORTH 1", nominations=nominations[:1]
    )
    departure_plan(
        offer, actor=supervisor, planned_date=datetime.date(2027, 1, 6), route="SOUTH 1", nominations=nominations[1:]
    )
    for site in (north, south):
        incident_record(
            actor=staff, site=site, kind=IncidentKind.FIRE, occurred_at=timezone.now(), summary=f"Fire at {site.code}"
        )
    client = _client(_limited(SUPERVISOR, north))

    def exported(name):
        response = client.get(reverse("reports:export", kwargs={"list_name": name, "fmt": "csv"}))
        assert response.status_code == 200, name
        return b"".join(response.streaming_content).decode("utf-8-sig")

    for name, ours_mark, theirs_mark in [
        ("persons", "C-NORTH", "C-SOUTH"),
        ("cases", "C-NORTH", "C-SOUTH"),
        ("interviews", "C-NORTH", "C-SOUTH"),
        ("nominations", "C-NORTH", "C-SOUTH"),
        ("departures", "NORTH 1", "SOUTH 1"),
        ("incidents", "Fire at north", "Fire at south"),
    ]:
        text = exported(name)
        assert ours_mark in text and theirs_mark not in text, name
    assert "CA-EXPORT" in exported("offers")  # offers belong to no site


@pytest.mark.parametrize("name", ["persons", "cases", "interviews", "nominations", "incidents"])
def test_exporting_another_sites_records_is_refused_and_nothing_logged(north, theirs, name):
    from reports.models import ExportLog

    client = _client(_limited(SUPERVISOR, north))
    response = client.get(reverse("reports:export", kwargs={"list_name": name, "fmt": "csv"}), {"site": theirs.site_id})
    assert response.status_code == 400
    assert "site" in response.content.decode()
    assert not ExportLog.objects.exists()
