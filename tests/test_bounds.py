"""Bounds declared once (issue 19): every config field of emotf says its valid values where it
is declared (`emotf.bounds.bounded`), every config checks them at construction, and
docs/configuration.md shows them as the code declares them."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotf.bounds import bound_of, check_bounds
from emotf.cli.flags import config_classes, config_tables, field_help

CLASSES = config_classes()
DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BEGIN, END = "<!-- fields: begin -->", "<!-- fields: end -->"

# str fields that take any text, and why: every other str field must declare its choices.
FREE_TEXT = {
    "TrainConfig.records": "a folder",
    "TrainConfig.out": "a folder",
    "TrainConfig.split": "actors, ogm or a folder",
    "TaskConfig.records": "a folder",
    "TaskConfig.split": "actors, ogm or a folder",
    "TaskConfig.init_from": "a run or SavedModel folder ('' = none), opened when training starts",
    "TrainConfig.init_from": "a run or SavedModel folder ('' = none), opened when training starts",
    "RuntimeConfig.out": "a folder",
    "TuneConfig.out": "a folder",
    "BuildConfig.data_dir": "a folder or URL",
    "BuildConfig.out_dir": "a folder or URL",
    "BuildConfig.beam_options": "Beam's own options, which Beam parses",
    "BuildConfig.classes": "a csv corpus's class names, matched against its table",
    "DemoConfig.out": "a folder",
    "TunerRole.tuner_id": "chief or tunerN, a pattern checked by TunerRole",
    "TunerRole.oracle_address": "HOST:PORT, checked by TunerRole",
}
# Required fields, given a valid value so the others can be varied.
REQUIRED = {"data_dir": "data", "out_dir": "records"}


def _plain(annotation):
    """(annotation without `| None`, whether None is allowed)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return inner, True
    return annotation, False


def _element(annotation):
    """The scalar type of a field: its own, or its tuple's elements'."""
    annotation, _ = _plain(annotation)
    if typing.get_origin(annotation) is tuple:
        return typing.get_args(annotation)[0]
    return annotation


def _fields(cls):
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _name(cls) -> str:
    return cls.__name__


def _base(cls) -> dict:
    return {
        f.name: REQUIRED[f.name]
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


def test_the_walk_finds_the_configs_of_every_layer():
    names = {cls.__name__ for cls in CLASSES}
    assert {
        "SamplingConfig",
        "ModelConfig",
        "TrainConfig",
        "TaskConfig",
        "TrainerConfig",
        "RuntimeConfig",
        "TuneConfig",
        "BuildConfig",
        "FaceTrackerConfig",
        "DemoConfig",
        "SampleConfig",
        "ReportExtras",
    } <= names


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_every_field_declares_its_valid_values_and_a_description(cls):
    """Numbers (and tuples of numbers) have a range closed on both sides or a set of choices;
    a str that is not free text (a path, another tool's options) has its choices."""
    problems = []
    for f, annotation in _fields(cls):
        where = f"{cls.__name__}.{f.name}"
        bound = bound_of(f)
        if bound is None:
            problems.append(f"{where}: not declared with bounded(...)")
            continue
        if not field_help(cls, f):
            problems.append(f"{where}: no help text")
        kind = _element(annotation)
        if kind in (int, float) and bound.choices is None:
            if (bound.ge, bound.gt) == (None, None) or (bound.le, bound.lt) == (None, None):
                problems.append(f"{where}: a number needs a lower and an upper limit")
        if kind is str and bound.choices is None and where not in FREE_TEXT:
            problems.append(f"{where}: a str field needs its choices (or a FREE_TEXT entry)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_the_defaults_are_inside_their_bounds(cls):
    check_bounds(cls(**_base(cls)))


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_every_config_checks_its_bounds_at_construction(cls):
    """One out-of-range or mistyped value per field is refused by the constructor, with one line
    naming the class, the field and the value."""
    base = _base(cls)
    for f, annotation in _fields(cls):
        bound = bound_of(f)
        kind, _ = _plain(annotation)
        if kind is bool:
            bad = 1  # an integer is not a boolean
        elif (
            kind in (int, float)
            and bound is not None
            and bound.choices is None
            and (bound.le, bound.lt) != (None, None)
        ):
            bad = (bound.le if bound.le is not None else bound.lt) * 2 + 1
            bad = int(bad) if kind is int else float(bad)
        elif kind is str and bound is not None and bound.choices:
            bad = "not-a-choice"
        else:
            continue
        with pytest.raises(ValueError) as error:
            cls(**{**base, f.name: bad})
        line = str(error.value)
        assert "\n" not in line and f"{cls.__name__}.{f.name}" in line, line
        assert f"Received: {f.name}=" in line, line
        if kind in (int, float):
            with pytest.raises(ValueError, match="Received"):
                cls(**{**base, f.name: True})  # a bool is not a number


def _edges(bound) -> list:
    if bound is None:
        return []
    if bound.choices is not None:
        return list(bound.choices)
    out = []
    for limit in (bound.ge, bound.gt, bound.le, bound.lt):
        if limit is not None:
            out += [
                limit,
                limit - 1,
                limit + 1,
                limit * 0.999,
                limit * 1.001,
                math.nextafter(limit, math.inf),
                math.nextafter(limit, -math.inf),
            ]
    return out


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(
        st.one_of(st.integers(-10, 5000), st.floats(), st.text(max_size=4), st.booleans()),
        max_size=4,
    ),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)


def _value_for(f):
    edges = _edges(bound_of(f))
    return st.one_of(ANY_VALUE, st.sampled_from(edges)) if edges else ANY_VALUE


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_of_any_field_constructs_or_is_refused_with_a_value_error(cls, data):
    """Random values, one field at a time, through `from_dict` (as a JSON file gives them):
    the config is made, or a ValueError is raised; never another exception."""
    fields = dataclasses.fields(cls)
    f = data.draw(st.sampled_from(fields), label="field")
    value = data.draw(_value_for(f), label="value")
    try:
        config = cls.from_dict({**_base(cls), f.name: value})
    except ValueError as error:
        assert "\n" not in str(error).strip(), str(error)
        return
    check_bounds(config)


def _doc_tables() -> str:
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC} lost its {BEGIN} ... {END} markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip() + "\n"


def test_the_documented_table_is_the_declared_bounds():
    """docs/configuration.md's table is generated from the code: regenerate it with
    `python tools/config_table.py` after changing a field."""
    assert _doc_tables() == config_tables(CLASSES), "run: python tools/config_table.py"
