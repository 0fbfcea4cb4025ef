"""The search's similarity fallback looks up a table of the distinct words of the names.

A typed word that no name key matches (a typo, the start of a name) was compared by
trigram word similarity with every person's names, through three trigram GIN indexes on
cases_person. A common name (a tenth of a million persons) made that scan slow (~150 ms)
and the three indexes made every insert of a person dearer (a roster import writes
100,000 at once). pg_trgm's documentation suggests the way used here instead: a table of
the distinct words, with its own trigram index, in which the few close words are found
in a few milliseconds; the search then finds their persons by their name keys
(cases.filters._similar), through the GIN index of the name keys.

cases_nameword holds each word of a family, given or native name, lower-cased and split
as cases.names.words splits them; words without a letter (numbers) are left out, as the
search leaves them out. A trigger adds the words of every person written (a
statement-level trigger over the statement's rows: one INSERT for a roster of 100,000).
Words whose persons are gone are left: they only make a close word that finds no one.
PostgreSQL only (SQLite's fallback compares the names themselves, as substrings).
"""

from django.db import migrations

# The separators of cases.names._WORD_SEPARATORS, in PostgreSQL's regular expressions.
WORDS_OF = (
    "SELECT DISTINCT word FROM {rows},"
    " regexp_split_to_table(lower({rows}.family_name || ' ' || {rows}.given_name || ' ' || {rows}.native_name),"
    " '[[:space:]‐‑–—_.,;/''-]+') AS word WHERE word ~ '[[:alpha:]]' ORDER BY word"
)
ADD_WORDS = "INSERT INTO cases_nameword (word) {select} ON CONFLICT DO NOTHING"

FORWARD = [
    "CREATE TABLE IF NOT EXISTS cases_nameword (word text PRIMARY KEY)",
    "CREATE INDEX IF NOT EXISTS cases_nameword_trgm ON cases_nameword USING gin (word gin_trgm_ops)",
    f"""
    CREATE OR REPLACE FUNCTION cases_nameword_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {ADD_WORDS.format(select=WORDS_OF.format(rows="new_rows"))};
        RETURN NULL;
    END $$
    """,
    "DROP TRIGGER IF EXISTS cases_nameword_insert ON cases_person",
    "CREATE TRIGGER cases_nameword_insert AFTER INSERT ON cases_person REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION cases_nameword_add()",
    "DROP TRIGGER IF EXISTS cases_nameword_update ON cases_person",
    "CREATE TRIGGER cases_nameword_update AFTER UPDATE ON cases_person REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION cases_nameword_add()",
    ADD_WORDS.format(select=WORDS_OF.format(rows="cases_person")),
    "ANALYZE cases_nameword",
    # The trigram indexes on the names served the similarity fallback only.
    "DROP INDEX IF EXISTS cases_person_family_name_trgm",
    "DROP INDEX IF EXISTS cases_person_given_name_trgm",
    "DROP INDEX IF EXISTS cases_person_native_name_trgm",
]
BACKWARD = [
    *(
        f"CREATE INDEX IF NOT EXISTS cases_person_{column}_trgm ON cases_person USING gin ({column} gin_trgm_ops)"
        for column in ("family_name", "given_name", "native_name")
    ),
    "DROP TRIGGER IF EXISTS cases_nameword_insert ON cases_person",
    "DROP TRIGGER IF EXISTS cases_nameword_update ON cases_person",
    "DROP FUNCTION IF EXISTS cases_nameword_add()",
    "DROP TABLE IF EXISTS cases_nameword",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0012_person_name_tokens_index"),
    ]

    operations = [
        migrations.RunPython(_run(FORWARD), _run(BACKWARD)),
    ]
