"""A report (or a matrix of them) as one self-contained HTML page: the shutdown drawn in time.

One file that opens from disk or from a CI artifact: inline SVG and CSS, a little
plain JavaScript (a tooltip, zoom, the report's download), and no reference to
anything outside the page, so a browser fetches nothing.  Every mark carries a
text alternative (an SVG ``<title>``), every status reads as a word or a shape as
well as a colour, and the same facts follow the drawing as a chronology in plain
text, so the page says everything without colour, without JavaScript and on paper.

The drawing is a pure function of :mod:`supervisor.timeline`: a lane per process
image (indented as the tree), its lifetime as a bar ending in how it ended, its
handler runs as nested bars placed by their start times, every signal as a
marker on its receiver's lane with an arrow from its sender's, the grace window
shaded, readiness marked.  Positions are ``X0 + t * scale`` (``data-x0`` and
``data-scale`` on the ``<svg>``), so a test can check where a bar is drawn.
"""

from __future__ import annotations

import html
import math

from supervisor import strictjson, wording
from supervisor.matrix_report import MatrixReport
from supervisor.model import INTERRUPTED, LEFT_RUNNING, RAISED, RAN, Process, Report
from supervisor.timeline import Lane, Run, Signal, Timeline, build, seconds

X0 = 300  # where time 0 is drawn: the lane names are to the left of it
PLOT = 760  # pixels from time 0 to the end of the run
RIGHT = 250  # room after the end for the last lane's ending
LANE = 46  # one lane: its bar row and its explanation row
TOP = 44  # the axis and gsup's own row
GSUP_Y = 30  # gsup's row, where its signals start

STATUS_WORD = {RAN: "ran", RAISED: "raised", INTERRUPTED: "interrupted (cut short)"}

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px;color:#1b1f24;background:#fff}
h1{font-size:18px;margin:0 0 4px} h2{font-size:16px;margin:20px 0 6px} .meta{color:#555;margin:0 0 8px}
.scroll{overflow-x:auto;border:1px solid #ddd} svg{display:block}
svg text{font:12px system-ui,sans-serif;fill:#1b1f24} svg .small{font-size:11px;fill:#444}
svg .expl{font-size:11px;font-style:italic;fill:#555} .axis line{stroke:#ccc} .axis text{fill:#666;font-size:10px}
.life{fill:#dfe7ef;stroke:#8aa0b6} .life.left-running{fill:url(#hatch);stroke:#b35900;stroke-dasharray:4 2}
.life.unknown{fill:#f2f2f2;stroke:#aaa;stroke-dasharray:2 2}
.run{stroke:#1b1f24;stroke-width:.6} .run.ran{fill:#2e8b57} .run.raised{fill:#c62828}
.run.interrupted{fill:#f9a825;stroke-dasharray:3 2} .run.watched{fill-opacity:.75}
.runlabel{font-size:10px} .sighandler{fill:#6a1b9a} .grace{fill:#fff3cd;opacity:.7} .gracelabel{fill:#8a6d00}
.ready{stroke:#1565c0;stroke-width:1.5;stroke-dasharray:5 3} .readylabel{fill:#1565c0}
.arrow{stroke:#37474f;stroke-width:1.2;fill:none} .arrow.escalation{stroke:#c62828;stroke-width:2}
.signal{fill:#37474f} .signal.escalation{fill:#c62828} .signal.ignored{fill:#fff;stroke:#37474f;stroke-width:1.5}
.escalationlabel{fill:#c62828;font-weight:600} .ending{font-weight:600} .ending.bad{fill:#8a4b00}
.gsuplane{fill:#f5f5f5}
#tip{position:fixed;pointer-events:none;background:#263238;color:#fff;padding:4px 8px;border-radius:4px;
font-size:12px;display:none;max-width:480px;white-space:pre-wrap}
.chronology{font:12px/1.5 ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre;margin:0}
table.grid{border-collapse:collapse} .grid th,.grid td{border:1px solid #ccc;padding:4px 8px;text-align:left}
.grid a{color:inherit} td.clean{background:#e8f5e9} td.not-run{background:#fff8e1} td.grace-kill{background:#ffe0b2}
td.left-running{background:#ffccbc} td.failed{background:#ffcdd2}
.controls{margin:6px 0} @media print{.controls,#tip{display:none} .scroll{overflow:visible;border:0}
svg{width:100%!important;height:auto} body{margin:0;font-size:11px} .chronology{font-size:8px;line-height:1.25}
h2{margin:8px 0 4px}} @page{size:landscape;margin:10mm}
"""

SCRIPT = """
(function(){
var tip=document.getElementById('tip');
document.addEventListener('mousemove',function(e){
  var el=e.target.closest?e.target.closest('[data-tip]'):null;
  if(!el){tip.style.display='none';return;}
  tip.textContent=el.getAttribute('data-tip');tip.style.display='block';
  tip.style.left=(e.clientX+12)+'px';tip.style.top=(e.clientY+12)+'px';});
document.querySelectorAll('input.zoom').forEach(function(input){
  input.addEventListener('input',function(){
    var svg=document.getElementById(input.getAttribute('data-for'));
    svg.style.width=(svg.getAttribute('width')*input.value)+'px';svg.style.height='auto';});});
document.querySelectorAll('a.download').forEach(function(a){
  var data=document.getElementById(a.getAttribute('data-for')).textContent;
  a.href=URL.createObjectURL(new Blob([data],{type:'application/json'}));});
})();
"""


def page(report: Report) -> str:
    """The HTML page of one run."""
    title = f"gsup: {' '.join(report.command)}"
    body = _section(report, "t0", heading=False)
    return _document(title, f"<h1>{_e(title)}</h1>{body}")


def matrix_page(result: MatrixReport) -> str:
    """The HTML page of a matrix: a grid of scenarios by roles, each cell a link to that scenario's timeline."""
    title = f"gsup matrix: {' '.join(result.command)}"
    sections = "".join(_section(run, f"s{index}", heading=True, name=scenario.name)
                       for index, (scenario, run) in enumerate(zip(result.scenarios, result.runs)))
    return _document(title, f"<h1>{_e(title)}</h1>{_grid(result)}{sections}")


def _document(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>{body}"
            f"<div id=\"tip\" role=\"tooltip\"></div><script>{SCRIPT}</script></body></html>\n")


def _section(report: Report, key: str, heading: bool, name: str = "") -> str:
    story = build(report)
    head = f"<h2 id=\"{key}\">{_e(name)}</h2>" if heading else ""
    meta = (f"<p class=\"meta\">session {_e(report.session)}, {report.duration:.2f} s; "
            f"{len(story.lanes)} process(es); left running: "
            f"{_e(', '.join(map(str, report.leftovers)) or 'nothing')}. "
            f"<a class=\"download\" data-for=\"{key}-json\" download=\"report-{_e(report.session)}.json\" "
            f"href=\"#{key}-json\">download the JSON report</a></p>")
    controls = (f"<div class=\"controls\"><label>zoom <input class=\"zoom\" data-for=\"{key}-svg\" type=\"range\" "
                f"min=\"1\" max=\"8\" step=\"0.5\" value=\"1\"></label></div>")
    data = strictjson.dumps(report.to_json()).replace("<", "\\u003c")  # no "</script>" or "<!--" in a script
    return (f"<section>{head}{meta}{controls}<div class=\"scroll\">{svg(story, key + '-svg')}</div>"
            f"<h2>Chronology (seconds since launch)</h2><pre class=\"chronology\">{_chronology(story)}</pre>"
            f"<script type=\"application/json\" id=\"{key}-json\">{data}</script></section>")


def _chronology(story: Timeline) -> str:
    width = max((len(f"{m.at:+.3f}") for m in story.moments), default=6)
    return "\n".join(f"{m.at:+.3f}".rjust(width) + "  " + _e(m.text) for m in story.moments)


# -- the drawing ---------------------------------------------------------------------------------


def svg(story: Timeline, ident: str) -> str:
    """The timeline as an inline SVG (no xmlns needed inside HTML)."""
    scale = PLOT / story.duration
    width, height = X0 + PLOT + RIGHT, TOP + LANE * len(story.lanes) + 8
    parts = [f"<svg id=\"{ident}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" "
             f"role=\"group\" aria-labelledby=\"{ident}-title\" data-x0=\"{X0}\" data-scale=\"{scale:.6f}\" "
             f"data-duration=\"{story.duration:.6f}\">",
             f"<title id=\"{ident}-title\">Timeline of {len(story.lanes)} process(es) over "
             f"{seconds(story.duration)}: one lane per process, handler runs inside, signals as triangles</title>",
             _defs(ident)]
    parts += _backdrop(story, scale, height)
    parts += [_lane(lane, story, scale) for lane in story.lanes]
    parts += [_signal(sig, story, scale, ident) for sig in story.signals]
    parts += [_dropped(moment.at, moment.text, scale) for moment in story.moments
              if moment.lane is None and moment.kind == "signal"]
    parts.append("</svg>")
    return "".join(parts)


def _x(at: float, scale: float) -> float:
    return round(X0 + max(0.0, at) * scale, 2)


def _lane_y(index: int) -> int:
    return TOP + index * LANE


def _defs(ident: str) -> str:
    return (f"<defs><marker id=\"{ident}-head\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
            "markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#37474f\"/>"
            "</marker><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
            "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#ffe0b2\"/>"
            "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#b35900\" stroke-width=\"2\"/></pattern></defs>")


def _backdrop(story: Timeline, scale: float, height: int) -> list[str]:
    """The axis, gsup's row, the grace window and readiness: behind the lanes."""
    parts = [f"<rect class=\"gsuplane\" x=\"0\" y=\"{GSUP_Y - 12}\" width=\"{X0 + PLOT + RIGHT}\" height=\"22\"/>",
             f"<text x=\"8\" y=\"{GSUP_Y + 4}\">gsup</text>"]
    if story.grace is not None:
        start, until = story.grace.began, min(story.grace.until, story.duration)
        what = f"grace window: {story.grace.seconds:g} s from +{start:.3f} (escalation due at +{story.grace.until:.3f})"
        parts.append(f"<rect class=\"grace\" x=\"{_x(start, scale)}\" y=\"{GSUP_Y - 12}\" "
                     f"width=\"{max(1.0, (until - start) * scale):.2f}\" height=\"{height - GSUP_Y}\" "
                     f"data-tip=\"{_e(what)}\"><title>{_e(what)}</title></rect>"
                     f"<text class=\"small gracelabel\" x=\"{_x(start, scale) + 3}\" y=\"{GSUP_Y + 4}\">"
                     f"grace {story.grace.seconds:g} s</text>")
    parts.append(_axis(story.duration, scale))
    if story.ready is not None:
        what = f"ready at +{story.ready:.3f} ({story.ready_condition})"
        x = _x(story.ready, scale)
        parts.append(f"<g class=\"readymark\" data-tip=\"{_e(what)}\"><title>{_e(what)}</title>"
                     f"<line class=\"ready\" x1=\"{x}\" x2=\"{x}\" y1=\"{GSUP_Y - 12}\" y2=\"{height}\"/>"
                     f"<text class=\"small readylabel\" x=\"{x - 4}\" y=\"{GSUP_Y + 4}\" text-anchor=\"end\">ready"
                     "</text></g>")
    return parts


def _axis(duration: float, scale: float) -> str:
    step = _tick_step(duration)
    ticks = []
    for number in range(int(duration / step) + 1):
        at = number * step
        x = _x(at, scale)
        ticks.append(f"<line x1=\"{x}\" x2=\"{x}\" y1=\"12\" y2=\"16\"/>"
                     f"<text x=\"{x}\" y=\"10\" text-anchor=\"middle\">{_tick_label(at, step)}</text>")
    return f"<g class=\"axis\" aria-hidden=\"true\">{''.join(ticks)}</g>"


def _tick_step(duration: float) -> float:
    """1, 2 or 5 times a power of ten: about eight ticks over the run."""
    raw = duration / 8
    power: float = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _tick_label(at: float, step: float) -> str:
    return f"{at * 1000:.0f} ms" if step < 0.1 else f"{at:g} s"


def _lane(lane: Lane, story: Timeline, scale: float) -> str:
    y = _lane_y(lane.index)
    start = lane.start if lane.start is not None else 0.0
    end = lane.end if lane.end is not None else story.duration
    kind = "left-running" if lane.how == LEFT_RUNNING else ("unknown" if lane.end is None else "ended")
    life = (f"{lane.name} ({lane.title}): from +{start:.3f} to "
            f"{f'+{lane.end:.3f}' if lane.end is not None else 'the end of the run'}, {lane.ending}")
    bar = (f"<rect class=\"life {kind}\" x=\"{_x(start, scale)}\" y=\"{y + 4}\" "
           f"width=\"{max(1.0, (end - start) * scale):.2f}\" height=\"20\" data-tip=\"{_e(life)}\">"
           f"<title>{_e(life)}</title></rect>")
    indent = 8 + 14 * min(lane.depth, 8)
    label = (f"<text x=\"{indent}\" y=\"{y + 13}\"><tspan font-weight=\"600\">{lane.pid} {_e(lane.role)}</tspan>"
             f"</text><text class=\"small\" x=\"{indent}\" y=\"{y + 26}\">{_e(_clip(lane.title, 44 - lane.depth))}"
             "</text>")
    good = lane.ending == "exited 0"
    ending = (f"<text class=\"ending{'' if good else ' bad'}\" x=\"{_x(end, scale) + 6}\" y=\"{y + 18}\">"
              f"{'■' if lane.end is not None else '▷'} {_e(lane.ending)}</text>")
    unsaid = [label for label in lane.not_run if label not in lane.explanation]
    note = lane.explanation + (f"; not run: {', '.join(unsaid)}" if unsaid else "")
    explanation = f"<text class=\"expl\" x=\"{indent}\" y=\"{y + 40}\">{_e(_clip(note, 150))}</text>"
    runs = "".join(_run(run, y, scale) for run in lane.runs)
    return (f"<g class=\"lane\" data-pid=\"{lane.pid}\" data-role=\"{_e(lane.role)}\" data-index=\"{lane.index}\" "
            f"data-lane-y=\"{y}\">{label}{bar}{runs}{ending}{explanation}</g>")


def _run(run: Run, y: int, scale: float) -> str:
    x = _x(run.start, scale)
    what = f"{run.label} ({run.kind}): {run.detail}, from +{run.start:.3f}"
    if run.kind == "signal":
        what = f"{run.label} ran at +{run.start:.3f} ({run.detail})"
        return (f"<path class=\"sighandler\" data-name=\"{_e(run.label)}\" data-start=\"{run.start:.6f}\" "
                f"d=\"M{x},{y + 6} l5,8 l-5,8 l-5,-8 z\" data-tip=\"{_e(what)}\"><title>{_e(what)}</title></path>")
    end = run.end if run.end is not None else run.start
    if run.end is not None:
        what += f" to +{run.end:.3f}"
    status = STATUS_WORD.get(run.status, run.status)
    width = max(2.0, (end - run.start) * scale)
    text = run.label if run.status == RAN else f"{run.label} ({status})"
    shown = (f"<text class=\"runlabel\" x=\"{x + 2}\" y=\"{y + 21}\" clip-path=\"none\">{_e(_clip(text, 40))}</text>"
             if width > 40 else "")
    return (f"<g class=\"runmark\"><rect class=\"run {run.status} {run.kind}\" data-name=\"{_e(run.label)}\" "
            f"data-status=\"{run.status}\" data-start=\"{run.start:.6f}\" x=\"{x}\" y=\"{y + 8}\" "
            f"width=\"{width:.2f}\" height=\"{16 if run.kind != 'watched' else 10}\" "
            f"data-tip=\"{_e(what + ' — ' + status)}\"><title>{_e(what + ' — ' + status)}</title></rect>{shown}</g>")


def _signal(sig: Signal, story: Timeline, scale: float, ident: str) -> str:
    """A triangle on the receiver's lane, an arrow from the sender's lane (or gsup's row)."""
    x = _x(sig.at, scale)
    y = _lane_y(sig.receiver) + 14
    receiver = story.lanes[sig.receiver]
    sender_y = GSUP_Y if sig.sender is None else _lane_y(sig.sender) + 14
    by = "gsup" if sig.sender is None else story.lanes[sig.sender].name
    if sig.sender is None and sig.by != "gsup":
        by = sig.by
    what = (f"{sig.signal} from {by} to {receiver.name} at +{sig.at:.3f}"
            + (f", {sig.fate}" if sig.fate else "") + (f" ({sig.forced})" if sig.forced else ""))
    classes = " ".join(c for c in ("escalation" if sig.escalation else "", sig.fate if sig.fate == "ignored" else "")
                       if c)
    arrow = ""
    if abs(sender_y - y) > 4:
        direction = 1 if y > sender_y else -1
        arrow = (f"<line class=\"arrow {classes}\" x1=\"{x}\" y1=\"{sender_y}\" x2=\"{x}\" "
                 f"y2=\"{y - 9 * direction}\" marker-end=\"url(#{ident}-head)\"/>")
    label = sig.signal.removeprefix("SIG") + (" ignored" if sig.fate == "ignored" else "")
    escalation = (f"<text class=\"small escalationlabel\" x=\"{x + 5}\" y=\"{GSUP_Y + 4}\">"
                  f"escalation: {sig.signal}</text>" if sig.escalation and sig.sender is None else "")
    return (f"<g class=\"signalmark\" data-signal=\"{sig.signal}\" data-lane=\"{sig.receiver}\" "
            f"data-pid=\"{receiver.pid}\" data-at=\"{sig.at:.6f}\" data-tip=\"{_e(what)}\"><title>{_e(what)}</title>"
            f"{arrow}<path class=\"signal {classes}\" d=\"M{x - 6},{y - 8} L{x + 6},{y - 8} L{x},{y} z\"/>"
            f"<text class=\"small\" x=\"{x + 5}\" y=\"{y - 10}\">{_e(label)}</text>{escalation}</g>")


def _dropped(at: float, text: str, scale: float) -> str:
    """A send that reached nobody: a hollow triangle on gsup's row, said in words too."""
    x, what = _x(at, scale), f"+{at:.3f} {text}"
    return (f"<g class=\"dropped\" data-at=\"{at:.6f}\" data-tip=\"{_e(what)}\"><title>{_e(what)}</title>"
            f"<path class=\"signal ignored\" d=\"M{x - 6},{GSUP_Y - 8} L{x + 6},{GSUP_Y - 8} L{x},{GSUP_Y} z\"/>"
            f"<text class=\"small\" x=\"{x + 5}\" y=\"{GSUP_Y + 4}\">dropped</text></g>")


# -- the matrix ----------------------------------------------------------------------------------


OUTCOMES = {"clean": "clean", "not-run": "handlers not run", "grace-kill": "killed at grace",
            "left-running": "left running", "failed": "expectation failed"}


def _grid(result: MatrixReport) -> str:
    roles = sorted({p.role for run in result.runs for p in run.processes},
                   key=lambda r: ["parent", "child", "grandchild", r].index(r))
    head = "".join(f"<th scope=\"col\">{_e(role)}</th>" for role in roles)
    rows = []
    for index, (scenario, run) in enumerate(zip(result.scenarios, result.runs)):
        cells = "".join(_grid_cell(run, role, scenario.ok, index) for role in roles)
        rows.append(f"<tr><th scope=\"row\"><a href=\"#s{index}\">{_e(scenario.name)}</a></th>{cells}</tr>")
    legend = ", ".join(f"{word}" for word in OUTCOMES.values())
    return (f"<p>Outcome per scenario and role ({legend}); each scenario links to its timeline below.</p>"
            f"<table class=\"grid\"><tr><th scope=\"col\">scenario</th>{head}</tr>"
            f"{''.join(rows)}</table>")


def _grid_cell(run: Report, role: str, ok: bool, index: int) -> str:
    procs = run.roles(role)
    if not procs:
        return "<td>-</td>"
    outcome = "failed" if not ok else max((_outcome(p, run) for p in procs), key=list(OUTCOMES).index)
    words = "; ".join(f"{p.pid}: {wording.cell(p.end)}" for p in procs)
    return (f"<td class=\"{outcome}\" data-outcome=\"{outcome}\"><a href=\"#s{index}\">{OUTCOMES[outcome]}</a>"
            f"<br><span class=\"small\">{_e(words)}</span></td>")


def _outcome(proc: Process, run: Report) -> str:
    if proc.end.how == LEFT_RUNNING or proc.pid in run.leftovers:
        return "left-running"
    if any(a.escalation and proc.pid in a.pids for a in run.actions):
        return "grace-kill"
    if any(h.status != RAN for h in proc.handlers if h.status in (RAISED, INTERRUPTED, "not-run")):
        return "not-run"
    return "clean"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
