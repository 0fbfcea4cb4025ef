"""PostgreSQL: the triggers that keep the dashboard's summary tables (reports_*count) exact,
and the functions that fill, check and fold them. SQLite: nothing (the dashboard counts
live there).

Each table counts "facts" by a key; the key may take columns of other rows:

    reports_personcount        person                 (its site, nationality, residence status, sex, birth year)
    reports_personstatuscount  person ⋈ its case      (… and the case's status)
    reports_needcount          need link ⋈ person     (the person's site, nationality, residence status; the need)
    reports_casecount          case ⟕ its PA          (site, PA's nationality or "", status, UTC day of status_changed_at)
    reports_interviewcount     interview ⋈ case ⟕ PA  (case's site, PA's nationality, outcome, quarter hour)
    reports_departurecount     manifest row ⋈ person  (departure; the person's site and nationality)

After every INSERT, UPDATE or DELETE statement on cases_person, cases_case,
cases_interview, cases_person_specific_needs or offers_departureperson, a statement-level
trigger appends, in the same transaction, -1 for each old key and +1 for each new key of
the facts the statement changed (grouped: one row per key and statement). Rows are only
ever appended, so writers never wait on one another here; every 20,000th row folds the
table back to one row per key (reports_compact).

Exact for every order of single-table statements, also under concurrent transactions
(READ COMMITTED): a trigger that reads another table's row to make a key first locks it
so that whoever changes it is ordered before or after, and reads in a later statement
(a fresh snapshot). Locks go one way only: from manifest, need link and interview rows to
persons and cases, from persons to cases: FOR SHARE, or FOR NO KEY UPDATE when a
principal applicant changes (that changes the key of the case's interviews, whose writers
hold FOR SHARE on the case). A case's trigger locks nothing, so no new cycle of waits.

A statement that writes two of these tables at once (a data-modifying WITH) is counted
right when it inserts rows together with their parent (a person and their needs, a case
and its persons): a newly inserted person or case contributes no children; their own
triggers count them. Other such statements are not supported: split them. TRUNCATE of a
counted table is not supported either (reports_figures_rebuild() then fills the tables
again).
"""

from django.db import migrations

CHUNK = 20_000
# Quarter hours from midnight UTC: every time zone's offset today is a whole number of
# quarter hours, so a local day or week starts on the grid (reports.figures checks it).
GRID = "date_bin('15 minutes', {}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
UTC_DAY = "({} AT TIME ZONE 'UTC')::date"
# Rows more than 400 days old fall in the last aging bucket forever: folded onto one day.
OLD_DAY = "DATE '0001-01-01'"

TABLES = {
    # name: key columns
    "reports_personcount": ["site_id", "nationality", "residence_status", "sex", "birth_year"],
    "reports_personstatuscount": ["site_id", "nationality", "residence_status", "case_status"],
    "reports_needcount": ["site_id", "nationality", "residence_status", "specificneed_id"],
    "reports_casecount": ["site_id", "pa_nationality", "status", "changed_on"],
    "reports_interviewcount": ["site_id", "pa_nationality", "outcome", "slot"],
    "reports_departurecount": ["departure_id", "site_id", "nationality"],
}

# What each table should hold, from the counted tables.
SOURCES = {
    "reports_personcount": """
        SELECT site_id, nationality, residence_status, sex, birth_year, count(*)
        FROM cases_person GROUP BY 1, 2, 3, 4, 5""",
    "reports_personstatuscount": """
        SELECT p.site_id, p.nationality, p.residence_status, c.status, count(*)
        FROM cases_person p JOIN cases_case c ON c.id = p.case_id GROUP BY 1, 2, 3, 4""",
    "reports_needcount": """
        SELECT p.site_id, p.nationality, p.residence_status, t.specificneed_id, count(*)
        FROM cases_person_specific_needs t JOIN cases_person p ON p.id = t.person_id GROUP BY 1, 2, 3, 4""",
    "reports_casecount": f"""
        SELECT c.site_id, COALESCE(pa.nationality, ''), c.status, {UTC_DAY.format("c.status_changed_at")}, count(*)
        FROM cases_case c LEFT JOIN cases_person pa ON pa.case_id = c.id AND pa.relationship = 'PA'
        GROUP BY 1, 2, 3, 4""",
    "reports_interviewcount": f"""
        SELECT c.site_id, COALESCE(pa.nationality, ''), i.outcome, {GRID.format("i.scheduled_at")}, count(*)
        FROM cases_interview i JOIN cases_case c ON c.id = i.case_id
        LEFT JOIN cases_person pa ON pa.case_id = i.case_id AND pa.relationship = 'PA'
        GROUP BY 1, 2, 3, 4""",
    "reports_departurecount": """
        SELECT d.departure_id, p.site_id, p.nationality, count(*)
        FROM offers_departureperson d JOIN cases_person p ON p.id = d.person_id GROUP BY 1, 2, 3""",
}

COUNTED = ["cases_case", "cases_person", "cases_person_specific_needs", "cases_interview", "offers_departureperson"]
OPS = ["INSERT", "UPDATE", "DELETE"]


def changes(op: str, cols: list[str]) -> str:
    """The statement's rows as (sign, *cols): +1 for a new image, -1 for an old one. On UPDATE,
    images alike in `cols` cancel out: only the rows whose `cols` changed are left (grouped,
    so sign may be any number). No join of the transition tables, whose sizes the planner
    would guess wildly."""
    names = ", ".join(cols)
    if op == "INSERT":
        return f"SELECT 1 AS sign, {names} FROM new_rows"
    if op == "DELETE":
        return f"SELECT -1 AS sign, {names} FROM old_rows"
    return (
        f"SELECT sign, {names} FROM (SELECT sum(sign) AS sign, {names} FROM"
        f" (SELECT -1 AS sign, {names} FROM old_rows UNION ALL SELECT 1, {names} FROM new_rows) u"
        f" GROUP BY {names}) g WHERE sign <> 0"
    )


def append(cte: str, table: str, select: str) -> str:
    """A CTE appending the grouped deltas of `select` (the key columns, then the sign) to `table`."""
    keys = TABLES[table]
    names = ", ".join(f"k{i + 1}" for i in range(len(keys)))
    return (
        f"{cte} AS (INSERT INTO {table} ({', '.join(keys)}, n)"
        f" SELECT {names}, sum(sign) FROM ({select}) d({names}, sign)"
        f" GROUP BY {names} HAVING sum(sign) <> 0 RETURNING id)"
    )


def function(name: str, locks: list[str], ctes: list[tuple[str, str]]) -> str:
    """A trigger function: the locking statements, then one statement appending to each table
    (cte name, table) of `ctes`, then the folding of any table whose turn it is."""
    flags = [f"f_{cte}" for cte, _table in ctes]
    declare = "".join(f"    {flag} boolean;\n" for flag in flags)
    body = "".join(f"    {lock};\n" for lock in locks)
    if ctes:
        checks = ", ".join(f"(SELECT bool_or(id % {CHUNK} = 0) FROM {cte})" for cte, _table in ctes)
        body += f"    {{with}}\n    SELECT {checks} INTO {', '.join(flags)};\n"
        body += "".join(
            f"    IF {flag} THEN PERFORM reports_compact('{table}'); END IF;\n"
            for flag, (_cte, table) in zip(flags, ctes, strict=True)
        )
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
        f"DECLARE\n{declare}BEGIN\n{body}    RETURN NULL;\nEND\n$fn$;"
    )


def with_clause(parts: list[str]) -> str:
    return "WITH " + ",\n      ".join(parts)


def lock(table: str, column: str, source: str, mode: str, where: str = "") -> str:
    return (
        f"PERFORM 1 FROM {table} x WHERE x.id IN (SELECT s.{column} FROM ({source}) s{where})"
        f" ORDER BY x.id FOR {mode}"
    )


def person_function(op: str) -> str:
    pa_changes = changes(op, ["case_id", "relationship", "nationality"])
    status_changes = changes(op, ["case_id", "site_id", "nationality", "residence_status"])
    locks = [
        # A principal applicant changes the key of their case and its interviews.
        lock("cases_case", "case_id", pa_changes, "NO KEY UPDATE", " WHERE s.relationship = 'PA'"),
        lock("cases_case", "case_id", status_changes, "SHARE"),
    ]
    parts = [
        f"p1 AS MATERIALIZED ({changes(op, ['site_id', 'nationality', 'residence_status', 'sex', 'birth_year'])})",
        append("s1", "reports_personcount", "SELECT site_id, nationality, residence_status, sex, birth_year, sign FROM p1"),
        f"p2 AS MATERIALIZED ({status_changes})",
        append(
            "s2",
            "reports_personstatuscount",
            "SELECT p2.site_id, p2.nationality, p2.residence_status, c.status, p2.sign"
            " FROM p2 JOIN cases_case c ON c.id = p2.case_id",
        ),
    ]
    ctes = [("s1", "reports_personcount"), ("s2", "reports_personstatuscount")]
    if op != "INSERT":  # a new person has no needs or departures yet: those rows count themselves
        parts += [
            f"p3 AS MATERIALIZED ({changes(op, ['id', 'site_id', 'nationality', 'residence_status'])})",
            append(
                "s3",
                "reports_needcount",
                "SELECT p3.site_id, p3.nationality, p3.residence_status, t.specificneed_id, p3.sign"
                " FROM p3 JOIN cases_person_specific_needs t ON t.person_id = p3.id",
            ),
            f"p6 AS MATERIALIZED ({changes(op, ['id', 'site_id', 'nationality'])})",
            append(
                "s6",
                "reports_departurecount",
                "SELECT d.departure_id, p6.site_id, p6.nationality, p6.sign"
                " FROM p6 JOIN offers_departureperson d ON d.person_id = p6.id",
            ),
        ]
        ctes += [("s3", "reports_needcount"), ("s6", "reports_departurecount")]
    # The principal applicant's nationality of each case whose PA may have changed, before
    # and after the statement: before, it was the PA among the old rows, else the current
    # PA if the statement did not write them (one PA a case at most, at any time).
    joins = " LEFT JOIN cases_person cur ON cur.case_id = k.case_id AND cur.relationship = 'PA'"
    if op != "DELETE":
        joins += " LEFT JOIN new_rows nn ON nn.id = cur.id"
        unchanged = "CASE WHEN nn.id IS NULL THEN cur.nationality END"
    else:
        unchanged = "cur.nationality"
    if op != "INSERT":
        joins += (
            " LEFT JOIN (SELECT DISTINCT ON (r.case_id) r.case_id, r.nationality FROM old_rows r"
            " WHERE r.relationship = 'PA' ORDER BY r.case_id) o ON o.case_id = k.case_id"
        )
        before = f"COALESCE(o.nationality, {unchanged}, '')"
    else:
        before = f"COALESCE({unchanged}, '')"
    parts += [
        f"k AS MATERIALIZED (SELECT DISTINCT s.case_id FROM ({pa_changes}) s WHERE s.relationship = 'PA')",
        f"pa AS MATERIALIZED (SELECT k.case_id, {before} AS old_pa, COALESCE(cur.nationality, '') AS new_pa FROM k{joins})",
        "moved AS MATERIALIZED (SELECT pa.case_id, v.sign, v.nationality, c.site_id, c.status, c.status_changed_at"
        " FROM pa JOIN cases_case c ON c.id = pa.case_id"
        " CROSS JOIN LATERAL (VALUES (-1, pa.old_pa), (1, pa.new_pa)) AS v(sign, nationality)"
        " WHERE pa.old_pa <> pa.new_pa)",
        append(
            "s4",
            "reports_casecount",
            f"SELECT m.site_id, m.nationality, m.status, {UTC_DAY.format('m.status_changed_at')}, m.sign FROM moved m",
        ),
        append(
            "s5",
            "reports_interviewcount",
            f"SELECT m.site_id, m.nationality, i.outcome, {GRID.format('i.scheduled_at')}, m.sign"
            " FROM moved m JOIN cases_interview i ON i.case_id = m.case_id",
        ),
    ]
    ctes += [("s4", "reports_casecount"), ("s5", "reports_interviewcount")]
    return function(f"reports_person_{op.lower()}", locks, ctes).replace("{with}", with_clause(parts))


def case_function(op: str) -> str:
    pa = "LEFT JOIN cases_person pa ON pa.case_id = {}.id AND pa.relationship = 'PA'"
    parts = [
        f"c4 AS MATERIALIZED ({changes(op, ['id', 'site_id', 'status', 'status_changed_at'])})",
        append(
            "s4",
            "reports_casecount",
            # A new case has no principal applicant yet: theirs counts them when they come.
            f"SELECT c4.site_id, '', c4.status, {UTC_DAY.format('c4.status_changed_at')}, c4.sign FROM c4"
            if op == "INSERT"
            else f"SELECT c4.site_id, COALESCE(pa.nationality, ''), c4.status,"
            f" {UTC_DAY.format('c4.status_changed_at')}, c4.sign FROM c4 {pa.format('c4')}",
        ),
    ]
    ctes = [("s4", "reports_casecount")]
    if op != "INSERT":  # a new case has no persons or interviews yet
        parts += [
            f"c2 AS MATERIALIZED ({changes(op, ['id', 'status'])})",
            append(
                "s2",
                "reports_personstatuscount",
                "SELECT p.site_id, p.nationality, p.residence_status, c2.status, c2.sign"
                " FROM c2 JOIN cases_person p ON p.case_id = c2.id",
            ),
            f"c5 AS MATERIALIZED ({changes(op, ['id', 'site_id'])})",
            append(
                "s5",
                "reports_interviewcount",
                f"SELECT c5.site_id, COALESCE(pa.nationality, ''), i.outcome, {GRID.format('i.scheduled_at')}, c5.sign"
                f" FROM c5 JOIN cases_interview i ON i.case_id = c5.id {pa.format('c5')}",
            ),
        ]
        ctes += [("s2", "reports_personstatuscount"), ("s5", "reports_interviewcount")]
    return function(f"reports_case_{op.lower()}", [], ctes).replace("{with}", with_clause(parts))


def interview_function(op: str) -> str:
    rows = changes(op, ["case_id", "outcome", "scheduled_at"])
    parts = [
        f"i5 AS MATERIALIZED ({rows})",
        append(
            "s5",
            "reports_interviewcount",
            f"SELECT c.site_id, COALESCE(pa.nationality, ''), i5.outcome, {GRID.format('i5.scheduled_at')}, i5.sign"
            " FROM i5 JOIN cases_case c ON c.id = i5.case_id"
            " LEFT JOIN cases_person pa ON pa.case_id = i5.case_id AND pa.relationship = 'PA'",
        ),
    ]
    locks = [lock("cases_case", "case_id", rows, "SHARE")]
    return function(f"reports_interview_{op.lower()}", locks, [("s5", "reports_interviewcount")]).replace(
        "{with}", with_clause(parts)
    )


def need_function(op: str) -> str:
    rows = changes(op, ["person_id", "specificneed_id"])
    parts = [
        f"t3 AS MATERIALIZED ({rows})",
        append(
            "s3",
            "reports_needcount",
            "SELECT p.site_id, p.nationality, p.residence_status, t3.specificneed_id, t3.sign"
            " FROM t3 JOIN cases_person p ON p.id = t3.person_id",
        ),
    ]
    locks = [lock("cases_person", "person_id", rows, "SHARE")]
    return function(f"reports_need_{op.lower()}", locks, [("s3", "reports_needcount")]).replace(
        "{with}", with_clause(parts)
    )


def departure_function(op: str) -> str:
    rows = changes(op, ["departure_id", "person_id"])
    parts = [
        f"d6 AS MATERIALIZED ({rows})",
        append(
            "s6",
            "reports_departurecount",
            "SELECT d6.departure_id, p.site_id, p.nationality, d6.sign FROM d6 JOIN cases_person p ON p.id = d6.person_id",
        ),
    ]
    locks = [lock("cases_person", "person_id", rows, "SHARE")]
    return function(f"reports_departure_{op.lower()}", locks, [("s6", "reports_departurecount")]).replace(
        "{with}", with_clause(parts)
    )


FUNCTIONS = {
    "cases_person": ("reports_person", person_function),
    "cases_case": ("reports_case", case_function),
    "cases_interview": ("reports_interview", interview_function),
    "cases_person_specific_needs": ("reports_need", need_function),
    "offers_departureperson": ("reports_departure", departure_function),
}


def trigger(table: str, prefix: str, op: str) -> str:
    referencing = {
        "INSERT": "NEW TABLE AS new_rows",
        "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "DELETE": "OLD TABLE AS old_rows",
    }[op]
    name = f"{prefix}_{op.lower()}"
    return (
        f"CREATE TRIGGER {name} AFTER {op} ON {table} REFERENCING {referencing}"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {name}();"
    )


def _folded(table: str, *, source: bool = False) -> list[str]:
    """The key columns as folded (old days onto one); of the source's columns a.k1… if `source`."""
    names = [f"a.k{i + 1}" for i in range(len(TABLES[table]))] if source else TABLES[table]
    cutoff = f"{UTC_DAY.format('now()')} - 400"
    return [
        f"CASE WHEN {name} < {cutoff} THEN {OLD_DAY} ELSE {name} END" if key == "changed_on" else name
        for key, name in zip(TABLES[table], names, strict=True)
    ]


def compact_function() -> str:
    branches = []
    for table, keys in TABLES.items():
        folded = ", ".join(_folded(table))
        positions = ", ".join(str(i + 1) for i in range(len(keys)))
        branches.append(
            f"    IF tbl = '{table}' THEN\n"
            f"        WITH gone AS (DELETE FROM {table} RETURNING {', '.join(keys)}, n)\n"
            f"        INSERT INTO {table} ({', '.join(keys)}, n)\n"
            f"        SELECT {folded}, sum(n) FROM gone GROUP BY {positions} HAVING sum(n) <> 0;\n"
            f"    END IF;\n"
        )
    return (
        "CREATE OR REPLACE FUNCTION reports_compact(tbl text) RETURNS void LANGUAGE plpgsql AS $fn$\n"
        "BEGIN\n"
        "    -- One folder at a time per table (until its transaction ends); others skip.\n"
        "    IF NOT pg_try_advisory_xact_lock(hashtext('reports_compact'), hashtext(tbl)) THEN RETURN; END IF;\n"
        + "".join(branches)
        + "END\n$fn$;"
    )


def rebuild_function() -> str:
    fills = "".join(
        f"    DELETE FROM {table};\n    INSERT INTO {table} ({', '.join(keys)}, n) {SOURCES[table].strip()};\n"
        for table, keys in TABLES.items()
    )
    return (
        "CREATE OR REPLACE FUNCTION reports_figures_rebuild() RETURNS void LANGUAGE plpgsql AS $fn$\n"
        "BEGIN\n"
        "    -- Writers wait until the transaction ends; readers do not.\n"
        f"    LOCK TABLE {', '.join(COUNTED)} IN SHARE MODE;\n"
        f"    LOCK TABLE {', '.join(TABLES)} IN EXCLUSIVE MODE;\n"
        f"{fills}"
        "END\n$fn$;"
    )


def check_function() -> str:
    """Every key whose stored sum differs from a count of the rows, in one statement (one snapshot)."""
    parts = []
    for table, keys in TABLES.items():
        names = ", ".join(f"k{i + 1}" for i in range(len(keys)))
        stored = f"SELECT {', '.join(_folded(table))}, sum(n) FROM {table} GROUP BY {names.replace('k', '')}"
        actual = f"SELECT {', '.join(_folded(table, source=True))}, sum(a.n) FROM ({SOURCES[table].strip()}) a({names}, n)"
        parts.append(
            f"SELECT '{table}'::text, ROW({names})::text, COALESCE(s.n, 0)::bigint, COALESCE(a.n, 0)::bigint"
            f" FROM ({stored} HAVING sum(n) <> 0) s({names}, n)"
            f" FULL JOIN ({actual} GROUP BY {names.replace('k', '')}) a({names}, n) USING ({names})"
            f" WHERE s.n IS DISTINCT FROM a.n"
        )
    body = "\n    UNION ALL\n    ".join(parts)
    return (
        "CREATE OR REPLACE FUNCTION reports_figures_check()"
        " RETURNS TABLE (summary text, key text, stored bigint, actual bigint) LANGUAGE sql STABLE AS $fn$\n"
        f"    {body}\n$fn$;"
    )


def forward_sql() -> list[str]:
    statements = [compact_function(), rebuild_function(), check_function()]
    for table, (prefix, make) in FUNCTIONS.items():
        for op in OPS:
            statements.append(make(op))
            statements.append(trigger(table, prefix, op))
    statements.append("SELECT reports_figures_rebuild();")
    return statements


def backward_sql() -> list[str]:
    statements = []
    for table, (prefix, _make) in FUNCTIONS.items():
        for op in OPS:
            statements.append(f"DROP TRIGGER IF EXISTS {prefix}_{op.lower()} ON {table};")
            statements.append(f"DROP FUNCTION IF EXISTS {prefix}_{op.lower()}();")
    statements += [
        "DROP FUNCTION IF EXISTS reports_compact(text);",
        "DROP FUNCTION IF EXISTS reports_figures_rebuild();",
        "DROP FUNCTION IF EXISTS reports_figures_check();",
    ]
    return statements


def _run(statements: list[str]):  # noqa: ANN202 - a migration callable
    def run(apps, schema_editor) -> None:  # noqa: ANN001
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("reports", "0003_figures")]

    operations = [migrations.RunPython(_run(forward_sql()), _run(backward_sql()))]
