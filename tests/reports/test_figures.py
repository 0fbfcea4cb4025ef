"""The dashboard's summary tables (PostgreSQL, reports/figures.py): the same figures as
counting the rows, for every filter, after every kind of write, with writers at the same
time, and after the tables are folded."""

import datetime
import io
import itertools
import threading
from collections.abc import Callable

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from cases.demo import roster
from cases.importing import roster_import
from cases.models import Case, CaseStatus, Interview, Person, Relationship, ResidenceStatus, Site, SpecificNeed
from cases.selectors import case_status_counts
from cases.services import case_transition, site_transfer
from offers.models import Departure, DeparturePerson
from reports import figures, selectors
from reports.forms import DashboardFilters, default_range
from reports.models import COUNT_MODELS
from tests.cases.test_import import csv_bytes
from tests.factories import CaseFactory, PersonFactory, SiteFactory
from tests.reports.helpers import days_ago, departed, interview

pytestmark = pytest.mark.postgres

TABLES = [model._meta.db_table for model in COUNT_MODELS]


@pytest.fixture(autouse=True)
def _postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the summary tables are kept on PostgreSQL only")


NATIONALITIES = ["", "IR", "IQ", "AF", "SY", "TR", "DE"]


def assert_same_figures() -> None:
    """Every figure from the summary tables equals the one counted from the rows, for every
    site and nationality (and a few date ranges for the figures over time); and no stored
    count differs from the rows."""
    assert figures.check() == []
    # The home page's pipeline (a user limited to sites counts persons by their own site there).
    assert figures.case_status_counts() == case_status_counts()
    start, end = default_range()
    ranges = [(start, end), (end - datetime.timedelta(days=3 * 366), end), (end - datetime.timedelta(days=20), end)]
    for site, nationality in itertools.product([None, *Site.objects.all()], NATIONALITIES):
        filters = DashboardFilters(site=site, nationality=nationality, date_from=start, date_to=end)
        live = selectors.live_population(filters)
        summed = figures.population(filters)
        assert summed == live, filters
        assert figures.case_figures(filters, summed) == selectors.live_case_figures(filters, live), filters
        assert figures.specific_needs(filters) == selectors.live_specific_needs(filters), filters
        for first, last in ranges:
            filters = DashboardFilters(site=site, nationality=nationality, date_from=first, date_to=last)
            assert figures.departures_per_week(filters) == selectors.live_departures_per_week(filters), filters
            assert figures.interviews_per_week(filters) == selectors.live_interviews_per_week(filters), filters


def _world(administrator=None) -> dict:
    """Two sites; cases in several statuses, entered on the days that hold aging bounds and
    on others; persons of three nationalities, present, relocated and deceased; needs,
    interviews and departures."""
    here, there = SiteFactory(name="Here"), SiteFactory(name="There")
    medical, _ = SpecificNeed.objects.get_or_create(code="medical_condition", defaults={"label": "Medical"})
    disability, _ = SpecificNeed.objects.get_or_create(code="disability", defaults={"label": "Disability"})
    cases = []
    for index, (days, status) in enumerate(
        [(1, "registered"), (30, "eligible"), (30.5, "eligible"), (89.9, "on_hold"), (90, "nominated"),
         (180, "accepted"), (200, "relocated"), (365, "interviewed"), (365.2, "registered"), (700, "closed")]
    ):  # fmt: skip
        case = CaseFactory(size=3, site=here if index % 3 else there)
        Case.objects.filter(pk=case.pk).update(status=status, status_changed_at=days_ago(days))
        pa, spouse, child = case.members.order_by("pk")
        nationality = ["IR", "IQ", "AF"][index % 3]
        case.members.update(nationality=nationality)
        spouse.specific_needs.add(medical)
        if index % 2:
            child.specific_needs.add(medical, disability)
        interview(case, "attended", when=days_ago(index * 9))
        interview(case, ["no_show", "refused", "pending"][index % 3], when=days_ago(index * 40 + 0.3))
        if status == "relocated":
            Person.objects.filter(case=case).update(residence_status=ResidenceStatus.RELOCATED)
            departed([pa, spouse, child], when=days_ago(150))
        cases.append(case)
    Person.objects.filter(pk=cases[3].members.order_by("pk").last().pk).update(residence_status="deceased")
    departed(list(cases[4].members.all()), when=days_ago(2))
    return {
        "here": here,
        "there": there,
        "cases": cases,
        "medical": medical,
        "disability": disability,
        "administrator": administrator,
    }


@pytest.fixture
def world(administrator) -> dict:
    return _world(administrator)


def _member(world: dict, case: int, relationship: str = Relationship.CHILD) -> Person:
    return world["cases"][case].members.filter(relationship=relationship).first()


# Each kind of write the app (or raw SQL) makes to the counted tables.


def _save_a_person(world: dict) -> None:
    person = _member(world, 0)
    person.residence_status = ResidenceStatus.DECEASED
    person.sex, person.birth_year = "X", 2001
    person.save()


def _update_many_persons(world: dict) -> None:
    Person.objects.filter(case__in=world["cases"][:5]).update(site=world["there"], nationality="SY")


def _change_a_principal_applicants_nationality(world: dict) -> None:
    Person.objects.filter(pk=_member(world, 1, Relationship.PRINCIPAL_APPLICANT).pk).update(nationality="TR")


def _swap_principal_applicants(world: dict) -> None:
    pa, child = _member(world, 2, Relationship.PRINCIPAL_APPLICANT), _member(world, 2)
    Person.objects.filter(pk=pa.pk).update(relationship=Relationship.SPOUSE)
    Person.objects.filter(pk=child.pk).update(relationship=Relationship.PRINCIPAL_APPLICANT, nationality="SY")


def _move_a_principal_applicant_to_another_case(world: dict) -> None:
    pa = _member(world, 5, Relationship.PRINCIPAL_APPLICANT)
    Person.objects.filter(case=world["cases"][6], relationship=Relationship.PRINCIPAL_APPLICANT).update(
        relationship=Relationship.OTHER
    )
    Person.objects.filter(pk=pa.pk).update(case=world["cases"][6])


def _add_persons(world: dict) -> None:
    orphan = CaseFactory(size=0, site=world["there"])
    Person.objects.bulk_create(
        [
            PersonFactory.build(case=orphan, site=orphan.site, relationship=Relationship.PRINCIPAL_APPLICANT),
            PersonFactory.build(
                case=world["cases"][7], site=world["here"], nationality="SY", relationship=Relationship.CHILD
            ),
        ]
    )
    interview(orphan, "attended")


def _delete_a_person(world: dict) -> None:
    _member(world, 1).delete()  # their needs go first, as Django deletes them


def _change_needs(world: dict) -> None:
    _member(world, 0).specific_needs.add(world["disability"])
    _member(world, 1).specific_needs.clear()
    _member(world, 3).specific_needs.set([world["disability"]])
    _member(world, 5).specific_needs.remove(world["medical"])


def _move_cases_through_the_workflow(world: dict) -> None:
    case_transition(world["cases"][0], to=CaseStatus.INTERVIEW_SCHEDULED, actor=world["administrator"], reason="Booked")
    Case.objects.filter(pk__in=[c.pk for c in world["cases"][1:4]]).update(status=CaseStatus.CLOSED)
    Case.objects.filter(pk=world["cases"][8].pk).update(status_changed_at=days_ago(89.99))


def _move_a_case_to_another_site(world: dict) -> None:
    Case.objects.filter(pk=world["cases"][2].pk).update(site=world["here"])


def _transfer_a_site(world: dict) -> None:
    site_transfer(
        actor=world["administrator"],
        cases=Case.objects.filter(site=world["here"]),
        to_site=SiteFactory(name="Elsewhere"),
        date=timezone.localdate(),
        reason="Camp closed",
    )


def _change_interviews(world: dict) -> None:
    first, second = Interview.objects.order_by("pk")[:2]
    Interview.objects.filter(pk=first.pk).update(outcome="no_show", scheduled_at=days_ago(60))
    Interview.objects.filter(pk=second.pk).update(case=world["cases"][9])
    Interview.objects.order_by("-pk").first().delete()


def _change_departures(world: dict) -> None:
    DeparturePerson.objects.filter(pk=DeparturePerson.objects.order_by("pk").first().pk).delete()
    departure = Departure.objects.order_by("pk").last()
    DeparturePerson.objects.create(departure=departure, person=_member(world, 0))
    Departure.objects.order_by("pk").first().delete()  # its manifest goes first


def _delete_a_case(world: dict) -> None:
    case = world["cases"][0]
    for person in case.members.all():
        person.delete()
    case.delete()


def _import_a_roster(world: dict) -> None:
    """The roster import writes new persons and their needs in one statement (PostgreSQL)."""
    SiteFactory(name="Camp Liberty", code="liberty")
    needs = ("medical_condition", "disability")
    rows = [person.record("Camp Liberty", needs=needs) for person in roster(40, 3, timezone.localdate())]
    assert any(row["specific_needs"] for row in rows)
    assert roster_import(csv_bytes(rows), actor=None, filename="f.csv", dry_run=False).ok


def _insert_a_case_with_its_persons_in_one_statement(world: dict) -> None:
    """A data-modifying WITH writing a case, its persons and their needs at once."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH c AS (
                INSERT INTO cases_case (case_no, site_id, status, status_changed_at, status_before_hold,
                                        determination, needs_review, notes, created_at, updated_at, version)
                VALUES ('W-1', %(site)s, 'eligible', now() - interval '40 days', '', 'pending', false, '',
                        now(), now(), 0)
                RETURNING id
            ), p AS (
                INSERT INTO cases_person (registration_no, case_id, relationship, family_name, given_name,
                                          native_name, name_key, match_latin, match_native, sex, birth_year,
                                          nationality, site_id, residence_status, phone, notes, created_at,
                                          updated_at, version)
                SELECT 'W-R' || n, c.id, CASE WHEN n = 1 THEN 'PA' ELSE 'child' END, 'A', 'B', '', '', '', '', 'F',
                       2010, 'SY', %(site)s, 'present', '', '', now(), now(), 0
                FROM c, generate_series(1, 3) n
                RETURNING id
            )
            INSERT INTO cases_person_specific_needs (person_id, specificneed_id) SELECT id, %(need)s FROM p
            """,
            {"site": world["there"].pk, "need": world["medical"].pk},
        )


WRITES: list[Callable] = [
    _save_a_person,
    _update_many_persons,
    _change_a_principal_applicants_nationality,
    _swap_principal_applicants,
    _move_a_principal_applicant_to_another_case,
    _add_persons,
    _delete_a_person,
    _change_needs,
    _move_cases_through_the_workflow,
    _move_a_case_to_another_site,
    _transfer_a_site,
    _change_interviews,
    _change_departures,
    _delete_a_case,
    _import_a_roster,
    _insert_a_case_with_its_persons_in_one_statement,
]


@pytest.mark.django_db
def test_the_figures_of_the_summary_tables_are_those_of_the_rows(world):
    assert_same_figures()


@pytest.mark.django_db
@pytest.mark.parametrize("write", WRITES, ids=[w.__name__.strip("_") for w in WRITES])
def test_the_figures_stay_those_of_the_rows_after_each_kind_of_write(world, write):
    write(world)
    assert_same_figures()


@pytest.mark.django_db
def test_every_write_at_once_keeps_the_figures_those_of_the_rows(world):
    for write in WRITES:
        if write not in (_transfer_a_site, _delete_a_case):  # they take away what later writes change
            write(world)
    assert_same_figures()


def _rows(table: str) -> tuple[int, int]:
    """Rows, and distinct keys with a count other than zero."""
    keys = ", ".join(
        {
            "reports_personcount": "site_id, nationality, residence_status, sex, birth_year",
            "reports_personstatuscount": "site_id, nationality, residence_status, case_status",
            "reports_needcount": "site_id, nationality, residence_status, specificneed_id",
            "reports_casecount": "site_id, pa_nationality, status, changed_on",
            "reports_interviewcount": "site_id, pa_nationality, outcome, slot",
            "reports_departurecount": "departure_id, site_id, nationality",
        }[table].split(", ")
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        (rows,) = cursor.fetchone()
        cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} GROUP BY {keys} HAVING sum(n) <> 0) k")
        (distinct,) = cursor.fetchone()
    return rows, distinct


@pytest.mark.django_db
def test_folding_leaves_one_row_a_key_and_every_figure(world):
    _update_many_persons(world)
    _move_cases_through_the_workflow(world)
    _change_interviews(world)
    rows, keys = _rows("reports_personcount")
    assert rows > keys  # the changes appended rows of -1 and +1
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute("SELECT reports_compact(%s)", [table])
    for table in TABLES:
        rows, keys = _rows(table)
        assert rows == keys, table
    assert_same_figures()


@pytest.mark.django_db
def test_every_20000th_row_folds_its_table(world):
    person = _member(world, 0)
    for year in (2001, 2002):
        Person.objects.filter(pk=person.pk).update(birth_year=year)
    rows, keys = _rows("reports_personcount")
    assert rows > keys
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('reports_personcount', 'id'), 39999)")
    Person.objects.filter(pk=person.pk).update(birth_year=2003)  # appends rows 40,000 and 40,001
    rows, keys = _rows("reports_personcount")
    assert rows == keys
    assert_same_figures()


@pytest.mark.django_db
def test_cases_in_their_status_for_more_than_400_days_are_folded_onto_one_day(world):
    Case.objects.filter(pk=world["cases"][0].pk).update(status_changed_at=days_ago(500))
    with connection.cursor() as cursor:
        cursor.execute("SELECT reports_compact('reports_casecount')")
        cursor.execute(
            "SELECT min(changed_on), count(*) FILTER (WHERE changed_on < now() - interval '400 days')"
            " FROM reports_casecount"
        )
        oldest, old_rows = cursor.fetchone()
    assert oldest == datetime.date(1, 1, 1)
    assert old_rows == 2  # the two statuses with cases entered 500 and 700 days ago
    assert_same_figures()
    # A case leaving a folded day takes its count from the right key.
    Case.objects.filter(pk=world["cases"][0].pk).update(status=CaseStatus.CLOSED, status_changed_at=days_ago(1))
    assert_same_figures()


@pytest.mark.django_db
def test_a_count_gone_wrong_is_found_and_counted_again(world):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM reports_needcount")  # as if the table had been truncated
    mismatches = figures.check()
    assert mismatches and {m.table for m in mismatches} == {"reports_needcount"}
    assert all(m.stored == 0 and m.actual > 0 for m in mismatches)
    figures.rebuild()
    assert_same_figures()


@pytest.mark.parametrize(
    ("zone", "year", "on_grid"),
    [
        ("UTC", 2026, True),
        ("Asia/Tehran", 2026, True),
        ("Asia/Kathmandu", 2026, True),
        ("Africa/Monrovia", 1971, False),  # 44 minutes 30 seconds behind UTC until 1972
    ],
)
def test_weeks_are_summed_from_quarter_hours_only_where_they_start_on_the_grid(settings, zone, year, on_grid):
    settings.TIME_ZONE = zone
    filters = DashboardFilters(
        site=None, nationality="", date_from=datetime.date(year, 3, 1), date_to=datetime.date(year, 5, 31)
    )
    with timezone.override(zone):
        assert figures.on_grid(filters) is on_grid


@pytest.mark.django_db
def test_off_the_grid_the_interviews_are_counted_from_the_rows(settings):
    settings.TIME_ZONE = "Africa/Monrovia"
    case = CaseFactory(size=1)
    when = datetime.datetime(1971, 3, 1, 0, 10, tzinfo=datetime.UTC)
    Interview.objects.create(case=case, scheduled_at=when, place="R")
    filters = DashboardFilters(
        site=None, nationality="", date_from=datetime.date(1971, 2, 28), date_to=datetime.date(1971, 3, 2)
    )
    with timezone.override("Africa/Monrovia"):
        assert not figures.on_grid(filters)
        assert figures.interviews_per_week(filters) == selectors.live_interviews_per_week(filters)
        assert figures.interviews_per_week(filters).total == 1


# Writers at the same time: each order of two transactions that change a row and a row its
# count depends on. The second waits for the first (the triggers' locks) and counts after it.


def _connect() -> psycopg.Connection:
    settings = connection.settings_dict
    conn = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
    )
    conn.execute("SET lock_timeout = '20s'")
    return conn


def _race(first_sql: tuple[str, list], second_sql: tuple[str, list]) -> None:
    """Run `first_sql` in one transaction, then `second_sql` in another while the first is
    open; the second must wait for the first to commit. Both commit."""
    first, second = _connect(), _connect()
    try:
        first.execute(*first_sql)
        done = threading.Event()
        errors: list[BaseException] = []

        def run_second() -> None:
            try:
                second.execute(*second_sql)
                second.commit()
            except BaseException as error:
                errors.append(error)
            done.set()

        thread = threading.Thread(target=run_second)
        thread.start()
        assert not done.wait(0.5), "the second writer should wait for the first"
        first.commit()
        thread.join(30)
        assert not errors, errors
    finally:
        first.close()
        second.close()


def _race_world() -> dict:
    site = SiteFactory(name="Race")
    case = CaseFactory(size=2, site=site)
    pa, child = case.members.order_by("pk")
    need, _ = SpecificNeed.objects.get_or_create(code="race-need", defaults={"label": "Race need"})
    interview(case, "attended")
    return {"case": case.pk, "pa": pa.pk, "child": child.pk, "need": need.pk, "site": SiteFactory(name="Other").pk}


RACES = {
    # (first, second): statements of two writers on related rows
    "person then its case": (
        ("UPDATE cases_person SET residence_status = 'relocated' WHERE id = %(child)s", "person"),
        ("UPDATE cases_case SET status = 'closed', status_changed_at = now() WHERE id = %(case)s", "case"),
    ),
    "case then its person": (
        ("UPDATE cases_case SET status = 'closed', site_id = %(site)s WHERE id = %(case)s", "case"),
        ("UPDATE cases_person SET residence_status = 'relocated', site_id = %(site)s WHERE id = %(child)s", "person"),
    ),
    "principal applicant then an interview": (
        ("UPDATE cases_person SET nationality = 'SY' WHERE id = %(pa)s", "person"),
        (
            "INSERT INTO cases_interview (case_id, kind, scheduled_at, place, outcome, notes, created_at)"
            " VALUES (%(case)s, 'protection', now(), 'R', 'attended', '', now())",
            "interview",
        ),
    ),
    "interview then the principal applicant": (
        (
            "INSERT INTO cases_interview (case_id, kind, scheduled_at, place, outcome, notes, created_at)"
            " VALUES (%(case)s, 'protection', now(), 'R', 'attended', '', now())",
            "interview",
        ),
        ("UPDATE cases_person SET nationality = 'SY' WHERE id = %(pa)s", "person"),
    ),
    "a new principal applicant then the case": (
        ("UPDATE cases_person SET relationship = 'spouse' WHERE id = %(pa)s", "person"),
        ("UPDATE cases_case SET site_id = %(site)s WHERE id = %(case)s", "case"),
    ),
    "person then their need": (
        ("UPDATE cases_person SET site_id = %(site)s, nationality = 'SY' WHERE id = %(child)s", "person"),
        ("INSERT INTO cases_person_specific_needs (person_id, specificneed_id) VALUES (%(child)s, %(need)s)", "need"),
    ),
    "need then its person": (
        ("INSERT INTO cases_person_specific_needs (person_id, specificneed_id) VALUES (%(child)s, %(need)s)", "need"),
        ("UPDATE cases_person SET site_id = %(site)s, nationality = 'SY' WHERE id = %(child)s", "person"),
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("race", RACES)
def test_two_writers_at_once_leave_the_counts_of_the_rows(race):
    ids = _race_world()
    (first, _), (second, _) = RACES[race]
    _race((first, ids), (second, ids))
    assert figures.check() == []


@pytest.mark.django_db
def test_the_command_checks_the_counts_and_counts_again(world):
    out = io.StringIO()
    call_command("report_figures", stdout=out)
    assert "Every count matches the rows." in out.getvalue()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM reports_casecount")
    with pytest.raises(CommandError, match="counts differ from the rows"):
        call_command("report_figures", stdout=io.StringIO())
    call_command("report_figures", "--rebuild", stdout=io.StringIO())
    call_command("report_figures", stdout=io.StringIO())
