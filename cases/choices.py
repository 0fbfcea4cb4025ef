"""Select fields over short lists (sites, specific needs, users, offers), read with one plain query.

Django's ModelChoiceIterator reads a select's choices with queryset.iterator(), which on
PostgreSQL opens a server-side cursor (DECLARE … WITH HOLD, FETCH, CLOSE): right for long
results, but for a list of a dozen rows it costs ~0.7 ms more than a plain SELECT, for
every such select of every page (four on the case list).
"""

from collections.abc import Iterator
from typing import Any

import django_filters
from django import forms
from django.forms.models import ModelChoiceIterator


class ListedChoiceIterator(ModelChoiceIterator):
    def __iter__(self) -> Iterator[Any]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset.all():
            yield self.choice(obj)


class ListedFilterChoiceIterator(django_filters.fields.ModelChoiceIterator, ListedChoiceIterator):
    """The same for django-filter's fields, whose iterator adds the "none" choice around it."""


class ModelChoiceField(forms.ModelChoiceField):
    iterator = ListedChoiceIterator


class FilterModelChoiceField(django_filters.fields.ModelChoiceField):
    iterator = ListedFilterChoiceIterator


class ModelChoiceFilter(django_filters.ModelChoiceFilter):
    field_class = FilterModelChoiceField
