"""What every benchmark needs: Django set up against a bench database, a fresh database,
and the process's peak memory."""

import os
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relocation.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # The test client calls the server "testserver".
    os.environ["ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def fresh_database(url: str) -> None:
    """Drop and create the database at `url`, then migrate it. Never point it at real data."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
