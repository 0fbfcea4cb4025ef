from django.contrib import admin

from accounts.models import AccessLog
from cases.admin_records import RecordAdmin


@admin.register(AccessLog)
class AccessLogAdmin(RecordAdmin):
    list_display = ["at", "user", "address", "kind", "view_name", "object_id", "status_code"]
    list_filter = ["kind", "view_name"]
    search_fields = ["user__username", "object_id", "path", "address"]
    list_select_related = ["user"]
    date_hierarchy = "at"
