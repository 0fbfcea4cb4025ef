"""Settings for Relocation, read from the environment.

Development defaults work out of the box (SQLite file, DEBUG on). With DEBUG off,
the app refuses to start without a real SECRET_KEY.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)

# Not a secret: only ever used with DEBUG on, and refused below otherwise.
_DEV_SECRET_KEY = "django-insecure-development-only-key"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 40):
    raise ImproperlyConfigured("SECRET_KEY must be set to a random value of at least 40 characters when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")

INSTALLED_APPS = [
    "relocation.apps.RelocationAdminConfig",  # django.contrib.admin, for Administrators only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_filters",
    "django_countries",
    "import_export",
    "simple_history",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_tasks_db",
    "cases",
    "offers",
    "reports",
    # Last: its post_migrate hook needs every other app's permissions to exist.
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's, except that on SQLite the idle refresh alone never waits for the database.
    "accounts.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "accounts.middleware.PrivateResponsesMiddleware",
    "accounts.middleware.IdleTimeoutMiddleware",
    "accounts.middleware.AdministratorTwoFactorMiddleware",
    "accounts.middleware.AccessLogMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "relocation.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
            ],
        },
    },
]

WSGI_APPLICATION = "relocation.wsgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server and a worker share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
else:
    # The app's queries are short. PostgreSQL's JIT compiler, started by the planner's cost
    # estimate rather than the real work, spent ~560 ms compiling the worklist's 40 ms count
    # at 100,000 persons (bench/load_test.sh): off for the app's connections.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Argon2id, the hasher Django's documentation recommends, at OWASP's parameters (19 MiB a
# hash, ~35 ms of one core: accounts/hashers.py says why not Django's 100 MiB). PBKDF2 and
# Django's own Argon2 parameters stay verifiable; each is rehashed at the next login.
PASSWORD_HASHERS = [
    "accounts.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    # Counts failed logins per username and address (see AXES_* below) before Django checks the password.
    "axes.backends.AxesStandaloneBackend",
    # Django's, reading a user's permissions, groups and sites in one query (accounts/backends.py).
    "accounts.backends.ModelBackend",
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

SESSION_COOKIE_HTTPONLY = True
# Idle timeout: a session unused this long ends (accounts.middleware.IdleTimeoutMiddleware
# pushes the expiry forward as the user works).
SESSION_IDLE_SECONDS = env_int("SESSION_IDLE_SECONDS", 30 * 60)
SESSION_COOKIE_AGE = SESSION_IDLE_SECONDS
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Django's own Content-Security-Policy: scripts only from this site, never inline.
# Inline styles stay allowed: the admin and server-rendered SVG charts carry some.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# Administrators must confirm a one-time code (TOTP) after their password; on by
# default whenever DEBUG is off, and they enrol on their first login.
REQUIRE_ADMIN_2FA = env_bool("REQUIRE_ADMIN_2FA", not DEBUG)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Relocation")

# django-axes: throttle logins per username *and* address, so that one shared office
# address cannot lock everyone out, and a locked pair cools off by itself.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# Change reasons are the workflow's reasons, which can be long: store them as text
# (simple-history's default column holds 100 characters, too few on PostgreSQL).
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True
# A record's history is read in the admin, never written back (cases.admin_records.HistoryAdmin).
SIMPLE_HISTORY_REVERT_DISABLED = True

# django-import-export: only users with the import permission may import.
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "import"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Roster import (cases.importing): a larger file is refused with a clear message.
ROSTER_IMPORT_MAX_ROWS = env_int("ROSTER_IMPORT_MAX_ROWS", 200_000)
ROSTER_IMPORT_MAX_BYTES = env_int("ROSTER_IMPORT_MAX_BYTES", 50 * 1024 * 1024)
# The memory (address space) the process that reads an XLSX sheet may take
# (cases.xlsx_reader); a workbook that asks for more is refused.
ROSTER_IMPORT_XLSX_MEMORY_MB = env_int("ROSTER_IMPORT_XLSX_MEMORY_MB", 1024)
# A checked import waits this long for its confirmation; then its file is dropped.
ROSTER_IMPORT_CONFIRM_MINUTES = env_int("ROSTER_IMPORT_CONFIRM_MINUTES", 60)
# Days a check's or import's lists of errors and probable duplicates (names,
# registration numbers, births: on its page and in its CSV) are kept; the counts stay.
ROSTER_IMPORT_REPORT_DAYS = env_int("ROSTER_IMPORT_REPORT_DAYS", 7)
# A running check or import whose progress has not moved for this long is taken for one
# whose worker stopped (killed, restarted): the worker marks it failed and deletes its
# file. Generous: the largest file (ROSTER_IMPORT_MAX_ROWS) is imported in well under a
# minute on PostgreSQL (docs/deploy.md), an XLSX sheet is read in two minutes at the most
# (cases.importing), and on SQLite nothing is reported while the import writes.
ROSTER_IMPORT_STALLED_MINUTES = env_int("ROSTER_IMPORT_STALLED_MINUTES", 30)
# A job no worker has taken after this long (none running) is given up, its file deleted.
ROSTER_IMPORT_QUEUED_HOURS = env_int("ROSTER_IMPORT_QUEUED_HOURS", 24)

# Background jobs (roster imports): Django's tasks framework with django-tasks-db, whose
# worker (`manage.py db_worker`, started by `make run` and `make serve`) needs nothing
# but the database. TASKS_BACKEND=immediate runs each job inside its request instead.
_TASK_BACKENDS = {
    "database": "django_tasks_db.DatabaseBackend",
    "immediate": "django.tasks.backends.immediate.ImmediateBackend",
}
TASKS = {"default": {"BACKEND": _TASK_BACKENDS[env_str("TASKS_BACKEND", "database")], "QUEUES": ["default"]}}

# Case documents (cases.storage): stored outside STATIC_ROOT and every served folder,
# and sent only by the download view, which checks that the user may see the case.
PRIVATE_MEDIA_ROOT = Path(env_str("PRIVATE_MEDIA_ROOT", str(BASE_DIR / "var" / "documents")))
DOCUMENT_MAX_BYTES = env_int("DOCUMENT_MAX_BYTES", 10 * 1024 * 1024)
