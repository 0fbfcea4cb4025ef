"""Who looked at which protected record, and who exported what: the access log."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AccessKind(models.TextChoices):
    VIEW = "view", _("Viewed")
    DOWNLOAD = "download", _("Downloaded a document")
    EXPORT = "export", _("Exported")
    REFUSED = "refused", _("Refused")


class AccessLog(models.Model):
    """One row per look at a person, a case, a document or an export. Written by
    accounts.middleware.AccessLogMiddleware; never edited from the app."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+", verbose_name=_("user")
    )
    at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    address = models.GenericIPAddressField(_("from address"), null=True)
    kind = models.CharField(_("kind"), max_length=20, choices=AccessKind.choices)
    view_name = models.CharField(_("page"), max_length=80)
    object_id = models.CharField(_("record"), max_length=80, blank=True)
    path = models.CharField(_("address requested"), max_length=500)
    status_code = models.PositiveSmallIntegerField(_("answer"))

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = _("access log entry")
        verbose_name_plural = _("access log")
        indexes = [models.Index(fields=["view_name", "object_id"]), models.Index(fields=["user", "-at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.user_id} {self.kind} {self.view_name} {self.object_id}"
