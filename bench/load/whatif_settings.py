"""The app's settings with one change for a what-if run of the load test (never for serving):
BENCH_PASSWORD_HASHER names the hasher that new password hashes use (django-argon2: Argon2
at Django's own parameters, 100 MiB and 8 lanes; pbkdf2; scrypt). The app's own hasher
stays accepted, so existing hashes still verify."""

import os

from relocation.settings import *  # noqa: F403

_CHOICES = {
    "django-argon2": "django.contrib.auth.hashers.Argon2PasswordHasher",
    "pbkdf2": "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "scrypt": "django.contrib.auth.hashers.ScryptPasswordHasher",
}
PASSWORD_HASHERS = [
    _CHOICES[os.environ["BENCH_PASSWORD_HASHER"]],
    "accounts.hashers.Argon2idHasher",
]
