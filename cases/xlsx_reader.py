"""Read the first sheet of an XLSX workbook in a process of its own, within limits.

calamine (Rust) reads a sheet ten times faster than openpyxl, but it trusts what a
workbook says about itself: a shared-strings count of four billion in a 5 KB file makes
it ask for 96 GB, and the failed allocation stops the whole process at once — the web
server's or the import worker's. cases.importing checks what it can see beforehand
(the sheet's reach); whatever it cannot see is met here: the workbook is read by this
script, run as a child process whose memory and CPU time are capped, so a workbook that
asks for too much stops the child alone and the import refuses the file.

Run as `python -I xlsx_reader.py MEMORY_BYTES CPU_SECONDS`, with the workbook on standard
input. Standard output is JSON lines: {"height": N}, then one array of rows per line
(each row an array of cell texts), then {"end": true} or {"error": "…"}. Nothing but the
standard library and python-calamine is imported: no Django, no project code.
"""

from __future__ import annotations

import datetime
import io
import json
import resource
import sys
from typing import Any

BATCH = 2_000


def cell_text(value: Any) -> str:
    """A cell's value as the text a CSV export of the sheet would hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def main(memory: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    from python_calamine import CalamineError, CalamineWorkbook

    content = sys.stdin.buffer.read()
    out = sys.stdout.buffer

    def send(message: Any) -> None:
        out.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")

    try:
        sheet = CalamineWorkbook.from_filelike(io.BytesIO(content)).get_sheet_by_index(0)
        send({"height": sheet.height})
        batch: list[list[str]] = []
        # iter_rows starts at the sheet's first row, empty rows included: row numbers hold.
        for values in sheet.iter_rows():
            batch.append([value if type(value) is str else cell_text(value) for value in values])
            if len(batch) == BATCH:
                send(batch)
                batch = []
        send(batch)
    except CalamineError as exc:
        send({"error": str(exc)})
        return
    send({"end": True})


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
