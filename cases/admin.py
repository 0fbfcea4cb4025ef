from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from cases import workflow
from cases.admin_import import RosterImportAdminMixin
from cases.admin_records import HistoryAdmin, RecordAdmin, SiteScopedAdmin
from cases.models import (
    Case,
    CaseStatus,
    CaseStatusChange,
    Incident,
    IncidentPerson,
    Interview,
    Person,
    Site,
    SpecificNeed,
)
from cases.selectors import PERSON_SITES
from cases.services import EditConflict, case_transition, distinct_persons_renumber, incident_apply_effects
from cases.workflow import TransitionRefused


@admin.register(Site)
class SiteAdmin(HistoryAdmin):
    list_display = ["name", "code", "location", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "code", "location"]
    prepopulated_fields = {"code": ["name"]}


@admin.register(SpecificNeed)
class SpecificNeedAdmin(HistoryAdmin):
    list_display = ["code", "label"]
    search_fields = ["code", "label"]


class VersionedForm(forms.ModelForm):
    """A case's or person's admin form, carrying the version it was opened at: a save made
    by someone else since (on the app's pages, here, by an import) is not overwritten, as
    the app's pages refuse it (cases.services.EditConflict)."""

    seen_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["seen_version"].initial = self.instance.version

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk is not None:
            # Locked until the save commits (the admin saves in one transaction).
            saved = type(self.instance)._default_manager.select_for_update().filter(pk=self.instance.pk)
            if cleaned.get("seen_version") != saved.values_list("version", flat=True).get():
                raise forms.ValidationError(str(EditConflict(self.instance)) + " " + RELOAD)
        return cleaned


RELOAD = _("Your changes were not saved: open the page again to see theirs, then make yours again.")


class PersonForm(VersionedForm):
    """A person's admin form: a person added joins a case only while it takes new members
    (cases.workflow.takes_new_members), as in a roster import."""

    def clean_case(self) -> Case:
        case = self.cleaned_data["case"]
        if self.instance.pk is None and case and not workflow.takes_new_members(case.status, case.status_before_hold):
            raise forms.ValidationError(
                _(
                    "Case %(case)s is %(status)s: it takes no new member (an offer counts its persons, or the case"
                    " has ended)."
                )
                % {"case": case.case_no, "status": case.get_status_display().lower()}
            )
        return case


class VersionedAdmin:
    """Mixed into a ModelAdmin: saves through VersionedForm, each save a new version of the record."""

    form = VersionedForm

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        (name, options), *rest = super().get_fieldsets(request, obj)  # type: ignore[misc]
        return [(name, {**options, "fields": [*options["fields"], "seen_version"]}), *rest]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            obj.version += 1
        super().save_model(request, obj, form, change)  # type: ignore[misc]


class MemberInline(admin.TabularInline):
    model = Person
    fields = readonly_fields = (
        "registration_no",
        "relationship",
        "family_name",
        "given_name",
        "sex",
        "birth_year",
        "residence_status",
    )
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["relationship", "birth_year"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StatusChangeInline(admin.TabularInline):
    model = CaseStatusChange
    fields = readonly_fields = ("changed_at", "from_status", "to_status", "actor", "reason")
    extra = 0
    can_delete = False
    ordering = ["-changed_at", "-pk"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[CaseStatusChange]:
        return super().get_queryset(request).select_related("actor")


class InterviewInline(admin.TabularInline):
    model = Interview
    fields = readonly_fields = ("kind", "scheduled_at", "place", "interviewer", "outcome")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TransitionForm(forms.Form):
    to = forms.ChoiceField(label=_("Move to"), choices=CaseStatus.choices)
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


@admin.action(description=_("Change status of selected cases (through the workflow)"), permissions=["transition"])
def transition_cases(modeladmin: "CaseAdmin", request: HttpRequest, queryset: QuerySet[Case]) -> HttpResponse | None:
    """Ask for the new status and a reason, then move each case through the workflow service."""
    if "apply" in request.POST:
        form = TransitionForm(request.POST)
        if form.is_valid():
            moved, refused = 0, []
            for case in queryset:
                try:
                    case_transition(
                        case, to=form.cleaned_data["to"], actor=request.user, reason=form.cleaned_data["reason"]
                    )
                    moved += 1
                except TransitionRefused as exc:
                    refused.append(f"{case.case_no}: {exc}")
            if moved:
                modeladmin.message_user(
                    request,
                    ngettext("%(n)d case moved.", "%(n)d cases moved.", moved) % {"n": moved},
                    messages.SUCCESS,
                )
            for line in refused:
                modeladmin.message_user(request, line, messages.ERROR)
            return None
    else:
        form = TransitionForm()
    return TemplateResponse(
        request,
        "admin/cases/case/transition.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": _("Change status"),
            "form": form,
            "cases": queryset,
            "opts": modeladmin.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )


@admin.register(Case)
class CaseAdmin(VersionedAdmin, SiteScopedAdmin, HistoryAdmin):
    list_display = [
        "case_no",
        "site",
        "status",
        "size",
        "determination",
        "assigned_officer",
        "status_changed_at",
        "needs_review",
    ]
    list_filter = ["status", "site", "determination", "needs_review"]
    search_fields = ["case_no", "members__registration_no", "members__family_name", "members__given_name"]
    list_select_related = ["site", "assigned_officer"]
    autocomplete_fields = ["site", "assigned_officer"]
    readonly_fields = ["status", "status_before_hold", "status_changed_at", "created_at", "updated_at", "allowed_moves"]
    fields = [
        "case_no",
        "site",
        "status",
        "allowed_moves",
        "status_before_hold",
        "status_changed_at",
        "determination",
        "assigned_officer",
        "needs_review",
        "notes",
        "created_at",
        "updated_at",
    ]
    inlines = [MemberInline, InterviewInline, StatusChangeInline]
    actions = [transition_cases]
    date_hierarchy = "status_changed_at"
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Case]:
        return super().get_queryset(request).annotate(member_count=Count("members"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A case moves to another site by a site transfer (its page's "Move to another
        # site"), which moves its members with it and records their site history.
        return [*self.readonly_fields, *(["site"] if obj is not None else [])]

    @admin.display(description=_("persons"), ordering="member_count")
    def size(self, obj: Case) -> int:
        return obj.member_count  # type: ignore[attr-defined]

    @admin.display(description=_("moves allowed by hand"))
    def allowed_moves(self, obj: Case) -> str:
        targets = workflow.manual_targets(
            obj.status, held_from=obj.status_before_hold, permissions=workflow.ALL_PERMISSIONS
        )
        return ", ".join(str(t.label) for t in targets) or "—"

    def has_transition_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(workflow.TRANSITION_PERMISSION)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Cases are closed through the workflow, never deleted.
        return False


@admin.register(Person)
class PersonAdmin(RosterImportAdminMixin, VersionedAdmin, SiteScopedAdmin, HistoryAdmin):
    site_paths = PERSON_SITES
    list_display = [
        "registration_no",
        "family_name",
        "given_name",
        "native_name",
        "sex",
        "date_of_birth",
        "nationality",
        "case",
        "relationship",
        "site",
        "residence_status",
    ]
    list_filter = ["site", "residence_status", "sex", "relationship"]
    search_fields = ["registration_no", "family_name", "given_name", "native_name", "case__case_no"]
    list_select_related = ["case", "site"]
    form = PersonForm
    autocomplete_fields = ["case", "site"]
    readonly_fields = ["created_at", "updated_at"]
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A person on record moves with their case (a site transfer), and changes case
        # with nobody: a nomination counts its case's persons as they were.
        return [*self.readonly_fields, *(["case", "site"] if obj is not None else [])]

    @admin.display(description=_("date of birth"), ordering="birth_year")
    def date_of_birth(self, obj: Person) -> str:
        return obj.date_of_birth_display

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [
            "registration_no",
            "case",
            "relationship",
            "family_name",
            "given_name",
            "native_name",
            "sex",
            "birth_year",
            "birth_date",
            "nationality",
            "site",
            "residence_status",
            "specific_needs",
            "phone",
            "notes",
            "created_at",
            "updated_at",
        ]
        if not request.user.has_perm("cases.view_specific_needs"):
            fields.remove("specific_needs")
        return fields

    def save_model(self, request: HttpRequest, obj: Person, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "registration_no" in form.changed_data:
            distinct_persons_renumber(form.initial["registration_no"], obj.registration_no)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CaseStatusChange)
class CaseStatusChangeAdmin(SiteScopedAdmin, RecordAdmin):
    site_paths = ("case__site",)
    list_display = ["changed_at", "case", "from_status", "to_status", "actor", "reason"]
    list_filter = ["to_status", "from_status"]
    search_fields = ["case__case_no", "reason", "actor__username"]
    list_select_related = ["case", "actor"]
    date_hierarchy = "changed_at"


@admin.register(Interview)
class InterviewAdmin(SiteScopedAdmin, HistoryAdmin):
    site_paths = ("case__site",)
    list_display = ["case", "kind", "scheduled_at", "place", "interviewer", "outcome"]
    list_filter = ["outcome", "kind", "case__site"]
    search_fields = ["case__case_no", "place"]
    list_select_related = ["case", "interviewer"]
    autocomplete_fields = ["case", "interviewer"]
    date_hierarchy = "scheduled_at"


class IncidentPersonInline(admin.TabularInline):
    model = IncidentPerson
    autocomplete_fields = ["person"]
    extra = 1


@admin.register(Incident)
class IncidentAdmin(SiteScopedAdmin, HistoryAdmin):
    list_display = ["occurred_at", "site", "kind", "summary", "affected_count", "reported_by"]
    list_filter = ["kind", "site"]
    search_fields = ["summary", "description"]
    list_select_related = ["site", "reported_by"]
    autocomplete_fields = ["site"]
    readonly_fields = ["reported_by", "created_at"]
    inlines = [IncidentPersonInline]
    date_hierarchy = "occurred_at"

    def save_model(self, request: HttpRequest, obj: Incident, form: Any, change: bool) -> None:
        if not change:
            obj.reported_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        incident_apply_effects(form.instance)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Incident]:
        return super().get_queryset(request).annotate(affected_total=Count("affected"))

    @admin.display(description=_("persons affected"), ordering="affected_total")
    def affected_count(self, obj: Incident) -> int:
        return obj.affected_total  # type: ignore[attr-defined]
