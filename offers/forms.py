"""Forms of the offers pages. They validate input; the services in offers/services.py write."""

from collections.abc import Iterable
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from cases.models import Case
from cases.scope import Sites, limit
from offers.models import DeparturePerson, Nomination, Offer
from offers.services import CHECKLIST_FIELDS


class OfferForm(forms.ModelForm):
    """An offer's own fields. Saved through offer_create / offer_update, never by the form."""

    class Meta:
        model = Offer
        fields = [
            "reference",
            "country",
            "places",
            "conditions",
            "max_case_size",
            "nationalities",
            "excluded_needs",
            "deadline",
            "status",
        ]
        widgets = {
            "deadline": forms.DateInput(attrs={"type": "date"}),
            "conditions": forms.Textarea(attrs={"rows": 4}),
            "excluded_needs": forms.CheckboxSelectMultiple,
        }

    def changes(self) -> dict[str, Any]:
        """The fields the user changed, with their new values."""
        return {name: self.cleaned_data[name] for name in self.changed_data}


class SearchForm(forms.Form):
    q = forms.CharField(label=_("Case number"), required=False, max_length=40)


class NominateForm(forms.Form):
    # Any case: one that is no longer eligible is refused by offer_nominate with its reason,
    # rather than by the form with a bare "not a valid choice".
    cases = forms.ModelMultipleChoiceField(
        label=_("Cases"),
        queryset=Case.objects.order_by("case_no"),
        error_messages={"required": _("Choose at least one case to nominate.")},
    )

    def __init__(self, *args: Any, sites: Sites = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A case outside the user's sites is not a choice (cases.scope).
        field = self.fields["cases"]
        field.queryset = limit(field.queryset, sites)  # type: ignore[attr-defined]


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        label=_("Country's decision"),
        choices=[("accepted", _("Accepted")), ("rejected", _("Rejected"))],
    )
    decided_on = forms.DateField(label=_("Decision date"), required=False)
    reason = forms.CharField(label=_("Reason"), required=False, max_length=2000)

    def clean_decided_on(self) -> Any:
        day = self.cleaned_data["decided_on"]
        if day and day > timezone.localdate():
            raise forms.ValidationError(_("The decision date cannot be in the future."))
        return day


class ConsentForm(forms.Form):
    answer = forms.ChoiceField(
        label=_("Case's answer"),
        choices=[("consents", _("Consents")), ("declines", _("Declines"))],
    )
    reason = forms.CharField(label=_("Reason"), required=False, max_length=2000)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=2000,
        error_messages={"required": _("Give a reason.")},
    )


class NominationChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return ngettext("%(case)s — %(persons)d person", "%(case)s — %(persons)d persons", obj.persons) % {
            "case": obj.case,
            "persons": obj.persons,
        }


class DeparturePlanForm(forms.Form):
    planned_date = forms.DateField(label=_("Planned date"), widget=forms.DateInput(attrs={"type": "date"}))
    route = forms.CharField(label=_("Route or flight"), max_length=120, required=False)
    nominations = NominationChoiceField(
        label=_("Accepted cases"),
        queryset=Nomination.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one accepted case.")},
    )

    def __init__(self, *args: Any, nominations: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["nominations"].queryset = nominations  # type: ignore[attr-defined]


class ChecklistForm(forms.Form):
    """One field per checklist item, each holding the manifest entries ticked for it."""

    def __init__(self, *args: Any, entries: Iterable[DeparturePerson], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(entry.pk, str(entry.pk)) for entry in entries]
        for name in CHECKLIST_FIELDS:
            self.fields[name] = forms.TypedMultipleChoiceField(
                label=capfirst(DeparturePerson._meta.get_field(name).verbose_name),  # type: ignore[union-attr]
                choices=choices,
                coerce=int,
                required=False,
            )

    def checked(self) -> dict[str, set[int]]:
        return {name: set(self.cleaned_data[name]) for name in CHECKLIST_FIELDS}
