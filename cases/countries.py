"""Countries as choices for nationality and country selects, in the active language.

django-countries translates and sorts its ~250 names at every use: ~2 ms a select, on
every case list and dashboard. The names only change with the language (and a new
release), so each language's list is made once per process.
"""

import functools

from django.utils import translation
from django_countries import countries


@functools.cache
def _choices_in(language: str | None) -> tuple[tuple[str, str], ...]:
    with translation.override(language):
        return tuple((country.code, str(country.name)) for country in countries)


def country_choices() -> list[tuple[str, str]]:
    """(ISO code, name) of every country, by name in the active language."""
    return list(_choices_in(translation.get_language()))
