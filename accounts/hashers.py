"""Password hashing: Argon2id at OWASP's parameters."""

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idHasher(Argon2PasswordHasher):
    """Argon2id with 19 MiB of memory, 2 passes and 1 lane: the first configuration of
    OWASP's Password Storage Cheat Sheet (~35 ms of one core here).

    Django's own parameters (100 MiB, 2 passes, 8 lanes) cost ~0.29 CPU-seconds a login on
    this project's 2-core servers, so fifty staff arriving within a few seconds kept both
    cores busy for ~7 s and every page of that window waited (bench/load_test.sh). These
    still make each guess cost an attacker 19 MiB of memory for the whole hash, on top of
    the login throttling (axes) and, for Administrators, a second factor.

    Same algorithm name as Django's hasher, so hashes made with its parameters still verify
    and are rehashed with these at the user's next login (must_update compares them)."""

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
