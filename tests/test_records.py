"""supervisor/records.py against the standard dataclasses it stands in for.

Pure logic, no process: each behaviour gsup's data classes rely on is checked on a
record class and on the same class made by ``dataclasses``, which must agree.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import pytest

from supervisor import records


def both(**options: Any) -> Callable[[type], list[type]]:
    """The class body twice: through records.dataclass and through dataclasses.dataclass."""
    def make(body: type) -> list[type]:
        made = []
        for decorate, field in ((records.dataclass, records.field), (dataclasses.dataclass, dataclasses.field)):
            namespace = {k: v for k, v in vars(body).items() if k not in ("__dict__", "__weakref__")}
            namespace = {k: (field(**v.kwargs) if isinstance(v, Spec) else v) for k, v in namespace.items()}
            made.append(decorate(**options)(type(body.__name__, (), namespace)))
        return made
    return make


class Spec:
    """``field(...)``'s arguments, given to each implementation's own ``field``."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@both()
class Point:
    __annotations__ = {"x": "int", "y": "int", "tags": "list[str]", "label": "Optional[str]",
                       "cache": "dict[str, int]", "seen": "int"}
    label = None
    tags = Spec(default_factory=list)
    cache = Spec(default_factory=dict, compare=False)
    seen = Spec(default=0, init=False)


@both(frozen=True)
class Frozen:
    __annotations__ = {"a": "int", "b": "str"}
    b = "b"


@pytest.mark.parametrize("cls", Point, ids=["records", "dataclasses"])
def test_init_defaults_eq_hash_repr(cls: Any) -> None:
    first, second = cls(1, 2), cls(1, 2, label=None)
    assert (first.x, first.y, first.tags, first.label, first.seen) == (1, 2, [], None, 0)
    assert first.tags is not second.tags  # a factory per instance
    assert first == second and first != cls(1, 3) and first.__eq__(object()) is NotImplemented
    first.cache["k"] = 1
    assert first == second  # compare=False
    assert cls.__hash__ is None
    assert repr(first) == "Point(x=1, y=2, tags=[], label=None, cache={'k': 1}, seen=0)"
    with pytest.raises(TypeError):
        cls(1)
    with pytest.raises(TypeError):
        cls(1, 2, seen=3)  # init=False


def test_the_two_agree_on_what_they_store() -> None:
    mine, theirs = Point
    assert vars(mine(1, 2, ["t"], "l")) == vars(theirs(1, 2, ["t"], "l"))
    assert records.asdict(mine(1, 2, ["t"])) == dataclasses.asdict(theirs(1, 2, ["t"]))


@pytest.mark.parametrize("cls", Frozen, ids=["records", "dataclasses"])
def test_frozen(cls: Any) -> None:
    thing = cls(1)
    error = records.FrozenInstanceError if cls is Frozen[0] else dataclasses.FrozenInstanceError
    with pytest.raises(error):
        thing.a = 2
    with pytest.raises(AttributeError):
        del thing.b
    assert hash(thing) == hash(cls(1)) and thing == cls(1, "b")


def test_asdict_copies_and_replace_keeps_the_rest() -> None:
    mine = Point[0]
    inner = mine(3, 4)
    outer = mine(1, 2, tags=[inner], label="x")  # type: ignore[list-item]
    copied = records.asdict(outer)
    assert copied["tags"] == [{"x": 3, "y": 4, "tags": [], "label": None, "cache": {}, "seen": 0}]
    copied["tags"].append(1)
    assert len(outer.tags) == 1
    changed = records.replace(outer, y=5)
    assert (changed.x, changed.y, changed.label, changed.tags) == (1, 5, "x", outer.tags)


def test_post_init_runs_after_the_fields() -> None:
    @records.dataclass
    class Pipe:
        fd: int
        pattern: Optional[str] = records.field(default=None, init=False)

        def __post_init__(self) -> None:
            self.pattern = f"fd {self.fd}"

    assert Pipe(3).pattern == "fd 3"


def test_a_required_field_after_a_default_is_refused_as_dataclasses_refuses_it() -> None:
    with pytest.raises(TypeError):
        records.dataclass(type("Bad", (), {"__annotations__": {"a": "int", "b": "int"}, "a": 1}))


def test_a_function_default_stays_a_function() -> None:
    """A callable default is the instance's own attribute, never a method bound to it."""
    def write_all(fd: int, data: bytes) -> None:
        return None

    @records.dataclass
    class Out:
        write: Callable[[int, bytes], None] = records.field(default=write_all)

    assert Out().write is write_all
