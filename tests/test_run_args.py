"""The fast reader of ``gsup run``'s command line (supervisor/run_args.py) against click's.

Both readers must build the same ``params`` from any line the fast one accepts,
and the fast one must leave to click every line click would refuse (its errors
are click's to word).  Pure parsing: no process is started here; that the fast
path is the one a real run takes is tests/test_fixed_cost.py's (click never
imported).
"""

from __future__ import annotations

import random
from typing import Any, Optional

import click
import pytest

from supervisor import cli, run_args

Read = Optional[tuple[dict[str, Any], bool]]


def click_read(args: list[str]) -> Read:
    """What the click command gets from ``gsup run ARGS``; None where click refuses the line."""
    parent = click.Context(cli.main, info_name="gsup")
    try:
        ctx = cli.run.make_context("run", list(args), parent=parent)
    except (click.UsageError, click.exceptions.Exit):
        return None
    return dict(ctx.params), bool(ctx.meta.get("gsup.command", False))


def test_the_option_table_is_clicks() -> None:
    options = {p.name: p for p in cli.run.params if isinstance(p, click.Option)}
    assert set(options) == set(run_args.OPTIONS)
    for name, (opts, kind, _default) in run_args.OPTIONS.items():  # defaults: compared below
        option = options[name]
        assert set(opts) == set(option.opts + option.secondary_opts), name
        expected = (run_args.MULTIPLE if option.multiple else run_args.FLAG if option.is_flag
                    else run_args.OPTIONAL if name in cli.OPTIONAL_VALUE.values() or
                    any(o in cli.OPTIONAL_VALUE for o in option.opts) else run_args.VALUE)
        assert kind == expected, name
        if kind == run_args.OPTIONAL:
            assert run_args.BARE[name] == cli.OPTIONAL_VALUE[option.opts[0]]
    assert click_read(["app.py"]) == ({**{n: d for n, (_, _, d) in run_args.OPTIONS.items()},
                                       "program": ("app.py",)}, False)


# Lines the fast reader must read itself: the ones users and CI type every day.
EVERYDAY = [
    ["app.py"],
    ["--json", "--python", "/usr/bin/python3", "app.py", "--port", "5000"],
    ["-s", "TERM", "-t", "child", "--grace", "5s", "app.py"],
    ["--signal=KILL", "--target=group", "--after", "2s", "-q", "app.py"],
    ["-sINT", "-tparent", "--json", "app.py"],
    ["--stop", "docker", "--time", "3", "app.py"],
    ["--stop=k8s", "--grace", "1s", "-m", "http.server", "8000"],
    ["-m", "json.tool", "--help"],
    ["-mjson.tool", "x.json"],
    ["--expect", "child: shutdown ran", "--expect", "no leftovers", "app.py"],
    ["--watch", "logging:shutdown", "--watch-preset", "flask", "--junit", "out.xml", "app.py"],
    ["--ready-port", "5000", "--ready-timeout", "10s", "-s", "TERM", "app.py"],
    ["--ready-output", "Running on", "--settle=1s", "app.py"],
    ["--container", "--init", "--", "sh", "-c", "python app.py"],
    ["--container=emulate", "--init=tini", "app.py"],
    ["--timeline", "--html", "t.html", "--trace", "t.json", "app.py"],
    ["--no-timeline", "--deep", "--stdin", "null", "app.py"],
    ["--", "gunicorn", "-w", "2", "app:app"],
    ["--"],
    ["-", "arg"],
    ["--json"],
    ["--grace="],
]

# Lines the fast reader leaves to click (it may also, for some, agree with click: then fine).
TO_CLICK = [
    ["--help"], ["-h"], ["--version"], ["--jsn", "app.py"], ["-qs", "TERM", "app.py"], ["-s"],
    ["--signal", "NOPE", "app.py"], ["-t", "cousin", "app.py"], ["--stop", "nowhere", "app.py"],
    ["--grace", "-1", "app.py"], ["--json=1", "app.py"], ["-s", "", "app.py"], ["-m"],
    ["--python"], ["-x", "app.py"], ["--ready-output", "-> up", "app.py"],
]


@pytest.mark.parametrize("args", EVERYDAY, ids=" ".join)
def test_everyday_lines_are_read_fast_and_as_click_reads_them(args: list[str]) -> None:
    fast = run_args.read(args)
    assert fast is not None, "the fast reader left an everyday line to click"
    assert fast == click_read(args)


@pytest.mark.parametrize("args", TO_CLICK, ids=" ".join)
def test_lines_click_must_read_are_left_to_it(args: list[str]) -> None:
    fast = run_args.read(args)
    assert fast is None or fast == click_read(args)
    if click_read(args) is None:
        assert fast is None, "a line click refuses was read by the fast reader"


TOKENS = [
    "-s", "--signal", "TERM", "9", "SIGKILL", "bogus", "-t", "--target", "child", "tree", "pid:1", "-q", "--quiet",
    "--json", "--grace", "3s", "--grace=2", "--after", "--stop", "docker", "systemd", "-m", "mod", "--", "-",
    "app.py", "--expect", "no leftovers", "--watch", "a:b", "--container", "--container=emulate", "--init",
    "--init=gsup", "--timeline", "--no-timeline", "--python", "/p", "-sTERM", "-tchild", "-qs", "--unknown",
    "--settle", "--ready-port", "80", "", "--deep", "--stdin", "null", "-h", "--time", "--kill-after",
]


def test_readers_agree_on_random_lines() -> None:
    """Every line the fast reader accepts, click reads the same; every line click refuses,
    the fast reader leaves to it (2000 lines, seeded)."""
    rng = random.Random(17)
    fast_read = 0
    for _ in range(2000):
        args = [rng.choice(TOKENS) for _ in range(rng.randint(0, 7))]
        fast, slow = run_args.read(args), click_read(args)
        if fast is not None:
            fast_read += 1
            assert fast == slow, args
        elif slow is None:
            continue
    assert fast_read > 200  # the comparison covered the fast reader, not only its refusals
