from django.conf import settings
from django.db import models
from django.utils import timezone
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


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "XLSX"


class ExportLog(models.Model):
    """One row per spreadsheet export, written before any row leaves the server. Never edited."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    created_at = models.DateTimeField(_("when"), default=timezone.now)
    list_name = models.CharField(_("list"), max_length=30)
    format = models.CharField(_("format"), max_length=4, choices=ExportFormat.choices)
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    sensitive = models.BooleanField(_("with sensitive columns"), default=False)
    # Empty while the file is being written, and for a download that was cut off.
    row_count = models.PositiveIntegerField(_("rows"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        default_permissions = ("view",)
        verbose_name = _("export")
        verbose_name_plural = _("export log")

    def __str__(self) -> str:
        return f"{self.list_name}.{self.format} ({self.created_at:%Y-%m-%d %H:%M})"
