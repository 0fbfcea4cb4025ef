"""Fewer indexes to write: each was a copy of another or was never read.

- cases_case.site_id and cases_person.site_id: the (site, status) and (site,
  residence_status) indexes begin with the site and serve every lookup by site.
- The history tables' indexes on copied keys and foreign keys (case number, registration
  number, case, site, officer): history is read by record (its id) and by time, which
  keep their indexes. An import writes a history row for every person and case it adds,
  so each of these was paid for 100,000 times by a roster of 100,000.

Only the indexes go: Django would otherwise drop and add again the foreign keys of
cases_case and cases_person (validating every row under a lock) to drop theirs.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (index, table, column); PostgreSQL also has a LIKE index (`_like`, varchar_pattern_ops)
# for each of the two character columns.
INDEXES = [
    ("cases_case_site_id_b0299057", "cases_case", "site_id"),
    ("cases_person_site_id_4b231ce9", "cases_person", "site_id"),
    ("cases_historicalcase_assigned_officer_id_500bd682", "cases_historicalcase", "assigned_officer_id"),
    ("cases_historicalcase_case_no_d75e6f2b", "cases_historicalcase", "case_no"),
    ("cases_historicalcase_site_id_04927c54", "cases_historicalcase", "site_id"),
    ("cases_historicalperson_case_id_ea2c36e0", "cases_historicalperson", "case_id"),
    ("cases_historicalperson_registration_no_fda37624", "cases_historicalperson", "registration_no"),
    ("cases_historicalperson_site_id_c98815e3", "cases_historicalperson", "site_id"),
]
LIKE = {"case_no", "registration_no"}


def drop(apps, schema_editor) -> None:
    postgres = schema_editor.connection.vendor == "postgresql"
    for name, _table, column in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
        if postgres and column in LIKE:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}_like")


def create(apps, schema_editor) -> None:
    postgres = schema_editor.connection.vendor == "postgresql"
    for name, table, column in INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})")
        if postgres and column in LIKE:
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name}_like ON {table} ({column} varchar_pattern_ops)")


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0013_name_words"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop, create)],
            state_operations=[
                migrations.AlterField(
                    model_name="case",
                    name="site",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="cases",
                        to="cases.site",
                        verbose_name="site",
                    ),
                ),
                migrations.AlterField(
                    model_name="historicalcase",
                    name="assigned_officer",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="assigned officer",
                    ),
                ),
                migrations.AlterField(
                    model_name="historicalcase",
                    name="case_no",
                    field=models.CharField(max_length=40, verbose_name="case number"),
                ),
                migrations.AlterField(
                    model_name="historicalcase",
                    name="site",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="cases.site",
                        verbose_name="site",
                    ),
                ),
                migrations.AlterField(
                    model_name="historicalperson",
                    name="case",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="cases.case",
                        verbose_name="case",
                    ),
                ),
                migrations.AlterField(
                    model_name="historicalperson",
                    name="registration_no",
                    field=models.CharField(max_length=40, verbose_name="registration number"),
                ),
                migrations.AlterField(
                    model_name="historicalperson",
                    name="site",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="cases.site",
                        verbose_name="site",
                    ),
                ),
                migrations.AlterField(
                    model_name="person",
                    name="site",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="persons",
                        to="cases.site",
                        verbose_name="site",
                    ),
                ),
            ],
        ),
    ]
