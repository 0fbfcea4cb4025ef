"""PostgreSQL restarts under load: the app recovers by itself and leaves no partial write.

    .venv/bin/python bench/pg_restart_check.py [--persons 100000] [--writers 4] [--phase 12]
        [--recover-within 5] [--gunicorn sync:3:1] [--port 8798] [--pg-port 54338]

Starts the same throwaway stack as bench/load_test.sh (its own PostgreSQL cluster under
/tmp, the cached seed_demo data, gunicorn with DEBUG off) and puts a steady load on it
through the real pages: writers logged in as the Staff demo user move cases through the
workflow (registered → on hold → back, each move a CaseStatusChange row, the case row
and its history row) and edit case details (case row and history row, versioned); a
reader opens the home page and searches; a prober asks /healthz every 50 ms. Mid-run it
restarts PostgreSQL with `pg_ctl restart -m fast`, later with `-m immediate` (a crash:
recovery from the WAL), while gunicorn keeps running. It then checks:

(a) requests that failed during an outage failed cleanly: a 5xx with the generic error
    page (or /healthz's 503), never a traceback, a driver message, a dropped connection
    or a redirect to the login form;
(b) after PostgreSQL is back, requests succeed again within --recover-within seconds
    without gunicorn being restarted (same master and worker processes);
(c) no partial write: with SQL at the end, every case's status is the to-status of its
    last status change, changes chain (each from-status is the previous to-status), the
    hold bookkeeping and status dates agree, each case's and person's last history row
    matches the row, every version is in the history, nominations agree with their
    cases, departures marked departed relocated all their cases and persons; and each
    write this script made is there whole (answered "saved": exactly once; failed: at
    most once, whole).

Prints JSON figures and exits 1 when a check fails, 2 when the stack could not be set up.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "load"))

from browser import Answer, Browser
from stack import Cluster, Server, _sql, log, prepare_data, stopped_on_signals, uptime

USERNAME = "staff"
# What the generic error page (templates/500.html) says; no internals may show.
GENERIC_ERROR = "Something went wrong"
LEAKS = ("Traceback", "OperationalError", "psycopg", "InterfaceError", 'File "/', "django.db")


class Recorder:
    """Every answer of every thread, with when it was asked and answered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.answers: list[dict[str, Any]] = []
        self.writes: list[dict[str, Any]] = []

    def now(self) -> float:
        return time.monotonic() - self.start

    def add(self, who: str, what: str, asked: float, answer: Answer, ok: bool) -> None:
        entry = {
            "who": who,
            "what": what,
            "asked": asked,
            "answered": self.now(),
            "status": answer.status,
            "ok": ok,
            "ms": round(answer.ms, 1),
        }
        if not ok:
            entry["clean"], entry["why"] = _clean(what, answer)
        with self.lock:
            self.answers.append(entry)

    def write(self, **entry: Any) -> None:
        with self.lock:
            self.writes.append(entry)


def _clean(what: str, answer: Answer) -> tuple[bool, str]:
    """A failure is clean when it is a 5xx that shows the generic page (or healthz's 503)."""
    if answer.status == 0:
        return False, f"no HTTP answer ({answer.error})"
    leaked = [mark for mark in LEAKS if mark in answer.body]
    if leaked:
        return False, f"{answer.status} showing {', '.join(leaked)}"
    if what == "healthz" and answer.status == 503 and '"unreachable"' in answer.body:
        return True, "503 healthz"
    if answer.status >= 500 and GENERIC_ERROR in answer.body:
        return True, f"{answer.status} generic error page"
    if answer.status in (301, 302) and "/accounts/login/" in answer.location:
        return False, f"{answer.status} to the login form (session lost)"
    return False, f"unexpected {answer.status}"


class Worker(threading.Thread):
    def __init__(self, name: str, port: int, password: str, recorder: Recorder, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.port, self.password, self.recorder, self.stop = port, password, recorder, stop
        self.browser = Browser(port, timeout=30)

    def call(self, what: str, method: str, path: str, data: dict[str, str] | None = None, ok: Any = None) -> Answer:
        asked = self.recorder.now()
        answer = self.browser.request(method, path, data)
        good = ok(answer) if ok else answer.status == 200
        self.recorder.add(self.name, what, asked, answer, good)
        return answer

    def ensure_login(self) -> bool:
        if "sessionid" in self.browser.cookies:
            return True
        page = self.call("login form", "GET", "/accounts/login/")
        if page.status != 200:
            return False
        from htmlform import form_fields

        data = form_fields(page.body, action="/accounts/login/")
        data.update(username=USERNAME, password=self.password)
        answer = self.call("login", "POST", "/accounts/login/", data, ok=lambda a: a.status == 302)
        return answer.status == 302

    def pause(self) -> None:
        self.stop.wait(0.05)


class Writer(Worker):
    """Moves its own cases registered → on hold → registered, and edits their notes."""

    def __init__(self, *args: Any, cases: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cases = cases

    def run(self) -> None:
        from htmlform import form_fields

        turn = 0
        while not self.stop.is_set():
            if not self.ensure_login():
                self.pause()
                continue
            pk = self.cases[turn % len(self.cases)]
            turn += 1
            page = self.call("case page", "GET", f"/cases/{pk}/")
            if page.status == 200:
                self.move(pk, page, form_fields)
            self.pause()
            if self.stop.is_set():
                break
            form = self.call("edit form", "GET", f"/cases/{pk}/edit/")
            if form.status == 200:
                marker = f"restart-check edit {uuid.uuid4().hex}"
                data = form_fields(form.body, css_class="edit-form")
                data["notes"] = marker
                answer = self.call(
                    "edit save",
                    "POST",
                    f"/cases/{pk}/edit/",
                    data,
                    ok=lambda a: a.status == 302 or (a.status == 409 and 'id="conflict-title"' in a.body),
                )
                self.recorder.write(
                    kind="edit", case=pk, marker=marker, status=answer.status, confirmed=answer.status == 302
                )
            self.pause()

    def move(self, pk: int, page: Answer, form_fields: Any) -> None:
        seen = re.search(r'name="seen" value="([a-z_]+)"', page.body)
        if not seen:
            return
        targets = set(re.findall(r'name="to" value="([a-z_]+)"', page.body))
        status = seen[1]
        to = "on_hold" if status != "on_hold" else next(iter(targets - {"closed"}), "")
        if to not in targets:
            return
        reason = f"restart-check move {uuid.uuid4().hex}"
        data = form_fields(page.body, action=f"/cases/{pk}/transition/")
        data.update(to=to, reason=reason)
        answer = self.call("status change", "POST", f"/cases/{pk}/transition/", data, ok=lambda a: a.status == 302)
        confirmed = False
        if answer.status == 302:
            # The outcome is told on the case page the redirect leads to.
            after = self.call("case page", "GET", f"/cases/{pk}/")
            confirmed = after.status == 200 and "The case is now" in after.body
        self.recorder.write(kind="move", case=pk, reason=reason, to=to, status=answer.status, confirmed=confirmed)


class Reader(Worker):
    def __init__(self, *args: Any, words: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.words = words

    def run(self) -> None:
        turn = 0
        while not self.stop.is_set():
            if not self.ensure_login():
                self.pause()
                continue
            self.call("home", "GET", "/")
            self.call("search", "GET", f"/cases/?q={self.words[turn % len(self.words)]}")
            turn += 1
            self.pause()


class Prober(Worker):
    def run(self) -> None:
        while not self.stop.is_set():
            self.call("healthz", "GET", "/healthz")
            self.stop.wait(0.05)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return sorted(int(x) for x in f.read().split())
    except FileNotFoundError:
        return []


def _outage_figures(recorder: Recorder, mode: str, down: float, up: float, until: float) -> dict[str, Any]:
    """What happened around one restart: [down, up] is pg_ctl restart's run, `until` the next event."""
    # Every request answered from the moment the restart began (those in flight then too)
    # until the next restart began.
    answers = [a for a in recorder.answers if down <= a["answered"] < until]
    failed = [a for a in answers if not a["ok"]]
    unclean = [a for a in failed if not a["clean"]]
    after_up = [a for a in answers if a["asked"] >= up]
    last_failure = max((a["answered"] for a in after_up if not a["ok"]), default=None)
    first_health = min(
        (a["answered"] for a in after_up if a["what"] == "healthz" and a["ok"]),
        default=None,
    )
    first_page = min((a["answered"] for a in after_up if a["what"] != "healthz" and a["ok"]), default=None)
    reasons: dict[str, int] = {}
    for a in failed:
        reasons[a["why"]] = reasons.get(a["why"], 0) + 1
    return {
        "mode": mode,
        "pg_ctl_restart_s": round(up - down, 2),
        "requests_around": len(answers),
        "failed": len(failed),
        "failed_clean": len(failed) - len(unclean),
        "failed_unclean": len(unclean),
        "failures_by_kind": reasons,
        "failed_after_postgres_back": sum(1 for a in after_up if not a["ok"]),
        "healthz_ok_after_s": None if first_health is None else round(max(0.0, first_health - up), 2),
        "first_page_ok_after_s": None if first_page is None else round(max(0.0, first_page - up), 2),
        "all_ok_after_s": 0.0 if last_failure is None else round(last_failure - up, 2),
        "unclean_examples": unclean[:5],
        "failed_after_postgres_back_examples": [a for a in after_up if not a["ok"]][:5],
    }


# Each invariant: a name and a query counting the rows that break it (0 = holds).
INVARIANTS = {
    "case status is its last change's to-status": """
        SELECT count(*) FROM cases_case c
        JOIN LATERAL (SELECT to_status FROM cases_casestatuschange s WHERE s.case_id = c.id
                      ORDER BY s.id DESC LIMIT 1) last ON true
        WHERE c.status <> last.to_status""",
    "a case never moved is registered": """
        SELECT count(*) FROM cases_case c
        WHERE c.status <> 'registered'
          AND NOT EXISTS (SELECT 1 FROM cases_casestatuschange s WHERE s.case_id = c.id)""",
    "status changes chain (from-status = previous to-status)": """
        SELECT count(*) FROM (
            SELECT from_status, lag(to_status) OVER (PARTITION BY case_id ORDER BY id) AS previous
            FROM cases_casestatuschange) s
        WHERE s.previous IS NOT NULL AND s.from_status <> s.previous""",
    "first change starts from registered": """
        SELECT count(*) FROM (
            SELECT DISTINCT ON (case_id) from_status FROM cases_casestatuschange ORDER BY case_id, id) s
        WHERE s.from_status <> 'registered'""",
    "case 'in status since' is its last change's time": """
        SELECT count(*) FROM cases_case c
        JOIN LATERAL (SELECT changed_at FROM cases_casestatuschange s WHERE s.case_id = c.id
                      ORDER BY s.id DESC LIMIT 1) last ON true
        WHERE c.status_changed_at <> last.changed_at""",
    "on hold remembers the status it was held from, and only then": """
        SELECT count(*) FROM cases_case c
        JOIN LATERAL (SELECT from_status FROM cases_casestatuschange s WHERE s.case_id = c.id
                      ORDER BY s.id DESC LIMIT 1) last ON true
        WHERE (c.status = 'on_hold' AND c.status_before_hold <> last.from_status)
           OR (c.status <> 'on_hold' AND c.status_before_hold <> '')""",
    "each case's last history row matches the case": """
        SELECT count(*) FROM cases_case c
        JOIN LATERAL (SELECT * FROM cases_historicalcase h WHERE h.id = c.id
                      ORDER BY h.history_id DESC LIMIT 1) h ON true
        WHERE (c.status, c.version, c.notes, c.determination, c.needs_review, c.site_id,
               c.status_before_hold, coalesce(c.assigned_officer_id, 0))
           IS DISTINCT FROM
              (h.status, h.version, h.notes, h.determination, h.needs_review, h.site_id,
               h.status_before_hold, coalesce(h.assigned_officer_id, 0))""",
    "every case has a history": """
        SELECT count(*) FROM cases_case c
        WHERE NOT EXISTS (SELECT 1 FROM cases_historicalcase h WHERE h.id = c.id)""",
    "every version of a case is in its history": """
        SELECT count(*) FROM cases_case c
        JOIN LATERAL (SELECT count(DISTINCT version) AS n, min(version) AS low, max(version) AS high
                      FROM cases_historicalcase h WHERE h.id = c.id) h ON true
        WHERE h.high <> c.version OR h.n <> c.version - h.low + 1""",
    "each person's last history row matches the person": """
        SELECT count(*) FROM cases_person p
        JOIN LATERAL (SELECT * FROM cases_historicalperson h WHERE h.id = p.id
                      ORDER BY h.history_id DESC LIMIT 1) h ON true
        WHERE (p.version, p.residence_status, p.site_id, p.case_id, p.family_name, p.given_name)
           IS DISTINCT FROM
              (h.version, h.residence_status, h.site_id, h.case_id, h.family_name, h.given_name)""",
    "a nominated/accepted/scheduled/relocated case has one such nomination": """
        SELECT count(*) FROM cases_case c
        WHERE c.status IN ('nominated', 'accepted', 'departure_scheduled', 'relocated')
          AND (SELECT count(*) FROM offers_nomination n WHERE n.case_id = c.id AND n.status = c.status) <> 1""",
    "a live nomination's case is in its status (or on hold from it)": """
        SELECT count(*) FROM offers_nomination n JOIN cases_case c ON c.id = n.case_id
        WHERE n.status IN ('nominated', 'accepted', 'departure_scheduled', 'relocated')
          AND c.status <> n.status
          AND NOT (c.status = 'on_hold' AND c.status_before_hold = n.status)""",
    "a departed departure has its time, and relocated every nomination and case": """
        SELECT count(*) FROM offers_departure d
        WHERE d.status = 'departed' AND (
            d.departed_at IS NULL
            OR EXISTS (SELECT 1 FROM offers_nomination n JOIN cases_case c ON c.id = n.case_id
                       WHERE n.departure_id = d.id AND n.status NOT IN ('relocated', 'withdrawn', 'rejected',
                                                                        'declined')
                         AND (n.status <> 'relocated' OR c.status <> 'relocated'))
            OR EXISTS (SELECT 1 FROM offers_nomination n JOIN cases_case c ON c.id = n.case_id
                       WHERE n.departure_id = d.id AND n.status = 'relocated' AND c.status <> 'relocated'))""",
    "a departed departure relocated every person on its manifest": """
        SELECT count(*) FROM offers_departure d
        JOIN offers_departureperson dp ON dp.departure_id = d.id
        JOIN cases_person p ON p.id = dp.person_id
        WHERE d.status = 'departed' AND p.residence_status <> 'relocated'""",
    "a planned departure relocated nobody": """
        SELECT count(*) FROM offers_departure d
        JOIN offers_nomination n ON n.departure_id = d.id
        WHERE d.status = 'planned' AND n.status = 'relocated'""",
}


def _invariants(url: str) -> dict[str, int]:
    return {name: _sql(url, sql)[0][0] for name, sql in INVARIANTS.items()}


def _writes_whole(url: str, writes: list[dict[str, Any]]) -> dict[str, Any]:
    """Each write of this run, found in the database: whole, once, or not at all."""
    moves = [w for w in writes if w["kind"] == "move"]
    edits = [w for w in writes if w["kind"] == "edit"]
    change_rows = dict(
        _sql(
            url,
            "SELECT reason, count(*) FROM cases_casestatuschange WHERE reason = ANY(%s) GROUP BY reason",
            [[w["reason"] for w in moves]],
        )
    )
    move_history = dict(
        _sql(
            url,
            "SELECT history_change_reason, count(*) FROM cases_historicalcase "
            "WHERE history_change_reason = ANY(%s) GROUP BY 1",
            [[w["reason"] for w in moves]],
        )
    )
    edit_history = dict(
        _sql(
            url,
            "SELECT notes, count(*) FROM cases_historicalcase WHERE notes = ANY(%s) AND history_type = '~' "
            "AND history_change_reason = 'Case details edited.' GROUP BY notes",
            [[w["marker"] for w in edits]],
        )
    )
    problems: list[str] = []
    counts = {
        "moves_confirmed": 0,
        "moves_answered_302_outcome_page_failed": 0,
        "moves_failed_but_written": 0,
        "moves_failed_not_written": 0,
        "edits_confirmed": 0,
        "edits_refused_409": 0,
        "edits_failed_but_written": 0,
        "edits_failed_not_written": 0,
    }
    for w in moves:
        rows, history = change_rows.get(w["reason"], 0), move_history.get(w["reason"], 0)
        if rows != history or rows > 1:
            problems.append(f"move {w['reason']}: {rows} status change rows, {history} history rows")
        if w["confirmed"]:
            counts["moves_confirmed"] += 1
            if rows != 1:
                problems.append(f"move {w['reason']} answered done but {rows} rows")
        elif w["status"] == 302:
            # Answered, then the case page that tells the outcome (done or refused) failed.
            counts["moves_answered_302_outcome_page_failed"] += 1
        else:
            # Failed (5xx): whole or not at all, as the error page says.
            counts["moves_failed_but_written" if rows else "moves_failed_not_written"] += 1
    for w in edits:
        rows = edit_history.get(w["marker"], 0)
        if rows > 1:
            problems.append(f"edit {w['marker']}: {rows} history rows")
        if w["confirmed"]:
            counts["edits_confirmed"] += 1
            if rows != 1:
                problems.append(f"edit {w['marker']} answered saved but {rows} history rows")
        elif w["status"] == 409:
            counts["edits_refused_409"] += 1
            if rows:
                problems.append(f"edit {w['marker']} refused (409) but written")
        else:
            counts["edits_failed_but_written" if rows else "edits_failed_not_written"] += 1
    return {**counts, "problems": problems[:20], "problem_count": len(problems)}


def _pick_cases(url: str, writers: int, per_writer: int) -> list[list[int]]:
    rows = [
        r[0]
        for r in _sql(
            url,
            "SELECT id FROM cases_case WHERE status = 'registered' ORDER BY md5(id::text) LIMIT %s",
            [writers * per_writer],
        )
    ]
    return [rows[i::writers] for i in range(writers)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--phase", type=float, default=12, help="seconds of load before, between and after restarts")
    parser.add_argument("--recover-within", type=float, default=5, help="seconds allowed to recover after PG is back")
    parser.add_argument("--gunicorn", default="sync:3:1", help="CLASS:WORKERS:THREADS (default: what make serve runs)")
    parser.add_argument("--port", type=int, default=8798)
    parser.add_argument("--pg-port", type=int, default=54338)
    parser.add_argument("--fresh-data", action="store_true")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE", help="e.g. jit=off")
    args = parser.parse_args()
    worker_class, workers, threads = args.gunicorn.split(":")

    summary: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "load_at_start": uptime()}}
    password = secrets.token_urlsafe(16)
    logdir = Path(tempfile.mkdtemp(prefix="relocation-restart.", dir="/tmp"))
    cluster: Cluster | None = None
    server: Server | None = None
    stop = threading.Event()
    try:
        with stopped_on_signals():
            log(f"PostgreSQL: a throwaway cluster on 127.0.0.1:{args.pg_port}")
            cluster = Cluster(args.pg_port, args.pg_setting)
            summary["data"] = prepare_data(cluster, args.persons, password, fresh=args.fresh_data)
            before = _invariants(cluster.url)
            server = Server(
                cluster.url,
                args.port,
                worker_class=worker_class,
                workers=int(workers),
                threads=int(threads),
                logdir=logdir,
            )
            summary["gunicorn"] = server.settings
            summary["postgresql_settings"] = args.pg_setting or "defaults (fsync off)"
            processes_before = {"master": server.pid, "workers": _children(server.pid)}
            words = [r[0] for r in _sql(cluster.url, "SELECT family_name FROM cases_person ORDER BY id LIMIT 50")]
            recorder = Recorder()
            pools = _pick_cases(cluster.url, args.writers, 25)
            load = [
                *(
                    Writer(f"writer{i}", args.port, password, recorder, stop, cases=pool)
                    for i, pool in enumerate(pools)
                ),
                Reader("reader", args.port, password, recorder, stop, words=words),
                Prober("prober", args.port, password, recorder, stop),
            ]
            for thread in load:
                thread.start()
            events: list[tuple[str, float, float]] = []
            time.sleep(args.phase)
            for mode in ("fast", "immediate"):
                log(f"pg_ctl restart -m {mode} under load ({uptime()})")
                down = recorder.now()
                cluster.restart(mode)
                up = recorder.now()
                events.append((mode, down, up))
                time.sleep(args.phase)
            stop.set()
            for thread in load:
                thread.join(timeout=60)
            end = recorder.now()
            summary["load_at_end_of_run"] = uptime()
            processes_after = {"master": server.pid, "workers": _children(server.pid)}
            server_log = server.log_text()
            server.close()

            outages = []
            for i, (mode, down, up) in enumerate(events):
                until = events[i + 1][1] if i + 1 < len(events) else end
                outages.append(_outage_figures(recorder, mode, down, up, until))
            first_down = events[0][1]
            steady = [a for a in recorder.answers if a["answered"] < first_down]
            summary["steady_before_restarts"] = {
                "requests": len(steady),
                "failed": sum(1 for a in steady if not a["ok"]),
                "rps": round(len(steady) / first_down, 1),
                "failed_examples": [a for a in steady if not a["ok"]][:5],
            }
            summary["restarts"] = outages
            summary["requests_total"] = len(recorder.answers)
            summary["gunicorn_not_restarted"] = processes_before == processes_after
            summary["gunicorn_processes"] = {"before": processes_before, "after": processes_after}
            summary["server_log"] = {
                "tracebacks_logged": server_log.count("Traceback (most recent call last)"),
                "worker_timeouts": server_log.count("WORKER TIMEOUT"),
                "workers_booted_again": max(0, server_log.count("Booting worker") - int(workers)),
            }
            summary["writes"] = _writes_whole(cluster.url, recorder.writes)
            summary["invariants_before"] = before
            summary["invariants_after"] = after = _invariants(cluster.url)
    finally:
        stop.set()
        if server is not None:
            server.close()
        if cluster is not None:
            cluster.close()
        if os.environ.get("KEEP_LOGS"):
            log(f"logs kept in {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)

    why_not = []
    for outage in outages:
        if outage["failed_unclean"]:
            why_not.append(f"-m {outage['mode']}: {outage['failed_unclean']} requests failed uncleanly")
        if outage["all_ok_after_s"] > args.recover_within or outage["first_page_ok_after_s"] is None:
            why_not.append(f"-m {outage['mode']}: not recovered within {args.recover_within} s")
    if not summary["gunicorn_not_restarted"]:
        why_not.append("gunicorn's processes changed (a worker died or was restarted)")
    if summary["steady_before_restarts"]["failed"]:
        why_not.append("requests failed before any restart")
    if summary["writes"]["problem_count"]:
        why_not.append("a write of this run is not there whole, or twice")
    broken = {name: n for name, n in after.items() if n and n != before.get(name)}
    if broken:
        why_not.append(f"invariants broken by the run: {broken}")
    already = {name: n for name, n in before.items() if n}
    if already:
        why_not.append(f"invariants already broken in the seeded data: {already}")
    summary["recover_within_s"] = args.recover_within
    summary["machine"]["load_at_end"] = uptime()
    summary["passed"] = not why_not
    summary["why_not"] = why_not
    print(json.dumps(summary, indent=2, default=str))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
