"""Versioned Cypher recipes for analysts, one ``<name>.cypher`` file each.

Every file starts with a header of ``// key: value`` comment lines (a line ``//   ...``
continues the previous value)::

    // name: related_products
    // version: 1
    // parameters: $product (string: a product id), $k (integer: most rows)
    // description: ...

and the rest is one read-only query with ``$parameters`` only. The whole file runs as it is
(comments are Cypher), in cypher-shell, Neo4j Browser or the driver::

    from kg.cypher import recipe
    driver.execute_query(recipe("related_products"), product="p1", k=10)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["Recipe", "load_recipe", "recipe", "recipes"]

_HEADER = re.compile(r"^//\s*(\w+):\s*(.*)$")
_CONTINUED = re.compile(r"^//\s{2,}(.*)$")
_PARAM = re.compile(r"\$(\w+)")


@dataclass(frozen=True)
class Recipe:
    """One Cypher recipe.

    Attributes:
        name: the recipe name (the file name without ``.cypher``).
        version: incremented whenever the query's columns or meaning change.
        parameters: the ``$parameters`` the header declares, in order.
        description: what it returns.
        text: the whole file (header comments and query), ready to run.
    """

    name: str
    version: int
    parameters: tuple[str, ...]
    description: str
    text: str

    @property
    def query(self) -> str:
        """The query without its header comments."""
        lines = self.text.splitlines()
        body = [line for line in lines if not line.lstrip().startswith("//")]
        return "\n".join(body).strip()

    def query_parameters(self) -> set[str]:
        """The ``$parameters`` the query body uses."""
        return set(_PARAM.findall(self.query))


def _parse(name: str, text: str) -> Recipe:
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
    missing = [k for k in ("name", "version", "parameters", "description") if k not in fields]
    if missing:
        raise ValueError(f"kg/cypher/{name}.cypher: header lacks {missing}")
    if fields["name"] != name:
        raise ValueError(f"kg/cypher/{name}.cypher: header names it {fields['name']!r}")
    return Recipe(
        name=name,
        version=int(fields["version"]),
        parameters=tuple(_PARAM.findall(fields["parameters"])),
        description=fields["description"],
        text=text,
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
