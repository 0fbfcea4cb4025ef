"""Case documents: upload from the case page, download through an access check, delete with a reason.

The files live in the private storage (cases.storage); no static or media URL serves
them, only document_download below.
"""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from cases import scope
from cases.forms import DocumentDeleteForm, DocumentUploadForm
from cases.models import Case, CaseDocument
from cases.selectors import document_for_user
from cases.services import DocumentRefused, case_document_add, case_document_delete


def _documents_of(case: Case) -> str:
    return f"{case.get_absolute_url()}#documents-title"


@require_POST
@permission_required("cases.add_casedocument", raise_exception=True)
def document_upload(request: HttpRequest, pk: int) -> HttpResponse:
    case = scope.get_or_404(request, Case.objects, pk=pk)
    form = DocumentUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        problems = " ".join(str(error) for errors in form.errors.values() for error in errors)
        messages.error(request, _("The document was not attached: %(reason)s") % {"reason": problems})
        return redirect(_documents_of(case))
    try:
        document = case_document_add(
            case, actor=request.user, kind=form.cleaned_data["kind"], upload=form.cleaned_data["file"]
        )
    except DocumentRefused as exc:
        messages.error(request, _("The document was not attached: %(reason)s") % {"reason": exc})
    else:
        messages.success(request, _("%(name)s is attached to the case.") % {"name": document.original_name})
    return redirect(_documents_of(case))


@require_safe
@permission_required("cases.view_case", raise_exception=True)
def document_download(request: HttpRequest, pk: int) -> FileResponse:
    try:
        document = document_for_user(pk, user=request.user)
    except CaseDocument.DoesNotExist:
        raise scope.refuse(request, CaseDocument.objects, pk=pk, deleted_at__isnull=True) from None
    try:
        handle = document.file.storage.open(str(document.file.name), "rb")
    except FileNotFoundError as exc:
        raise Http404(_("The file of this document is missing.")) from exc
    response = FileResponse(
        handle, as_attachment=True, filename=document.original_name, content_type=document.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    # Identity and medical papers: no copy in any cache, and nothing runs should a
    # browser render the file instead of saving it.
    response["Cache-Control"] = "no-store"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@permission_required("cases.delete_casedocument", raise_exception=True)
@require_POST
def document_delete(request: HttpRequest, pk: int) -> HttpResponse:
    document = scope.get_or_404(request, CaseDocument.objects.select_related("case"), "case__site", pk=pk)
    form = DocumentDeleteForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give a reason for deleting the document."))
        return redirect(_documents_of(document.case))
    try:
        case_document_delete(document, actor=request.user, reason=form.cleaned_data["reason"])
    except DocumentRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("%(name)s was deleted.") % {"name": document.original_name})
    return redirect(_documents_of(document.case))
