"""Declared bounds: every config field says its valid range or set once, where it is declared.

    @dataclass(frozen=True)
    class WindowConfig(Config):
        window_s: float = bounded(2.0, ge=0.5, le=60.0, help="window length in seconds")
        hop_s: float = bounded(0.5, gt=0.0, le=60.0)
        mode: str = bounded("largest", choices=("largest", "all"))

        def __post_init__(self):
            check_bounds(self)  # first: types and ranges, one line naming the field

`check_bounds(config)` checks every field of a config dataclass against its annotation (a
`bool` field takes only True/False, an `int` field only an integer, never a bool; a `float`
field a finite number; `X | None` also None; `tuple[int, ...]` each element) and against its
`bounded(...)` metadata (`ge`/`gt`/`le`/`lt`, `choices`; for a tuple, each element). Nested
config dataclasses are checked by their own `__post_init__`. `describe(field)` writes the bound
for `--help` ("in [1, 64]", "one of largest, all").
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Sequence

BOUND_KEY = "emotf.bound"


@dataclasses.dataclass(frozen=True)
class Bound:
    """A field's valid values: a numeric interval and/or a set of choices, and a description."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    nonempty: bool = False
    help: str = ""

    def contains(self, value) -> bool:
        if self.choices is not None and value not in self.choices:
            return False
        if self.nonempty and isinstance(value, str) and not value.strip():
            return False
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            # numpy scalars too; integers stay exact (numbers.Real only declares < and <=).
            number = int(value) if isinstance(value, numbers.Integral) else float(value)
            if self.ge is not None and not number >= self.ge:
                return False
            if self.gt is not None and not number > self.gt:
                return False
            if self.le is not None and not number <= self.le:
                return False
            if self.lt is not None and not number < self.lt:
                return False
        return True

    def describe(self) -> str:
        if (
            self.nonempty
            and self.choices is None
            and self.ge is self.gt is self.le is self.lt is None
        ):
            return "a non-empty string"
        if self.choices is not None:
            return "one of " + ", ".join(
                repr(c) if isinstance(c, str) else str(c) for c in self.choices
            )
        low = (
            f"[{_num(self.ge)}"
            if self.ge is not None
            else (f"({_num(self.gt)}" if self.gt is not None else "(-inf")
        )
        high = (
            f"{_num(self.le)}]"
            if self.le is not None
            else (f"{_num(self.lt)})" if self.lt is not None else "inf)")
        )
        return f"in {low}, {high}"


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def bounded(
    default=dataclasses.MISSING,
    *,
    ge=None,
    gt=None,
    le=None,
    lt=None,
    choices=None,
    nonempty: bool = False,
    help: str = "",
    default_factory=dataclasses.MISSING,
):
    """A dataclass field with a declared bound (see the module docstring); `nonempty`: a string
    that is not empty or blank (a path: "" would mean the current folder)."""
    bound = Bound(
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        choices=tuple(choices) if choices is not None else None,
        nonempty=nonempty,
        help=help,
    )
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={BOUND_KEY: bound})
    return dataclasses.field(default=default, metadata={BOUND_KEY: bound})


def bound_of(f: dataclasses.Field) -> Bound | None:
    """The declared bound of a dataclass field, or None."""
    return f.metadata.get(BOUND_KEY)


def describe(f: dataclasses.Field) -> str:
    """The bound of `f` for `--help` ("" when it has none)."""
    bound = bound_of(f)
    return "" if bound is None or bound == Bound(help=bound.help) else bound.describe()


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _is_optional(annotation) -> tuple[bool, object]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return True, inner[0] if len(inner) == 1 else typing.Union[tuple(inner)]  # noqa: UP007 (a runtime Union of several types)
    return False, annotation


def _type_problem(value, annotation) -> str | None:
    """Why `value` does not fit `annotation` (None when it fits)."""
    optional, annotation = _is_optional(annotation)
    if value is None:
        return None if optional else "must not be None"
    if annotation is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return "must be an integer"
        return None
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return "must be a number"
        return None if math.isfinite(float(value)) else "must be a finite number"
    if annotation is str:
        return None if isinstance(value, str) else "must be a string"
    if typing.get_origin(annotation) is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return "must be a list"
        args = typing.get_args(annotation)
        element = args[0] if args else object
        for item in value:
            problem = _type_problem(item, element)
            if problem:
                return f"each element {problem}"
        return None
    return None  # nested configs, Any, objects: checked by their owner


def check_value(cls, name: str, value) -> None:
    """Check one `value` for the field `name` of the config dataclass `cls` (its annotation and
    declared bound), as `check_bounds` does for a whole config: for values read from a file
    written elsewhere (a SavedModel's metadata) before any config is made of them.

    Raises:
        ValueError: one line naming `Class.field`, the expected values and the value received.
    """
    hints = _hints(cls)
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    where = f"{cls.__name__}.{name}"
    problem = _type_problem(value, hints.get(name, object))
    if problem:
        raise ValueError(f"{where} {problem}. Received: {name}={value!r:.200}")
    bound = bound_of(f)
    if bound is None or value is None:
        return
    items = value if typing.get_origin(_is_optional(hints.get(name))[1]) is tuple else (value,)
    for item in items:
        if not bound.contains(item):
            raise ValueError(f"{where} must be {bound.describe()}. Received: {name}={value!r:.200}")


def check_bounds(config) -> None:
    """Check every field of the config dataclass `config` against its annotation and bound.

    Raises:
        ValueError: one line naming `Class.field`, the expected values and the value received.
    """
    for f in dataclasses.fields(config):
        check_value(type(config), f.name, getattr(config, f.name))
