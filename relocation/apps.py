from django.contrib.admin.apps import AdminConfig


class RelocationAdminConfig(AdminConfig):
    """django.contrib.admin, with relocation.admin's site as admin.site."""

    default_site = "relocation.admin.RelocationAdminSite"
