"""Unit and property tests of the probe-event reader, ``supervisor.events``.

The reader must never trust the files: a line cut off by SIGKILL, garbage,
non-UTF-8, a line of the wrong shape or a duplicate is counted and skipped,
and everything else is kept, in sequence order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.events import parse_lines, parse_name, read_all


def line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event) + "\n").encode()


def ev(n: int, k: str = "x", t: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {"k": k, "n": n, "t": t, **extra}


def lines_in(data: bytes) -> int:
    """How many lines parse_lines must account for (an unterminated tail is one)."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


# -- parse_lines: examples -------------------------------------------------------


def test_complete_lines_are_all_kept_in_order() -> None:
    events = [ev(0, "start", 1.0, argv=["a"]), ev(1, "atexit", 2.5), ev(2, "end", 3)]
    parsed, bad = parse_lines(b"".join(line(e) for e in events))
    assert parsed == events
    assert bad == 0


def test_empty_input() -> None:
    assert parse_lines(b"") == ([], 0)


def test_blank_line_is_unreadable() -> None:
    assert parse_lines(line(ev(0)) + b"\n") == ([ev(0)], 1)


def test_truncated_last_line_is_counted_and_earlier_lines_kept() -> None:
    full = line(ev(0)) + line(ev(1))
    tail = line(ev(2, "end"))
    for cut in range(1, len(tail)):  # every way the last write can be cut short
        parsed, bad = parse_lines(full + tail[:cut])
        assert parsed == [ev(0), ev(1)], cut
        assert bad == 1, cut


def test_unterminated_but_valid_last_line_is_not_trusted() -> None:
    # Without its newline, a line may be a prefix of a longer one: never used.
    parsed, bad = parse_lines(line(ev(0)) + json.dumps(ev(1)).encode())
    assert parsed == [ev(0)]
    assert bad == 1


def test_garbage_lines_are_skipped_and_counted() -> None:
    data = line(ev(0)) + b"\x00\x01garbage{{\n" + b"{\"k\": \n" + line(ev(1)) + b"null\n" + b"42\n"
    parsed, bad = parse_lines(data)
    assert parsed == [ev(0), ev(1)]
    assert bad == 4


def test_non_utf8_line_is_skipped() -> None:
    data = line(ev(0)) + b'{"k": "\xff\xfe", "n": 1, "t": 0}\n' + line(ev(2))
    parsed, bad = parse_lines(data)
    assert parsed == [ev(0), ev(2)]
    assert bad == 1


def test_json_array_instead_of_object() -> None:
    data = b'["k", "x", "n", 1, "t", 0]\n' + line(ev(0))
    assert parse_lines(data) == ([ev(0)], 1)


def test_deeply_nested_json_does_not_raise() -> None:
    data = b"[" * 100_000 + b"]" * 100_000 + b"\n" + line(ev(0))
    assert parse_lines(data) == ([ev(0)], 1)


def test_huge_integer_does_not_raise() -> None:
    data = b'{"k": "x", "n": ' + b"9" * 10_000 + b', "t": 0}\n' + line(ev(0))
    assert parse_lines(data) == ([ev(0)], 1)


def test_missing_or_mistyped_fields() -> None:
    wrong = [
        {"n": 1, "t": 0},  # no k
        {"k": "x", "t": 0},  # no n
        {"k": "x", "n": 1},  # no t
        {"k": 1, "n": 1, "t": 0},  # k not a string
        {"k": "x", "n": "1", "t": 0},  # n not an int
        {"k": "x", "n": 1.0, "t": 0},  # n a float
        {"k": "x", "n": 1, "t": "0"},  # t not a number
        {"k": None, "n": 1, "t": 0},
    ]
    data = b"".join(line(w) for w in wrong) + line(ev(5))
    parsed, bad = parse_lines(data)
    assert parsed == [ev(5)]
    assert bad == len(wrong)


def test_duplicate_sequence_number_keeps_the_first() -> None:
    data = line(ev(0, "start")) + line(ev(1, "first")) + line(ev(1, "second")) + line(ev(2, "end"))
    parsed, bad = parse_lines(data)
    assert [e["k"] for e in parsed] == ["start", "first", "end"]
    assert bad == 1


def test_out_of_order_lines_come_back_sorted_by_n() -> None:
    order = [3, 0, 2, 10, 1]
    parsed, bad = parse_lines(b"".join(line(ev(n, f"e{n}")) for n in order))
    assert [e["n"] for e in parsed] == sorted(order)
    assert [e["k"] for e in parsed] == [f"e{n}" for n in sorted(order)]
    assert bad == 0


def test_crlf_line_endings_still_parse() -> None:
    # json.loads tolerates the trailing "\r" as whitespace.
    data = json.dumps(ev(0)).encode() + b"\r\n"
    assert parse_lines(data) == ([ev(0)], 0)


# -- parse_name and read_all ------------------------------------------------------


def test_parse_name_valid() -> None:
    assert parse_name("123-456-789.jsonl") == (123, 456, 789)
    assert parse_name("1-0-0.jsonl") == (1, 0, 0)


def test_parse_name_rejects_other_names() -> None:
    for name in ["123-456.jsonl", "123-456-789.json", "123-456-789.jsonl.tmp", "a-b-c.jsonl",
                 "1-2-3-4.jsonl", "-1-2-3.jsonl", "1--3.jsonl", ".jsonl", "1-2-3", "1-2- 3.jsonl",
                 "session.json", "exits.jsonl", "1-2-x3.jsonl", ""]:
        assert parse_name(name) is None, name


def test_read_all_orders_images_and_ignores_foreign_names(tmp_path: Path) -> None:
    (tmp_path / "20-5-1.jsonl").write_bytes(line(ev(0, "start", argv=["b"], ppid=1)) + line(ev(1, "end")))
    (tmp_path / "10-7-3.jsonl").write_bytes(line(ev(0, "start", argv=["c"], ppid=1)))
    (tmp_path / "10-5-2.jsonl").write_bytes(line(ev(0, "start", argv=["a"], ppid=1)) + b"cut")
    (tmp_path / "10-5-1.jsonl").write_bytes(line(ev(0, "start", argv="not a list")))
    for foreign in ["notes.txt", "10-5.jsonl", "x-1-2.jsonl", "10-5-9.jsonl.partial", "exits.jsonl"]:
        (tmp_path / foreign).write_bytes(line(ev(0, "start", argv=["foreign"])))
    images = read_all(tmp_path)
    assert [(i.starttime, i.pid, i.opened) for i in images] == [(5, 10, 1), (5, 10, 2), (5, 20, 1), (7, 10, 3)]
    first, second, third, fourth = images
    assert first.start is None  # a start event whose argv is not a list is not trusted
    assert [e["k"] for e in first.events] == ["start"]
    assert second.start is not None and second.start["argv"] == ["a"]
    assert second.unreadable == 1
    assert third.first("end") == ev(1, "end")
    assert third.path == tmp_path / "20-5-1.jsonl"
    assert fourth.start is not None and fourth.start["argv"] == ["c"]
    assert all(i.start is None or i.start["argv"] != ["foreign"] for i in images)


def test_read_all_empty_and_missing_directories(tmp_path: Path) -> None:
    assert read_all(tmp_path) == []
    assert read_all(tmp_path / "missing") == []
    (tmp_path / "1-2-3.jsonl").write_bytes(b"")
    [image] = read_all(tmp_path)
    assert image.events == [] and image.unreadable == 0 and image.start is None


# -- properties ---------------------------------------------------------------------


@settings(deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_never_raise(data: bytes) -> None:
    parsed, bad = parse_lines(data)
    assert isinstance(parsed, list)
    assert isinstance(bad, int) and bad >= 0
    for event in parsed:
        assert isinstance(event, dict)
        assert isinstance(event["k"], str)
        assert isinstance(event["n"], int)
    numbers = [e["n"] for e in parsed]
    assert numbers == sorted(set(numbers))
    assert len(parsed) + bad == lines_in(data)


@settings(deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=60), st.sampled_from(
    [b'{"k": "x", "n": 1, "t": 0}', b'{"k": "x", "n": 1}', b"[]", b"{}", b"\xff", b'"k"']))), st.booleans())
def test_any_lines_never_raise(chunks: list[bytes], terminated: bool) -> None:
    data = b"\n".join(chunks) + (b"\n" if terminated and chunks else b"")
    parsed, bad = parse_lines(data)
    assert len(parsed) + bad == lines_in(data)


events_strategy = st.fixed_dictionaries(
    {"k": st.text(max_size=10), "n": st.integers(min_value=-5, max_value=40),
     "t": st.one_of(st.integers(), st.floats(allow_nan=False))},
    optional={"argv": st.lists(st.text(max_size=5), max_size=3), "pid": st.integers()},
)


def is_valid_event_line(raw: bytes) -> bool:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(value, dict)


garbage_strategy = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")).filter(
    lambda b: not is_valid_event_line(b))


@settings(deadline=None)
@given(events=st.lists(events_strategy, max_size=25), data=st.data())
def test_unique_complete_lines_are_recovered(events: list[dict[str, Any]], data: st.DataObject) -> None:
    serialised = [json.dumps(e).encode() for e in events]
    pieces: list[bytes] = []  # lines without their newline
    intact: set[int] = set()  # indexes of events whose whole line is in the file
    for index, raw in enumerate(serialised):
        action = data.draw(st.sampled_from(["keep", "keep", "duplicate", "torn", "garbage-before", "drop"]))
        if action == "drop":
            continue
        if action == "torn":  # a write cut short, then the next write began on a new line
            pieces.append(raw[: data.draw(st.integers(0, max(0, len(raw) - 1)))])
            continue
        if action == "garbage-before":
            pieces.append(data.draw(garbage_strategy))
        pieces.append(raw)
        if action == "duplicate":
            pieces.append(raw)
        intact.add(index)
    order = data.draw(st.permutations(range(len(pieces)))) if data.draw(st.booleans()) else range(len(pieces))
    blob = b"".join(pieces[i] + b"\n" for i in order)
    if data.draw(st.booleans()) and blob:  # the file itself cut off anywhere
        cut = data.draw(st.integers(0, len(blob)))
        complete = blob[:cut].rsplit(b"\n", 1)[0] + b"\n" if b"\n" in blob[:cut] else b""
        intact = {i for i in intact if serialised[i] in complete.split(b"\n")}
        blob = blob[:cut]

    parsed, bad = parse_lines(blob)

    counts: dict[int, int] = {}
    for e in events:
        counts[e["n"]] = counts.get(e["n"], 0) + 1
    by_n = {e["n"]: e for e in parsed}
    for index in intact:
        event = events[index]
        if counts[event["n"]] == 1:
            assert by_n.get(event["n"]) == event
    assert [e["n"] for e in parsed] == sorted(by_n)
    assert all(e in events for e in parsed)  # nothing invented from garbage or torn lines
    assert len(parsed) + bad == lines_in(blob)
