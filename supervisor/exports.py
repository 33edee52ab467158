"""Write a run's (or a matrix's) timeline files: ``--html FILE`` and ``--trace FILE``.

The one place that turns the timeline views into files, so that ``run``,
``report`` and ``matrix`` write them alike and fail alike: an unwritable path
is a GsupError with one line (exit 2), raised only after the report is shown.
"""

from __future__ import annotations

from typing import Any, Optional

from supervisor import strictjson, timeline_html, trace
from supervisor.errors import GsupError
from supervisor.matrix_report import MatrixReport
from supervisor.model import Report

PID_STRIDE = 10_000_000  # a matrix trace: scenario i's pids are offset by i * this, so runs never share a pid


def write_report(report: Report, html: Optional[str], trace_file: Optional[str]) -> None:
    """Write the files asked for; GsupError naming the first that could not be written."""
    if html is not None:
        _write(html, timeline_html.page(report), "--html")
    if trace_file is not None:
        _write(trace_file, strictjson.dumps(trace.trace(report)), "--trace")


def write_matrix(result: MatrixReport, html: Optional[str], trace_file: Optional[str]) -> None:
    """The matrix's page (grid + every scenario's timeline) and one trace holding every run."""
    if html is not None:
        _write(html, timeline_html.matrix_page(result), "--html")
    if trace_file is not None:
        _write(trace_file, strictjson.dumps(matrix_trace(result)), "--trace")


def matrix_trace(result: MatrixReport) -> dict[str, Any]:
    """Every run of the matrix in one trace, each process named after its scenario."""
    events = []
    for index, (scenario, run) in enumerate(zip(result.scenarios, result.runs)):
        events += trace.events(run, pid_offset=(index + 1) * PID_STRIDE, prefix=f"{scenario.name}: ")
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"command": " ".join(result.command)}}


def _write(path: str, text: str, option: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as err:
        raise GsupError(f"{option} {path}: cannot write: {err.strerror or err}") from err
