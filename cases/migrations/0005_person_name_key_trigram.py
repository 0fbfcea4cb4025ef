"""Person.name_key for spelling-blind search, filled for existing rows; on PostgreSQL,
pg_trgm and trigram indexes on the names (SQLite gets neither and needs neither)."""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

from cases.names import name_key

BATCH = 5000

# GIN trigram indexes serve the search's LIKE '%...%' on name_key and its trigram
# similarity on the names.
TRIGRAM_INDEXES = {
    "cases_person_family_name_trgm": "family_name",
    "cases_person_given_name_trgm": "given_name",
    "cases_person_native_name_trgm": "native_name",
    "cases_person_name_key_trgm": "name_key",
}


def fill_name_keys(apps, schema_editor):
    Person = apps.get_model("cases", "Person")
    connection = schema_editor.connection
    table = connection.ops.quote_name(Person._meta.db_table)
    last = 0
    while True:
        rows = list(
            Person.objects.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", "family_name", "given_name", "native_name")[:BATCH]
        )
        if not rows:
            return
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET name_key = %s WHERE id = %s",  # noqa: S608 - our table name
                [(name_key(family, given, native), pk) for pk, family, given, native in rows],
            )
        last = rows[-1][0]


def create_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, column in TRIGRAM_INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON cases_person USING gin ({column} gin_trgm_ops)"
        )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in TRIGRAM_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0004_case_person_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="person",
            name="name_key",
            field=models.CharField(blank=True, default="", editable=False, max_length=255, verbose_name="name key"),
        ),
        migrations.RunPython(fill_name_keys, migrations.RunPython.noop, elidable=True),
        # Does nothing on other databases (it checks the vendor itself).
        TrigramExtension(),
        migrations.RunPython(create_trigram_indexes, drop_trigram_indexes),
    ]
