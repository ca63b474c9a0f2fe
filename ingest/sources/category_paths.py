"""Category paths as catalogues write them: names joined with ``","``, ``", "`` or ``" > "``.

``","``
    The Amazon 2018 processed layout: ``"Industrial & Scientific,Test, Measure & Inspect,Gauges"``.
    A comma *not followed by a space* separates names, so names keep their own ``", "``.
``" > "``
    ``"Tools > Hand Tools > Pliers"``; surrounding spaces are optional when splitting.
``", "``
    The Amazon 2014 processed layout: ``"Electronics, Computers & Accessories, Cables &
    Accessories"``. Names contain ``", "`` themselves (``"Tape, Adhesives & Fasteners"``,
    ``"Clothing, Shoes & Jewelry"``), so one string alone cannot be split. The split is resolved
    with every category string of the file (:func:`split_paths`): the strings are cut into
    ``", "``-separated words and laid into one tree of word sequences; a point in that tree is
    a boundary between two categories when

    * some product's whole string ends there: that prefix is a known path, so it wins; or
    * the strings going through it continue with two or more different words: only a category
      branches.

    The words between two boundaries form one name. What stays ambiguous: a category that has
    exactly one subcategory and no product of its own cannot be told from a name containing
    ``", "``, so it is merged with its subcategory into one name, one level higher up (for
    example ``"Puzzles, Jigsaw Puzzles"`` when no product sits in ``Puzzles`` itself and
    ``Puzzles`` has no other subcategory). A merge never invents a level that is not there.

Names are HTML-unescaped and stripped; empty names are dropped.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

from ingest.sources.categories import CategoryTree

__all__ = [
    "SEPARATORS",
    "category_tree",
    "check_separator",
    "detect_separator",
    "split_path",
    "split_paths",
]

#: The separators :func:`split_paths` knows.
SEPARATORS = (",", ", ", " > ")
_TIGHT_COMMA = re.compile(r",(?! )")
_ARROW = re.compile(r"\s*>\s*")


def check_separator(separator: str | None) -> None:
    """Raise ``ValueError`` unless ``separator`` is ``None`` (detect it) or one of
    :data:`SEPARATORS`."""
    if separator is not None and separator not in SEPARATORS:
        raise ValueError(f"unknown category separator {separator!r}; one of {list(SEPARATORS)}")


def _clean(parts: Iterable[str]) -> list[str]:
    names = (html.unescape(part).strip() for part in parts)
    return [name for name in names if name]


def split_path(text: str, separator: str) -> list[str]:
    """Split one category string with ``","`` or ``" > "`` (``", "`` needs the whole file:
    use :func:`split_paths`).

    Raises:
        ValueError: an unknown separator, or ``", "``.
    """
    if separator == ",":
        return _clean(_TIGHT_COMMA.split(text))
    if separator == " > ":
        return _clean(_ARROW.split(text))
    if separator == ", ":
        raise ValueError('", "-joined paths are split with the whole file: use split_paths')
    check_separator(separator)
    raise AssertionError(separator)  # every separator is handled above


def detect_separator(texts: Iterable[str]) -> str:
    """The separator most category strings use.

    A string votes ``" > "`` when it holds ``" > "``, else ``","`` when it holds a comma not
    followed by a space, else ``", "`` when it holds ``", "``; strings without any vote for
    nothing. Ties go to ``" > "``, then ``","``, then ``", "``; with no votes at all the answer
    is ``","`` (every string is one name then, whatever the separator).
    """
    votes = dict.fromkeys((" > ", ",", ", "), 0)
    for text in texts:
        if " > " in text:
            votes[" > "] += 1
        elif _TIGHT_COMMA.search(text):
            votes[","] += 1
        elif ", " in text:
            votes[", "] += 1
    best = max(votes.values())
    return next(sep for sep, n in votes.items() if n == best) if best else ","


def _is_list_end(word: str) -> bool:
    return " & " in word or " and " in word


def _chain_names(words: list[str]) -> list[str]:
    """The names in words between two boundaries: a list name (``"A, B & C"``: words without
    ``&`` then one with ``&``) stays whole; every other word is a name of its own."""
    names: list[str] = []
    run: list[str] = []
    for word in words:
        run.append(word)
        if _is_list_end(word):
            if len(run) > 1 and not any(_is_list_end(w) for w in run[:-1]):
                names.append(", ".join(run))
            else:
                names.extend(run)
            run = []
    return names + run


def split_paths(texts: Iterable[str], separator: str) -> dict[str, list[str]]:
    """Split every category string of a file into names.

    Args:
        texts: the category strings of the whole file (repeats are fine).
        separator: one of :data:`SEPARATORS`.

    Returns:
        Each distinct string mapped to its names from the root down (``[]`` for an empty one).

    Raises:
        ValueError: an unknown separator.
    """
    distinct = dict.fromkeys(texts)
    if separator != ", ":
        return {text: split_path(text, separator) for text in distinct}
    words = {text: _clean(text.split(", ")) for text in distinct}
    ends: set[tuple[str, ...]] = {tuple(w) for w in words.values() if w}
    following: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for w in words.values():
        for depth in range(1, len(w)):
            following[tuple(w[:depth])].add(w[depth])
    out: dict[str, list[str]] = {}
    for text, w in words.items():
        names: list[str] = []
        start = 0
        for depth in range(1, len(w) + 1):
            prefix = tuple(w[:depth])
            if depth == len(w) or prefix in ends or len(following[prefix]) > 1:
                names.extend(_chain_names(w[start:depth]))
                start = depth
        out[text] = names
    return out


def category_tree(
    category_of: Mapping[str, str], separator: str
) -> tuple[dict[str, str], CategoryTree]:
    """The category tree of products' category strings, and each product's leaf.

    Args:
        category_of: each product's category string (in the order nodes are to be made).
        separator: one of :data:`SEPARATORS`.

    Returns:
        ``{product: leaf category id}`` (products with an empty path left out) and the tree.
    """
    paths = split_paths(category_of.values(), separator)
    tree = CategoryTree()
    leaves: dict[str, str] = {}
    for product, text in category_of.items():
        leaf = tree.add(paths[text])
        if leaf is not None:
            leaves[product] = leaf
    return leaves, tree
