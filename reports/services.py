"""Writes of the reports app: the export log."""

from typing import Any

from django.http import QueryDict

from reports.models import ExportLog


def export_log_start(*, actor: Any, list_name: str, fmt: str, filters: QueryDict, sensitive: bool) -> ExportLog:
    """Record an export before any of its rows leaves the server."""
    return ExportLog.objects.create(
        actor=actor,
        list_name=list_name,
        format=fmt,
        filters={key: values if len(values) > 1 else values[0] for key, values in filters.lists()},
        sensitive=sensitive,
    )


def export_log_finish(log: ExportLog, *, rows: int) -> None:
    """Record the rows of an export that was written in full."""
    ExportLog.objects.filter(pk=log.pk).update(row_count=rows)
    log.row_count = rows
