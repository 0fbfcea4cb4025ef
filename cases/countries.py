"""Countries as choices for nationality and country selects, in the active language.

django-countries translates and sorts its ~250 names at every use: ~2 ms a select, on
every case list and dashboard. The names only change with the language (and a new
release), so each language's list is made once per process.
"""

import functools
import re
import unicodedata

from django.utils import translation
from django_countries import countries
from django_countries.data import COUNTRIES


@functools.cache
def _choices_in(language: str | None) -> tuple[tuple[str, str], ...]:
    with translation.override(language):
        return tuple((country.code, str(country.name)) for country in countries)


def country_choices() -> list[tuple[str, str]]:
    """(ISO code, name) of every country, by name in the active language."""
    return list(_choices_in(translation.get_language()))


def _words(name: str) -> tuple[str, ...]:
    """A country name's words, whatever their order, case, accents and punctuation
    ("Korea, Republic of" and "Republic of Korea" alike; "the" aside)."""
    name = unicodedata.normalize("NFKD", name.casefold())
    name = "".join(char for char in name if not unicodedata.combining(char))
    return tuple(sorted(word for word in re.split(r"[\W_]+", name) if word and word != "the"))


@functools.cache
def _codes_by_words() -> dict[tuple[str, ...], str]:
    """The English names of every country (ISO 3166's, common and former ones) by their
    words; words two countries share are left out."""
    found: dict[tuple[str, ...], set[str]] = {}
    with translation.override("en"):
        names = [(code, str(name)) for code, name in COUNTRIES.items()]
        names += [(code, str(name)) for code, name in countries.COMMON_NAMES.items()]
        names += [(code, str(name)) for code, old in countries.OLD_NAMES.items() for name in old]
    for code, name in names:
        found.setdefault(_words(name), set()).add(code)
    return {words: codes.pop() for words, codes in found.items() if len(codes) == 1}


def country_by_name(name: str) -> str:
    """The ISO code of a country written by its English name in any of the forms ISO
    3166 lists have used ("Iran, Islamic Republic of", "State of Palestine",
    "Islamic Republic of Iran"); "" if none."""
    return _codes_by_words().get(_words(name), "")
