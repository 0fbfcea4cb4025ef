from django.db import models
from django.utils.translation import gettext_lazy as _


class ReportAccess(models.Model):
    """Holds the reports' permissions; reports own no domain data and no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_dashboard", _("Can see the dashboards")),
            ("export_data", _("Can export spreadsheets")),
        ]

    def __str__(self) -> str:
        return str(self._meta.verbose_name)
