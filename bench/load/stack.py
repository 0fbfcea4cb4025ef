"""The stack the load test and the restart check run against, all throwaway and on loopback:

- a PostgreSQL cluster of its own (initdb in a mktemp folder under /tmp, as the postgres
  user when run as root; fsync off, but every commit written to the WAL before it is
  answered), stopped and removed at the end;
- the demo data of `seed_demo --persons N`, made once and then restored from a pg_dump
  cached under /tmp, keyed by everything that decides what seed_demo writes;
- gunicorn with the production settings (DEBUG off, a generated SECRET_KEY,
  ALLOWED_HOSTS=127.0.0.1, REQUIRE_ADMIN_2FA at its default), as `make serve` runs it.

Nothing here touches the development cluster on 5433 or any database it did not create.
"""
# ruff: noqa: S603 - the commands run are this module's own, with fixed arguments

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
CACHE_DIR = Path(os.environ.get("BENCH_CACHE_DIR", "/tmp/relocation-bench-cache"))  # noqa: S108 - made 0700
DB_NAME = "relocation"
# The browser's side of a TLS-terminating proxy: gunicorn trusts X-Forwarded-Proto from
# 127.0.0.1 (--forwarded-allow-ips), so Django sees HTTPS, as behind nginx in production.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def uptime() -> str:
    """The load average, to be printed beside every figure measured on a shared machine."""
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return f"load average: {one}, {five}, {fifteen}"


def _proc_cpu(pid: int) -> tuple[float, float]:
    """(own CPU seconds, CPU seconds of its children that ended) of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a server process, its live children and its ended ones."""
    own, ended = _proc_cpu(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        children = []
    return own + ended + sum(_proc_cpu(child)[0] for child in children)


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy since boot (every process, ours or not)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not found:
        sys.exit("PostgreSQL server binaries are missing: apt-get install postgresql (see .ci/run).")
    return found[-1]


class Cluster:
    """A throwaway PostgreSQL cluster under /tmp on 127.0.0.1:`port`."""

    def __init__(self, port: int, settings: list[str] | None = None) -> None:
        """`settings`: extra server settings ("jit=off"); otherwise PostgreSQL's defaults,
        but for durability, which throwaway data does not need."""
        if not port_free(port):
            sys.exit(f"Port {port} is taken: choose another with --pg-port.")
        self.port = port
        self.bin = _pg_bin()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.dir = Path(tempfile.mkdtemp(prefix="relocation-loadpg.", dir="/tmp"))
        self.data = self.dir / "data"
        self.logfile = self.dir / "server.log"
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", quiet=True)
        options = " ".join(
            [
                f"-p {port} -k {self.data} -c listen_addresses=127.0.0.1",
                # Throwaway data on a machine that does not crash: no fsync. But commits are
                # written to the WAL before they are answered (synchronous_commit stays on), as
                # in production: otherwise a crash (pg_restart_check's restart -m immediate)
                # loses commits already answered, by PostgreSQL's design, not the app's fault.
                "-c fsync=off",
                "-c shared_buffers=256MB -c max_connections=200",
                *(f"-c {setting}" for setting in settings or []),
            ]
        )
        self.settings = list(settings or [])
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-o", options, "start", quiet=True)
        self.url = f"postgres://postgres@127.0.0.1:{port}/{DB_NAME}"
        self.admin_url = f"postgres://postgres@127.0.0.1:{port}/postgres"

    def _pg(self, tool: str, *args: str, quiet: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_postgres, str(self.bin / tool), *args],
            check=True,
            text=True,
            stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
            # Started server processes inherit this: never a pipe nobody reads.
            stderr=subprocess.DEVNULL if tool == "pg_ctl" else None,
        )

    def restart(self, mode: str) -> None:
        """pg_ctl restart -m fast|immediate; returns once the server accepts connections again.
        pg_ctl restarts with the options of the last start (postmaster.opts)."""
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-m", mode, "-w", "restart", quiet=True)

    @property
    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def client_tool(self, tool: str) -> str:
        return str(self.bin / tool)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            subprocess.run(
                [*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )
        shutil.rmtree(self.dir, ignore_errors=True)


def _sql(url: str, sql: str, params: Any = None, *, autocommit: bool = False) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=autocommit) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


# A what-if run (run_load.py --password-hasher) changes one setting through this module.
WHATIF: dict[str, str] = {}


def whatif_password_hasher(name: str) -> None:
    WHATIF.update(
        DJANGO_SETTINGS_MODULE="whatif_settings",
        BENCH_PASSWORD_HASHER=name,
        PYTHONPATH=f"{Path(__file__).resolve().parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    )


def manage(url: str, *args: str, env: dict[str, str] | None = None, capture: bool = False) -> str:
    """Run manage.py against `url` (development settings: migrate and seed_demo need no web server)."""
    full_env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", **WHATIF, **(env or {})}
    result = subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=ROOT,
        env=full_env,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
    )
    return result.stdout or ""


# What decides the rows `seed_demo --persons N` writes, besides the schema.
DEMO_CODE = ("accounts/management/commands/seed_demo.py", "cases/demo.py", "offers/demo.py")


def _demo_key(persons: int, pg_major: str) -> str:
    digest = hashlib.sha256(f"{persons}:{pg_major}".encode())
    for name in DEMO_CODE:
        path = ROOT / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()[:12]


def migrations_on_disk() -> dict[str, str]:
    """Each migration file ("app/0001_initial") with a digest of its text."""
    return {
        f"{path.parent.parent.name}/{path.stem}": hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in sorted(ROOT.glob("*/migrations/0*.py"))
    }


def _state_key(migrations: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(migrations, sort_keys=True).encode()).hexdigest()[:12]


def _usable_dumps(persons: int, demo_key: str, on_disk: dict[str, str]) -> list[tuple[int, Path]]:
    """Cached dumps of the same demo code whose migrations are all still on disk, unchanged:
    `migrate` brings them forward. Most migrations first."""
    found = []
    for dump in CACHE_DIR.glob(f"seed_demo-{persons}-{demo_key}-*.dump"):
        sidecar = dump.with_suffix(".json")
        if not sidecar.exists():
            continue
        applied = json.loads(sidecar.read_text())["migrations"]
        if all(on_disk.get(name) == digest for name, digest in applied.items()):
            found.append((len(applied), dump))
    return sorted(found, reverse=True)


def _save_dump(cluster: "Cluster", persons: int, demo_key: str, on_disk: dict[str, str]) -> Path:
    """pg_dump the database into the cache, with the migrations it holds beside it."""
    applied = {f"{app}/{name}" for app, name in _sql(cluster.url, "SELECT app, name FROM django_migrations")}
    state = {name: digest for name, digest in on_disk.items() if name in applied}
    dump = CACHE_DIR / f"seed_demo-{persons}-{demo_key}-{_state_key(state)}.dump"
    CACHE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = dump.with_suffix(".partial")
    subprocess.run(
        [cluster.client_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={partial}", cluster.url],
        check=True,
    )
    dump.with_suffix(".json").write_text(json.dumps({"migrations": state}, indent=1))
    partial.rename(dump)
    # Keep the newest dump of each demo code only.
    for stale in CACHE_DIR.glob(f"seed_demo-{persons}-{demo_key}-*.dump"):
        if stale != dump:
            stale.unlink()
            stale.with_suffix(".json").unlink(missing_ok=True)
    return dump


def prepare_data(cluster: Cluster, persons: int, demo_password: str, *, fresh: bool = False) -> dict[str, Any]:
    """Create the database with the demo data of `persons` persons; figures of how it was made.

    The data is always seed_demo's: made by it in this run, or restored from a pg_dump of a
    database it made earlier with the same demo code. A dump made before newer migrations
    were added is brought forward by `migrate`, as a deployed database would be, and cached
    again; a dump whose migrations changed or disappeared is not used.
    """
    _sql(cluster.admin_url, f'CREATE DATABASE "{DB_NAME}"', autocommit=True)
    demo_key = _demo_key(persons, cluster.bin.parent.name)
    on_disk = migrations_on_disk()
    usable = [] if fresh else _usable_dumps(persons, demo_key, on_disk)
    figures: dict[str, Any] = {"persons_requested": persons}
    env = {"DEMO_PASSWORD": demo_password}
    if usable:
        held, dump = usable[0]
        log(f"Restoring the cached seed_demo data ({dump.name}) …")
        started = time.perf_counter()
        subprocess.run(
            [cluster.client_tool("pg_restore"), "--no-owner", "--jobs=2", f"--dbname={cluster.url}", str(dump)],
            check=True,
        )
        figures["restore_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        manage(cluster.url, "migrate", "--no-input", "--verbosity", "0")
        figures["migrated_forward"] = len(on_disk) - held
        figures["migrate_s"] = round(time.perf_counter() - started, 1)
        figures["source"] = f"cached pg_dump of seed_demo ({dump.name})"
        # The roster is there: seed_demo adds nothing, but sets the demo users' password
        # to this run's DEMO_PASSWORD.
        manage(cluster.url, "seed_demo", "--persons", str(persons), env=env)
        if len(on_disk) != held:
            _save_dump(cluster, persons, demo_key, on_disk)
    else:
        log(f"Seeding {persons} persons with seed_demo (slow once; then cached under {CACHE_DIR}) …")
        started = time.perf_counter()
        manage(cluster.url, "migrate", "--no-input", "--verbosity", "0")
        figures["migrate_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        figures["seed_demo_output"] = manage(
            cluster.url, "seed_demo", "--persons", str(persons), env=env, capture=True
        ).splitlines()[0]
        figures["seed_demo_s"] = round(time.perf_counter() - started, 1)
        figures["seed_load"] = uptime()
        figures["source"] = "seed_demo, this run"
        _save_dump(cluster, persons, demo_key, on_disk)
    started = time.perf_counter()
    _sql(cluster.url, "VACUUM ANALYZE", autocommit=True)
    figures["analyze_s"] = round(time.perf_counter() - started, 1)
    ((persons_now, cases_now),) = _sql(
        cluster.url, "SELECT (SELECT count(*) FROM cases_person), (SELECT count(*) FROM cases_case)"
    )
    figures.update(persons=persons_now, cases=cases_now)
    return figures


def server_env(database_url: str, port: int) -> dict[str, str]:
    """The production settings, as docs/deploy.md lists them, for a server on loopback."""
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "REQUIRE_ADMIN_2FA", "CONN_MAX_AGE"}}
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=database_url,
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
        TASKS_BACKEND="database",
    )
    env.update(WHATIF)
    return env


class Server:
    """gunicorn serving relocation.wsgi with DEBUG off, as `make serve` does."""

    def __init__(
        self,
        database_url: str,
        port: int,
        *,
        worker_class: str,
        workers: int,
        threads: int,
        logdir: Path,
    ) -> None:
        if not port_free(port):
            sys.exit(f"Port {port} is taken: choose another with --port.")
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.env = server_env(database_url, port)
        self.logfile = logdir / f"gunicorn-{worker_class}-{workers}x{threads}.log"
        self.command = [
            str(VENV_BIN / "gunicorn"),
            "relocation.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            worker_class,
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--forwarded-allow-ips",
            "127.0.0.1",
            "--no-control-socket",
            "--access-logfile",
            str(logdir / "access.log"),
        ]
        self.settings = {"worker_class": worker_class, "workers": workers, "threads": threads}
        # What `make serve` runs first: the deploy checks and the static files (whitenoise's manifest).
        subprocess.run(
            [str(PYTHON), "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [str(PYTHON), "manage.py", "collectstatic", "--no-input", "--verbosity", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        self._log = open(self.logfile, "w")  # noqa: SIM115  (closed in close())
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited with {self.process.returncode}: see {self.logfile}")
            try:
                request = urllib.request.Request(f"{self.base}/healthz", headers=PROXY_HEADERS)  # noqa: S310
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - http://127.0.0.1
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        sys.exit(f"gunicorn did not answer /healthz within {timeout:.0f} s: see {self.logfile}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        self._log.flush()
        return self.logfile.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)  # gunicorn's graceful stop of its own workers
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)  # its own session: gunicorn and its workers
                self.process.wait(timeout=10)
        self._log.close()


@contextlib.contextmanager
def stopped_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into SystemExit, so that `finally` blocks stop what was started."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def sample_targets(url: str, *, seed: float = 0.42, hot_cases: int = 25) -> dict[str, Any]:
    """What the virtual users look for, drawn from the database before the run."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("SELECT setseed(%s)", [seed])

        def column(sql: str) -> list[Any]:
            return [row[0] for row in conn.execute(sql).fetchall()]

        targets = {
            "case_ids": column("SELECT id FROM cases_case ORDER BY random() LIMIT 2000"),
            "person_ids": column("SELECT id FROM cases_person ORDER BY random() LIMIT 2000"),
            "case_nos": column("SELECT case_no FROM cases_case ORDER BY random() LIMIT 300"),
            "registration_nos": column("SELECT registration_no FROM cases_person ORDER BY random() LIMIT 300"),
            # A name as staff type it: "Family Given", or one of the two.
            "names": column(
                "SELECT CASE WHEN random() < 0.5 THEN family_name || ' ' || given_name "
                "WHEN random() < 0.5 THEN family_name ELSE given_name END "
                "FROM cases_person ORDER BY random() LIMIT 300"
            ),
            # Few enough that two users sometimes edit the same case at once.
            "edit_case_ids": column(f"SELECT id FROM cases_case ORDER BY random() LIMIT {int(hot_cases)}"),
            "statuses": column("SELECT DISTINCT status FROM cases_case ORDER BY 1"),
        }
    return targets


def versions(url: str, table: str, ids: list[int]) -> dict[str, int]:
    return {str(pk): v for pk, v in _sql(url, f"SELECT id, version FROM {table} WHERE id = ANY(%s)", [ids])}


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))
