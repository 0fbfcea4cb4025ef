"""The admin's roster import screen: upload → preview (counts, errors, probable
duplicates) → confirm. Administrators only (cases.import_person).

The uploaded file is read into memory and its upload closed at once (Django deletes
a temporary upload file when it is closed), so nothing stays on disk. Nothing is kept
between preview and confirmation either: the user chooses the file again to import
it, and its SHA-256 must match the file that was checked.
"""

import hashlib
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cases.admin_records import RecordAdmin
from cases.importing import (
    COLUMNS,
    REQUIRED_COLUMNS,
    ImportResult,
    max_bytes,
    max_rows,
    read_content,
    roster_import,
    template_csv,
    template_xlsx,
)
from cases.models import RosterImport

IMPORT_PERMISSION = "cases.import_person"
# The preview lists this many errors and duplicates; the command line prints them all.
SHOWN = 500


class RosterFileForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Roster file"),
        help_text=gettext_lazy("CSV (UTF-8) or XLSX, one row per person, with a header row."),
    )
    checked_sha256 = forms.CharField(required=False, widget=forms.HiddenInput)


class RosterImportAdminMixin:
    """Adds import/ and import/template.<csv|xlsx> to a ModelAdmin of Person."""

    admin_site: Any
    opts: Any

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(IMPORT_PERMISSION)

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_import"
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name=name),
            path(
                "import/template.<str:kind>",
                self.admin_site.admin_view(self.import_template_view),
                name=f"{name}_template",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "has_import_permission": self.has_import_permission(request)}
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def import_template_view(self, request: HttpRequest, kind: str) -> HttpResponse:
        if not self.has_import_permission(request):
            raise PermissionDenied
        if kind == "csv":
            response = HttpResponse(template_csv(), content_type="text/csv; charset=utf-8")
        elif kind == "xlsx":
            response = HttpResponse(
                template_xlsx(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            )
        else:
            raise Http404
        response["Content-Disposition"] = f'attachment; filename="roster-template.{kind}"'
        return response

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_import_permission(request):
            raise PermissionDenied
        result: ImportResult | None = None
        checked_sha256 = ""
        form = RosterFileForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                content = read_content(upload)
            finally:
                upload.close()
            digest = hashlib.sha256(content).hexdigest()
            confirmed = "confirm" in request.POST
            if confirmed and digest != form.cleaned_data["checked_sha256"]:
                messages.warning(request, _("This is not the file that was checked. It has been checked now instead."))
                confirmed = False
            result = roster_import(content, actor=request.user, filename=upload.name or "", dry_run=not confirmed)
            if confirmed and result.ok:
                messages.success(request, result.summary())
                return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
            if result.ok:
                checked_sha256 = digest
            form = RosterFileForm(initial={"checked_sha256": checked_sha256})
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import roster"),
            "opts": self.opts,
            "form": form,
            "result": result,
            "errors": result.errors[:SHOWN] if result else [],
            "errors_hidden": max(len(result.errors) - SHOWN, 0) if result else 0,
            "duplicates": result.duplicates[:SHOWN] if result else [],
            "duplicates_hidden": max(len(result.duplicates) - SHOWN, 0) if result else 0,
            "checked_sha256": checked_sha256,
            "columns": COLUMNS,
            "required_columns": REQUIRED_COLUMNS,
            "max_rows": max_rows(),
            "max_megabytes": max_bytes() // (1024 * 1024),
        }
        return TemplateResponse(request, "admin/cases/person/import.html", context)


@admin.register(RosterImport)
class RosterImportAdmin(RecordAdmin):
    """The record of every import: read by those who may import, written only by the service."""

    list_display = [
        "created_at",
        "actor",
        "filename",
        "outcome",
        "rows",
        "new",
        "updated",
        "unchanged",
        "cases_new",
        "error_count",
        "duplicate_count",
    ]
    list_filter = ["outcome", "dry_run"]
    search_fields = ["filename", "actor__username"]
    list_select_related = ["actor"]
    date_hierarchy = "created_at"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(IMPORT_PERMISSION)
