import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from cases.models import Person, Relationship
from tests.factories import CaseFactory, PersonFactory


@pytest.mark.django_db
def test_a_year_only_birth_stays_year_only():
    person = PersonFactory(birth_year=1975, birth_date=None)
    again = Person.objects.get(pk=person.pk)
    assert again.birth_date is None
    assert again.date_of_birth_display == "1975"


@pytest.mark.django_db
def test_a_full_birth_date_round_trips():
    person = PersonFactory(birth_year=1990, birth_date=datetime.date(1990, 2, 28))
    assert Person.objects.get(pk=person.pk).date_of_birth_display == "1990-02-28"


def test_ages_count_a_year_only_birth_from_mid_year():
    person = Person(birth_year=2000, birth_date=None)
    assert person.age_on(datetime.date(2020, 6, 30)) == 19
    assert person.age_on(datetime.date(2020, 7, 1)) == 20


def test_a_birth_date_outside_the_birth_year_is_refused():
    person = Person(birth_year=1990, birth_date=datetime.date(1991, 1, 1))
    with pytest.raises(ValidationError, match="year of birth"):
        person.clean()


def test_a_birth_date_in_the_future_is_refused():
    tomorrow = datetime.date.today() + datetime.timedelta(days=2)
    with pytest.raises(ValidationError, match="future"):
        Person(birth_year=tomorrow.year, birth_date=tomorrow).clean()


@pytest.mark.django_db
def test_a_registration_number_is_unique_in_the_database():
    PersonFactory(registration_no="R-1")
    with pytest.raises(IntegrityError):
        PersonFactory(registration_no="R-1")


@pytest.mark.django_db
def test_a_case_cannot_hold_two_principal_applicants():
    case = CaseFactory(size=1)
    with pytest.raises(IntegrityError):
        PersonFactory(case=case, relationship=Relationship.PRINCIPAL_APPLICANT)


@pytest.mark.django_db
def test_model_validation_names_the_second_principal_applicant_clearly():
    case = CaseFactory(size=1)
    second = PersonFactory.build(case=case, site=case.site, relationship=Relationship.PRINCIPAL_APPLICANT)
    with pytest.raises(ValidationError, match="exactly one principal applicant"):
        second.validate_constraints()


@pytest.mark.django_db
def test_every_change_to_a_person_is_kept_in_its_history():
    person = PersonFactory(given_name="Mohamad")
    person.given_name = "Mohammad"
    person.save()
    assert [h.given_name for h in person.history.all()] == ["Mohammad", "Mohamad"]


# Partial indexes, over a few rows each (introspection does not tell them apart).
PARTIAL_INDEXES = {"cases_case_to_review"}


def _indexed_columns(table: str) -> list[list[str]]:
    """The columns of each index over a whole table."""
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return [
        c["columns"]
        for name, c in constraints.items()
        if c["index"] and not c["primary_key"] and name not in PARTIAL_INDEXES
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("table", ["cases_historicalperson", "cases_historicalcase"])
def test_history_is_indexed_by_record_and_time_only(table):
    # An import writes a history row for every person and case it adds: an index on each
    # copied key (registration or case number, site, case, officer) was written 100,000
    # times for a roster of 100,000 and read by nothing. A record's history (by id), the
    # latest changes (by time) and who changed what stay indexed.
    single = {columns[0] for columns in _indexed_columns(table) if len(columns) == 1}
    assert single == {"id", "history_date", "history_user_id"}


@pytest.mark.django_db
@pytest.mark.parametrize(("table", "lookup"), [("cases_person", "residence_status"), ("cases_case", "status")])
def test_lookups_by_site_use_the_composite_index_alone(table, lookup):
    indexes = _indexed_columns(table)
    assert ["site_id"] not in indexes  # a copy of the one below, written on every insert
    assert ["site_id", lookup] in indexes
