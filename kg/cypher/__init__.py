"""Versioned Cypher recipes for analysts, one ``<name>.cypher`` file each.

Every file starts with a header of ``// key: value`` comment lines (a line ``//   ...``
continues the previous value)::

    // name: related_products
    // version: 1
    // parameters: $product (string: a product id), $k (integer: most rows, default 10)
    // description: ...

and the rest is one read-only query with ``$parameters`` only. Each parameter is declared as
``$name (type: what it is)`` with a type among ``string``, ``integer``, ``float`` and
``boolean``; a description ending in ``default VALUE`` gives its default. The whole file runs
as it is (comments are Cypher), in cypher-shell (``kgrec cypher -f``), ``kgrec browse``, Neo4j
Browser or the driver::

    from kg.cypher import recipe
    driver.execute_query(recipe("related_products"), product="p1", k=10)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

__all__ = ["Recipe", "RecipeParameter", "load_recipe", "read_recipe", "recipe", "recipes"]

_HEADER = re.compile(r"^//\s*(\w+):\s*(.*)$")
_CONTINUED = re.compile(r"^//\s{2,}(.*)$")
_PARAM = re.compile(r"\$(\w+)")
_DECLARED = re.compile(r"\$(\w+)\s*\((\w+):\s*([^)]*)\)")
_DEFAULT = re.compile(r"[,;]?\s*\bdefault\s+(\S+)\s*$")
_TYPES = ("string", "integer", "float", "boolean")


@dataclass(frozen=True)
class RecipeParameter:
    """One declared ``$parameter`` of a recipe.

    Attributes:
        name: the name, without ``$``.
        type: ``string``, ``integer``, ``float`` or ``boolean``.
        description: what it is.
        default: the default value, or ``None`` when the parameter is required.
    """

    name: str
    type: str
    description: str
    default: str | int | float | bool | None = None

    def convert(self, text: str) -> str | int | float | bool:
        """``text`` (as typed on a command line or in a form) as a value of this type.

        Raises:
            ValueError: not a value of the type (the message names the parameter).
        """
        try:
            if self.type == "integer":
                return int(text.strip())
            if self.type == "float":
                return float(text.strip())
        except ValueError:
            raise ValueError(f"${self.name} must be an {self.type}, not {text!r}") from None
        if self.type == "boolean":
            if text.strip().lower() not in ("true", "false"):
                raise ValueError(f"${self.name} must be true or false, not {text!r}")
            return text.strip().lower() == "true"
        return text


@dataclass(frozen=True)
class Recipe:
    """One Cypher recipe.

    Attributes:
        name: the recipe name (the file name without ``.cypher``).
        version: incremented whenever the query's columns or meaning change.
        parameters: the ``$parameters`` the header declares, in order.
        declared: the same parameters with their types, descriptions and defaults.
        description: what it returns.
        text: the whole file (header comments and query), ready to run.
    """

    name: str
    version: int
    parameters: tuple[str, ...]
    description: str
    text: str
    declared: tuple[RecipeParameter, ...] = ()

    @property
    def query(self) -> str:
        """The query without its header comments."""
        lines = self.text.splitlines()
        body = [line for line in lines if not line.lstrip().startswith("//")]
        return "\n".join(body).strip()

    def query_parameters(self) -> set[str]:
        """The ``$parameters`` the query body uses."""
        return set(_PARAM.findall(self.query))

    def bind(self, values: Mapping[str, str]) -> dict[str, str | int | float | bool]:
        """The query's parameters from ``values`` given as text, converted to their declared
        types, with the defaults filled in.

        Raises:
            ValueError: an undeclared name, a value of the wrong type, or a required parameter
                missing (the message lists what is needed).
        """
        declared = {p.name: p for p in self.declared}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise ValueError(
                f"recipe {self.name} has no parameter {', '.join('$' + u for u in unknown)}; "
                f"it takes {', '.join('$' + p for p in declared) or 'none'}"
            )
        bound: dict[str, str | int | float | bool] = {}
        for param in self.declared:
            if param.name in values:
                bound[param.name] = param.convert(values[param.name])
            elif param.default is not None:
                bound[param.name] = param.default
        missing = [p for p in self.declared if p.name not in bound]
        if missing:
            needs = ", ".join(f"{p.name}=<{p.type}: {p.description}>" for p in missing)
            raise ValueError(f"recipe {self.name} needs {needs}")
        return bound


def _declared(where: str, text: str) -> tuple[RecipeParameter, ...]:
    out = []
    for name, kind, what in _DECLARED.findall(text):
        if kind not in _TYPES:
            raise ValueError(f"{where}: ${name} has type {kind!r}, not one of {_TYPES}")
        param = RecipeParameter(name, kind, what.strip())
        found = _DEFAULT.search(what)
        if found:
            param = RecipeParameter(
                name, kind, what[: found.start()].strip(), param.convert(found.group(1))
            )
        out.append(param)
    return tuple(out)


def _parse(name: str, text: str, where: str | None = None) -> Recipe:
    fields: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.startswith("//"):
            break
        cont = _CONTINUED.match(line)
        head = _HEADER.match(line)
        if cont and last is not None and not head:
            fields[last] += " " + cont.group(1).strip()
        elif head:
            last = head.group(1)
            fields[last] = head.group(2).strip()
    where = where or f"kg/cypher/{name}.cypher"
    missing = [k for k in ("name", "version", "parameters", "description") if k not in fields]
    if missing:
        raise ValueError(f"{where}: header lacks {missing}")
    if fields["name"] != name:
        raise ValueError(f"{where}: header names it {fields['name']!r}")
    parameters = tuple(_PARAM.findall(fields["parameters"]))
    declared = _declared(where, fields["parameters"])
    if tuple(p.name for p in declared) != parameters:
        raise ValueError(f"{where}: declare each parameter as $name (type: description)")
    return Recipe(
        name=name,
        version=int(fields["version"]),
        parameters=parameters,
        description=fields["description"],
        text=text,
        declared=declared,
    )


@cache
def load_recipe(name: str) -> Recipe:
    """The recipe ``name``, parsed.

    Raises:
        KeyError: no such recipe (the message lists them).
    """
    file = resources.files(__name__) / f"{name}.cypher"
    if not re.fullmatch(r"\w+", name) or not file.is_file():
        raise KeyError(f"no Cypher recipe {name!r}; recipes: {[r.name for r in recipes()]}")
    return _parse(name, file.read_text(encoding="utf-8"))


def read_recipe(path: str | Path) -> Recipe | None:
    """The recipe in the file ``path`` (any folder), or ``None`` when the file has no recipe
    header (plain Cypher).

    Raises:
        OSError: the file cannot be read.
        ValueError: a header that is incomplete or whose name is not the file's.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if not re.match(r"//\s*name:", text):
        return None
    return _parse(path.name.removesuffix(".cypher"), text, str(path))


def recipe(name: str) -> str:
    """The text of recipe ``name`` (run it with its ``$parameters``)."""
    return load_recipe(name).text


def recipes() -> list[Recipe]:
    """Every recipe, by name."""
    names = sorted(
        f.name.removesuffix(".cypher")
        for f in resources.files(__name__).iterdir()
        if f.name.endswith(".cypher")
    )
    return [load_recipe(n) for n in names]
