"""Personalised product search: a text query ranked by text, the knowledge graph and the
user's history (:meth:`kg.query.Recommender.search`).

**Query.** The query is analysed into terms (:mod:`kg.query.analyzer`); a term of at least
:data:`MIN_TYPO_LENGTH` characters that no product holds is taken as a typo and replaced by
the terms one edit away from it (:meth:`~kg.query.lexical.LexicalIndex.variants`). Its text
vector ``t_q`` is the catalogue encoder's (MiniLM) vector of the query (cached,
:mod:`kg.query.query_vectors`). Its terms and vector are linked to categories and brands
(:mod:`kg.query.query_links`).

**Score.** For every product ``j``, with each term in ``[0, 1]`` (the cosine in ``[-1, 1]``)::

    L(j)  = bm25(q, j) / max_j' bm25(q, j')        lexical (kg.query.lexical: Neo4j's BM25);
                                                    a typo's variants count w_typo × their
                                                    best BM25
    C(j)  = held(q, j) / |distinct terms of q|      coverage: the share of the query's words
                                                    the product holds (in any field); a typo
                                                    counts w_typo when it holds a variant
    D(j)  = cos(t_q, t_j)                           dense (kg.query.dense)
    Gc(j) = link_category(j), Gb(j) = link_brand(j) graph links (kg.query.query_links)

    q(j)  = w_lex · L(j) + w_cov · C(j) + w_dense · D(j) + w_cat · Gc(j) + w_brand · Gb(j)

and, with a user, the ``pool`` best products by ``q`` are reranked by::

    s(j)  = q(j) + w_user · s(u, j)

where ``s(u, j)`` is the personalised graph-aware score :meth:`~kg.query.Recommender.recommend`
ranks by (the fusion model's ``m(u, j)`` plus brand affinity and category proximity to the
recent history; :mod:`kg.query.scoring`), always ``>= 0``; products outside the pool keep
``q(j)``, which is below every pooled product's ``s``. The default weights
(:class:`SearchWeights`) were chosen on 1,500 validation queries of Amazon Industrial &
Scientific, one term at a time (``bench/bench_search.py``, BENCHMARKS.md section ``search``:
dense 2, coverage 16, category 2 with brand 1, filters on, user 8), never on a test query.
Coverage is Lucene's old ``coord`` factor as a term of its own: BM25 alone lets one rare word
outweigh all the others, so a product that holds every word of the query can rank below one
that holds one of them. Filters: ``category`` (any level), ``brand`` and ``exclude`` leave
products out; an unambiguous query (one that names a category and/or a brand and nothing
else) keeps only their products when at least ``k`` remain.

Each result is a :class:`~kg.query.Recommendation` with the weighted terms (``lexical``,
``coverage``, ``dense``, ``category_link``, ``brand_link``, ``personal``) in ``terms`` and a
reason that names the matched words, the linked categories and brands and the user's history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ingest.search_index import search_fields
from kg.query import _results as results
from kg.query.analyzer import analyze
from kg.query.dense import DenseIndex
from kg.query.index import GraphIndex
from kg.query.lexical import LexicalIndex
from kg.query.query_links import Link, LinkSettings, QueryLinker, QueryLinks
from kg.query.query_vectors import CACHE_SIZE, QueryVectors
from kg.query.types import Recommendation

if TYPE_CHECKING:
    from kg.query.base import UserRef
    from kg.query.recommender import Recommender

__all__ = [
    "MAX_QUERY_LENGTH",
    "MIN_TYPO_LENGTH",
    "ProductSearch",
    "QueryParts",
    "SearchWeights",
    "check_query",
]

#: The longest query, in characters (the HTTP API answers 422 above it).
MAX_QUERY_LENGTH = 512
#: Shorter unknown terms are not taken for typos (too many terms are one edit away).
MIN_TYPO_LENGTH = 4

#: ``personal(products) -> s(u, products)``, the user term of the pooled products.
Personal = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SearchWeights:
    """The weights of the search score (module docstring).

    Attributes:
        lexical: ``w_lex``.
        coverage: ``w_cov``, the share of the query's words a product holds.
        dense: ``w_dense``.
        category: ``w_cat``, category links.
        brand: ``w_brand``, brand links.
        user: ``w_user``, the personalised score.
        typo: ``w_typo``, what a typo's variants count for.
        pool: products reranked with the user's score.
        links: how queries are linked to categories and brands.
    """

    lexical: float = 1.0
    coverage: float = 16.0
    dense: float = 2.0
    category: float = 2.0
    brand: float = 1.0
    user: float = 8.0
    typo: float = 0.8
    pool: int = 200
    links: LinkSettings = field(default_factory=LinkSettings)

    def __post_init__(self) -> None:
        for name in ("lexical", "coverage", "dense", "category", "brand", "user", "typo"):
            if getattr(self, name) < 0:
                raise ValueError(f"SearchWeights: {name} must be >= 0")
        if self.pool < 1:
            raise ValueError("SearchWeights: pool must be >= 1")


@dataclass(frozen=True)
class QueryParts:
    """What a query adds to every product, before weights (module docstring).

    Attributes:
        query: the query as given.
        terms: its terms (repeats kept).
        variants: ``{typo: terms scored in its place}``.
        lexical: ``(P,)`` float32 ``L``.
        coverage: ``(P,)`` float32 ``C``.
        vector: ``(d,)`` the query's text vector.
        dense: ``(P,)`` float32 ``D`` (the reduced estimate on large catalogues).
        links: its category and brand links.
    """

    query: str
    terms: tuple[str, ...]
    variants: dict[str, tuple[str, ...]]
    lexical: np.ndarray
    coverage: np.ndarray
    vector: np.ndarray
    dense: np.ndarray
    links: QueryLinks


def check_query(query: str) -> list[str]:
    """The terms of ``query``.

    Raises:
        ValueError: not a string, longer than :data:`MAX_QUERY_LENGTH` characters, or without
            a word (a letter or digit).
    """
    if not isinstance(query, str):
        raise ValueError(f"the query must be a string, got {type(query).__name__}")
    if len(query) > MAX_QUERY_LENGTH:
        raise ValueError(
            f"the query has {len(query):,} characters; at most {MAX_QUERY_LENGTH} are allowed"
        )
    terms = analyze(query)
    if not terms:
        raise ValueError("the query has no word to search for (a letter or a digit)")
    return terms


class ProductSearch:
    """The search index of one recommender: BM25 over the products' search fields, their text
    vectors, the category and brand names, and the query encoder.

    Building it analyses every product's text (a few seconds at 100k products) and needs the
    catalogue's text vectors: the model's own text features when it was trained with them,
    else they are encoded once through the text cache (:meth:`NewProductEncoder.text_vectors
    <kg.query.cold_start.NewProductEncoder.text_vectors>`).

    Args:
        rec: the recommender.
        weights: the score weights (default :class:`SearchWeights`).
        text_vectors: ``(P, d)`` product text vectors to use instead of the recommender's.
        cache_size: distinct query vectors kept.
    """

    def __init__(
        self,
        rec: Recommender,
        weights: SearchWeights | None = None,
        *,
        text_vectors: np.ndarray | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.rec = rec
        self.weights = weights or SearchWeights()
        index = rec.index
        self.lexical = LexicalIndex(search_fields(rec.tables), index.product_ids)
        if text_vectors is None:
            text_vectors = rec.new_products.text_vectors()
        tv = np.asarray(text_vectors, np.float32)
        norms = np.linalg.norm(tv, axis=1, keepdims=True)
        self.dense = DenseIndex(np.divide(tv, norms, out=np.zeros_like(tv), where=norms > 0))
        self.linker = QueryLinker(index, self.dense.vectors, self.weights.links)
        self.vectors = QueryVectors(lambda: rec.new_products.encoder, cache_size)

    # ------------------------------------------------------------------ the query
    def parts(self, query: str, weights: SearchWeights | None = None) -> QueryParts:
        """The query's terms, lexical and dense scores and links (module docstring); with
        ``weights.typo == 0``, the words as typed (no typo variants).

        Raises:
            ValueError: an empty or too long query (:func:`check_query`).
        """
        terms = check_query(query)
        lex, w = self.lexical, weights or self.weights
        known = [t for t in terms if t in lex]
        raw = lex.scores(known)
        held = lex.held(known)
        variants: dict[str, tuple[str, ...]] = {}
        distinct = list(dict.fromkeys(terms))
        for t in distinct:
            if t in lex or len(t) < MIN_TYPO_LENGTH or w.typo == 0:
                continue
            found = lex.variants(t)
            if not found:
                continue
            variants[t] = tuple(found)
            best = np.zeros_like(raw)
            for v in found:
                products, scores = lex.term_scores(v)
                np.maximum.at(best, products, scores)
            raw += np.float32(w.typo * terms.count(t)) * best
            held += np.float32(w.typo) * (best > 0)
        top = float(raw.max(initial=0.0))
        lexical = raw / np.float32(top) if top > 0 else raw
        vector = self.vectors.vector(query)
        linked = set(known) | {v for found in variants.values() for v in found}
        links = self.linker.link(linked, vector)
        if variants:  # a query that needed corrections is not unambiguous
            links = QueryLinks(links.categories, links.brands, links.category_term,
                               links.brand_term)  # fmt: skip
        dense = self.dense.scores(vector)
        coverage = held / np.float32(len(distinct))
        return QueryParts(query, tuple(terms), variants, lexical, coverage, vector, dense, links)

    # ----------------------------------------------------------------- ranking
    def scores(self, parts: QueryParts, weights: SearchWeights | None = None) -> np.ndarray:
        """``(P,)`` float32 ``q(j)`` of every product (module docstring)."""
        w = weights or self.weights
        q = np.float32(w.lexical) * parts.lexical
        if w.coverage:
            q += np.float32(w.coverage) * parts.coverage
        if w.dense:
            q += np.float32(w.dense) * parts.dense
        if w.category:
            q += np.float32(w.category) * parts.links.category_term
        if w.brand:
            q += np.float32(w.brand) * parts.links.brand_term
        return q

    def rank(
        self,
        parts: QueryParts,
        k: int,
        *,
        personal: Personal | None = None,
        allowed: np.ndarray | None = None,
        blocked: np.ndarray | None = None,
        weights: SearchWeights | None = None,
        full: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The ``k`` best products: ``(indices, scores, weighted terms)``.

        Args:
            parts: the query's parts (:meth:`parts`).
            k: results wanted (fewer when the filters leave fewer).
            personal: the user term of a list of products, or ``None`` (no user).
            allowed: ``(P,)`` bool, the products that may be ranked, or ``None``.
            blocked: product indices left out.
            weights: default the search's.
            full: return every product's score instead (``(P,)``, ``-inf`` for those left
                out; indices and terms empty): the full ranking of the evaluation.
        """
        w = weights or self.weights
        q = self.scores(parts, w)
        keep = allowed
        named = parts.links.allowed if w.links.filters else None
        if named is not None:
            both = named if keep is None else keep & named
            if int(both.sum()) >= k:
                keep = both
        if keep is not None:
            q[~keep] = -np.inf
        if blocked is not None and blocked.size:
            q[blocked] = -np.inf
        pool = results.top_k(q, max(k, w.pool))
        dense = parts.dense[pool]
        if self.dense.reduced is not None:  # the pool gets the exact cosine
            exact = self.dense.exact(parts.vector, pool)
            q[pool] += np.float32(w.dense) * (exact - dense)
            dense = exact
        total = q[pool]
        terms = {
            "lexical": np.float32(w.lexical) * parts.lexical[pool],
            "coverage": np.float32(w.coverage) * parts.coverage[pool],
            "dense": np.float32(w.dense) * dense,
            "category_link": np.float32(w.category) * parts.links.category_term[pool],
            "brand_link": np.float32(w.brand) * parts.links.brand_term[pool],
        }
        if personal is not None and w.user > 0:
            user = np.float32(w.user) * personal(pool)
            total = total + user
            terms["personal"] = user
        if full:
            q[pool] = total
            return np.zeros(0, np.int64), q, {}
        order = results.top_k(total, k)
        return pool[order], total[order], {name: v[order] for name, v in terms.items()}

    def search(
        self,
        query: str,
        user: UserRef | None = None,
        k: int = 10,
        *,
        category: str | None = None,
        brand: str | None = None,
        exclude: Iterable[str] = (),
    ) -> list[Recommendation]:
        """See :meth:`kg.query.Recommender.search`."""
        rec = self.rec
        rec._check_k(k)
        ix = rec.index
        allowed = None
        if category is not None:
            allowed = np.take(ix.under([rec._category(category)]), ix.leaf)
        if brand is not None:
            mine = ix.brand == rec._brand(brand)
            allowed = mine if allowed is None else allowed & mine
        blocked = rec._blocked(exclude)
        personal = None
        if user is not None:
            history, user_id = rec._history(user)
            personal = lambda products: rec._personal(history, user_id, products)  # noqa: E731
        parts = self.parts(query)
        top, scores, terms = self.rank(
            parts, k, personal=personal, allowed=allowed, blocked=blocked
        )
        reasons = self.reasons(parts, top, terms, user)
        return results.build(rec, top, scores, terms, "search", query, None, reasons=reasons)

    # ------------------------------------------------------------------ reasons
    def reasons(
        self,
        parts: QueryParts,
        top: np.ndarray,
        terms: dict[str, np.ndarray],
        user: UserRef | None,
    ) -> list[str]:
        """One reason per result: its score terms in words, largest first (at most three)."""
        ix = self.rec.index
        matched = self._matched(parts, top)
        who = "your history" if isinstance(user, str) else "the given history"
        out = []
        for row, j in enumerate(top.tolist()):
            said: list[tuple[float, str]] = []
            value = {name: float(v[row]) for name, v in terms.items()}
            words = value["lexical"] + value["coverage"]
            if words > 0 and matched[row]:
                said.append((words, "matches " + ", ".join(matched[row])))
            for kind, links in (("category_link", parts.links.categories),
                                ("brand_link", parts.links.brands)):  # fmt: skip
                link = _link_of(ix, j, links)
                if value[kind] > 0 and link is not None:
                    said.append((value[kind], _link_words(link)))
            if value.get("personal", 0.0) > 0:
                said.append((value["personal"], f"fits {who}"))
            if value["dense"] > 0:
                cos = value["dense"] / max(self.weights.dense, 1e-12)
                said.append((value["dense"], f"similar text (cosine {cos:.2f})"))
            said.sort(key=lambda x: -x[0])
            text = "; ".join(s for _, s in said[:3]) or "ranked by text similarity"
            if (
                parts.links.unambiguous
                and parts.links.allowed is not None
                and parts.links.allowed[j]
            ):
                names = " and ".join(link.name for link in parts.links.unambiguous)
                text = f"the query names {names}: {text}"
            out.append(text)
        return out

    def _matched(self, parts: QueryParts, top: np.ndarray) -> list[list[str]]:
        """Per result, ``'"word" (fields)'`` for each query term (or typo variant) it holds."""
        lex = self.lexical
        out: list[list[str]] = [[] for _ in range(len(top))]
        shown = [(t, t) for t in dict.fromkeys(parts.terms) if t in lex]
        shown += [(v, t) for t, found in parts.variants.items() for v in found]
        for term, asked in shown:
            for row, fields in enumerate(lex.fields_with(term, top)):
                if fields:
                    names = ", ".join(f.replace("_", " ") for f in fields)
                    typo = "" if term == asked else f" for {asked!r}"
                    out[row].append(f"{term!r}{typo} in {names}")
        return out


def _link_of(ix: GraphIndex, j: int, links: list[Link]) -> Link | None:
    """The strongest link that holds product ``j`` (links are strongest first)."""
    for link in links:
        if link.kind == "brand":
            if int(ix.brand[j]) == link.index:
                return link
        elif ix.under([link.index])[ix.leaf[j]]:
            return link
    return None


def _link_words(link: Link) -> str:
    what = "category" if link.kind == "category" else "brand"
    if link.by == "name":
        return f"{what} {link.name} named by the query"
    return f"{what} {link.name} close to the query (text)"
