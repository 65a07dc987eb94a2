"""One flag syntax for every config field, generated from the config dataclasses.

`ConfigFlags(TrainConfig, "train")` walks the dataclass: each field is a flag named by its dotted
path, nested configs becoming dotted prefixes (big_vision's `--config.model.depth=...`):

    --train.epochs 3          --epochs 3                   (the root name may be left out)
    --model.num_segments 4    --train.model.num_segments 4
    --sampling.window_seconds 1.28

The flag's type comes from the field's annotation: `bool` takes true/false (a bare flag is true),
a tuple takes `64,128,256` (or `192x120`), `X | None` also takes `none`. The choices, the
`--help` text and the valid range come from the field's declared bound (`emotf.bounds.bounded`:
"TrainConfig.epochs (default 30, in [1, 100000]): epochs to train (at most)"). `build(args)`
turns the flags given (over the defaults of `--config FILE.json`) into nested dicts and the
config is made by `Config.from_dict`, so unknown keys and bad values (a type, a range) are
refused by the config itself, in one line, before anything is written.
Older flag names stay as `aliases` (`--batch-size`, `--lr`, `--no-progress`, ...).
`config_tables(config_classes())` writes the table of every config field and its bound
(docs/configuration.md; `tools/config_table.py` regenerates it).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import pkgutil
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import emotf
from emotf.bounds import bound_of, describe
from emotf.configs import Config
from emotf.runs.folder import CONFIG_FILE
from emotf.storage import is_url, read_json

NONE_WORDS = ("none", "null")


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false. Received: {text!r}")


def int_in(low: int, high: int, what: str = "an integer") -> Callable:
    """An argparse `type` for a hand-written integer flag: an integer in [low, high], else one
    line naming the range and the value (no OverflowError from a 19-digit value later)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {what} in [{low}, {high}]. Received: {text!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected {what} in [{low}, {high}]. Received: {text!r}"
            )
        return value

    parse.__name__ = what
    return parse


def nonempty_path(text: str) -> str:
    """An argparse `type` for a path flag: refuses "" and blanks (they would mean the current
    folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, not an empty string")
    return text


def _optional(parse: Callable) -> Callable:
    def parse_or_none(text: str):
        return None if text.lower() in NONE_WORDS else parse(text)

    parse_or_none.__name__ = getattr(parse, "__name__", "value")
    return parse_or_none


def _sequence(parse: Callable) -> Callable:
    def parse_list(text: str) -> tuple:
        parts = text.replace("x", ",") if parse in (int, float) else text
        return tuple(parse(v.strip()) for v in parts.split(",") if v.strip())

    parse_list.__name__ = f"comma-separated {getattr(parse, '__name__', 'value')}"
    return parse_list


def _scalar(annotation) -> Callable:
    if annotation is bool:
        return parse_bool
    if annotation in (int, float, str):
        return annotation
    raise TypeError(f"no flag type for the annotation {annotation!r}")


def flag_type(annotation) -> Callable:
    """The argparse `type` of a field annotation (bool, int, float, str, tuples, `X | None`)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _optional(flag_type(inner))
    if typing.get_origin(annotation) is tuple:
        return _sequence(_scalar(args[0]))
    return _scalar(annotation)


def _metavar(annotation) -> str:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return f"{_metavar(inner)}|none"
    if typing.get_origin(annotation) is tuple:
        return f"{_metavar(args[0])},..."
    return {bool: "true|false", int: "INT", float: "FLOAT", str: "STR"}.get(annotation, "VALUE")


def _is_config(annotation) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def attribute_docs(cls) -> dict[str, str]:
    """{field: its description} from the `Attributes:` section of `cls`'s docstring (first
    sentence; `a, b: text` describes both)."""
    docs: dict[str, str] = {}
    lines = (cls.__doc__ or "").split("Attributes:", 1)[1:]
    names: list[str] = []
    for line in "".join(lines).splitlines():
        head, sep, text = line.strip().partition(": ")
        indent = len(line) - len(line.lstrip())
        if sep and indent and re.fullmatch(r"[a-z_0-9]+(, [a-z_0-9]+)*", head):
            names = head.split(", ")
            for name in names:
                docs[name] = text
        elif line.strip() and names:
            for name in names:
                docs[name] += " " + line.strip()
        elif not line.strip():
            names = []
    return {name: _first_sentence(text) for name, text in docs.items()}


def _first_sentence(text: str) -> str:
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "." and depth == 0 and text[i + 1 : i + 2] in (" ", ""):
            return text[:i]
    return text


def field_help(cls, f: dataclasses.Field) -> str:
    """The description of field `f` of `cls`: its bound's `help`, else its docstring entry."""
    bound = bound_of(f)
    return (bound.help if bound is not None else "") or attribute_docs(cls).get(f.name, "")


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One settable field: `path` relative to the root config (`("model", "num_segments")`)."""

    path: tuple[str, ...]
    owner: type
    field: dataclasses.Field
    annotation: object

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def qualname(self) -> str:
        return f"{self.owner.__name__}.{self.field.name}"


def leaves(cls, prefix: tuple[str, ...] = ()) -> list[Leaf]:
    """Every non-config field of `cls` and, recursively, of its nested config fields."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if _is_config(hints[f.name]):
            out += leaves(hints[f.name], (*prefix, f.name))
        else:
            out.append(Leaf((*prefix, f.name), cls, f, hints[f.name]))
    return out


def kebab_aliases(cls, prefix: str = "") -> dict[str, str]:
    """`--batch-size` -> `batch_size` for each non-config field of `cls` (the older flag names),
    keyed to the field's path under `prefix`."""
    hints = typing.get_type_hints(cls)
    return {
        "--" + f.name.replace("_", "-"): prefix + f.name
        for f in dataclasses.fields(cls)
        if not _is_config(hints[f.name])
    }


def _put(tree: dict, path: tuple[str, ...], value) -> None:
    for name in path[:-1]:
        node = tree.get(name)
        if isinstance(node, Config):
            node = node.to_dict()
        tree[name] = node = dict(node) if isinstance(node, Mapping) else {}
        tree = node
    tree[path[-1]] = value


def _fill_nested_defaults(cls, tree: dict) -> dict:
    """A nested config given in part starts from its field's default when that default is not
    the nested class's own (`DemoConfig.model` is a small model: `--model.fc_units 16` keeps the
    rest of it). Other nested dicts are left as given: their config fills them (and
    TrainConfig derives the sampling shapes from the model)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        node = tree.get(f.name)
        if not (_is_config(hints[f.name]) and isinstance(node, Mapping)):
            continue
        node = _fill_nested_defaults(hints[f.name], dict(node))
        default = _default(f)
        if isinstance(default, Config) and default != hints[f.name]():
            node = {**default.to_dict(), **node}
        tree[f.name] = node
    return tree


class _KeyValue(argparse.Action):
    """`--sampling KEY=VALUE` (repeatable): one field of a nested config, parsed by its type."""

    def __init__(self, *args, fields: dict[str, Leaf], **kwargs):
        self.fields = fields
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, text, option_string=None):
        key, _, value = text.partition("=")
        leaf = self.fields.get(key)
        if leaf is None:
            owner = next(iter(self.fields.values())).owner.__name__
            parser.error(
                f"unknown {owner} field {key!r} in {option_string} {text}. "
                f"Known fields: {sorted(self.fields)}"
            )
        try:
            setattr(namespace, leaf.key, flag_type(leaf.annotation)(value))
        except (ValueError, argparse.ArgumentTypeError) as error:
            parser.error(f"argument {option_string}: invalid {key} value {value!r} ({error})")


class ConfigFlags:
    """The flags of one config dataclass `cls`, named `name` (the root prefix).

    Args:
        cls: the config dataclass (fields annotated with bool, int, float, str, tuples,
            `X | None` or nested config dataclasses).
        name: the root's name: `--NAME.field` and `--field` are the same flag.
        promote: nested configs whose fields are also reachable without their prefix
            (`emotf-tune` promotes `train`: `--epochs` is `--train.epochs`), unless a field of
            the root has the name.
        aliases: extra flag -> dotted key (older names; they take a flag from the generated
            ones), or -> (key, constant) for a bare flag storing a constant (`--no-progress`).
        keyvalue: flag -> nested config key, for `--FLAG KEY=VALUE` (repeatable; the older
            syntax of `--sampling`).
        choices, types: by `ClassName.field`, overriding the bound's choices and the
            annotation's type.
        config_at: where `--config FILE.json` goes in the tree ("" = the root; "train" for
            `emotf-tune`, whose file is a TrainConfig); None = no `--config`.
    """

    def __init__(
        self,
        cls,
        name: str,
        *,
        promote=(),
        aliases=None,
        keyvalue=None,
        choices=None,
        types=None,
        config_at: str | None = "",
    ):
        self.cls, self.name = cls, name
        self.leaves = leaves(cls)
        self.by_key = {leaf.key: leaf for leaf in self.leaves}
        self.aliases = dict(aliases or {})
        self.keyvalue = dict(keyvalue or {})
        self.choices = dict(choices or {})
        self.types = dict(types or {})
        self.config_at = config_at
        for flag, target in self.aliases.items():
            key = target[0] if isinstance(target, tuple) else target
            if key not in self.by_key:
                raise ValueError(f"alias {flag} names no field of {cls.__name__}: {key!r}")
        root_names = {leaf.path[0] for leaf in self.leaves}
        self.flags: dict[str, list[str]] = {}
        taken = set(self.aliases)
        for leaf in self.leaves:
            names = [f"--{name}.{leaf.key}", f"--{leaf.key}"]
            if leaf.path[0] in promote and leaf.path[1] not in root_names:
                names.append("--" + ".".join(leaf.path[1:]))
            self.flags[leaf.key] = [n for n in dict.fromkeys(names) if n not in taken]

    def help_line(self, leaf: Leaf) -> str:
        """`Class.field (default D, BOUND): description` (the bound's `help`, else the class
        docstring's `Attributes:` entry)."""
        default = _default(leaf.field)
        text = "required" if default is dataclasses.MISSING else f"default {default!r}"
        bound = describe(leaf.field)
        text += f", {bound}" if bound else ""
        about = field_help(leaf.owner, leaf.field)
        return f"{leaf.qualname} ({text}){': ' + about if about else ''}".replace("%", "%%")

    def choices_of(self, leaf: Leaf) -> tuple | None:
        """argparse choices of a scalar field: the command's override, else the bound's."""
        if leaf.qualname in self.choices:
            return tuple(self.choices[leaf.qualname])
        bound = bound_of(leaf.field)
        if bound is None or bound.choices is None:
            return None
        if leaf.annotation in (bool, int, float, str):
            return bound.choices
        args = typing.get_args(leaf.annotation)
        if type(None) in args and len(args) == 2 and args[0] in (bool, int, float, str):
            return (*bound.choices, None)  # X | None: `none` parses to None
        return None

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add `--config` and one flag per field (grouped by nested config) to `parser`."""
        if parser.usage is None:  # argparse's would list every flag (see --help for them)
            parser.usage = (
                f"%(prog)s [options] [--config FILE.json] [--{self.name}.FIELD VALUE ...]"
            )
        if self.config_at is not None:
            where = f"{self.config_at} " if self.config_at else ""
            parser.add_argument(
                "--config",
                metavar="FILE.json",
                help=f"JSON file of {where}config fields: defaults that the flags override",
            )
        groups = {}
        aliases_of: dict[str, list[str]] = {}
        for flag, target in self.aliases.items():
            if not isinstance(target, tuple):
                aliases_of.setdefault(target, []).append(flag)
        for leaf in self.leaves:
            group_name = ".".join((self.name, *leaf.path[:-1]))
            if group_name not in groups:
                groups[group_name] = parser.add_argument_group(
                    f"{leaf.owner.__name__} (--{group_name}.FIELD)"
                )
            parse = self.types.get(leaf.qualname) or flag_type(leaf.annotation)
            bare_true: dict[str, Any] = {"nargs": "?", "const": True} if parse is parse_bool else {}
            choices = self.choices_of(leaf)
            groups[group_name].add_argument(
                *self.flags[leaf.key],
                *aliases_of.get(leaf.key, []),
                dest=leaf.key,
                type=parse,
                choices=choices,
                default=argparse.SUPPRESS,
                metavar=None if choices else _metavar(leaf.annotation),
                help=self.help_line(leaf),
                **bare_true,
            )
        for flag, target in self.aliases.items():
            if isinstance(target, tuple):
                key, constant = target
                parser.add_argument(
                    flag,
                    dest=key,
                    action="store_const",
                    const=constant,
                    default=argparse.SUPPRESS,
                    help=f"--{self.name}.{key} {json.dumps(constant)}",
                )
        for flag, prefix in self.keyvalue.items():
            fields = {
                leaf.path[-1]: leaf
                for leaf in self.leaves
                if leaf.path[:-1] == tuple(prefix.split("."))
            }
            parser.add_argument(
                flag,
                action=_KeyValue,
                fields=fields,
                default=argparse.SUPPRESS,
                metavar="KEY=VALUE",
                help=f"= --{self.name}.{prefix}.KEY VALUE (older syntax, repeatable)",
            )

    def given(self, args: argparse.Namespace) -> dict:
        """{dotted key: value} of the flags given on the command line."""
        return {key: value for key, value in vars(args).items() if key in self.by_key}

    def values(self, args: argparse.Namespace, base: Mapping | None = None) -> dict:
        """The nested dict of `base` (else the `--config` file), with the given flags on top."""
        tree = json.loads(json.dumps(base)) if base is not None else self.file_values(args)
        for key, value in self.given(args).items():
            _put(tree, self.by_key[key].path, value)
        return _fill_nested_defaults(self.cls, tree)

    def file_values(self, args: argparse.Namespace) -> dict:
        path = getattr(args, "config", None) if self.config_at is not None else None
        if not path:
            return {}
        if not is_url(path) and not Path(path).is_file():
            Path(path).open()  # the OSError naming the file: missing, a folder, unreadable
        values = read_json(path, expect=dict)  # size-capped (emotf.storage.MAX_JSON_BYTES)
        if isinstance(values.get("config"), Mapping):  # a RUN/config.json as is
            values = values["config"]
        tree: dict = {}
        if self.config_at:
            _put(tree, tuple(self.config_at.split(".")), dict(values))
            return tree
        return dict(values)

    def build(self, values: Mapping):
        """`cls.from_dict(values)`, required fields named as flags when missing."""
        missing = [
            f.name
            for f in dataclasses.fields(self.cls)
            if _default(f) is dataclasses.MISSING and f.name not in values
        ]
        if missing:
            named = [
                " / ".join([*self.flags[key], *(a for a, t in self.aliases.items() if t == key)])
                for key in missing
            ]
            raise ValueError(
                f"{self.cls.__name__} needs {', '.join(missing)}: give {'; '.join(named)}"
            )
        return self.cls.from_dict(values)


# === The table of every config field (docs/configuration.md) ===


def config_classes() -> list[type]:
    """Every config dataclass of emotf (subclasses of `emotf.configs.Config`), found by importing
    every module of the package, sorted by module and name."""
    for module in pkgutil.walk_packages(emotf.__path__, "emotf."):
        importlib.import_module(module.name)
    found: set[type] = set()
    todo: list[type] = [Config]
    while todo:
        subclasses: list[type] = todo.pop().__subclasses__()
        for sub in subclasses:
            todo.append(sub)
            if dataclasses.is_dataclass(sub) and sub.__module__.startswith("emotf."):
                found.add(sub)
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default_text(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        return f"{getattr(f.default_factory, '__name__', 'factory')}()"
    if f.default is dataclasses.MISSING:
        return "required"
    value = f.default
    if isinstance(value, Config):  # a nested config: only what differs from its class's
        base = type(value)()
        changed = {
            g.name: getattr(value, g.name)
            for g in dataclasses.fields(typing.cast(Any, value))
            if getattr(value, g.name) != getattr(base, g.name)
        }
        return f"{type(value).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def field_table(cls) -> str:
    """A markdown table of `cls`'s fields: type, default, valid values, description."""
    hints = typing.get_type_hints(cls)
    rows = ["| field | type | default | valid values | description |", "|---|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        kind = annotation.__name__ if _is_config(annotation) else str(f.type)
        rows.append(
            f"| `{f.name}` | `{_cell(kind)}` | `{_cell(_default_text(f))}` | "
            f"{_cell(_valid_text(f, annotation))} | {_cell(field_help(cls, f))} |"
        )
    return "\n".join(rows)


def _valid_text(f: dataclasses.Field, annotation) -> str:
    """The valid values of a field in words ("in [1, 64]", "each in [1, 4096]", "true or false",
    "any text", "... or none")."""
    if _is_config(annotation):
        return f"a {annotation.__name__}"
    args = typing.get_args(annotation)
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    optional = union and type(None) in args
    if optional:
        (annotation,) = [a for a in args if a is not type(None)]
    bound = describe(f)
    if typing.get_origin(annotation) is tuple:
        text = f"each {bound}" if bound else "a list"
    elif annotation is bool:
        text = "true or false"
    else:
        text = bound or ("any text" if annotation is str else "any")
    return f"{text} or none" if optional else text


def sections_text(cls) -> str:
    """For a config made of sections (`cls.SECTIONS`: {name: config class}, each field declared
    in one of them, `emotf.configs.TrainConfig`): which section declares which field."""
    lines = [
        "Every field of its sections, under its own name (flags, JSON files and "
        f"`RUN/{CONFIG_FILE}` are flat); each is described in its section's table:",
        "",
    ]
    for name, section in cls.SECTIONS.items():
        names = ", ".join(f"`{f.name}`" for f in dataclasses.fields(section))
        lines.append(f"- `{name}` ({section.__name__}): {names}")
    return "\n".join(lines)


def config_tables(classes) -> str:
    """`field_table` of each class of `classes` (`sections_text` for a config made of
    sections), under a heading naming it and its module."""
    return (
        "\n\n".join(
            f"### {cls.__name__} (`{cls.__module__}`)\n\n"
            + (sections_text(cls) if hasattr(cls, "SECTIONS") else field_table(cls))
            for cls in classes
        )
        + "\n"
    )
