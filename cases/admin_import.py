"""The admin's roster import screens: upload → check → confirm → import.
Administrators only (cases.import_person).

Each step runs as a background job (cases.import_jobs, run by `manage.py db_worker`),
so a large file never holds a web request; the job's page shows a progress bar, then
the check's counts, errors and probable duplicates, then the import's outcome. The
upload is read into memory and closed at once (Django deletes a temporary upload file
when it is closed); the job keeps the bytes in its row only until they are not needed.
"""

import functools
import gzip
import io
import json
from typing import Any, NoReturn

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.files.uploadhandler import FileUploadHandler
from django.db.models.functions import Length
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from accounts.middleware import AUTO_REFRESH
from cases.admin_records import RecordAdmin
from cases.import_jobs import (
    NOT_STARTED,
    STALLED,
    JobRefused,
    as_pruned,
    job_cancel,
    job_confirm,
    job_mark_different,
    job_start,
    lists_deleted,
    progress_seen_while_writing,
    reports_kept,
)
from cases.importing import (
    COLUMNS,
    REQUIRED_COLUMNS,
    max_bytes,
    max_rows,
    read_content,
    record_attempt,
    size_limit,
    template_csv,
    template_xlsx,
    too_large,
    value_rules,
)
from cases.models import (
    DistinctPersons,
    Person,
    RosterImport,
    RosterImportJob,
    RosterImportJobStatus,
    RosterImportOutcome,
)
from cases.scope import sites_of

IMPORT_PERMISSION = "cases.import_person"
# The stages of cases.importing's progress, as the job page names them.
STAGES = {"reading": gettext_lazy("Reading"), "checking": gettext_lazy("Checking"), "writing": gettext_lazy("Writing")}
# Jobs of the user listed under the upload form.
RECENT_JOBS = 10


LIMITED_TO_SITES = gettext_lazy(
    "A roster import writes and compares persons of every site, and your account is limited to some"
    " sites: an Administrator who works across every site imports rosters."
)


def may_import(user: Any) -> bool:
    """Administrators who work across every site: an import writes the persons of any site
    and shows look-alikes of any site (see cases.scope)."""
    return bool(user.has_perm(IMPORT_PERMISSION)) and sites_of(user) is None


class RosterFileForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Roster file"),
        help_text=gettext_lazy("CSV (UTF-8) or XLSX, one row per person, with a header row."),
    )


class UploadCap(FileUploadHandler):
    """Keeps no more of the uploaded roster file than the import's byte limit: beyond it,
    the rest of the file is read and dropped, never written to a temporary file or held
    in memory, and `too_large` holds its name (the form's other fields are read as
    usual). A file sent under another name than the form's is dropped whole."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = max_bytes()
        self.too_large: str | None = None
        self.dropping = False

    def new_file(self, field_name: str, *args: Any, **kwargs: Any) -> None:
        super().new_file(field_name, *args, **kwargs)
        self.dropping = field_name != "file"

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        # Dropped chunks are handed to no later handler (Django's SkipFile would
        # close the files already received as well).
        if not self.dropping and start + len(raw_data) > self.limit:
            self.too_large = self.file_name or ""
            self.dropping = True
        return None if self.dropping else raw_data

    def file_complete(self, file_size: int) -> None:
        return None


class RosterImportAdminMixin:
    """Adds the import screens and import/template.<csv|xlsx> to a ModelAdmin of Person."""

    admin_site: Any
    opts: Any

    def has_import_permission(self, request: HttpRequest) -> bool:
        return may_import(request.user)

    def _refuse(self, request: HttpRequest) -> NoReturn:
        if request.user.has_perm(IMPORT_PERMISSION):
            raise PermissionDenied(LIMITED_TO_SITES)
        raise PermissionDenied

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_import"
        view = self.admin_site.admin_view
        return [
            path("import/", view(csrf_exempt(self.capped_import_view)), name=name),
            path("import/template.<str:kind>", view(self.import_template_view), name=f"{name}_template"),
            path("import/<int:job_id>/", view(self.import_job_view), name=f"{name}_job"),
            path("import/<int:job_id>/confirm/", view(require_POST(self.import_confirm_view)), name=f"{name}_confirm"),
            path("import/<int:job_id>/cancel/", view(require_POST(self.import_cancel_view)), name=f"{name}_cancel"),
            path(
                "import/<int:job_id>/different/",
                view(require_POST(self.import_different_view)),
                name=f"{name}_different",
            ),
            path("import/<int:job_id>/report.csv", view(self.import_report_view), name=f"{name}_report"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "has_import_permission": self.has_import_permission(request)}
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def import_template_view(self, request: HttpRequest, kind: str) -> HttpResponse:
        if not self.has_import_permission(request):
            self._refuse(request)
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

    def _context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": _("Import roster"),
            "opts": self.opts,
            "columns": COLUMNS,
            "required_columns": REQUIRED_COLUMNS,
            "value_rules": value_rules(),
            "max_rows": max_rows(),
            "max_size": size_limit(),
            "confirm_minutes": settings.ROSTER_IMPORT_CONFIRM_MINUTES,
            "report_days": settings.ROSTER_IMPORT_REPORT_DAYS,
            "stalled_minutes": settings.ROSTER_IMPORT_STALLED_MINUTES,
            "queued_hours": settings.ROSTER_IMPORT_QUEUED_HOURS,
            **extra,
        }

    def _job_url(self, job: RosterImportJob) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_import_job", args=[job.pk])

    def capped_import_view(self, request: HttpRequest) -> HttpResponse:
        """import_view, with the upload capped (UploadCap) before the request's body is
        read: by the CSRF check first, so that is made here, after the cap is in place."""
        cap = UploadCap(request)
        request.upload_handlers.insert(0, cap)
        return csrf_protect(functools.partial(self.import_view, cap=cap))(request)

    def import_view(self, request: HttpRequest, cap: UploadCap) -> HttpResponse:
        """The upload form; a valid upload starts the job that checks the file."""
        if not self.has_import_permission(request):
            self._refuse(request)
        form = RosterFileForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and cap.too_large is not None:
            # What was kept of the file stops at the limit: it is not read.
            refusal = too_large()
            form.errors["file"] = form.error_class([refusal])
            record_attempt(
                actor=request.user,
                filename=cap.too_large,
                dry_run=True,
                outcome=RosterImportOutcome.REFUSED,
                reason=refusal,
            )
        elif request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                content = read_content(upload)
            finally:
                upload.close()
            job = job_start(actor=request.user, filename=upload.name or "", content=content)  # type: ignore[arg-type]
            return HttpResponseRedirect(self._job_url(job))
        recent = RosterImportJob.objects.filter(actor_id=request.user.pk).defer("content", "result", "report")
        jobs = [as_pruned(job) for job in recent.select_related("record")[:RECENT_JOBS]]
        return TemplateResponse(request, "admin/cases/person/import.html", self._context(request, form=form, jobs=jobs))

    def _job(self, request: HttpRequest, job_id: int) -> RosterImportJob:
        """The user's own job (another's answers 404, like one that does not exist)."""
        if not self.has_import_permission(request):
            self._refuse(request)
        jobs = RosterImportJob.objects.defer("content", "report").annotate(report_bytes=Length("report"))
        return get_object_or_404(jobs, pk=job_id, actor_id=request.user.pk)

    def import_job_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        """The job: a progress bar while it runs, then what the check or the import found."""
        job = self._job(request, job_id)
        # A job the worker has yet to give up (stalled, never started, or a check left
        # unconfirmed too long) still holds its file: the page offers to delete it now,
        # should no worker be running to do it.
        file_held = job.is_working or job.status == RosterImportJobStatus.CHECKED
        job = as_pruned(job)
        result = job.result or {}
        context = self._context(
            request,
            job=job,
            stalled=job.failure == STALLED,
            not_started=job.failure == NOT_STARTED,
            file_held=file_held,
            result=result,
            duplicates=_with_links_to_record(result.get("duplicates", [])),
            errors_hidden=max(result.get("error_count", 0) - len(result.get("errors", [])), 0),
            stage_label=STAGES.get(job.stage, job.stage),
            # Its reloads leave the session's idle time running.
            refresh_url=f"{request.path}?{AUTO_REFRESH}=1",
            progress_unseen_while_writing=not progress_seen_while_writing(),
            duplicates_hidden=max(result.get("duplicate_count", 0) - len(result.get("duplicates", [])), 0),
        )
        return TemplateResponse(request, "admin/cases/person/import_job.html", context)

    def import_report_view(self, request: HttpRequest, job_id: int) -> StreamingHttpResponse:
        """Every error and probable duplicate the user's job found, as CSV, while it is kept."""
        if not self.has_import_permission(request):
            self._refuse(request)
        jobs = reports_kept().filter(pk=job_id, actor_id=request.user.pk)
        report = jobs.values_list("report", flat=True).first()
        if not report:  # not the user's job, or nothing (left) to report
            raise Http404
        # Decompressed as it is sent: a large report is never whole in memory.
        unzipped = gzip.GzipFile(fileobj=io.BytesIO(report))
        response = StreamingHttpResponse(iter(functools.partial(unzipped.read, 65_536), b""))
        response["Content-Type"] = "text/csv; charset=utf-8"
        response["Content-Disposition"] = f'attachment; filename="roster-import-{job_id}-report.csv"'
        return response

    def import_confirm_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        job = self._job(request, job_id)
        try:
            job_confirm(job, actor=request.user)  # type: ignore[arg-type]
        except JobRefused as refused:
            messages.error(request, str(refused))
        return HttpResponseRedirect(self._job_url(job))

    def import_different_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        """Mark the probable duplicates chosen on the check's page as different persons,
        and check the file again."""
        job = self._job(request, job_id)
        chosen = [_pair(value) for value in request.POST.getlist("pair")]
        try:
            marked = job_mark_different(job, actor=request.user, chosen=chosen)  # type: ignore[arg-type]
        except JobRefused as refused:
            messages.error(request, str(refused))
        else:
            messages.info(
                request,
                ngettext(
                    "%(n)d pair marked as different persons: the file is checked again without it.",
                    "%(n)d pairs marked as different persons: the file is checked again without them.",
                    marked,
                )
                % {"n": marked},
            )
        return HttpResponseRedirect(self._job_url(job))

    def import_cancel_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        job = self._job(request, job_id)
        try:
            job_cancel(job)
        except JobRefused:
            messages.error(request, _("This job can no longer be cancelled."))
            return HttpResponseRedirect(self._job_url(job))
        messages.info(request, _("Cancelled: nothing was imported, and the file is deleted."))
        return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_import"))


def _with_links_to_record(duplicates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The duplicates shown, each look-alike on record with its person's pk (if they are
    still there) for the page to link to, and the pair's value for its box."""
    on_record = [duplicate["other_registration_no"] for duplicate in duplicates if duplicate["other_line"] is None]
    pks = dict(Person.objects.filter(registration_no__in=on_record).values_list("registration_no", "pk"))
    return [
        {
            **duplicate,
            "other_pk": pks.get(duplicate["other_registration_no"]),
            "pair": json.dumps([duplicate["registration_no"], duplicate["other_registration_no"]]),
        }
        for duplicate in duplicates
    ]


def _pair(value: str) -> tuple[str, str]:
    """A pair's box value (_with_links_to_record) as its registration numbers; ("", "")
    if it is none (job_mark_different then refuses it, as a pair it does not list)."""
    try:
        one, other = json.loads(value)
    except (ValueError, TypeError):
        return ("", "")
    return (one, other) if isinstance(one, str) and isinstance(other, str) else ("", "")


# The record's list columns (its page shows them too, with a few more).
RECORD_COLUMNS = (
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
)


@admin.register(RosterImport)
class RosterImportAdmin(RecordAdmin):
    """The record of every import: read by those who may import, written only by the service."""

    list_display = RECORD_COLUMNS
    list_filter = ["outcome", "dry_run"]
    search_fields = ["filename", "actor__username"]
    list_select_related = ["actor"]
    date_hierarchy = "created_at"
    fields = [*RECORD_COLUMNS[:3], "dry_run", *RECORD_COLUMNS[3:], "error_lines", "duration_ms"]
    readonly_fields = ["error_lines"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Its records name rows and look-alikes of any site.
        return may_import(request.user)

    @admin.display(description=gettext_lazy("first errors"))
    def error_lines(self, record: RosterImport) -> str:
        """The first errors (or why a job failed), one a line; past their days
        (cases.import_jobs), that they are gone."""
        if not record.error_count and not record.errors:
            return self.get_empty_value_display()
        if lists_deleted(record.created_at):
            if not record.error_count:  # a failure's reason goes with the lists
                return self.get_empty_value_display()
            days = settings.ROSTER_IMPORT_REPORT_DAYS
            if record.dry_run:
                text = ngettext(
                    "Deleted %(days)d day after the check; the count is kept.",
                    "Deleted %(days)d days after the check; the count is kept.",
                    days,
                )
            else:
                text = ngettext(
                    "Deleted %(days)d day after the import; the count is kept.",
                    "Deleted %(days)d days after the import; the count is kept.",
                    days,
                )
            return text % {"days": days}
        return format_html_join("", "{}<br>", ((line,) for line in record.errors))


@admin.register(DistinctPersons)
class DistinctPersonsAdmin(RecordAdmin):
    """The pairs of look-alikes marked as different persons on an import's check page:
    read by those who may import; a pair marked by mistake is deleted here, and the
    import lists it again."""

    list_display = fields = ("first", "second", "decided_by", "decided_at")
    search_fields = ["first", "second", "decided_by__username"]
    list_select_related = ["decided_by"]
    date_hierarchy = "decided_at"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_import(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_import(request.user)
