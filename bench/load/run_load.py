"""The bounded load test of issue #7 (run it through bench/load_test.sh).

Starts its own PostgreSQL cluster and gunicorn (production settings) on loopback, loads
the demo data of `seed_demo --persons N` (cached as a pg_dump after the first run), then
runs locust headless (bench/load/locustfile.py) for a fixed time and prints a JSON
summary. Exits 1 when a request failed, the overall p95 is at or above --p95-ms, an edit
was lost, or a login was throttled; 2 when the stack could not be set up.

Several --gunicorn settings run one after the other against the same database (to compare
them); the default is the one chosen for 2 cores.
"""
# ruff: noqa: S603 - the commands run are this script's own, with fixed arguments

import argparse
import csv
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import Browser
from stack import (
    ROOT,
    VENV_BIN,
    Cluster,
    Server,
    _sql,
    log,
    machine_busy_seconds,
    prepare_data,
    sample_targets,
    stopped_on_signals,
    tree_cpu_seconds,
    uptime,
    versions,
    whatif_password_hasher,
    write_json,
)

LOCUST_REQUIREMENT = "locust==2.47.0"
# What `make serve` runs (gunicorn's sync workers, WORKERS=3); it also did best of the
# settings compared on the 2-core machine (docs/load-and-faults.md).
DEFAULT_GUNICORN = "sync:3:1"
USERNAME = "staff"  # the Staff demo login of seed_demo (REQUIRE_ADMIN_2FA concerns Administrators only)


def _gunicorn_setting(text: str) -> tuple[str, int, int]:
    match = re.fullmatch(r"(sync|gthread):(\d+):(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError("CLASS:WORKERS:THREADS, e.g. gthread:2:4 or sync:5:1")
    return match[1], int(match[2]), int(match[3])


def _require_locust() -> None:
    try:
        import locust  # noqa: F401
    except ImportError:
        sys.exit(
            "locust is not installed in .venv. Install it with:\n"
            f"    .venv/bin/pip install '{LOCUST_REQUIREMENT}'\n"
            "(it is a development tool for this load test only, not a dependency of the app)."
        )


def _float(value: str) -> float:
    try:
        return round(float(value), 1)
    except ValueError:
        return 0.0


def _read_stats(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """locust's _stats.csv: per-endpoint figures and the aggregated row."""
    endpoints: dict[str, Any] = {}
    total: dict[str, Any] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            figures = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": _float(row["Requests/s"]),
                "p50_ms": _float(row["50%"]),
                "p95_ms": _float(row["95%"]),
                "p99_ms": _float(row["99%"]),
                "max_ms": _float(row["Max Response Time"]),
            }
            if row["Name"] == "Aggregated":
                total = figures
            else:
                endpoints[f"{row['Type']} {row['Name']}".replace("GET GET ", "GET ").replace("POST POST ", "POST ")] = (
                    figures
                )
    return total, endpoints


def _read_failures(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open() as f:
        return [
            {"request": f"{r['Method']} {r['Name']}", "error": r["Error"][:300], "occurrences": r["Occurrences"]}
            for r in csv.DictReader(f)
        ]


def _percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of `values`."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


def _figures(samples: list[list[Any]], seconds: float) -> dict[str, Any]:
    times = [s[2] for s in samples]
    return {
        "requests": len(samples),
        "failures": sum(1 for s in samples if not s[3]),
        "rps": round(len(samples) / seconds, 1) if seconds else 0.0,
        "p50_ms": _percentile(times, 50),
        "p95_ms": _percentile(times, 95),
        "p99_ms": _percentile(times, 99),
        "max_ms": round(max(times), 1) if times else 0.0,
    }


def _exact(samples: list[list[Any]]) -> dict[str, Any]:
    """Overall and per-endpoint figures from every request's own time; and the same without
    the logins, and after the last user had logged in (the steady state), for the reader."""
    if not samples:
        return {"overall": _figures([], 0), "endpoints": {}}
    first = min(s[0] for s in samples)
    last = max(s[0] + s[2] / 1000 for s in samples)
    seconds = last - first
    names = sorted({s[1] for s in samples})
    logins = [s for s in samples if s[1] == "POST /accounts/login/"]
    all_in = max((s[0] + s[2] / 1000 for s in logins), default=first)
    pages = [s for s in samples if "/accounts/login/" not in s[1]]
    steady = [s for s in samples if s[0] >= all_in]
    return {
        "overall": _figures(samples, seconds),
        "endpoints": {name: _figures([s for s in samples if s[1] == name], seconds) for name in names},
        "without_login_requests": _figures(pages, seconds),
        "after_every_user_logged_in": {
            "from_s": round(all_in - first, 1),
            **_figures(steady, last - all_in),
        },
    }


def _warm_up(port: int, password: str, targets: dict[str, Any]) -> None:
    """A few requests before the measured run (not counted): code and templates loaded in
    each worker, database connections opened. One login (one password hash)."""
    browser = Browser(port)
    answer = browser.login(USERNAME, password)
    if answer.status != 302:
        sys.exit(f"Warm-up login failed: {answer.status} {answer.error}")
    paths = ["/", "/cases/", f"/cases/?q={targets['case_nos'][0]}", f"/cases/?q={targets['names'][0].split()[0]}"]
    paths += [f"/cases/{pk}/" for pk in targets["case_ids"][-5:]]
    paths += [f"/cases/persons/{pk}/" for pk in targets["person_ids"][-5:]]
    for _ in range(2):
        for path in paths:
            browser.get(path)
    browser.close()


def _one_run(
    args: argparse.Namespace,
    cluster: Cluster,
    setting: tuple[str, int, int],
    password: str,
    targets: dict[str, Any],
    workdir: Path,
) -> dict[str, Any]:
    worker_class, workers, threads = setting
    label = f"{worker_class}-{workers}x{threads}"
    rundir = workdir / label
    rundir.mkdir()
    targets_file = rundir / "targets.json"
    write_json(targets_file, targets)
    before = versions(cluster.url, "cases_case", targets["edit_case_ids"])
    (history_before,) = _sql(
        cluster.url,
        "SELECT count(*) FROM cases_historicalcase WHERE id = ANY(%s)",
        [targets["edit_case_ids"]],
    )[0]
    log(f"gunicorn {label}: starting")
    server = Server(cluster.url, args.port, worker_class=worker_class, workers=workers, threads=threads, logdir=rundir)
    locust: subprocess.Popen[bytes] | None = None
    try:
        _warm_up(args.port, password, targets)
        env = {
            **os.environ,
            "LOAD_TARGETS": str(targets_file),
            "LOAD_PASSWORD": password,
            "LOAD_USERNAMES": USERNAME,
            "LOAD_OUTCOMES": str(rundir / "outcomes.json"),
            "LOAD_WAIT": args.wait,
        }
        command = [
            str(VENV_BIN / "locust"),
            "-f",
            str(Path(__file__).resolve().parent / "locustfile.py"),
            "--headless",
            "-u",
            str(args.users),
            "-r",
            str(args.spawn_rate),
            "-t",
            args.duration,
            "--host",
            f"http://127.0.0.1:{args.port}",
            "--csv",
            str(rundir / "locust"),
            "--only-summary",
            "--stop-timeout",
            "10",
            "--loglevel",
            "WARNING",
        ]
        load_before = uptime()
        log(f"gunicorn {label}: locust {args.users} users, {args.spawn_rate}/s, {args.duration} ({load_before})")
        started = time.perf_counter()
        cpu_before = (
            tree_cpu_seconds(server.pid),
            tree_cpu_seconds(cluster.postmaster_pid),
            machine_busy_seconds(),
        )
        with open(rundir / "locust.log", "w") as locust_log:
            locust = subprocess.Popen(command, cwd=ROOT, env=env, stdout=locust_log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(locust.pid, 0)
            locust.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        gunicorn_cpu = tree_cpu_seconds(server.pid) - cpu_before[0]
        postgres_cpu = tree_cpu_seconds(cluster.postmaster_pid) - cpu_before[1]
        machine_cpu = machine_busy_seconds() - cpu_before[2]
        load_after = uptime()
        server_log = server.log_text()
    finally:
        if locust is not None and locust.returncode is None and locust.poll() is None:
            locust.terminate()  # interrupted: locust stops its users and exits
            locust.wait(timeout=30)
        server.close()

    stats_file = rundir / "locust_stats.csv"
    if not stats_file.exists() or not (rundir / "outcomes.json").exists():
        sys.exit(f"locust wrote no statistics: see {rundir / 'locust.log'}")
    locust_total, _ = _read_stats(stats_file)
    outcomes = json.loads((rundir / "outcomes.json").read_text())
    exact = _exact(outcomes.pop("samples"))
    total = exact["overall"]

    # No lost update: each save answered "saved" bumped its case's version by exactly one
    # and left one change-history row; refused saves changed nothing. A save still
    # unanswered when locust stopped its users may have been saved or not.
    after = versions(cluster.url, "cases_case", targets["edit_case_ids"])
    saved = outcomes.pop("saved_per_case", {})
    unanswered = outcomes.pop("unanswered_per_case", {})
    version_mismatches = {
        pk: {
            "version_delta": after[pk] - before[pk],
            "saves_answered": saved.get(pk, 0),
            "unanswered": unanswered.get(pk, 0),
        }
        for pk in after
        if not saved.get(pk, 0) <= after[pk] - before[pk] <= saved.get(pk, 0) + unanswered.get(pk, 0)
    }
    (history_after,) = _sql(
        cluster.url,
        "SELECT count(*) FROM cases_historicalcase WHERE id = ANY(%s)",
        [targets["edit_case_ids"]],
    )[0]
    history_added = history_after - history_before
    version_added = sum(after[pk] - before[pk] for pk in after)
    (throttled,) = _sql(cluster.url, "SELECT count(*) FROM axes_accessattempt WHERE failures_since_start > 0")[0]
    checks = {
        "versions_match_saves": not version_mismatches,
        "version_mismatches": version_mismatches,
        "saves_unanswered_at_stop": sum(unanswered.values()),
        "history_rows_added": history_added,
        "history_rows_match_versions": history_added == version_added,
        "failed_login_records": throttled,
        "server_log_tracebacks": server_log.count("Traceback (most recent call last)"),
    }
    why_not = []
    failures = max(total["failures"], locust_total.get("failures", 0))
    if failures:
        why_not.append(f"{failures} failed requests")
    if total.get("p95_ms", 1e9) >= args.p95_ms:
        why_not.append(f"overall p95 {total.get('p95_ms')} ms >= {args.p95_ms} ms")
    if not checks["versions_match_saves"] or not checks["history_rows_match_versions"]:
        why_not.append("an answered save does not match the saved versions or history (lost update)")
    if throttled:
        why_not.append("login throttling recorded failed logins")
    if checks["server_log_tracebacks"]:
        why_not.append("tracebacks in the server log")
    return {
        "gunicorn": {
            **server.settings,
            "command": " ".join(server.command[:1] + ["relocation.wsgi", *server.command[2:]]),
        },
        "load_before": load_before,
        "load_after": load_after,
        "wall_s": round(wall, 1),
        # Where the machine's CPU went during the run: 2 cores give 2 CPU-seconds a second.
        "cpu_s": {
            "available": round(wall * (os.cpu_count() or 1), 1),
            "machine_busy": round(machine_cpu, 1),
            "gunicorn": round(gunicorn_cpu, 1),
            "postgres": round(postgres_cpu, 1),
            "locust": round(usage.ru_utime + usage.ru_stime, 1),
            "other_processes": round(machine_cpu - gunicorn_cpu - postgres_cpu - usage.ru_utime - usage.ru_stime, 1),
        },
        **total,
        "endpoints": exact["endpoints"],
        "without_login_requests": exact["without_login_requests"],
        "after_every_user_logged_in": exact["after_every_user_logged_in"],
        "failure_kinds": _read_failures(rundir / "locust_failures.csv"),
        "edits": outcomes,
        "checks": checks,
        "passed": not why_not,
        "why_not": why_not,
        "files": str(rundir),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--wait", default="1,3", help="think time between a user's clicks, min,max seconds")
    parser.add_argument("--p95-ms", type=float, default=500)
    parser.add_argument(
        "--gunicorn",
        type=_gunicorn_setting,
        action="append",
        help=f"CLASS:WORKERS:THREADS, repeatable to compare (default {DEFAULT_GUNICORN})",
    )
    parser.add_argument("--port", type=int, default=8799, help="gunicorn's port on 127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=54339, help="the throwaway cluster's port")
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL server setting for the throwaway cluster, e.g. jit=off (repeatable)",
    )
    parser.add_argument(
        "--password-hasher",
        choices=["django-argon2", "pbkdf2", "scrypt"],
        help="what-if: hash passwords with this instead of the app's Argon2id at OWASP's parameters (a settings"
        " module of bench/load changes only PASSWORD_HASHERS); the figures are then not the app's as it is",
    )
    parser.add_argument("--fresh-data", action="store_true", help="run seed_demo again instead of the cached dump")
    parser.add_argument(
        "--prepare-only", action="store_true", help="only make (or refresh) the cached demo data, then stop"
    )
    parser.add_argument("--keep", type=Path, help="copy locust's CSV files and the logs to this folder")
    args = parser.parse_args()
    settings = args.gunicorn or [_gunicorn_setting(DEFAULT_GUNICORN)]
    _require_locust()
    if args.password_hasher:
        whatif_password_hasher(args.password_hasher)

    summary: dict[str, Any] = {
        "test": {
            "users": args.users,
            "spawn_rate": args.spawn_rate,
            "duration": args.duration,
            "think_time_s": args.wait,
            "p95_target_ms": args.p95_ms,
            "login": f"{USERNAME} (Staff), each virtual user logs in once through the form",
            "postgresql_settings": args.pg_setting or "defaults (fsync off)",
            "what_if_password_hasher": args.password_hasher or "no: the app's settings (Argon2id, 19 MiB)",
        },
        "machine": {"cores": os.cpu_count(), "load_at_start": uptime()},
    }
    password = secrets.token_urlsafe(16)
    workdir = Path(tempfile.mkdtemp(prefix="relocation-load.", dir="/tmp"))
    cluster = None
    try:
        with stopped_on_signals():
            log(f"PostgreSQL: a throwaway cluster on 127.0.0.1:{args.pg_port}")
            cluster = Cluster(args.pg_port, args.pg_setting)
            summary["data"] = prepare_data(cluster, args.persons, password, fresh=args.fresh_data)
            if args.prepare_only:
                print(json.dumps(summary["data"], indent=2))
                return 0
            targets = sample_targets(cluster.url)
            summary["runs"] = [_one_run(args, cluster, s, password, targets, workdir) for s in settings]
    finally:
        if cluster is not None:
            cluster.close()
        if args.keep:
            shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    summary["machine"]["load_at_end"] = uptime()
    summary["passed"] = all(run["passed"] for run in summary["runs"])
    for run in summary["runs"]:
        run.pop("files", None)
    print(json.dumps(summary, indent=2))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
