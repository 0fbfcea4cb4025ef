"""Select fields: how their choices are read and how they are written out.

- Fields over short lists (sites, specific needs, users, offers) read them with one plain
  query. Django's ModelChoiceIterator reads a select's choices with queryset.iterator(),
  which on PostgreSQL opens a server-side cursor (DECLARE … WITH HOLD, FETCH, CLOSE):
  right for long results, but for a list of a dozen rows it costs ~0.7 ms more than a
  plain SELECT, for every such select of every page (four on the case list).
- `Select` writes Django's select HTML without a template per option, each list's options
  escaped once (the case list's nationality select has ~250).
"""

import functools
from collections.abc import Iterator
from typing import Any

import django_filters
from django import forms
from django.forms.models import ModelChoiceIterator
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe


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


def _choices_key(choices: list[Any]) -> tuple[tuple[str | None, str, str], ...]:
    """(optgroup or None, value, label) of each option, as strings in the active language."""
    flat: list[tuple[str | None, str, str]] = []
    for value, label in choices:
        group, options = (str(value), label) if isinstance(label, (list, tuple)) else (None, [(value, label)])
        flat += [(group, "" if v is None else str(v), str(text)) for v, text in options]
    return tuple(flat)


@functools.lru_cache(maxsize=256)
def _escaped_options(choices: tuple[tuple[str | None, str, str], ...]) -> tuple[tuple[str | None, str, str, str], ...]:
    """(optgroup, value, escaped value, escaped label) of each option: made once per list of
    choices (the nationality list's ~250 on every case list page: ~2.5 ms)."""
    return tuple(
        (group, value, conditional_escape(value), conditional_escape(label)) for group, value, label in choices
    )


class Select(forms.Select):
    """Django's select, the same HTML, written here rather than through a template per option:
    the nationality list's ~250 options cost ~30 ms a page through the templates."""

    @staticmethod
    def _attrs(attrs: dict[str, Any]) -> str:
        # django/forms/widgets/attrs.html
        return "".join(
            f" {conditional_escape(name)}" + ("" if value is True else f'="{conditional_escape(value)}"')
            for name, value in attrs.items()
            if value is not False
        )

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        # django/forms/widgets/select.html and select_option.html, with the options walked as
        # ChoiceWidget.optgroups walks them but without a context dict per option (~4 ms a
        # select, ~40 ms a case list page).
        widget_attrs = self.build_attrs(self.attrs, attrs)
        if self.allow_multiple_selected:
            widget_attrs["multiple"] = True
        chosen = set(self.format_value(value))
        html = [f'<select name="{conditional_escape(name)}"{self._attrs(widget_attrs)}>']
        has_selected = False
        group = None
        # Through iter(): list() would ask a model select's len(), a COUNT query.
        for in_group, option, value_html, label_html in _escaped_options(_choices_key(list(iter(self.choices)))):
            if in_group != group:
                if group is not None:
                    html.append("\n  </optgroup>")
                if in_group is not None:
                    html.append(f'\n  <optgroup label="{conditional_escape(in_group)}">')
                group = in_group
            selected = (not has_selected or self.allow_multiple_selected) and option in chosen
            has_selected |= selected
            # The option template's last line end included.
            html.append(f'\n  <option value="{value_html}"{" selected" if selected else ""}>{label_html}</option>\n')
        if group is not None:
            html.append("\n  </optgroup>")
        html.append("\n</select>")
        return mark_safe("".join(html))  # noqa: S308 - every value above is escaped
