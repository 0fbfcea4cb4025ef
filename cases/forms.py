"""Forms of the staff pages. They validate input; the services in cases/services.py write."""

import copy
import datetime
import re
from dataclasses import dataclass
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet
from django.http import QueryDict
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cases.choices import ModelChoiceField
from cases.models import (
    Case,
    CaseStatus,
    DocumentKind,
    IncidentEffect,
    IncidentKind,
    InterviewKind,
    InterviewOutcome,
    Person,
    Site,
    SpecificNeed,
)
from cases.scope import Sites, limit
from cases.selectors import persons_by_registration_no
from cases.services import CASE_EDITABLE_FIELDS, PERSON_EDITABLE_FIELDS


def _team() -> QuerySet[Any]:
    """Users who can be given work: active and in a role."""
    return get_user_model().objects.filter(is_active=True, groups__isnull=False).distinct().order_by("username")


def _user_label(user: Any) -> str:
    return user.get_full_name() or user.get_username()


class UserChoiceField(ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return _user_label(obj)


class TransitionForm(forms.Form):
    # The status the page showed: a case moved by someone else since is not moved again blindly.
    seen = forms.ChoiceField(choices=CaseStatus.choices, widget=forms.HiddenInput)
    to = forms.ChoiceField(label=_("Move to"), choices=CaseStatus.choices)
    reason = forms.CharField(
        label=_("Reason"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": _("Give a reason for the change.")},
    )


class InterviewScheduleForm(forms.Form):
    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    time = forms.TimeField(label=_("Time"), widget=forms.TimeInput(attrs={"type": "time"}))
    place = forms.CharField(label=_("Place"), max_length=120)
    interviewer = UserChoiceField(
        label=_("Interviewer"),
        queryset=get_user_model().objects.none(),
        required=False,
        empty_label=_("Not decided yet"),
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=InterviewKind.choices, initial=InterviewKind.PROTECTION)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["interviewer"].queryset = _team()  # type: ignore[attr-defined]

    def scheduled_at(self) -> datetime.datetime:
        """The date and time, in the site's time zone."""
        moment = datetime.datetime.combine(self.cleaned_data["date"], self.cleaned_data["time"])
        return timezone.make_aware(moment)


class InterviewOutcomeForm(forms.Form):
    # No outcome chosen beforehand: a stray click records nothing.
    outcome = forms.ChoiceField(
        label=_("Outcome"),
        choices=[
            ("", _("— choose —")),
            *((value, label) for value, label in InterviewOutcome.choices if value != InterviewOutcome.PENDING),
        ],
        error_messages={"required": _("Choose an outcome.")},
    )
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 2}))


@dataclass(frozen=True)
class ConflictRow:
    label: str
    yours: Any
    saved: Any

    @property
    def differs(self) -> bool:
        return self.yours != self.saved


def _shown(instance: Model, name: str, value: Any) -> Any:
    """A field's value as a person reads it: labels for choices, names for users."""
    field = instance._meta.get_field(name)
    if value in (None, ""):
        return ""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if field.many_to_many:
        chosen = value.all() if hasattr(value, "all") else value
        return ", ".join(sorted(str(item) for item in chosen))
    if getattr(field, "choices", None):
        return dict(field.flatchoices).get(value, value)  # type: ignore[union-attr]
    if field.is_relation:
        return _user_label(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


class VersionedForm(forms.ModelForm):
    """An edit form that carries the version of the record it was filled from.

    Its fields are saved only through cases.services (case_update, person_update):
    the form never saves itself.
    """

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    # Keyword arguments of the form's own (kept for rebased).
    options: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = {}
        if not self.is_bound:
            self.initial["version"] = self.instance.version

    def changes(self) -> dict[str, Any]:
        """The fields the user changed from the saved values, with their new values."""
        return {name: self.cleaned_data[name] for name in self.changed_data if name != "version"}

    def conflict_rows(self, current: Model) -> list[ConflictRow]:
        """Each field with what this user typed next to what is saved now."""
        return [
            ConflictRow(
                label=str(self.fields[name].label),
                yours=_shown(current, name, self.cleaned_data.get(name)),
                saved=_shown(current, name, getattr(current, name)),
            )
            for name in self.fields
            if name != "version"
        ]

    def rebased(self, current: Model) -> "VersionedForm":
        """The user's input, now based on the saved version: saving it again is a choice made knowingly."""
        data = cast(QueryDict, self.data).copy()
        data["version"] = str(current.version)  # type: ignore[attr-defined]
        return type(self)(data, instance=copy.copy(current), **self.options)


class CaseEditForm(VersionedForm):
    assigned_officer = UserChoiceField(
        label=_("Assigned officer"), queryset=get_user_model().objects.none(), required=False, empty_label=_("Nobody")
    )

    class Meta:
        model = Case
        fields = list(CASE_EDITABLE_FIELDS)
        widgets = {"notes": forms.Textarea(attrs={"rows": 5})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assigned_officer"].queryset = _team()  # type: ignore[attr-defined]


class PersonEditForm(VersionedForm):
    class Meta:
        model = Person
        fields = list(PERSON_EDITABLE_FIELDS)
        widgets = {
            "birth_date": forms.DateInput(attrs={"type": "date"}),
            "notes": forms.Textarea(attrs={"rows": 4}),
            "native_name": forms.TextInput(attrs={"dir": "auto"}),
        }
        help_texts = {
            "birth_year": _("Taken from the date of birth when there is one."),
            "birth_date": _("Leave empty when only the year of birth is known."),
        }

    def __init__(self, *args: Any, needs: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = {"needs": needs}
        # A date of birth gives its year: the user does not keep the two in step.
        self.fields["birth_year"].required = False
        if needs:
            # Only for whoever may see them (cases.view_specific_needs); saved by person_update.
            self.fields["specific_needs"] = forms.ModelMultipleChoiceField(
                label=_("Specific needs"),
                queryset=SpecificNeed.objects.order_by("label"),
                required=False,
                widget=forms.CheckboxSelectMultiple,
            )
            self.initial["specific_needs"] = [need.pk for need in self.instance.specific_needs.all()]

    def clean_birth_year(self) -> int | None:
        year = self.cleaned_data["birth_year"]
        if year is not None and not 1900 <= year <= timezone.localdate().year:
            raise forms.ValidationError(_("Enter a year between 1900 and this year."))
        return year

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if cleaned is None:
            return cleaned
        born = cleaned.get("birth_date")
        if born and ("birth_year" not in self.changed_data or cleaned.get("birth_year") is None):
            # A date changed (or given alone) brings its year; a year changed too must agree.
            cleaned["birth_year"] = born.year
            if "birth_year" in self.errors:
                del self.errors["birth_year"]
        elif not born and cleaned.get("birth_year") is None and "birth_year" not in self.errors:
            self.add_error("birth_year", _("Enter the year of birth, or the date."))
        return cleaned

    def changes(self) -> dict[str, Any]:
        changes = super().changes()
        if "specific_needs" in changes:
            changes["specific_needs"] = sorted(need.pk for need in changes["specific_needs"])
        # A date changed alone: person_update gives the person its year.
        return changes


def _date_of_move() -> forms.DateField:
    return forms.DateField(
        label=_("Date of the move"),
        initial=timezone.localdate,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("The day the persons moved; today or earlier."),
    )


def _transfer_reason() -> forms.CharField:
    return forms.CharField(
        label=_("Reason"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": _("Give a reason for the transfer.")},
    )


class SiteTransferForm(forms.Form):
    """Where, when and why one case moves (cases.services.site_transfer decides)."""

    to_site = ModelChoiceField(label=_("Move to site"), queryset=Site.objects.none())
    date = _date_of_move()
    reason = _transfer_reason()

    def __init__(self, *args: Any, case: Case, sites: Sites = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the sites the case can move to, among the user's own; the service refuses
        # a move to the same site anyway.
        choices = limit(Site.objects.filter(is_active=True), sites, "pk").exclude(pk=case.site_id)
        self.fields["to_site"].queryset = choices  # type: ignore[attr-defined]
        self.fields["date"].widget.attrs["max"] = timezone.localdate().isoformat()


class BulkSiteTransferForm(forms.Form):
    """A whole site's cases, or some of them, moving to another site."""

    from_site = ModelChoiceField(label=_("From site"), queryset=Site.objects.all())
    to_site = ModelChoiceField(label=_("To site"), queryset=Site.objects.filter(is_active=True))
    date = _date_of_move()
    reason = _transfer_reason()
    statuses = forms.MultipleChoiceField(
        label=_("Only cases in these statuses"),
        choices=CaseStatus.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Leave all unticked to move every case of the site with someone present."),
    )
    # The ids of cases a case list showed ("1,2,3"): only those of them are moved.
    cases = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, sites: Sites = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A user limited to some sites moves persons only between them.
        for name in ("from_site", "to_site"):
            field = self.fields[name]
            field.queryset = limit(field.queryset, sites, "pk")  # type: ignore[attr-defined]
        self.fields["date"].widget.attrs["max"] = timezone.localdate().isoformat()

    def clean_cases(self) -> list[int] | None:
        value = self.cleaned_data["cases"].strip()
        if not value:
            return None
        try:
            return sorted({int(part) for part in value.split(",") if part.strip()})
        except ValueError:
            raise forms.ValidationError(_("The list of cases is not valid; start again from the case list.")) from None

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        # Checked again by the service; said here already so that no confirmation
        # page offers a transfer that cannot be made.
        if cleaned and cleaned.get("from_site") and cleaned.get("from_site") == cleaned.get("to_site"):
            self.add_error("to_site", _("Choose a site other than the one the cases are at."))
        if cleaned and cleaned.get("date") and cleaned["date"] > timezone.localdate():
            self.add_error("date", _("A transfer cannot be dated in the future."))
        return cleaned


class DocumentUploadForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind of document"), choices=DocumentKind.choices)
    file = forms.FileField(
        label=_("File"),
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = _("PDF, JPEG or PNG, at most %(limit)s.") % {
            "limit": filesizeformat(settings.DOCUMENT_MAX_BYTES)
        }


class DocumentDeleteForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for deleting"),
        max_length=2000,
        error_messages={"required": _("Give a reason for deleting the document.")},
    )


class IncidentForm(forms.Form):
    """An incident and the persons it affected, one registration number per line.

    Valid only when every number is a known person: nothing is recorded otherwise.
    """

    site = ModelChoiceField(label=_("Site"), queryset=Site.objects.none())
    kind = forms.ChoiceField(label=_("Kind"), choices=IncidentKind.choices)
    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    time = forms.TimeField(label=_("Time"), widget=forms.TimeInput(attrs={"type": "time"}))
    summary = forms.CharField(label=_("Summary"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 4, "dir": "auto"})
    )
    persons = forms.CharField(
        label=_("Persons affected"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono"}),
        help_text=_(
            "One person per line: the registration number, then what happened to them: "
            "affected, injured, killed or missing (affected when left out). "
            "For example: RLC01-0000123 injured"
        ),
    )
    confirm = forms.BooleanField(
        label=_("I have checked the persons marked killed or missing."),
        required=False,
        help_text=_("They will be recorded as deceased or missing, and their cases flagged for review."),
    )

    def __init__(self, *args: Any, sites: Sites = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sites = sites
        self.fields["site"].queryset = limit(Site.objects.filter(is_active=True), sites, "pk")  # type: ignore[attr-defined]
        self._affected: list[tuple[Person, str]] = []
        self._line_errors: list[tuple[int, str]] = []

    def clean_persons(self) -> list[tuple[int, str, str]]:
        """(line, registration number, effect) for each line that is not empty. Errors
        are kept by line for clean(), which adds unknown numbers: all are said at once."""
        effects = {value.casefold(): value for value in IncidentEffect.values}
        effects |= {str(label).casefold(): value for value, label in IncidentEffect.choices}
        entries: list[tuple[int, str, str]] = []
        seen: dict[str, int] = {}
        errors = self._line_errors
        for line, text in enumerate(self.cleaned_data["persons"].splitlines(), start=1):
            parts = [part for part in re.split(r"[\s,;]+", text.strip()) if part]
            if not parts:
                continue
            number, words = parts[0], parts[1:]
            effect = effects.get(" ".join(words).casefold()) if words else IncidentEffect.AFFECTED
            if effect is None:
                errors.append(
                    (
                        line,
                        _("Line %(line)d: “%(effect)s” is not an effect; use affected, injured, killed or missing.")
                        % {"line": line, "effect": " ".join(words)},
                    )
                )
            if number.upper() in seen:
                errors.append(
                    (
                        line,
                        _("Line %(line)d: %(number)s is already on line %(first)d.")
                        % {"line": line, "number": number, "first": seen[number.upper()]},
                    )
                )
            seen.setdefault(number.upper(), line)
            entries.append((line, number, effect or ""))
        return entries

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("date") and cleaned.get("time") and self.occurred_at() > timezone.now():
            # The date or the time: the moment as a whole is wrong.
            self.add_error(None, _("An incident cannot be recorded before it happens: check its date and time."))
        entries = cleaned.get("persons") or []
        numbers = [number for _line, number, _effect in entries]
        # A person outside the user's sites is unknown to them, as on every other page.
        found = persons_by_registration_no(numbers + [number.upper() for number in numbers], sites=self.sites)
        errors = self._line_errors
        for line, number, effect in entries:
            person = found.get(number) or found.get(number.upper())
            if person is None:
                errors.append(
                    (
                        line,
                        _("Line %(line)d: no person has the registration number %(number)s.")
                        % {
                            "line": line,
                            "number": number,
                        },
                    )
                )
            else:
                self._affected.append((person, effect))
        if errors:
            # Every line's problems at once, in line order.
            self.add_error("persons", [message for _line, message in sorted(errors, key=lambda error: error[0])])
        grave = {IncidentEffect.KILLED, IncidentEffect.MISSING}
        if any(effect in grave for _person, effect in self._affected) and not cleaned.get("confirm"):
            self.add_error("confirm", _("Some persons are marked killed or missing: check them, then tick this box."))
        return cleaned

    def occurred_at(self) -> datetime.datetime:
        """The date and time, in the site's time zone."""
        return timezone.make_aware(datetime.datetime.combine(self.cleaned_data["date"], self.cleaned_data["time"]))

    def affected(self) -> list[tuple[Person, str]]:
        """The persons and what happened to each, once the form is valid."""
        return self._affected
