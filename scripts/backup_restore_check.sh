#!/usr/bin/env bash
# Back up the database with pg_dump, restore it into a new database, and check that
# every table holds the same number of rows. Proves the backup can be restored.
#
#   DATABASE_URL=postgres://user@host:5432/relocation scripts/backup_restore_check.sh [backup-file]
#
# The restored copy is dropped afterwards; the backup file is kept (custom format).
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL to the PostgreSQL database to back up}"
backup=${1:-$(mktemp /tmp/relocation-backup.XXXXXX.dump)}
restored="relocation_restore_check_$$"
base_url=${DATABASE_URL%/*}

counts() {
  psql "$1" -At -c "SELECT table_name, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', table_name), false, true, '')))[1]::text::bigint FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
}

pg_dump --format=custom --no-owner --file="$backup" "$DATABASE_URL"
psql "$base_url/postgres" -qc "CREATE DATABASE $restored"
trap 'psql "$base_url/postgres" -qc "DROP DATABASE IF EXISTS $restored" >/dev/null' EXIT
pg_restore --no-owner --dbname="$base_url/$restored" "$backup"

if diff <(counts "$DATABASE_URL") <(counts "$base_url/$restored") >/dev/null; then
  echo "backup $backup restored: $(counts "$base_url/$restored" | wc -l) tables, same row counts"
else
  echo "restored copy differs from the original:" >&2
  diff <(counts "$DATABASE_URL") <(counts "$base_url/$restored") >&2 || true
  exit 1
fi
