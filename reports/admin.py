from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from reports.models import ExportLog


@admin.register(ExportLog)
class ExportLogAdmin(admin.ModelAdmin):
    """The export log: read by Administrators (reports.view_exportlog), written only by exports."""

    list_display = ("created_at", "actor", "list_name", "format", "sensitive", "row_count")
    list_filter = ("list_name", "format", "sensitive")
    list_select_related = ("actor",)
    search_fields = ("actor__username",)
    date_hierarchy = "created_at"
    fields = readonly_fields = ("created_at", "actor", "list_name", "format", "filters", "sensitive", "row_count")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
