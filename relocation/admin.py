"""The Django admin is the Administrators' (DESIGN.md's roles): users and roles, roster
imports, the audit trail. Everyone else is refused there, whatever their staff flag or
model permissions: the admin's forms write fields the app's own pages keep to their
services (a case's site, a person's residence status), so Staff and Supervisors work
through those pages only.
"""

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy

from accounts.roles import ADMINISTRATOR, role_of


class RelocationAdminSite(admin.AdminSite):
    site_title = gettext_lazy("Relocation administration")
    site_header = gettext_lazy("Relocation administration")
    index_title = gettext_lazy("Users, roster imports and the audit trail")

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and role_of(request.user) == ADMINISTRATOR

    def admin_view(self, view: Callable[..., HttpResponse], cacheable: bool = False) -> Callable[..., HttpResponse]:
        """A logged-in user who is not an Administrator is refused (403), not sent to
        the admin's login page to log in as someone else."""
        inner = super().admin_view(view, cacheable)

        @functools.wraps(inner)
        def refused_unless_administrator(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.user.is_authenticated and not self.has_permission(request):
                raise PermissionDenied
            return inner(request, *args, **kwargs)

        return refused_unless_administrator
