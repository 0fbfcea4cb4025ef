"""Indexes for the worklist's counts: the cases flagged for review, and a case's interviews in time order."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0014_fewer_write_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="case",
            index=models.Index(
                condition=models.Q(("needs_review", True)), fields=["site"], name="cases_case_to_review"
            ),
        ),
        migrations.AddIndex(
            model_name="interview",
            index=models.Index(fields=["case", "scheduled_at"], name="cases_interview_case_time"),
        ),
    ]
