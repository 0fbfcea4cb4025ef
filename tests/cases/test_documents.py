from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.models import CaseDocument, DocumentKind
from cases.services import DocumentRefused, case_document_add, case_document_delete
from tests.factories import CaseFactory, UserFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
HTML = b"<html><script>alert(1)</script></html>"


def _files():
    """Every file in the private storage now."""
    root = Path(settings.PRIVATE_MEDIA_ROOT)
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def _upload(client, case, name="passport.pdf", content=PDF, kind=DocumentKind.IDENTITY):
    data = {"kind": kind, "file": SimpleUploadedFile(name, content)}
    return client.post(reverse("cases:document_upload", args=[case.pk]), data, follow=True)


def _document(case, actor, name="passport.pdf", content=PDF, kind=DocumentKind.IDENTITY):
    return case_document_add(case, actor=actor, kind=kind, upload=SimpleUploadedFile(name, content))


def _download(client, document):
    return client.get(reverse("cases:document_download", args=[document.pk]))


def _nothing_stored():
    assert not CaseDocument.objects.exists()
    assert _files() == []


# Uploading


@pytest.mark.parametrize("role", ["Staff", "Supervisor", "Administrator"])
def test_each_role_attaches_a_document_from_the_case_page(client_for, role):
    case = CaseFactory(size=1)
    response = _upload(client_for(role), case)
    assert response.redirect_chain[-1][0] == f"{case.get_absolute_url()}#documents-title"
    assert "passport.pdf is attached to the case." in response.text
    document = CaseDocument.objects.get()
    assert (document.case, document.kind, document.original_name) == (case, DocumentKind.IDENTITY, "passport.pdf")
    assert (document.size, document.content_type) == (len(PDF), "application/pdf")
    assert document.uploaded_by.username == f"{role.lower()}-test"
    assert reverse("cases:document_download", args=[document.pk]) in response.text


def test_the_file_is_stored_privately_under_a_name_the_user_did_not_choose(staff):
    document = _document(CaseFactory(size=1), staff, name="../../etc/passport.pdf")
    [stored] = _files()
    assert stored.read_bytes() == PDF
    assert stored.is_relative_to(Path(settings.PRIVATE_MEDIA_ROOT))
    assert "passport" not in stored.name
    assert stored.suffix == ".pdf"
    assert document.original_name == "passport.pdf"
    assert stored.stat().st_mode & 0o077 == 0  # readable by the server's user only


@pytest.mark.parametrize(
    ("name", "content", "content_type"),
    [("scan.PNG", PNG, "image/png"), ("photo.jpeg", JPEG, "image/jpeg"), ("photo.jpg", JPEG, "image/jpeg")],
)
def test_images_are_accepted_with_the_content_type_their_bytes_show(staff, name, content, content_type):
    document = _document(CaseFactory(size=1), staff, name=name, content=content)
    assert document.content_type == content_type


def test_an_anonymous_visitor_cannot_upload(client):
    case = CaseFactory(size=1)
    response = client.post(reverse("cases:document_upload", args=[case.pk]), {"kind": "other"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    _nothing_stored()


def test_a_user_without_a_role_cannot_upload(client, nobody):
    client.force_login(nobody)
    response = _upload(client, CaseFactory(size=1))
    assert response.status_code == 403
    _nothing_stored()


def test_uploading_is_a_post(client_for):
    case = CaseFactory(size=1)
    assert client_for("Staff").get(reverse("cases:document_upload", args=[case.pk])).status_code == 405


def test_a_file_over_the_size_limit_is_refused(client_for, settings):
    settings.DOCUMENT_MAX_BYTES = 50
    response = _upload(client_for("Staff"), CaseFactory(size=1), content=PDF + b"x" * 100)
    assert "The document was not attached: The file is" in response.text
    assert "a document may be at most 50" in response.text
    _nothing_stored()


def test_the_default_size_limit_is_ten_megabytes():
    assert settings.DOCUMENT_MAX_BYTES == 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("page.html", HTML, "Only PDF, JPEG and PNG files can be attached."),
        ("setup.exe", b"MZ\x90\x00", "Only PDF, JPEG and PNG files can be attached."),
        ("no-extension", PDF, "Only PDF, JPEG and PNG files can be attached."),
        ("page.pdf", HTML, "The file&#x27;s content is not PDF, whatever its name says."),
        ("scan.pdf", PNG, "The file&#x27;s content is not PDF, whatever its name says."),
        ("photo.png", JPEG, "The file&#x27;s content is not PNG, whatever its name says."),
        ("photo.jpg", PDF, "The file&#x27;s content is not JPG, whatever its name says."),
        ("empty.pdf", b"", "file is empty."),
    ],
)
def test_a_file_of_the_wrong_type_is_refused_whatever_its_name(client_for, name, content, message):
    response = _upload(client_for("Staff"), CaseFactory(size=1), name=name, content=content)
    assert message in response.text
    _nothing_stored()


def test_an_upload_without_a_file_or_a_kind_is_refused(client_for):
    case = CaseFactory(size=1)
    response = client_for("Staff").post(reverse("cases:document_upload", args=[case.pk]), {}, follow=True)
    assert "The document was not attached" in response.text
    _nothing_stored()


def test_the_service_refuses_an_unknown_kind_an_empty_file_and_users_without_the_permission(staff, nobody):
    case = CaseFactory(size=1)
    with pytest.raises(DocumentRefused, match="Choose what kind of document this is."):
        _document(case, staff, kind="passport")
    with pytest.raises(DocumentRefused, match="The file is empty."):
        _document(case, staff, content=b"")
    with pytest.raises(PermissionDenied):
        _document(case, nobody)
    _nothing_stored()


def test_the_upload_writes_a_history_row(staff):
    document = _document(CaseFactory(size=1), staff)
    record = document.history.get()
    assert (record.history_type, record.history_user) == ("+", staff)


# Downloading


@pytest.mark.parametrize("role", ["Staff", "Supervisor", "Administrator"])
def test_each_role_downloads_the_file_as_an_attachment_never_cached_or_sniffed(client_for, staff, role):
    document = _document(CaseFactory(size=1), staff, name="Passport Hosseini.pdf")
    response = _download(client_for(role), document)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="Passport Hosseini.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"].split(", ")
    assert "sandbox" in response["Content-Security-Policy"]


def test_a_name_in_another_script_survives_the_download(client_for, staff):
    document = _document(CaseFactory(size=1), staff, name="گذرنامه.pdf")
    response = _download(client_for("Staff"), document)
    assert response["Content-Disposition"].startswith("attachment; filename*=utf-8''")


def test_an_anonymous_visitor_cannot_download(client, staff):
    document = _document(CaseFactory(size=1), staff)
    response = _download(client, document)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_user_who_may_not_view_cases_cannot_download(client, staff, nobody):
    document = _document(CaseFactory(size=1), staff)
    client.force_login(nobody)
    assert _download(client, document).status_code == 403


def test_a_medical_report_needs_the_permission_to_see_specific_needs(client, staff):
    case = CaseFactory(size=1)
    report = _document(case, staff, name="report.pdf", kind=DocumentKind.MEDICAL)
    identity = _document(case, staff, name="passport.pdf")
    reader = UserFactory(username="reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_case"))
    client.force_login(reader)
    assert _download(client, report).status_code == 403
    assert _download(client, identity).status_code == 200
    page = client.get(case.get_absolute_url()).text
    assert "passport.pdf" in page
    assert "report.pdf" not in page


def test_an_unknown_document_is_not_found(client_for):
    assert client_for("Staff").get(reverse("cases:document_download", args=[999999])).status_code == 404


def test_a_document_whose_file_is_missing_is_not_found(client_for, staff):
    document = _document(CaseFactory(size=1), staff)
    for path in _files():
        path.unlink()
    assert _download(client_for("Staff"), document).status_code == 404


def test_the_file_is_not_reachable_by_any_static_or_media_url(client_for, staff):
    document = _document(CaseFactory(size=1), staff)
    name = document.file.name
    client = client_for("Administrator")
    root = Path(settings.PRIVATE_MEDIA_ROOT)
    for url in (
        f"/{name}",
        f"/media/{name}",
        f"/{settings.STATIC_URL}{name}",
        f"/{settings.STATIC_URL}documents/{name}",
        f"/documents/{name}",
        f"/var/documents/{name}",
    ):
        assert client.get(url).status_code == 404, url
    with pytest.raises(ValueError, match="no URL"):
        document.file.url  # noqa: B018
    assert finders.find(name) is None
    served = [Path(settings.STATIC_ROOT), *map(Path, settings.STATICFILES_DIRS)]
    if settings.MEDIA_ROOT:
        served.append(Path(settings.MEDIA_ROOT))
    for folder in served:
        assert not root.resolve().is_relative_to(folder.resolve())


def test_the_default_location_is_outside_every_served_folder():
    default = settings.BASE_DIR / "var" / "documents"
    for folder in [Path(settings.STATIC_ROOT), *map(Path, settings.STATICFILES_DIRS)]:
        assert not default.is_relative_to(folder)
    assert "var/" in (settings.BASE_DIR / ".gitignore").read_text()


# Deleting


def _delete(client, document, reason="Uploaded to the wrong case"):
    return client.post(reverse("cases:document_delete", args=[document.pk]), {"reason": reason}, follow=True)


@pytest.mark.parametrize("role", ["Supervisor", "Administrator"])
def test_supervisors_and_administrators_delete_a_document_with_a_reason(
    client_for, staff, role, django_capture_on_commit_callbacks
):
    case = CaseFactory(size=1)
    document = _document(case, staff)
    # The file is erased once the deletion is committed.
    with django_capture_on_commit_callbacks(execute=True):
        response = _delete(client_for(role), document)
    assert "passport.pdf was deleted." in response.text
    document.refresh_from_db()
    assert document.deleted_at is not None
    assert document.deleted_by.username == f"{role.lower()}-test"
    assert document.deletion_reason == "Uploaded to the wrong case"
    assert _files() == []
    assert "Uploaded to the wrong case" in response.text  # the case page says who deleted it and why
    assert reverse("cases:document_download", args=[document.pk]) not in response.text
    assert _download(client_for(role), document).status_code == 404


def test_the_deletion_is_recorded_in_the_documents_history(supervisor, staff):
    document = _document(CaseFactory(size=1), staff)
    case_document_delete(document, actor=supervisor, reason="Duplicate")
    latest = document.history.first()
    assert (latest.history_type, latest.history_user, latest.history_change_reason) == ("~", supervisor, "Duplicate")
    assert latest.prev_record.file  # the history still names the file that was erased


def test_a_long_reason_for_deleting_is_kept_whole(supervisor, staff):
    document = _document(CaseFactory(size=1), staff)
    reason = "Scanned by mistake with another family's papers. " * 10
    case_document_delete(document, actor=supervisor, reason=reason)
    document.refresh_from_db()
    assert document.deletion_reason == reason.strip()
    assert len(document.history.first().history_change_reason) == 100


def test_staff_cannot_delete_a_document(client_for, staff):
    document = _document(CaseFactory(size=1), staff)
    assert _delete(client_for("Staff"), document).status_code == 403
    document.refresh_from_db()
    assert document.deleted_at is None
    assert len(_files()) == 1


def test_an_anonymous_visitor_cannot_delete_a_document(client, staff):
    document = _document(CaseFactory(size=1), staff)
    response = client.post(reverse("cases:document_delete", args=[document.pk]), {"reason": "x"})
    assert response.status_code == 302
    document.refresh_from_db()
    assert document.deleted_at is None


def test_a_deletion_without_a_reason_is_refused(client_for, staff):
    document = _document(CaseFactory(size=1), staff)
    response = _delete(client_for("Supervisor"), document, reason="")
    assert "Give a reason for deleting the document." in response.text
    document.refresh_from_db()
    assert document.deleted_at is None
    assert len(_files()) == 1


def test_a_document_is_deleted_once(supervisor, staff):
    document = _document(CaseFactory(size=1), staff)
    case_document_delete(document, actor=supervisor, reason="Duplicate")
    with pytest.raises(DocumentRefused, match="already deleted"):
        case_document_delete(document, actor=supervisor, reason="Again")


# The case page


def test_the_case_page_lists_documents_and_offers_the_upload_to_those_who_may(client_for, client, staff):
    case = CaseFactory(size=1)
    _document(case, staff, name="consent.pdf", kind=DocumentKind.CONSENT)
    text = client_for("Staff").get(case.get_absolute_url()).text
    assert "consent.pdf" in text
    assert "Consent form" in text
    assert reverse("cases:document_upload", args=[case.pk]) in text
    assert reverse("cases:document_delete", args=[CaseDocument.objects.get().pk]) not in text
    reader = UserFactory(username="reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_case"))
    client.force_login(reader)
    assert reverse("cases:document_upload", args=[case.pk]) not in client.get(case.get_absolute_url()).text


def test_supervisors_are_offered_to_delete(client_for, staff):
    case = CaseFactory(size=1)
    document = _document(case, staff)
    assert (
        reverse("cases:document_delete", args=[document.pk])
        in client_for("Supervisor").get(case.get_absolute_url()).text
    )


@pytest.mark.parametrize("documents", [1, 6])
def test_the_case_page_costs_the_same_queries_however_many_documents(
    client_for, staff, supervisor, django_assert_num_queries, documents
):
    case = CaseFactory(size=1)
    for index in range(documents):
        _document(case, staff, name=f"scan-{index}.png", content=PNG)
    case_document_delete(CaseDocument.objects.first(), actor=supervisor, reason="Duplicate")
    client = client_for("Supervisor")
    client.get(case.get_absolute_url())  # the session is warm
    # session, user, permissions with groups and sites, the case, members, their
    # specific needs, status changes, interviews, nominations, incidents, history,
    # documents with who uploaded and deleted them, site transfers, interviewers for the
    # booking form, the access-log row
    with django_assert_num_queries(15):
        response = client.get(case.get_absolute_url())
    assert len(response.context["detail"].documents) == documents
