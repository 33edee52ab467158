"""``dataclass``, ``field``, ``asdict`` and ``replace`` for gsup's own data, at a fraction of the start-up cost.

Every ``gsup run`` defines some fifty data classes before it can launch the
program.  The standard library's ``dataclasses`` imports ``inspect`` (and
with it ``ast``, ``dis``, ``tokenize``) and compiles three methods per class:
about a third of the fixed cost of a run (issue 17).  This module does what
gsup uses of it, the same way, and compiles nothing until a class is first
instantiated: fields from the class's annotations, in order, with defaults,
``field(default=…, default_factory=…, init=…, compare=…)``, ``__post_init__``,
``frozen`` (``FrozenInstanceError``), ``repr=False``; ``__eq__`` compares the
fields of two objects of the same class; ``__hash__`` is None unless frozen,
as with ``dataclasses``.  Type checkers see the standard ``dataclasses``
(the names are imported from it for them), so gsup's code is checked as
plain dataclasses.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from dataclasses import FrozenInstanceError, asdict, dataclass, field, replace
else:
    _MISSING = object()

    class FrozenInstanceError(AttributeError):
        """Assigning to a field of a frozen record (``dataclasses.FrozenInstanceError``)."""

    class Field:
        """What ``field()`` says about one field; replaced by its default on the class."""

        __slots__ = ("compare", "default", "default_factory", "init", "name")

        def __init__(self, default, default_factory, init, compare):
            self.name = ""
            self.default, self.default_factory, self.init, self.compare = default, default_factory, init, compare

    def field(*, default=_MISSING, default_factory=_MISSING, init=True, compare=True):
        return Field(default, default_factory, init, compare)

    def dataclass(cls=None, *, frozen=False, repr=True, eq=True):
        def wrap(cls):
            return _process(cls, frozen, repr, eq)

        return wrap if cls is None else wrap(cls)

    def _process(cls, frozen, with_repr, eq):
        fields = []
        annotations = cls.__dict__.get("__annotations__")  # noqa: RUF063  (the class's own, no import)
        if annotations is None:  # 3.14 without the __future__ import: computed on access
            annotations = getattr(cls, "__annotations__", {})
        for name, annotation in annotations.items():
            if isinstance(annotation, str) and annotation.startswith(("ClassVar", "typing.ClassVar")):
                continue
            value = cls.__dict__.get(name, _MISSING)
            spec = value if isinstance(value, Field) else Field(value, _MISSING, True, True)
            spec.name = name
            if spec.default is _MISSING:
                if name in cls.__dict__:
                    delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
            if spec.init and spec.default is _MISSING and spec.default_factory is _MISSING and any(
                    f.init and (f.default is not _MISSING or f.default_factory is not _MISSING) for f in fields):
                raise TypeError(f"non-default argument {name!r} follows default argument")
            fields.append(spec)
        cls.__record_fields__ = {f.name: f for f in fields}
        cls.__record_frozen__ = frozen
        own = cls.__dict__
        if "__init__" not in own:
            cls.__init__ = _first_init
        if with_repr and "__repr__" not in own:
            cls.__repr__ = _repr
        if eq and "__eq__" not in own:
            cls.__eq__ = _eq
        if eq and own.get("__hash__") is None:  # absent, or None because the class wrote __eq__
            cls.__hash__ = _hash if frozen else None
        if frozen:
            cls.__setattr__ = _frozen_setattr
            cls.__delattr__ = _frozen_delattr
        return cls

    def _first_init(self, *args, **kwargs):
        """Compile the class's own ``__init__`` (as ``dataclasses`` writes it), then call it."""
        cls = type(self)
        while "__record_fields__" not in cls.__dict__:
            cls = cls.__mro__[1]
        cls.__init__ = _make_init(cls)
        cls.__init__(self, *args, **kwargs)

    def _make_init(cls):
        fields = list(cls.__record_fields__.values())
        frozen = cls.__record_frozen__
        scope = {"_MISSING": _MISSING, "_set": object.__setattr__}
        params, body = ["self"], []
        for number, f in enumerate(fields):
            if f.init:
                if f.default is not _MISSING:
                    scope[f"_d{number}"] = f.default
                    params.append(f"{f.name}=_d{number}")
                elif f.default_factory is not _MISSING:
                    scope[f"_f{number}"] = f.default_factory
                    params.append(f"{f.name}=_MISSING")
                else:
                    params.append(f.name)
                value = f.name
                if f.default_factory is not _MISSING:
                    value = f"_f{number}() if {f.name} is _MISSING else {f.name}"
            elif f.default_factory is not _MISSING:
                scope[f"_f{number}"] = f.default_factory
                value = f"_f{number}()"
            else:
                continue  # not in __init__, a plain default: the class attribute stands for it
            body.append(f"_set(self, {f.name!r}, {value})" if frozen else f"self.{f.name} = {value}")
        if hasattr(cls, "__post_init__"):
            body.append("self.__post_init__()")
        lines = "\n    ".join(body or ["pass"])
        source = f"def __init__({', '.join(params)}):\n    {lines}\n"
        exec(source, scope)
        init = scope["__init__"]
        init.__qualname__ = cls.__qualname__ + ".__init__"
        return init

    def _values(obj, compared=False):
        return tuple(getattr(obj, f.name) for f in obj.__record_fields__.values() if not compared or f.compare)

    def _repr(self):
        fields = self.__record_fields__.values()
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields)
        return f"{type(self).__qualname__}({shown})"

    def _eq(self, other):
        if other.__class__ is self.__class__:
            return _values(self, True) == _values(other, True)
        return NotImplemented

    def _hash(self):
        return hash(_values(self, True))

    def _frozen_setattr(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def _frozen_delattr(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def asdict(obj):
        """A record as a dict, records, lists, tuples and dicts within it copied too."""
        return _copy(obj)

    def _copy(value):
        if hasattr(type(value), "__record_fields__"):
            return {name: _copy(getattr(value, name)) for name in value.__record_fields__}
        if isinstance(value, (list, tuple)):
            return type(value)(_copy(v) for v in value)
        if isinstance(value, dict):
            return {_copy(k): _copy(v) for k, v in value.items()}
        return value

    def replace(obj, **changes):
        """A copy of ``obj`` with ``changes`` (init fields only, as ``dataclasses.replace``)."""
        for f in obj.__record_fields__.values():
            if f.init and f.name not in changes:
                changes[f.name] = getattr(obj, f.name)
        return type(obj)(**changes)


__all__ = ["FrozenInstanceError", "asdict", "dataclass", "field", "replace"]
