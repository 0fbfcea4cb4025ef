"""Deterministic demo roster: names in Latin and Persian script, households, births.

Used by `manage.py seed_demo` and by the benchmarks. Pure data: no database access.
"""

import datetime
import random
from collections.abc import Container
from dataclasses import dataclass, field

# (Latin spellings — the first is the usual one, the others real transliteration
# variants — and the name in Persian script.)
MALE_NAMES = [
    (("Mohammad", "Mohammed", "Muhammad"), "محمد"),
    (("Ali",), "علی"),
    (("Hossein", "Hussein", "Hosein"), "حسین"),
    (("Reza",), "رضا"),
    (("Mehdi", "Mahdi"), "مهدی"),
    (("Ahmad", "Ahmed"), "احمد"),
    (("Hassan", "Hasan"), "حسن"),
    (("Abbas",), "عباس"),
    (("Javad",), "جواد"),
    (("Majid",), "مجید"),
    (("Saeed", "Said"), "سعید"),
    (("Morteza", "Mortaza"), "مرتضی"),
    (("Amir",), "امیر"),
    (("Farhad",), "فرهاد"),
    (("Dariush", "Daryoush"), "داریوش"),
    (("Karim",), "کریم"),
    (("Nasser", "Naser"), "ناصر"),
    (("Behrouz", "Behruz"), "بهروز"),
    (("Kamran",), "کامران"),
    (("Omid",), "امید"),
]
FEMALE_NAMES = [
    (("Fatemeh", "Fatima"), "فاطمه"),
    (("Zahra",), "زهرا"),
    (("Maryam", "Mariam"), "مریم"),
    (("Leila", "Layla"), "لیلا"),
    (("Sara",), "سارا"),
    (("Narges",), "نرگس"),
    (("Shirin",), "شیرین"),
    (("Parisa",), "پریسا"),
    (("Mahnaz",), "مهناز"),
    (("Soheila", "Soheyla"), "سهیلا"),
    (("Nasrin",), "نسرین"),
    (("Roya",), "رویا"),
    (("Azadeh",), "آزاده"),
    (("Fereshteh",), "فرشته"),
    (("Masoumeh", "Masoumah"), "معصومه"),
    (("Zeinab", "Zainab"), "زینب"),
    (("Somayeh",), "سمیه"),
    (("Elham",), "الهام"),
    (("Mina",), "مینا"),
    (("Samira",), "سمیرا"),
]
FAMILY_NAMES = [
    (("Ahmadi",), "احمدی"),
    (("Hosseini", "Husseini"), "حسینی"),
    (("Mohammadi", "Mohammedi"), "محمدی"),
    (("Rezaei", "Rezai"), "رضایی"),
    (("Karimi",), "کریمی"),
    (("Moradi",), "مرادی"),
    (("Jafari", "Jafary"), "جعفری"),
    (("Rahimi",), "رحیمی"),
    (("Hashemi",), "هاشمی"),
    (("Ghasemi", "Qasemi"), "قاسمی"),
    (("Kazemi",), "کاظمی"),
    (("Mousavi", "Musavi"), "موسوی"),
    (("Sadeghi", "Sadeqi"), "صادقی"),
    (("Heidari", "Haidari"), "حیدری"),
    (("Najafi",), "نجفی"),
    (("Azizi",), "عزیزی"),
    (("Bagheri", "Baqeri"), "باقری"),
    (("Nazari",), "نظری"),
    (("Sharifi",), "شریفی"),
    (("Tehrani",), "تهرانی"),
    (("Esfahani", "Isfahani"), "اصفهانی"),
    (("Shirazi",), "شیرازی"),
    (("Abbasi",), "عباسی"),
    (("Alavi",), "علوی"),
    (("Zamani",), "زمانی"),
]
NATIONALITIES = ["IR"] * 8 + ["IQ", "AF"]
NEED_CODES = [
    "medical_condition",
    "serious_medical_condition",
    "disability",
    "mental_health",
    "older_person_at_risk",
    "single_parent",
    "woman_at_risk",
    "survivor_of_violence",
    "survivor_of_torture",
    "pregnant_or_lactating",
]


@dataclass
class DemoPerson:
    registration_no: str
    case_no: str
    relationship: str
    family_name: str
    given_name: str
    native_name: str
    sex: str
    birth_year: int
    birth_date: datetime.date | None
    nationality: str
    needs: list[str] = field(default_factory=list)
    phone: str = ""

    @property
    def date_of_birth(self) -> str:
        return self.birth_date.isoformat() if self.birth_date else str(self.birth_year)

    def record(self, site: str, needs: Container[str] | None = None) -> dict[str, str]:
        """This person as a row of a roster file (cases.importing.COLUMNS) at `site`; with
        `needs`, only the specific needs among them."""
        return {
            "registration_no": self.registration_no,
            "case_no": self.case_no,
            "relationship": self.relationship,
            "family_name": self.family_name,
            "given_name": self.given_name,
            "native_name": self.native_name,
            "sex": self.sex,
            "date_of_birth": self.date_of_birth,
            "nationality": self.nationality,
            "site": site,
            "specific_needs": ";".join(need for need in self.needs if needs is None or need in needs),
            "phone": self.phone,
            "notes": "",
        }


def _name(rng: random.Random, names: list[tuple[tuple[str, ...], str]]) -> tuple[str, str]:
    latin, native = rng.choice(names)
    # Most records use the usual spelling; some carry a variant, as real rosters do.
    spelling = latin[0] if len(latin) == 1 or rng.random() < 0.8 else rng.choice(latin[1:])
    return spelling, native


def _birth(rng: random.Random, today: datetime.date, min_age: int, max_age: int) -> tuple[int, datetime.date | None]:
    age_days = rng.randint(min_age * 365 + 1, max_age * 365 + 300)
    born = today - datetime.timedelta(days=age_days)
    # About one in ten only knows the year of birth.
    if rng.random() < 0.1:
        return born.year, None
    return born.year, born


def _household_size(rng: random.Random) -> int:
    return rng.choices([1, 2, 3, 4, 5, 6, 7], weights=[28, 14, 14, 16, 13, 9, 6])[0]


def roster(persons: int, seed: int, today: datetime.date) -> list[DemoPerson]:
    """`persons` demo persons in households, the same for the same seed and day."""
    rng = random.Random(seed)
    rows: list[DemoPerson] = []
    case_index = 0
    while len(rows) < persons:
        case_index += 1
        case_no = f"C{seed:02d}-{case_index:05d}"
        size = min(_household_size(rng), persons - len(rows))
        family_latin, family_native = _name(rng, FAMILY_NAMES)
        nationality = rng.choice(NATIONALITIES)
        pa_sex = "M" if rng.random() < 0.62 else "F"
        members: list[tuple[str, str, int, int]] = [("PA", pa_sex, 18, 70)]
        if size >= 2 and rng.random() < 0.8:
            members.append(("spouse", "F" if pa_sex == "M" else "M", 18, 65))
        while len(members) < size:
            relationship = rng.choices(["child", "parent", "sibling", "other_relative"], weights=[80, 8, 8, 4])[0]
            ages = {"child": (0, 17), "parent": (60, 88), "sibling": (16, 60), "other_relative": (5, 70)}
            members.append((relationship, rng.choice("MF"), *ages[relationship]))
        for relationship, sex, min_age, max_age in members:
            given_latin, given_native = _name(rng, MALE_NAMES if sex == "M" else FEMALE_NAMES)
            year, born = _birth(rng, today, min_age, max_age)
            needs = []
            if rng.random() < 0.15:
                needs = sorted(set(rng.sample(NEED_CODES, rng.choice([1, 1, 2]))))
            if max_age > 17 and year <= today.year - 65 and "older_person_at_risk" not in needs and rng.random() < 0.5:
                needs.append("older_person_at_risk")
            rows.append(
                DemoPerson(
                    registration_no=f"RLC{seed:02d}-{len(rows) + 1:07d}",
                    case_no=case_no,
                    relationship=relationship,
                    family_name=family_latin,
                    given_name=given_latin,
                    native_name=f"{given_native} {family_native}",
                    sex=sex,
                    birth_year=year,
                    birth_date=born,
                    nationality=nationality,
                    needs=needs,
                    phone=f"+964 7{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
                    if relationship == "PA"
                    else "",
                )
            )
    return rows
