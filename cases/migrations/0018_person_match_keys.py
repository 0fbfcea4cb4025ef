"""Person.match_latin and match_native: the keys the roster import's probable-duplicate
search pairs persons by (cases.names.match_keys), stored and indexed with the year of
birth, so that the database finds a file's look-alikes among the persons on record.

Until now the search read everyone on record born in the file's years into Python:
a 5,000-row roster checked against a million persons took 20 s and 730 MB. Filled here
for the persons already on record, 5,000 at a time (about a minute per million), then
indexed (partial indexes: most persons have no native name).
"""

from django.db import migrations, models

from cases.names import match_keys

BATCH = 5000


def fill_match_keys(apps, schema_editor):
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
        keys = [(pk, *match_keys(family, given, native)) for pk, family, given, native in rows]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One statement a batch: the person table's statement triggers run once.
                cursor.execute(
                    f"UPDATE {table} p SET match_latin = k.latin, match_native = k.native"  # noqa: S608
                    " FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS k(id, latin, native) WHERE p.id = k.id",
                    [list(column) for column in zip(*keys, strict=True)],
                )
            else:
                cursor.executemany(
                    f"UPDATE {table} SET match_latin = %s, match_native = %s WHERE id = %s",  # noqa: S608
                    [(latin, native, pk) for pk, latin, native in keys],
                )
        last = rows[-1][0]


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0017_roster_import_job_report"),
    ]

    operations = [
        migrations.AddField(
            model_name="person",
            name="match_latin",
            field=models.TextField(blank=True, db_default="", default="", editable=False, verbose_name="Latin match key"),
        ),
        migrations.AddField(
            model_name="person",
            name="match_native",
            field=models.TextField(blank=True, db_default="", default="", editable=False, verbose_name="native match key"),
        ),
        migrations.RunPython(fill_match_keys, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="person",
            index=models.Index(
                condition=models.Q(("match_latin", ""), _negated=True),
                fields=["match_latin", "birth_year"],
                name="person_match_latin",
            ),
        ),
        migrations.AddIndex(
            model_name="person",
            index=models.Index(
                condition=models.Q(("match_native", ""), _negated=True),
                fields=["match_native", "birth_year"],
                name="person_match_native",
            ),
        ),
    ]
