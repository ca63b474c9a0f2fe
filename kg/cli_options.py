"""Command-line options generated from configuration dataclasses: one source for defaults.

:func:`add_config_options` declares an option per dataclass field; the option's default is a
:class:`ConfigDefault` marker, never a copy of the value, and :func:`config_from_args` builds
the dataclass from the options actually given, so every option left out takes the dataclass's
own default. ``--help`` prints those defaults, read from the dataclass when the help is shown:
a configuration that lives beside a heavy import (``gnn.model:FusionConfig`` imports torch)
is only imported then, so building the parser stays instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar, Union

__all__ = ["ConfigDefault", "Opt", "add_config_options", "config_from_args", "resolve_config"]

T = TypeVar("T")
#: A dataclass, or ``"module:Class"`` to import it only when needed.
ConfigRef = Union[type, str]  # noqa: UP007 (a runtime alias; ``X | Y`` of a str fails)


def resolve_config(ref: ConfigRef) -> type:
    """The dataclass ``ref`` names."""
    if isinstance(ref, str):
        module, _, name = ref.partition(":")
        return getattr(importlib.import_module(module), name)
    return ref


@dataclass(frozen=True)
class Opt:
    """One option: the dataclass field it sets, its flag (default ``--field-name``), its help
    and any other :meth:`argparse.ArgumentParser.add_argument` keyword (``choices``...)."""

    field: str
    flag: str | None = None
    help: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class ConfigDefault:
    """The default of an option that was not given: the field's default in its dataclass,
    looked up (and the dataclass imported) only when printed."""

    def __init__(self, ref: ConfigRef, name: str) -> None:
        self.ref, self.name = ref, name

    @property
    def value(self) -> Any:
        field = _fields(resolve_config(self.ref))[self.name]
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return field.default

    def __str__(self) -> str:
        value = self.value
        return "none" if value is None else str(value)

    def __repr__(self) -> str:
        return f"ConfigDefault({self.ref!r}, {self.name!r})"


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _key(ref: ConfigRef) -> str:
    name = ref if isinstance(ref, str) else f"{ref.__module__}:{ref.__qualname__}"
    return "_config_options:" + name


def add_config_options(
    parser: argparse.ArgumentParser, ref: ConfigRef, *options: Opt | str, types_: Any = None
) -> None:
    """Declare an option per field of the dataclass ``ref`` (see the module docstring).

    Args:
        parser: the (sub)command's parser.
        ref: the dataclass, or ``"module:Class"`` for one whose module is heavy to import.
        options: the fields to expose, as :class:`Opt` or a bare field name.
        types_: ``{field: type}`` of fields whose annotation is not a plain ``int``, ``float``,
            ``str`` or ``bool`` (optionally ``| None``); needed with a string ``ref``, whose
            annotations are not read at parser-building time.
    """
    names = []
    hints: dict[str, Any] = dict(types_ or {})
    if not isinstance(ref, str):
        hints = {**typing.get_type_hints(ref), **hints}
    for raw in options:
        opt = Opt(raw) if isinstance(raw, str) else raw
        kind = _plain(hints.get(opt.field, str))
        flag = opt.flag or "--" + opt.field.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": opt.field, "default": ConfigDefault(ref, opt.field)}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = kind
        action = parser.add_argument(flag, help=opt.help, **kwargs, **opt.extra)
        if "%(default)" not in (action.help or ""):  # BooleanOptionalAction may add it
            action.help = f"{opt.help} (default: %(default)s)".lstrip()
        names.append(opt.field)
    key = _key(ref)
    parser.set_defaults(**{key: (*(parser.get_default(key) or ()), *names)})


def _plain(hint: Any) -> type:
    """``int`` of ``int``, ``int | None`` or ``Optional[int]``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is Union:
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint not in (int, float, str, bool):
        raise TypeError(f"no option type for {hint!r}: pass it in types_")
    return hint


def config_from_args(ref: ConfigRef, args: argparse.Namespace, **overrides: Any) -> Any:
    """The dataclass ``ref`` built from the options :func:`add_config_options` declared for it
    that ``args`` holds a value for (the others keep the dataclass's defaults), and
    ``overrides``.

    Raises:
        ValueError: the dataclass rejects a value (its own message).
    """
    names = getattr(args, _key(ref), ())
    given = {n: getattr(args, n) for n in names if not isinstance(getattr(args, n), ConfigDefault)}
    return resolve_config(ref)(**{**given, **overrides})
