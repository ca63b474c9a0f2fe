"""Query understanding through the graph: a search query's words linked to Category and Brand
nodes, by their names and by their text vectors.

**By name.** A category or brand is linked when every term of its name (analysed as the
index analyses text, :mod:`kg.query.analyzer`) is among the query's terms: ``"hp ink
cartridges"`` links the brand ``HP`` and the category ``Ink Cartridges``, not ``Ink Rollers``.
Linked categories support each other along the tree: a category's *support* is the number of
linked categories on its path from the root (itself included), so for the query ``"industrial
scientific fasteners collated staples"`` the category ``... > Collated Fasteners > Staples``
has support 4 and a lone ``Staples`` elsewhere in the tree 1.

**By text vector.** A category's text vector is the normalised mean of the text vectors of
its products (any depth below it), a brand's that of its products'. A category or brand
whose vector has cosine ``c`` with the query's vector above ``θ`` (:attr:`LinkSettings.min_cosine`)
is linked with strength ``(c - θ) / (1 - θ)``, the :attr:`LinkSettings.max_text_links` best of
each kind; a name link has strength 1 and takes precedence.

**What the links add to a product** ``j`` (each in ``[0, 1]``)::

    link_category(j) = max over linked categories c above leaf(j) of
                       strength(c) · support(c) / max_c' support(c')
    link_brand(j)    = max over linked brands b = brand(j) of strength(b)

So a product in the deepest category of the chain the query names scores 1, one in a sibling
of it less. **Filters.** A query is *unambiguous* when one name-linked category has the highest
support, and the name links (that category's chain and at most one brand) hold every term of
the query: the query then names a category (and a brand) and nothing else, and the search
keeps only the products under that category (and of that brand), provided at least ``k`` are
left (:mod:`kg.query.search`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from kg.query.analyzer import words
from kg.query.index import GraphIndex

__all__ = ["Link", "LinkSettings", "QueryLinker", "QueryLinks"]


@dataclass(frozen=True)
class LinkSettings:
    """How query words are linked to categories and brands (module docstring).

    Attributes:
        min_cosine: ``θ``, the cosine above which a text vector links (``>= 1``: no text
            links).
        max_text_links: most categories, and most brands, linked by text vector.
        filters: filter by the categories and brand of an unambiguous query.
    """

    min_cosine: float = 0.6
    max_text_links: int = 3
    filters: bool = True


@dataclass(frozen=True)
class Link:
    """A category or brand the query is linked to.

    Attributes:
        kind: ``"category"`` or ``"brand"``.
        index: its index in the graph index.
        id: its id.
        name: its name (the id when it has none).
        strength: in ``(0, 1]``.
        by: ``"name"`` or ``"text"``.
        support: linked categories on its path from the root (1 for brands).
    """

    kind: str
    index: int
    id: str
    name: str
    strength: float
    by: str
    support: int = 1


@dataclass(frozen=True)
class QueryLinks:
    """The links of one query, and what they add to every product.

    Attributes:
        categories: linked categories, strongest first.
        brands: linked brands, strongest first.
        category_term: ``(P,)`` float32 ``link_category(j)``.
        brand_term: ``(P,)`` float32 ``link_brand(j)``.
        allowed: ``(P,)`` bool, the products an unambiguous query keeps, or ``None``.
        unambiguous: the links that make it unambiguous (empty when it is not).
    """

    categories: list[Link]
    brands: list[Link]
    category_term: np.ndarray
    brand_term: np.ndarray
    allowed: np.ndarray | None = None
    unambiguous: list[Link] = field(default_factory=list)


class QueryLinker:
    """Links queries to the categories and brands of a catalogue (module docstring).

    Args:
        index: the graph index.
        text_vectors: ``(P, d)`` unit text vectors of the products, or ``None`` (no text links).
        settings: see :class:`LinkSettings`.
    """

    def __init__(
        self,
        index: GraphIndex,
        text_vectors: np.ndarray | None,
        settings: LinkSettings | None = None,
    ) -> None:
        self.index = index
        self.settings = settings or LinkSettings()
        ix = index
        self.category_names = [
            n or c for n, c in zip(ix.category_names, ix.category_ids, strict=True)
        ]
        self.brand_names = [n or b for n, b in zip(ix.brand_names, ix.brand_ids, strict=True)]
        self.category_terms = [frozenset(words(n)) for n in self.category_names]
        self.brand_terms = [frozenset(words(n)) for n in self.brand_names]
        self._by_term: dict[str, list[tuple[str, int]]] = {}
        for kind, names in (("category", self.category_terms), ("brand", self.brand_terms)):
            for i, terms in enumerate(names):
                for t in terms:
                    self._by_term.setdefault(t, []).append((kind, i))
        self.category_vectors: np.ndarray | None = None
        self.brand_vectors: np.ndarray | None = None
        if text_vectors is not None:
            self.category_vectors = _centroids(_category_members(ix), text_vectors)
            self.brand_vectors = _centroids(_brand_members(ix), text_vectors)

    def link(self, terms: set[str], vector: np.ndarray | None) -> QueryLinks:
        """The links of a query given its terms and its text vector (or ``None``)."""
        ix, s = self.index, self.settings
        by_name = {"category": set(), "brand": set()}
        for t in terms:
            for kind, i in self._by_term.get(t, ()):
                own = self.category_terms[i] if kind == "category" else self.brand_terms[i]
                if own <= terms:
                    by_name[kind].add(i)
        support = self._support(sorted(by_name["category"]))
        top = max(support.values(), default=0)
        categories = [
            self._link("category", c, 1.0, "name", support[c]) for c in sorted(by_name["category"])
        ]
        brands = [self._link("brand", b, 1.0, "name") for b in sorted(by_name["brand"])]
        if vector is not None and s.min_cosine < 1 and self.category_vectors is not None:
            assert self.brand_vectors is not None
            categories += self._text_links("category", self.category_vectors, vector, by_name)
            brands += self._text_links("brand", self.brand_vectors, vector, by_name)
        categories.sort(key=lambda x: (-x.strength, -x.support, x.id))
        brands.sort(key=lambda x: (-x.strength, x.id))

        cat_score = np.zeros(ix.n_categories + 1, np.float32)
        for link in categories:
            weight = link.strength * (link.support / top if link.by == "name" else 1.0)
            under = ix.under([link.index])
            np.maximum(cat_score, np.where(under, np.float32(weight), 0), out=cat_score)
        brand_score = np.zeros(ix.n_brands + 1, np.float32)
        for link in brands:
            brand_score[link.index] = max(brand_score[link.index], link.strength)
        allowed, chosen = self._filter(terms, by_name, support, top)
        return QueryLinks(
            categories=categories,
            brands=brands,
            category_term=np.take(cat_score, ix.leaf),
            brand_term=np.take(brand_score, ix.brand),
            allowed=allowed,
            unambiguous=chosen,
        )

    # ------------------------------------------------------------------ helpers
    def _link(self, kind: str, i: int, strength: float, by: str, support: int = 1) -> Link:
        ix = self.index
        if kind == "category":
            return Link(kind, i, ix.category_ids[i], self.category_names[i], strength, by, support)
        return Link(kind, i, ix.brand_ids[i], self.brand_names[i], strength, by, support)

    def _support(self, linked: list[int]) -> dict[int, int]:
        """Per name-linked category: linked categories on its path from the root."""
        mark = np.zeros(self.index.n_categories + 1, bool)
        mark[linked] = True
        out = {}
        for c in linked:
            path = self.index.cat_path[c]
            out[c] = int(mark[path[path >= 0]].sum())
        return out

    def _text_links(
        self, kind: str, vectors: np.ndarray, query: np.ndarray, named: dict[str, set[int]]
    ) -> list[Link]:
        s = self.settings
        cos = vectors @ query
        n = min(s.max_text_links + len(named[kind]), cos.size)
        if n == 0:
            return []
        best = np.argpartition(-cos, n - 1)[:n]
        out = []
        for i in best[np.argsort(-cos[best], kind="stable")].tolist():
            if cos[i] <= s.min_cosine or len(out) == s.max_text_links:
                break
            if i not in named[kind]:
                strength = float((cos[i] - s.min_cosine) / (1.0 - s.min_cosine))
                out.append(self._link(kind, i, strength, "text"))
        return out

    def _filter(
        self, terms: set[str], named: dict[str, set[int]], support: dict[int, int], top: int
    ) -> tuple[np.ndarray | None, list[Link]]:
        """The products an unambiguous query keeps, and the links it names (module docstring)."""
        if not self.settings.filters or not terms:
            return None, []
        best = [c for c, n in support.items() if n == top]
        if len(best) > 1 or len(named["brand"]) > 1 or not (best or named["brand"]):
            return None, []
        ix = self.index
        chain: list[int] = []
        if best:
            path = ix.cat_path[best[0]]
            chain = [int(c) for c in path[path >= 0] if int(c) in named["category"]]
        covered: set[str] = set().union(*(self.category_terms[c] for c in chain))
        covered |= set().union(*(self.brand_terms[b] for b in named["brand"]))
        if not terms <= covered:
            return None, []
        keep = np.ones(ix.n_products, bool)
        chosen = []
        if best:
            keep &= np.take(ix.under([best[0]]), ix.leaf)
            chosen.append(self._link("category", best[0], 1.0, "name", top))
        for b in named["brand"]:
            keep &= ix.brand == b
            chosen.append(self._link("brand", b, 1.0, "name"))
        return keep, chosen


def _category_members(ix: GraphIndex) -> sp.csr_matrix:
    """``(C, P)`` 0/1: category ``c`` holds product ``j`` at any depth below it."""
    rows, cols = [], []
    products = np.arange(ix.n_products)
    for d in range(ix.max_depth):
        ancestor = ix.cat_path[ix.leaf, d]
        has = ancestor >= 0
        rows.append(ancestor[has])
        cols.append(products[has])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    data = np.ones(r.size, np.float32)
    return sp.csr_matrix((data, (r, c)), shape=(ix.n_categories, ix.n_products))


def _brand_members(ix: GraphIndex) -> sp.csr_matrix:
    """``(B, P)`` 0/1: product ``j`` is of brand ``b``."""
    has = ix.brand < ix.n_brands
    products = np.flatnonzero(has)
    data = np.ones(products.size, np.float32)
    return sp.csr_matrix((data, (ix.brand[has], products)), shape=(ix.n_brands, ix.n_products))


def _centroids(members: sp.csr_matrix, vectors: np.ndarray) -> np.ndarray:
    """Unit mean vector of each row's members (zero for a row without members)."""
    sums = np.asarray(members @ vectors, np.float32)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0)
