"""The roster import's probable duplicates across the ways one name is written: Latin
columns swapped, particles, Abd-, Somali, Tigrinya, Egyptian and Turkish spellings, and
native names pasted with invisible marks, in other word orders, in Pashto, Kurdish or
Urdu letters or in Ge'ez letters of one sound; and look-alikes that are not flagged."""

import datetime

import pytest

from tests.cases.test_import import csv_bytes, needs, person_row, run, site  # noqa: F401 - fixtures
from tests.factories import CaseFactory, PersonFactory


def _two(first: tuple[str, str, str], second: tuple[str, str, str]) -> list[tuple[str, str, str]]:
    """The pairs a dry run flags in a file of two one-person households, born the same
    day, with these (family name, given name, native name)."""
    rows = [
        person_row(registration_no=f"R-{n}", case_no=f"C-{n}", family_name=family, given_name=given,
                   native_name=native, date_of_birth="1990-05-01")
        for n, (family, given, native) in enumerate((first, second), start=1)
    ]  # fmt: skip
    result = run(csv_bytes(rows), dry_run=True)
    assert result.ok, result.report_lines()[:5]
    return [(d.registration_no, d.other_registration_no, d.reason) for d in result.duplicates]


LATIN_VARIANTS = [
    (("Ahmadi", "Mohammad"), ("Mohammad", "Ahmadi"), "columns swapped"),
    (("Al-Jubouri", "Ahmed"), ("Jubouri", "Ahmed"), "al- before the name"),
    (("Al Hashimi", "Ali"), ("Hashimi", "Ali"), "al as a word"),
    (("Elsayed", "Omar"), ("Sayed", "Omar"), "el written into the name"),
    (("Karimi", "Mohammad bin Salman"), ("Karimi", "Mohammad Salman"), "bin"),
    (("Ould Abdallah", "Ahmed"), ("Abdallah", "Ahmed"), "ould"),
    (("Karimi", "Abdurrahman"), ("Karimi", "Abdul Rahman"), "a sun letter doubled after Abd"),
    (("Karimi", "Abd ar-Rahman"), ("Karimi", "Abdulrahman"), "Abd ar-"),
    (("Karimi", "Abdirahman"), ("Karimi", "Abdul Rahman"), "Somali Abdi-"),
    (("Karimi", "Mohd"), ("Karimi", "Mohammad"), "Mohd"),
    (("Yilmaz", "Mehmet"), ("Yilmaz", "Mohammed"), "Turkish Mehmet"),
    (("Warsame", "Maxamed"), ("Warsame", "Mohamed"), "Somali x"),
    (("Warsame", "Axmed"), ("Warsame", "Ahmed"), "Somali x in Ahmed"),
    (("Warsame", "Cabdullahi"), ("Warsame", "Abdullahi"), "Somali initial c"),
    (("Warsame", "Cumar"), ("Warsame", "Omar"), "Somali c in Omar"),
    (("Nur", "Othman"), ("Nur", "Osman"), "th for tha"),
    (("Nur", "Uthman"), ("Nur", "Osman"), "Uthman"),
    (("Idris", "Qasim"), ("Idris", "Kassim"), "q and k"),
    (("Osman", "Jamal"), ("Osman", "Gamal"), "Egyptian g"),
    (("Osman", "Jafar"), ("Osman", "Gaafar"), "Gaafar"),
    (("Osman", "Jafar"), ("Osman", "Djafar"), "dj"),
    (("Tesfay", "Gebremedhin"), ("Tesfay", "Gebremedin"), "Tigrinya medhin"),
    (("Ghebre", "Yonas"), ("Gebre", "Yonas"), "Tigrinya gh"),
    (("Tesfay", "Ghirmay"), ("Tesfay", "Girmay"), "Ghirmay"),
]


@pytest.mark.parametrize(("a", "b", "why"), LATIN_VARIANTS, ids=[why for *_, why in LATIN_VARIANTS])
def test_one_name_written_in_two_latin_spellings_is_flagged(a, b, why):
    assert _two((*a, ""), (*b, "")) == [("R-2", "R-1", "same name in another spelling")]


# Spellings matched before the folds above, which the folds must not part.
STILL_ALIKE = [
    (("El-Sayed", "Omar"), ("Al Sayed", "Omar"), "el- and al"),
    (("Karimi", "Abd al-Rahman"), ("Karimi", "Abdelrahman"), "Abd al- and Abdel"),
    (("Ghasemi", "Ali"), ("Qasemi", "Ali"), "q and gh"),
    (("Sadeghi", "Ali"), ("Sadeqi", "Ali"), "q and gh inside"),
    (("Jafari", "Ali"), ("Jafary", "Ali"), "a final y"),
    (("Tesfaye", "Yonas"), ("Tesfay", "Yonas"), "Amharic -aye"),
    (("Rezaie", "Ali"), ("Rezaei", "Ali"), "Afghan -ie"),
    (("Ghanie", "Ali"), ("Ghani", "Ali"), "Afghan -ie after n"),
    (("Karimi", "Zia ul Haq"), ("Karimi", "Ziaulhaq"), "ul within the name"),
    (("Karimi", "Inamul Haq"), ("Karimi", "Inam ul Haq"), "ul joined to the word before"),
    (("Karimi", "Nour El Din"), ("Karimi", "Noureldin"), "el within the name"),
    (("Karimi", "Salah El Din"), ("Karimi", "Salaheldin"), "Salah el Din"),
    (("Karimi", "Nour El Din"), ("Karimi", "Nureddin"), "the article assimilated"),
    (("Karimi", "Salah El Din"), ("Karimi", "Salahuddin"), "the article assimilated to ud"),
    (("Al-Obaidi", "Ahmed"), ("Obaidi", "Ahmed"), "al- before the family name"),
    (("Karimi", "Ahmed Mohammed Al-Obaidi"), ("Karimi", "Ahmed Mohammed Obaidi"), "al- within the field"),
    (("Karimi", "Tariq"), ("Karimi", "Tarek"), "q written k"),
    (("Karimi", "Farouq"), ("Karimi", "Farouk"), "Farouq"),
    (("Karimi", "Abdul Qadir"), ("Karimi", "Abdulkadir"), "Abdul Qadir"),
    (("Haqqani", "Ali"), ("Haqani", "Ali"), "q doubled"),
]


@pytest.mark.parametrize(("a", "b", "why"), STILL_ALIKE, ids=[why for *_, why in STILL_ALIKE])
def test_spellings_flagged_before_are_still_flagged(a, b, why):
    assert _two((*a, ""), (*b, "")) == [("R-2", "R-1", "same name in another spelling")]


def test_a_person_on_record_is_flagged_by_a_row_with_the_names_in_the_other_columns(site):  # noqa: F811
    case = CaseFactory(case_no="C-OLD", site=site)
    PersonFactory(registration_no="R-OLD", case=case, family_name="Al-Jubouri", given_name="Abd ar-Rahman",
                  native_name="", birth_year=1990, birth_date=datetime.date(1990, 5, 1))  # fmt: skip
    row = person_row(family_name="Abdulrahman", given_name="Jubouri", native_name="", date_of_birth="1990-05-01")

    result = run(csv_bytes([row]), dry_run=True)

    assert [(d.registration_no, d.other_registration_no) for d in result.duplicates] == [("R-1", "R-OLD")]


NATIVE_VARIANTS = [
    ("محمد احمدی", "احمدی محمد", "family name first"),
    ("محمدرضا احمدی", "محمد رضا احمدی", "a compound name written without its space"),
    ("محمد رضا احمدی", "احمدی محمدرضا", "family name first and a compound name run together"),
    ("محمد\u200f احمدی", "محمد احمدی", "a right-to-left mark pasted"),
    ("محمد\u200dاحمدی", "محمد احمدی", "a zero-width joiner for the space"),
    ("\ufeffمحمد \u2067احمدی\u2069", "محمد احمدی", "a byte order mark and an isolate"),
    ("محمد اح\u00adمدی", "محمد احمدی", "a soft hyphen inside a word"),
    ("ګل احمد", "گل احمد", "Pashto gaf"),
    ("عیسې احمدزۍ", "عیسی احمدزی", "Pashto ye"),
    ("زەینەب کەریم", "زهینهب کهریم", "Kurdish ae"),
    ("ہاشم علی", "هاشم علی", "Urdu heh"),
    ("ፀጋይ ተስፋይ", "ጸጋይ ተስፋይ", "Geez tsa"),
    ("ሐጎስ ኀይሌ", "ሀጎስ ሀይሌ", "Geez ha"),
    ("ሠናይት ገብሩ", "ሰናይት ገብሩ", "Geez sa"),
    ("ዓወት ገብሩ", "አወት ገብሩ", "Geez a"),
]


@pytest.mark.parametrize(("a", "b", "why"), NATIVE_VARIANTS, ids=[why for *_, why in NATIVE_VARIANTS])
def test_one_native_name_written_two_ways_is_flagged(a, b, why):
    # Latin names too far apart for the Latin key: the native name is the only link.
    assert _two(("Xa", "Yb", a), ("Qz", "Wv", b)) == [("R-2", "R-1", "same name in native script")]


def test_a_native_name_of_one_word_does_not_pair_strangers_born_the_same_year():
    # A roster whose native name column holds the given name alone (a common export).
    rows = [
        person_row(registration_no=f"R-{n}", case_no=f"C-{n}", family_name=family, given_name="Mohammad",
                   native_name="محمد", date_of_birth="1990")
        for n, family in enumerate(["Rahimi", "Nazari", "Azizi", "Tehrani"])
    ]  # fmt: skip

    result = run(csv_bytes(rows), dry_run=True)

    assert result.ok and result.duplicates == []


def test_a_one_word_native_name_written_with_a_non_joiner_does_not_pair_strangers_born_the_same_year():
    # علی‌رضا (Alireza) is one name: Persian writes the zero-width non-joiner within words.
    rows = [
        person_row(registration_no=f"R-{n}", case_no=f"C-{n}", family_name=family, given_name="Alireza",
                   native_name="علی\u200cرضا", date_of_birth="1990")
        for n, family in enumerate(["Rahimi", "Nazari"])
    ]  # fmt: skip

    result = run(csv_bytes(rows), dry_run=True)

    assert result.ok and result.duplicates == []


NOT_ALIKE = [
    (("Abbasi", "Karim", "کریم عباسی"), ("Karimi", "Abbas", "عباس کریمی"), "a family name made of the other's given"),
    (("Ahmadi", "Reza", ""), ("Rezaei", "Ahmad", ""), "Reza Ahmadi and Ahmad Rezaei"),
    (("Osman", "Kamal", ""), ("Osman", "Gamal", ""), "Kamal is not Gamal"),
    (("Karimi", "Elham", ""), ("Karimi", "Ham", ""), "the El of Elham is no article"),
    (("Karimi", "Ahmad", ""), ("Karimi", "Ahmadi", ""), "Ahmad and Ahmadi"),
    # Letters that are two in these names (th ث and s, g and k). (q, gh and k are one:
    # Tariq is Tarik, so Bagheri is Bakri, a look-alike to decide on.)
    (("Khalil", "Thamer", ""), ("Khalil", "Samir", ""), "Thamer is not Samir"),
    (("Khalil", "Haitham", ""), ("Khalil", "Hossam", ""), "Haitham is not Hossam"),
    (("Khalil", "Thana", ""), ("Khalil", "Sana", ""), "Thana is not Sana"),
    (("Khalil", "Gamil", ""), ("Khalil", "Kamil", ""), "Gamil is not Kamil"),
    (("Khalil", "Ragab", ""), ("Khalil", "Raqib", ""), "Ragab is not Raqib"),
    (("Ahmed", "Goran", ""), ("Ahmed", "Koran", ""), "Goran is not Koran"),
]


@pytest.mark.parametrize(("a", "b", "why"), NOT_ALIKE, ids=[why for *_, why in NOT_ALIKE])
def test_different_names_are_not_flagged(a, b, why):
    assert _two(a, b) == []
