"""Command-line flags generated from config dataclasses, so defaults live in one place.

Each field ``name: type = default`` with a docstring under it becomes ``--name`` (underscores
as dashes) with that docstring as help. Tuples are written comma-separated (``--gen-hidden
128,256,512``). Flags not given on the command line are absent from the parsed namespace, so a
config file or a checkpoint's config can fill them.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import textwrap
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under each field) of a dataclass."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _converter(hint: Any) -> Any:
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]

        def parse_tuple(text: str) -> tuple[Any, ...]:
            return tuple(item(p) for p in text.split(",") if p.strip())

        base: Any = parse_tuple
    elif hint is bool:
        base = _parse_bool
    elif hint is float:
        def parse_float(text: str) -> float:
            """A number; a switch word (``true``, ``off``, ...) reads as 1 or 0, so that a
            weight or a share that was once a switch keeps its flag's old spelling."""
            try:
                return float(text)
            except ValueError:
                pass
            try:
                return float(_parse_bool(text))
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None

        base = parse_float
    else:
        base = hint
    if not optional:
        return base

    def parse_optional(text: str) -> Any:
        return None if text.lower() in ("none", "") else base(text)

    return parse_optional


def parse_field(name: str, text: str) -> Any:
    """``text`` as the value of run-config field ``name`` (any section: training, generator,
    critic), parsed as the field's flag parses it: ``gen_hidden=256,512,1024`` gives a tuple
    of ints, ``compile=on`` a bool.

    Raises:
        ValueError: no such field, or ``text`` is not a value of its type (one line).
    """
    from molgan.config import PARTS, CriticConfig, GeneratorConfig

    for cls in (*PARTS.values(), GeneratorConfig, CriticConfig):
        if name in {f.name for f in fields(cls)}:
            try:
                return _converter(typing.get_type_hints(cls)[name])(text)
            except (ValueError, argparse.ArgumentTypeError) as exc:
                raise ValueError(f"{name}={text!r}: {exc}") from None
    raise ValueError(f"no config field {name!r}")


def short_help(doc: str) -> str:
    """The first sentence of a field docstring, without reST markup: one line of help."""
    import re

    text = re.sub(r":\w+:`([^`]*)`", r"\1", doc).replace("``", "")
    match = re.search(r"(.+?)\.(\s+[A-Z(]|\s*$)", text)
    return (match.group(1) if match else text).strip()


def add_dataclass_flags(parser: argparse.ArgumentParser | Any, cls: type,
                        skip: tuple[str, ...] = ()) -> list[str]:
    """Add one flag per field of ``cls`` (to a parser or an argument group), with the first
    sentence of its docstring and its default as help; returns the field names added."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    names = []
    for f in fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name,
                            type=_converter(hints[f.name]), default=argparse.SUPPRESS,
                            help=f"{short_help(docs.get(f.name, ''))} (default: {shown})")
        names.append(f.name)
    return names


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or TOML config (a recipe, a run's ``config.json``, a user's file): flat field
    names, or tables of them (``[optimization]``, ``train``, ``generator``, ...), which are
    merged. A ``vocab`` entry (in ``config.json``) is skipped. Returns ``{field: value}``.

    Raises:
        ValueError: the file cannot be read or parsed (one line naming it).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"cannot read config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a table of fields")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key != "vocab":
            flat.update(value)
        elif key not in ("vocab", "world_size"):
            flat[key] = value
    return flat
