from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from cases.scope import limit, sites_of


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


class SiteScopedAdmin:
    """Mixed into a ModelAdmin: a user limited to some sites (cases.scope) finds only those
    sites' records in the admin as well; `site_paths` leads from the model to a site."""

    site_paths: tuple[str, ...] = ("site",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return limit(queryset, sites_of(request.user), *self.site_paths)
