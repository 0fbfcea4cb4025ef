"""Settings come from the environment; production refuses an unsafe start."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRINT_ENGINE = (
    "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
)


def _start(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL"}}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            PRINT_ENGINE,
        ],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "relocation.settings", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_with_debug_off_it_refuses_to_start_without_a_secret_key():
    result = _start(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_with_debug_off_it_refuses_the_development_key():
    result = _start(DEBUG="false", SECRET_KEY="django-insecure-development-only-key")
    assert result.returncode != 0


def test_with_debug_off_and_a_real_key_it_starts():
    result = _start(DEBUG="false", SECRET_KEY="x" * 50, ALLOWED_HOSTS="relocation.example.org")
    assert result.returncode == 0, result.stderr


def test_without_database_url_it_uses_an_sqlite_file_and_with_one_postgresql():
    assert _start().stdout.strip() == "django.db.backends.sqlite3"
    assert _start(DATABASE_URL="postgres://u:p@127.0.0.1:5432/x").stdout.strip() == "django.db.backends.postgresql"


def test_production_settings_pass_the_deploy_check():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            # The browser tests allow async-unsafe calls in this process; production does not.
            **{k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}},
            "DEBUG": "false",
            "SECRET_KEY": "a-production-secret-key-" + "x" * 40,
            "ALLOWED_HOSTS": "relocation.example.org",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
