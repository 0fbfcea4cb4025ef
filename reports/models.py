from typing import Any

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


# The dashboard's summary tables (PostgreSQL). Triggers on the counted tables append a row
# of +n or -n for each change, in the same statement and transaction as the change, and
# fold the rows together now and then (reports/migrations/0004_figure_triggers.py); a
# figure is the sum of n over its rows. Never written by Python. See reports/figures.py.


class _Count(models.Model):
    n = models.IntegerField()

    class Meta:
        abstract = True
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self._meta.model_name} {self.n:+d}"


def _site() -> Any:
    # No database constraint: a row of -1 may outlive what it counted until the rows are folded.
    return models.ForeignKey(
        "cases.Site", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )


class PersonCount(_Count):
    """Persons per site, nationality, residence status, sex and year of birth."""

    site = _site()
    nationality = models.CharField(max_length=2)
    residence_status = models.CharField(max_length=20)
    sex = models.CharField(max_length=1)
    birth_year = models.PositiveSmallIntegerField()


class PersonStatusCount(_Count):
    """Persons per site, nationality, residence status and their case's status."""

    site = _site()
    nationality = models.CharField(max_length=2)
    residence_status = models.CharField(max_length=20)
    case_status = models.CharField(max_length=30)


class NeedCount(_Count):
    """Persons' specific needs per site, nationality and residence status of the person."""

    site = _site()
    nationality = models.CharField(max_length=2)
    residence_status = models.CharField(max_length=20)
    specificneed = models.ForeignKey(
        "cases.SpecificNeed", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )


class CaseCount(_Count):
    """Cases per site, principal applicant's nationality ("" for none), status and the UTC
    day they entered it (1 January of year 1 for any day more than 400 days back)."""

    site = _site()
    pa_nationality = models.CharField(max_length=2)
    status = models.CharField(max_length=30)
    changed_on = models.DateField()


class InterviewCount(_Count):
    """Interviews per site and principal applicant's nationality of their case, outcome,
    and the quarter of an hour (UTC) they are scheduled in."""

    site = _site()
    pa_nationality = models.CharField(max_length=2)
    outcome = models.CharField(max_length=20)
    slot = models.DateTimeField()


class DepartureCount(_Count):
    """Persons on each departure's manifest per site and nationality of the person."""

    departure = models.ForeignKey(
        "offers.Departure", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    site = _site()
    nationality = models.CharField(max_length=2)


# The summary tables, kept by the triggers of migration 0004 on PostgreSQL.
COUNT_MODELS: tuple[type[_Count], ...] = (
    PersonCount,
    PersonStatusCount,
    NeedCount,
    CaseCount,
    InterviewCount,
    DepartureCount,
)
