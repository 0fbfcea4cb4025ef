"""Where case documents live: a folder no URL serves (settings.PRIVATE_MEDIA_ROOT).

Files leave it only through cases.views_documents.document_download, which checks
that the user may see the case.
"""

from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.utils.functional import cached_property


class PrivateStorage(FileSystemStorage):
    """A FileSystemStorage on settings.PRIVATE_MEDIA_ROOT, with no URL and owner-only files."""

    def __init__(self) -> None:
        super().__init__(file_permissions_mode=0o600, directory_permissions_mode=0o700)

    @cached_property
    def base_location(self) -> str:
        # Read from the settings when first used (and again when a test changes them),
        # not when the model class is built.
        return str(settings.PRIVATE_MEDIA_ROOT)

    def _clear_cached_properties(self, setting: Any, **kwargs: Any) -> None:
        super()._clear_cached_properties(setting, **kwargs)
        if setting == "PRIVATE_MEDIA_ROOT":
            self.__dict__.pop("base_location", None)
            self.__dict__.pop("location", None)

    def url(self, name: str | None) -> str:
        raise ValueError("Case documents have no URL; they are served by the download view only.")


_storage = PrivateStorage()


def private_storage() -> PrivateStorage:
    """The storage of CaseDocument.file (a callable, so migrations do not freeze a path)."""
    return _storage
