from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from cases.scope import limit, refuse, sites_of


class RecordAdmin(admin.ModelAdmin):
    """The admin of a record (a timeline, a log, a decision): shown, never added,
    edited or deleted from the app."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ScopedHistory:
    """Mixed into a ModelAdmin whose get_queryset is held to the user's sites:
    simple-history's pages read the history table, not get_queryset, so a user
    limited to some sites gets 404 there for another site's record (or a deleted one)."""

    model: Any

    def _in_scope_or_404(self, request: HttpRequest, object_id: str) -> None:
        pk = unquote(object_id)
        if sites_of(request.user) is not None and not self.get_queryset(request).filter(pk=pk).exists():  # type: ignore[attr-defined]
            raise refuse(request, self.model._default_manager, pk=pk)

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        self._in_scope_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)  # type: ignore[misc]

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        self._in_scope_or_404(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)  # type: ignore[misc]


class SiteScopedAdmin(ScopedHistory):
    """Mixed into a ModelAdmin: a user limited to some sites (cases.scope) finds only those
    sites' records in the admin as well; `site_paths` leads from the model to a site."""

    site_paths: tuple[str, ...] = ("site",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return limit(queryset, sites_of(request.user), *self.site_paths)


class HistoryAdmin(SimpleHistoryAdmin):
    """simple-history's admin, its history read-only: a past version is shown, never
    written back ("Revert" would bypass the services: a case's workflow, a person's
    version, a site transfer). SIMPLE_HISTORY_REVERT_DISABLED hides the button; a
    POST made anyway is refused here."""

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)
