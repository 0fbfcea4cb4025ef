"""Re-imports against what is on record: sites, case statuses, principal applicants and
numbers a spreadsheet changed."""

import datetime

import pytest
from django.db import connection

from cases import importing
from cases.models import Case, CaseStatus, Person, ResidenceStatus, SiteHistory, SiteTransfer
from cases.services import site_transfer
from tests.cases.test_import import csv_bytes, errors_seen, family, needs, person_row, run, site  # noqa: F401 (fixtures)
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db

TRANSFER_PAGE = "/cases/transfers/new/"


@pytest.fixture(autouse=True, params=["lookups", "joins"] if connection.vendor == "postgresql" else ["orm"])
def path(request, monkeypatch):
    """On PostgreSQL, a small file's rows are looked up one by one and a large file's
    joined to the tables whole: both ways are checked."""
    if request.param == "joins":
        monkeypatch.setattr(importing, "_KEY_LOOKUPS", 0)
    return request.param


def snapshot() -> tuple[list[tuple], int, int, int]:
    """What a refused file must leave as it was."""
    persons = list(
        Person.objects.order_by("registration_no").values_list(
            "registration_no", "case__case_no", "site__name", "version"
        )
    )
    return persons, Case.objects.count(), Person.history.count(), SiteHistory.objects.count()


@pytest.fixture
def hope(db):
    return SiteFactory(name="Camp Hope", code="hope")


def _moved_leaving_r3_behind(administrator, hope) -> None:
    """family() imported, case C-1 moved to Camp Hope while R-3 was missing, R-3 then
    found and set present again at Camp Liberty."""
    assert run(csv_bytes(family())).ok
    Person.objects.filter(registration_no="R-3").update(residence_status=ResidenceStatus.MISSING)
    site_transfer(
        actor=administrator, cases=Case.objects.all(), to_site=hope, date=datetime.date(2026, 1, 2), reason="Moved"
    )
    Person.objects.filter(registration_no="R-3").update(residence_status=ResidenceStatus.PRESENT)


def test_an_import_does_not_move_a_present_person_to_their_cases_site(administrator, hope):
    _moved_leaving_r3_behind(administrator, hope)
    before = snapshot()
    rows = [{**row, "site": "Camp Hope"} for row in family()]

    result = run(csv_bytes(rows))

    assert errors_seen(result) == [
        (
            4,
            "site",
            "R-3 is at Camp Liberty on record (case C-1 is at Camp Hope); an import does not move persons between"
            f" sites: a site transfer does ({TRANSFER_PAGE}).",
        )
    ]
    assert snapshot() == before
    assert SiteTransfer.objects.count() == 1


def test_a_present_person_left_at_another_site_than_their_case_may_be_re_imported_there(administrator, hope):
    _moved_leaving_r3_behind(administrator, hope)
    rows = [{**row, "site": "Camp Hope"} for row in family()]
    rows[2]["site"] = "Camp Liberty"

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert (result.new, result.updated, result.unchanged) == (0, 0, 3)


def test_a_whole_case_moved_to_another_site_is_refused_saying_an_import_does_not_move_cases(hope):
    assert run(csv_bytes(family())).ok
    before = snapshot()
    rows = [{**row, "site": "Camp Hope"} for row in family()]

    result = run(csv_bytes(rows))

    message = (
        "Case C-1 is at Camp Liberty on record; an import does not move cases between sites:"
        f" a site transfer does ({TRANSFER_PAGE})."
    )
    assert errors_seen(result) == [(2, "site", message), (3, "site", message), (4, "site", message)]
    assert snapshot() == before


def test_a_new_member_at_another_site_than_their_case_on_record_is_refused(hope):
    assert run(csv_bytes(family())).ok
    before = snapshot()
    rows = [*family(), person_row(registration_no="R-4", relationship="child", given_name="Sara", site="Camp Hope")]

    result = run(csv_bytes(rows))

    assert errors_seen(result) == [
        (
            5,
            "site",
            "Case C-1 is at Camp Liberty on record; an import does not move cases between sites:"
            f" a site transfer does ({TRANSFER_PAGE}).",
        )
    ]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (
            CaseStatus.NOMINATED,
            "Case C-1 is nominated: its offer counts its persons, so an import adds no member to it.",
        ),
        (CaseStatus.ACCEPTED, "Case C-1 is accepted: its offer counts its persons, so an import adds no member to it."),
        (
            CaseStatus.DEPARTURE_SCHEDULED,
            "Case C-1 is departure scheduled: its offer counts its persons, so an import adds no member to it.",
        ),
        (CaseStatus.RELOCATED, "Case C-1 is relocated, a final status: an import adds no member to it."),
        (CaseStatus.CLOSED, "Case C-1 is closed: an import adds no member to it (reopen the case first)."),
    ],
)
def test_a_new_member_of_a_case_whose_status_counts_its_persons_or_is_final_is_refused(status, said):
    assert run(csv_bytes(family())).ok
    Case.objects.update(status=status)
    before = snapshot()
    rows = [*family(), person_row(registration_no="R-4", relationship="child", given_name="Sara", sex="F")]

    result = run(csv_bytes(rows))

    assert errors_seen(result) == [(5, "case_no", said)]
    assert snapshot() == before


@pytest.mark.parametrize("status", [CaseStatus.NOMINATED, CaseStatus.RELOCATED, CaseStatus.CLOSED])
def test_existing_members_of_a_case_in_such_a_status_may_still_have_their_details_changed(status):
    assert run(csv_bytes(family())).ok
    Case.objects.update(status=status)
    rows = family()
    rows[1]["phone"] = "+964 750 000 0000"

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert (result.new, result.updated, result.unchanged) == (0, 1, 2)
    assert Person.objects.get(registration_no="R-2").phone == "+964 750 000 0000"


@pytest.mark.parametrize(
    ("held_from", "refused"),
    [
        (
            CaseStatus.NOMINATED,
            "Case C-1 is on hold from nominated, to which it returns: an import adds no member to it.",
        ),
        (CaseStatus.ELIGIBLE, None),
    ],
)
def test_a_case_on_hold_takes_new_members_as_the_status_it_returns_to_would(held_from, refused):
    assert run(csv_bytes(family())).ok
    Case.objects.update(status=CaseStatus.ON_HOLD, status_before_hold=held_from)
    before = snapshot()
    rows = [*family(), person_row(registration_no="R-4", relationship="child", given_name="Sara", sex="F")]

    result = run(csv_bytes(rows))

    if refused:
        assert errors_seen(result) == [(5, "case_no", refused)]
        assert snapshot() == before
    else:
        assert result.ok, result.report_lines()
        assert Person.objects.filter(case__case_no="C-1").count() == 4


def test_a_new_member_of_an_eligible_case_is_added():
    assert run(csv_bytes(family())).ok
    Case.objects.update(status=CaseStatus.ELIGIBLE)

    result = run(csv_bytes([person_row(registration_no="R-4", relationship="child", given_name="Sara", sex="F")]))

    assert result.ok, result.report_lines()
    assert Person.objects.filter(case__case_no="C-1").count() == 4


def test_a_principal_applicant_typed_under_another_case_leaves_their_case_with_its_principal_applicant():
    assert run(csv_bytes(family())).ok
    rows = family()
    rows[0]["case_no"] = "C-9"
    before = snapshot()

    result = run(csv_bytes(rows))

    assert errors_seen(result) == [
        (2, "case_no", "R-1 is in case C-1 on record; an import does not move persons between cases.")
    ]
    assert snapshot() == before


def _zero_padded() -> list[dict[str, str]]:
    return [{**row, "registration_no": f"0001234{at}", "case_no": "000567"} for at, row in enumerate(family(), 1)]


def test_numbers_a_spreadsheet_dropped_the_leading_zeros_of_are_refused_naming_those_on_record():
    assert run(csv_bytes(_zero_padded())).ok
    before = snapshot()
    rows = [{**row, "registration_no": row["registration_no"].lstrip("0"), "case_no": "567"} for row in _zero_padded()]

    result = run(csv_bytes(rows))

    def zeros(line: int, column: str, number: str) -> tuple[int, str, str]:
        return (
            line,
            column,
            f"{number} is not on record, but 000{number} is: the same number but for its leading zeros, which a"
            " spreadsheet drops when the column is not formatted as Text. Write the number as it is on record.",
        )

    assert errors_seen(result) == [
        zeros(2, "registration_no", "12341"),
        zeros(2, "case_no", "567"),
        zeros(3, "registration_no", "12342"),
        zeros(3, "case_no", "567"),
        zeros(4, "registration_no", "12343"),
        zeros(4, "case_no", "567"),
    ]
    assert snapshot() == before


def test_numbers_differing_only_in_letter_case_from_those_on_record_are_refused():
    assert run(csv_bytes(family())).ok
    before = snapshot()
    rows = [{**row, "registration_no": row["registration_no"].lower(), "case_no": "c-1"} for row in family()]

    result = run(csv_bytes(rows))

    assert [(line, column) for line, column, _message in errors_seen(result)] == [
        (2, "registration_no"),
        (2, "case_no"),
        (3, "registration_no"),
        (3, "case_no"),
        (4, "registration_no"),
        (4, "case_no"),
    ]
    assert result.errors[0].message == (
        "r-1 is not on record, but R-1 is: the same number in other letter case. Write the number as it is on record."
    )
    assert result.errors[1].message.startswith("c-1 is not on record, but C-1 is: the same number in other letter")
    assert snapshot() == before


def test_a_new_row_whose_number_is_another_rows_on_record_but_for_zeros_is_refused_alone():
    assert run(csv_bytes(_zero_padded())).ok
    rows = [
        *_zero_padded(),
        person_row(registration_no="12343", case_no="000567", relationship="child", given_name="Ali"),
    ]
    before = snapshot()

    result = run(csv_bytes(rows))

    assert [(line, column) for line, column, _message in errors_seen(result)] == [(5, "registration_no")]
    assert result.errors[0].message.startswith("12343 is not on record, but 00012343 is:")
    assert snapshot() == before


def test_numbers_with_other_digits_or_zeros_inside_are_new_persons_and_cases():
    assert run(csv_bytes(_zero_padded())).ok
    rows = [
        person_row(registration_no="00102341", case_no="5067"),
        person_row(registration_no="10012341", case_no="000568", given_name="Reza"),
    ]

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert (result.new, result.cases_new) == (2, 2)
