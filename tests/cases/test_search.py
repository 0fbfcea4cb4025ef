"""Free-text search on the case list: numbers, and names in any spelling or script."""

import io
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.urls import reverse

from cases import names
from cases.importing import roster_import
from cases.models import Person, Relationship
from cases.services import person_update
from tests.factories import CaseFactory, PersonFactory, SiteFactory

pytestmark = pytest.mark.django_db


def _found(client, q):
    response = client.get(reverse("cases:list"), {"q": q})
    assert response.status_code == 200
    return sorted(case.case_no for case in response.context["page"])


@pytest.fixture
def staff_client(client_for):
    return client_for("Staff")


def _person(case_no, family, given, native="", **extra):
    return PersonFactory(
        case=CaseFactory(case_no=case_no), family_name=family, given_name=given, native_name=native, **extra
    )


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Mohammed", "Mohammad"),
        ("Muhammad", "Mohammad"),
        ("Hussein", "Hossein"),
        ("Hosein", "Hossein"),
        ("Qasemi", "Ghasemi"),
        ("Fatima", "Fatemeh"),
        ("Isfahani", "Esfahani"),
        ("Musavi", "Mousavi"),
        ("Nasser", "Naser"),
        ("Daryoush", "Dariush"),
        ("Zainab", "Zeinab"),
    ],
)
def test_a_name_in_another_latin_spelling_finds_the_person(staff_client, typed, stored):
    _person("C-FOUND", "Karimi", stored)
    _person("C-OTHER", "Karimi", "Reza")
    assert _found(staff_client, typed) == ["C-FOUND"]


@pytest.mark.parametrize(
    ("typed", "family", "given"),
    [
        ("محمد", "Karimi", "Mohammad"),
        ("حسین", "Karimi", "Hossein"),
        ("تهرانی", "Tehrani", "Ali"),
        ("موسوی", "Mousavi", "Ali"),
        ("جواد", "Karimi", "Javad"),
        ("فاطمه", "Karimi", "Fatemeh"),
        ("علي", "Karimi", "Ali"),  # Arabic yeh
    ],
)
def test_a_name_in_persian_or_arabic_script_finds_a_person_recorded_in_latin_letters_only(
    staff_client, typed, family, given
):
    _person("C-FOUND", family, given)
    _person("C-OTHER", "Shirazi", "Reza")
    assert _found(staff_client, typed) == ["C-FOUND"]


def test_a_native_script_name_finds_its_person(staff_client):
    _person("C-FOUND", "Tehrani", "Ali", "علی تهرانی")
    _person("C-OTHER", "Shirazi", "Reza", "رضا شیرازی")
    assert _found(staff_client, "علی تهرانی") == ["C-FOUND"]
    assert _found(staff_client, "تهرانی") == ["C-FOUND"]


def test_a_latin_name_finds_a_person_by_their_native_script_name(staff_client):
    _person("C-FOUND", "Unknown", "Unknown", "مرتضی صادقی")
    _person("C-OTHER", "Unknown", "Unknown", "رضا شیرازی")
    assert _found(staff_client, "Sadeghi") == ["C-FOUND"]


def test_every_word_must_match_the_same_person(staff_client):
    _person("C-BOTH", "Hosseini", "Mohammad")
    _person("C-FAMILY", "Hosseini", "Reza")
    _person("C-GIVEN", "Shirazi", "Mohammad")
    assert _found(staff_client, "Muhammad Husseini") == ["C-BOTH"]
    assert _found(staff_client, "Husseini Muhammad") == ["C-BOTH"]


def test_a_compound_name_is_found_written_either_way(staff_client):
    _person("C-FOUND", "Karimi", "Abdul-Rahman")
    assert _found(staff_client, "Abdulrahman") == ["C-FOUND"]
    assert _found(staff_client, "Abdul Rahman") == ["C-FOUND"]


def test_any_member_of_a_case_is_searched(staff_client):
    case = CaseFactory(case_no="C-FAMILY", size=1)
    PersonFactory(case=case, relationship=Relationship.SPOUSE, family_name="Najafi", given_name="Soheila")
    assert _found(staff_client, "Soheyla") == ["C-FAMILY"]


def test_case_and_registration_numbers_are_found_in_any_case(staff_client):
    _person("C-00042", "Karimi", "Reza", registration_no="RLC01-0000042")
    _person("C-00043", "Karimi", "Ali", registration_no="RLC01-0000043")
    assert _found(staff_client, "C-00042") == ["C-00042"]
    assert _found(staff_client, "rlc01-0000042") == ["C-00042"]
    assert _found(staff_client, " RLC01-0000043 ") == ["C-00043"]


def test_part_of_a_name_finds_it(staff_client):
    _person("C-FOUND", "Tehrani", "Ali")
    assert _found(staff_client, "Tehr") == ["C-FOUND"]


def test_the_search_box_keeps_what_was_typed(staff_client):
    text = staff_client.get(reverse("cases:list"), {"q": "حسین"}).text
    assert 'value="حسین" dir="auto"' in text


# The stored key --------------------------------------------------------------------


def _stored(person):
    person.refresh_from_db()
    return {field: getattr(person, field) for field in names.STORED_KEYS}


def test_saving_a_person_stores_their_name_key():
    person = _person("C-1", "Hosseini", "Mohammad", "محمد حسینی")
    assert person.name_key == names.name_key("Hosseini", "Mohammad", "محمد حسینی")
    assert " hsn " in person.name_key
    assert " mhmd " in person.name_key


def test_saving_a_person_stores_the_keys_the_duplicate_search_pairs_by():
    person = _person("C-1", "Hosseini", "Mohammad", "محمد حسینی")
    assert _stored(person) == names.stored_keys("Hosseini", "Mohammad", "محمد حسینی")
    assert (person.match_latin, person.match_native) == ("hsni mhmd", "حسینیمحمد")
    # Muhammad Husseini is the same pair of keys, in either column; a name without Latin
    # letters has none, nor a native name of one word.
    assert names.match_keys("Husseini", "Muhammad") == names.match_keys("Muhammad", "Husseini") == ("hsni mhmd", "")
    assert names.match_keys("Hosseini", "Mohammad", "محمد") == ("hsni mhmd", "")
    assert names.match_keys("Hosseini", "-") == ("", "")


def test_a_save_of_chosen_fields_that_changes_a_name_updates_the_key():
    person = _person("C-1", "Hosseini", "Mohammad")
    person.family_name = "Tehrani"
    person.save(update_fields=["family_name"])
    person.refresh_from_db()
    assert " thrn " in person.name_key
    assert _stored(person) == names.stored_keys("Tehrani", "Mohammad")


def test_editing_a_name_updates_the_key(staff):
    person = _person("C-1", "Hosseini", "Mohammad")
    person_update(person, actor=staff, version=person.version, changes={"given_name": "Javad"})
    person.refresh_from_db()
    assert person.name_key == names.name_key("Hosseini", "Javad")
    assert _stored(person) == names.stored_keys("Hosseini", "Javad")


def test_the_roster_import_stores_name_keys_for_new_and_changed_persons(staff):
    SiteFactory(name="Camp Liberty", code="camp-liberty")
    header = (
        "registration_no,case_no,relationship,family_name,given_name,native_name,sex,date_of_birth,nationality,site"
    )
    row = "R-1,C-1,PA,{family},Ali,علی,M,1980,IR,Camp Liberty"

    def run(family):
        content = f"{header}\n{row.format(family=family)}\n".encode()
        result = roster_import(io.BytesIO(content), filename="roster.csv", actor=staff, dry_run=False)
        assert result.ok, result.errors

    run("Hosseini")
    assert _stored(Person.objects.get()) == names.stored_keys("Hosseini", "Ali", "علی")
    run("Tehrani")
    assert _stored(Person.objects.get()) == names.stored_keys("Tehrani", "Ali", "علی")


def test_the_migration_fills_the_keys_of_persons_already_on_record():
    fill = __import__("cases.migrations.0005_person_name_key_trigram", fromlist=["fill_name_keys"]).fill_name_keys
    person = _person("C-1", "Hosseini", "Mohammad")
    Person.objects.filter(pk=person.pk).update(name_key="")
    fill(django_apps, SimpleNamespace(connection=connection))  # the schema editor's connection is all it uses
    person.refresh_from_db()
    assert person.name_key == names.name_key("Hosseini", "Mohammad")


def test_the_migration_fills_the_match_keys_of_persons_already_on_record():
    fill = __import__("cases.migrations.0018_person_match_keys", fromlist=["fill_match_keys"]).fill_match_keys
    people = [
        _person(f"C-{n}", "Hosseini", given, native)
        for n, (given, native) in enumerate([("Mohammad", "محمد حسینی"), ("Ali", ""), ("-", "علی")])
    ]
    Person.objects.update(match_latin="", match_native="")
    fill(django_apps, SimpleNamespace(connection=connection))
    for person in people:
        assert _stored(person) == names.stored_keys(person.family_name, person.given_name, person.native_name)


def test_the_migration_computes_again_the_match_keys_stored_by_the_earlier_function():
    migration = __import__("cases.migrations.0021_person_match_keys_recomputed", fromlist=["fill_match_keys"])
    fill = migration.fill_match_keys
    people = [_person("C-1", "Hosseini", "Mohammad", "محمد حسینی"), _person("C-2", "Karimi", "Ali", "علی")]
    # The keys 0018 stored: family before given, a native name's words run together.
    Person.objects.filter(pk=people[0].pk).update(match_latin="hsn mhmd", match_native="محمدحسینی")
    Person.objects.filter(pk=people[1].pk).update(match_latin="krm al", match_native="علی")
    fill(django_apps, SimpleNamespace(connection=connection))
    for person in people:
        assert _stored(person) == names.stored_keys(person.family_name, person.given_name, person.native_name)
    assert (people[1].match_latin, people[1].match_native) == ("ali krmi", "")


@pytest.mark.parametrize(
    ("a", "b"),
    [("Mohammad", "محمد"), ("Hosseini", "حسینی"), ("Fatemeh", "فاطمه"), ("Abbas", "عباس"), ("Esfahani", "اصفهانی")],
)
def test_a_name_and_its_native_spelling_share_a_key(a, b):
    assert names.word_keys(a) <= names.word_keys(b)


@pytest.mark.parametrize(("a", "b"), [("Ali", "Reza"), ("Shirazi", "Tehrani"), ("محمد", "رضا")])
def test_different_names_keep_different_keys(a, b):
    assert not names.word_keys(a) & names.word_keys(b)


# PostgreSQL: trigram similarity beside the keys ---------------------------------------------


@pytest.mark.postgres
def test_on_postgresql_trigram_similarity_finds_spellings_the_keys_miss(staff_client):
    if connection.vendor != "postgresql":
        pytest.skip("trigram search needs PostgreSQL")
    _person("C-FOUND", "Sadeghi", "Ali")
    _person("C-OTHER", "Shirazi", "Reza")
    _person("C-NATIVE", "Karimi", "Hassan", "کریمی حسن")
    # A letter left out changes the key; the trigrams stay close enough.
    assert names.word_keys("Sadegi") != names.word_keys("Sadeghi")
    assert _found(staff_client, "Sadegi") == ["C-FOUND"]
    assert _found(staff_client, "Sadegi Ali") == ["C-FOUND"]
    assert _found(staff_client, "Sadegi Reza") == []
    # In the native script too: a letter too many.
    assert _found(staff_client, "کریمیی") == ["C-NATIVE"]
    # Nothing close: nothing found.
    assert _found(staff_client, "Xyzzyq") == []


def _name_words():
    with connection.cursor() as cursor:
        cursor.execute("SELECT word FROM cases_nameword")
        return {word for (word,) in cursor.fetchall()}


@pytest.mark.postgres
def test_on_postgresql_every_word_of_the_names_written_is_in_the_table_of_name_words(staff):
    if connection.vendor != "postgresql":
        pytest.skip("the table of name words exists on PostgreSQL only")
    person = _person("C-1", "Abdul-Rahman", "Ali Reza", "عبدالرحمن 12")
    assert {"abdul", "rahman", "ali", "reza", "عبدالرحمن"} <= _name_words()
    assert "12" not in _name_words()  # no letter: no part of a name, as the search reads it
    # Words written by an update (an edit, a roster import's change) are added too.
    person_update(person, actor=staff, version=person.version, changes={"given_name": "Yusuf"}, reason="spelling")
    assert "yusuf" in _name_words()
    Person.objects.filter(pk=person.pk).update(family_name="Tabrizi")  # a bulk update
    assert "tabrizi" in _name_words()
    # Many persons in one statement, sharing some of their names (each distinct name is
    # split once): the words added are exactly those the search splits their names into.
    before = _name_words()
    case = CaseFactory(case_no="C-MANY")
    people = [
        PersonFactory.build(
            case=case,
            relationship=Relationship.PRINCIPAL_APPLICANT if n == 0 else Relationship.CHILD,
            family_name="Nazari" if n % 2 else "Golzar-Nazari",
            given_name=f"Omid {'Sina' if n % 3 else 'Kian'} 2nd",
            native_name="نظری" if n == 4 else "",
        )
        for n in range(6)
    ]
    Person.objects.bulk_create(people)
    expected = {
        word.lower()
        for person in people
        for name in (person.family_name, person.given_name, person.native_name)
        for word in names.words(name)
        if any(char.isalpha() for char in word)
    }
    assert expected == {"nazari", "golzar", "omid", "sina", "kian", "2nd", "نظری"}
    assert _name_words() - before == expected - before


@pytest.mark.postgres
def test_on_postgresql_trigrams_are_indexed_on_the_name_words_only():
    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes exist on PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname FROM pg_indexes WHERE indexdef LIKE '%%gin_trgm_ops%%'")
        found = set(cursor.fetchall())
    # The persons' names are matched through their keys' token index (migration 0012) and
    # the close words through the name words' trigrams (0013): inserting a person keeps
    # no trigram index up to date.
    assert found == {("cases_nameword", "cases_nameword_trgm")}
