from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import AccessLog
from cases.admin_records import RecordAdmin
from cases.models import SiteAssignment


@admin.register(AccessLog)
class AccessLogAdmin(RecordAdmin):
    list_display = ["at", "user", "address", "kind", "view_name", "object_id", "status_code"]
    list_filter = ["kind", "view_name"]
    search_fields = ["user__username", "object_id", "path", "address"]
    list_select_related = ["user"]
    date_hierarchy = "at"


class SiteAssignmentInline(admin.TabularInline):
    """The sites a user is limited to (cases.scope); none means every site."""

    model = SiteAssignment
    extra = 0
    autocomplete_fields = ["site"]
    verbose_name = _("site this user is limited to")
    verbose_name_plural = _("Limited to these sites (leave empty for every site)")


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class RelocationUserAdmin(UserAdmin):
    """Django's user admin, with the sites a user is limited to."""

    inlines = [SiteAssignmentInline]
    list_filter = [*UserAdmin.list_filter, "site_assignments__site"]
