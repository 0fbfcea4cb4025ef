"""The app's settings with one change for a what-if run of the load test (never for serving):
BENCH_PASSWORD_HASHER names the hasher that new password hashes use (argon2 or scrypt);
PBKDF2 stays accepted, so existing hashes still verify (and are upgraded at login)."""

import os

from relocation.settings import *  # noqa: F403

_CHOICES = {
    "argon2": "django.contrib.auth.hashers.Argon2PasswordHasher",
    "scrypt": "django.contrib.auth.hashers.ScryptPasswordHasher",
}
PASSWORD_HASHERS = [
    _CHOICES[os.environ["BENCH_PASSWORD_HASHER"]],
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
