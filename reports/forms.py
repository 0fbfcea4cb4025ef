"""The dashboard's filters: site, nationality and a date range."""

import datetime
from dataclasses import dataclass
from typing import Any

from django import forms
from django.forms.utils import flatatt
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from cases.countries import country_choices
from cases.models import Site
from cases.scope import Sites, limit

# Weekly charts stay legible up to about three years of bars.
MAX_DAYS = 3 * 366
DEFAULT_WEEKS = 26


@dataclass(frozen=True)
class DashboardFilters:
    site: Site | None
    nationality: str
    date_from: datetime.date
    date_to: datetime.date
    # The sites the user is limited to (cases.scope), or None for a user who sees every site.
    scope: Sites = None

    @property
    def site_ids(self) -> tuple[int, ...] | None:
        """The sites counted: the one chosen, else those of the user's scope; None for all."""
        if self.site is not None:
            return (self.site.pk,)
        return None if self.scope is None else tuple(sorted(self.scope))


def default_range(today: datetime.date | None = None) -> tuple[datetime.date, datetime.date]:
    """The last 26 weeks, the current one included, starting on a Monday."""
    today = today or timezone.localdate()
    monday = today - datetime.timedelta(days=today.weekday())
    return monday - datetime.timedelta(weeks=DEFAULT_WEEKS - 1), today


def _nationality_choices() -> list[tuple[str, str]]:
    return [("", str(_("All nationalities"))), *country_choices()]


class QuickSelect(forms.Select):
    """A select written in Python rather than through a template per option: the 250 or so
    countries took 60 ms, a fifth of the dashboard's time. The same elements, without the
    template's line breaks."""

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        widget = self.get_context(name, value, attrs)["widget"]
        groups = []
        for group_name, options, _index in widget["optgroups"]:
            html = format_html_join(
                "",
                '<option value="{}"{}>{}</option>',
                ((option["value"], flatatt(option["attrs"]), option["label"]) for option in options),
            )
            groups.append(format_html('<optgroup label="{}">{}</optgroup>', group_name, html) if group_name else html)
        return format_html(
            '<select name="{}"{}>{}</select>', widget["name"], flatatt(widget["attrs"]), SafeString("".join(groups))
        )


class DashboardFilterForm(forms.Form):
    # Choices and check from the sites read once in __init__ (a ModelChoiceField reads them
    # twice more: to check the value, and to list them).
    site = forms.TypedChoiceField(label=_("Site"), required=False, coerce=int, empty_value=None, widget=QuickSelect)
    nationality = forms.ChoiceField(
        label=_("Nationality"), choices=_nationality_choices, required=False, widget=QuickSelect
    )
    date_from = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data: Any = None, *, scope: Sites = None, **kwargs: Any) -> None:
        # The default range shows in the form, so the page says which dates it counts.
        data = data.copy() if data is not None else {}
        date_from, date_to = default_range()
        if not data.get("date_from"):
            data["date_from"] = date_from.isoformat()
        if not data.get("date_to"):
            data["date_to"] = date_to.isoformat()
        super().__init__(data, **kwargs)
        # Every site, by name: the choices, and the rows of the persons-per-site table.
        # A user limited to some sites (cases.scope) chooses among those, and sees only them.
        self.scope = scope
        self.sites = list(limit(Site.objects, scope, "pk").order_by("name"))
        field: Any = self.fields["site"]
        field.choices = [("", _("All sites")), *((site.pk, site.name) for site in self.sites)]

    def clean_site(self) -> Site | None:
        pk = self.cleaned_data.get("site")
        return next((site for site in self.sites if site.pk == pk), None)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to:
            if date_from > date_to:
                raise forms.ValidationError(_("The start date must come before the end date."))
            if (date_to - date_from).days > MAX_DAYS:
                raise forms.ValidationError(_("Choose a range of at most three years."))
        return cleaned

    def filters(self) -> DashboardFilters:
        """The filters to apply; a field left invalid falls back to its default (all, or the last 26 weeks)."""
        self.is_valid()
        cleaned = dict(self.cleaned_data)
        if self.non_field_errors():  # a range refused as a whole
            cleaned.pop("date_from", None)
            cleaned.pop("date_to", None)
        date_from, date_to = default_range()
        return DashboardFilters(
            site=cleaned.get("site"),
            nationality=cleaned.get("nationality") or "",
            date_from=cleaned.get("date_from") or date_from,
            date_to=cleaned.get("date_to") or date_to,
            scope=self.scope,
        )

    def export_query(self) -> dict[str, str]:
        """The filters as GET parameters for the export links: what the page shows is what is exported."""
        filters = self.filters()
        query = {"date_from": filters.date_from.isoformat(), "date_to": filters.date_to.isoformat()}
        if filters.site is not None:
            query["site"] = str(filters.site.pk)
        if filters.nationality:
            query["nationality"] = filters.nationality
        return query
