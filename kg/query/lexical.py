"""In-process BM25 over the products' search fields, with the scores of Neo4j's full-text index.

The index ``product_text`` (:mod:`ingest.search_index`) is Lucene: every product is a
document with four fields (title, description, brand names, category names), each analysed
by :func:`kg.query.analyzer.analyze`, and a query of words ``t`` scores a document with
Lucene's ``BM25Similarity`` (``k1 = 1.2``, ``b = 0.75``) summed over the words and fields::

    bm25(q, d) = Σ_t Σ_f idf_f(t) · tf / (tf + k1 · (1 - b + b · dl / avgdl_f))
    idf_f(t)   = ln(1 + (N_f - n_f(t) + 0.5) / (n_f(t) + 0.5))

with ``tf`` the count of ``t`` in field ``f`` of ``d``, ``N_f`` the documents with a
non-empty field ``f``, ``n_f(t)`` those containing ``t``, ``avgdl_f`` the mean field length in
terms, and ``dl`` the field's length as Lucene stores it: exact below 24 terms, above that
rounded down to 4 significant bits (``SmallFloat.intToByte4``). A word the query repeats
counts once per repetition, as in Lucene's query.

:class:`LexicalIndex` computes each ``(term, product)`` score once, at build, into one sparse
matrix, so a query sums a few rows. Its scores equal ``db.index.fulltext.queryNodes``' to
float32 rounding on an index with no deleted documents (``tests/kg/test_search_index.py``;
after updates Lucene keeps counting deleted documents in ``N_f`` and ``n_f(t)`` until its
segments merge, so Neo4j's scores drift slightly).

Typos: :meth:`LexicalIndex.variants` gives the terms of the index within one edit
(Damerau-Levenshtein: a letter deleted, inserted, replaced, or two swapped) of a word the
index does not hold, which the search scores in its place (:mod:`kg.query.search`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from gnn.scoring import concat_ranges
from kg.query.analyzer import analyze

__all__ = ["K1", "B", "LexicalIndex", "lucene_length"]

#: Lucene's BM25 defaults.
K1 = 1.2
B = 0.75
#: Lengths below this are stored exactly by ``SmallFloat.intToByte4``.
_EXACT_LENGTHS = 24
#: Characters tried when a word is edited into known terms.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def lucene_length(length: np.ndarray) -> np.ndarray:
    """Field lengths as Lucene's norms store them (``byte4ToInt(intToByte4(n))``), int64."""
    n = np.asarray(length, np.int64)
    rest = np.maximum(n - _EXACT_LENGTHS, 0)
    bits = np.frexp(rest.astype(np.float64))[1].astype(np.int64)  # bit length (0 for 0)
    shift = np.maximum(bits - 4, 0)  # keep the 4 leading bits
    return np.where(n < _EXACT_LENGTHS, n, _EXACT_LENGTHS + ((rest >> shift) << shift))


class LexicalIndex:
    """BM25 scores of every product for a query's words (module docstring).

    Args:
        fields: ``{field: {product id: text}}`` (:func:`ingest.search_index.search_fields`).
        product_ids: the products, in the order of the score arrays.

    Attributes:
        vocabulary: term -> row of the score matrix.
        n_products: the number of products.
    """

    def __init__(self, fields: Mapping[str, Mapping[str, str]], product_ids: Sequence[str]):
        position = {p: i for i, p in enumerate(product_ids)}
        self.n_products = len(product_ids)
        self.fields = tuple(fields)
        self.vocabulary: dict[str, int] = {}
        per_field = []
        for name in self.fields:
            docs, terms = [], []
            for pid, text in fields[name].items():
                i = position.get(pid)
                if i is None:
                    continue
                tokens = analyze(text)
                docs.extend([i] * len(tokens))
                terms.extend(self.vocabulary.setdefault(t, len(self.vocabulary)) for t in tokens)
            per_field.append((np.asarray(docs, np.int64), np.asarray(terms, np.int64)))
        n_terms = len(self.vocabulary)
        self.terms = np.array(list(self.vocabulary), dtype=object)
        total = sp.csr_matrix((n_terms, self.n_products), dtype=np.float32)
        self._present: dict[str, sp.csr_matrix] = {}
        for name, (docs, terms) in zip(self.fields, per_field, strict=True):
            weights = _bm25(docs, terms, n_terms, self.n_products)
            total = total + weights
            present = sp.csr_matrix((weights > 0).astype(bool))
            present.sort_indices()
            self._present[name] = present
        total = sp.csr_matrix(total, dtype=np.float32)
        total.sort_indices()
        self.matrix = total

    def __contains__(self, term: object) -> bool:
        return term in self.vocabulary

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """``(P,)`` float32 BM25 of every product for ``terms`` (repeats count again; unknown
        terms add nothing)."""
        at = self._postings([self.vocabulary[t] for t in terms if t in self.vocabulary])
        m = self.matrix
        out = np.bincount(m.indices[at], weights=m.data[at], minlength=self.n_products)
        return out.astype(np.float32)

    def held(self, terms: Sequence[str]) -> np.ndarray:
        """``(P,)`` float32: how many of the distinct ``terms`` each product holds (any field;
        unknown terms are held by none)."""
        at = self._postings(sorted({self.vocabulary[t] for t in terms if t in self.vocabulary}))
        return np.bincount(self.matrix.indices[at], minlength=self.n_products).astype(np.float32)

    def _postings(self, rows: Sequence[int]) -> np.ndarray:
        """Positions in :attr:`matrix` of the entries of its ``rows`` (term rows, in order)."""
        r = np.asarray(rows, np.int64)
        at, _ = concat_ranges(self.matrix.indptr[r], self.matrix.indptr[r + 1])
        return at

    def term_scores(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """``(products ascending, BM25 of the one term)``; empty for an unknown term."""
        row = self.vocabulary.get(term)
        if row is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        lo, hi = self.matrix.indptr[row], self.matrix.indptr[row + 1]
        return self.matrix.indices[lo:hi].astype(np.int64), self.matrix.data[lo:hi]

    def fields_with(self, term: str, products: np.ndarray) -> list[list[str]]:
        """For each of ``products``, the fields that hold ``term``."""
        row = self.vocabulary.get(term)
        out: list[list[str]] = [[] for _ in range(len(products))]
        if row is None:
            return out
        products = np.asarray(products, np.int64)
        for name, present in self._present.items():
            lo, hi = present.indptr[row], present.indptr[row + 1]
            holders = present.indices[lo:hi]  # ascending (sorted at build)
            at = np.minimum(np.searchsorted(holders, products), max(holders.size - 1, 0))
            hit = holders[at] == products if holders.size else np.zeros(products.size, bool)
            for i in np.flatnonzero(hit).tolist():
                out[i].append(name)
        return out

    def variants(self, word: str) -> list[str]:
        """The index's terms one edit away from ``word`` (module docstring), sorted."""
        letters = set(_ALPHABET) | set(word)
        splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
        edits = {a + b[1:] for a, b in splits if b}
        edits |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        edits |= {a + c + b[1:] for a, b in splits if b for c in letters}
        edits |= {a + c + b for a, b in splits for c in letters}
        edits.discard(word)
        return sorted(e for e in edits if e in self.vocabulary)


def _bm25(docs: np.ndarray, terms: np.ndarray, n_terms: int, n_products: int) -> sp.csr_matrix:
    """``(terms, products)`` float32 BM25 weights of one field from its token occurrences."""
    if docs.size == 0:
        return sp.csr_matrix((n_terms, n_products), dtype=np.float32)
    tf = sp.coo_matrix(
        (np.ones(docs.size, np.float32), (terms, docs)), shape=(n_terms, n_products)
    ).tocsr()
    tf.sum_duplicates()
    length = np.bincount(docs, minlength=n_products)
    doc_count = int((length > 0).sum())
    avgdl = np.float32(docs.size / doc_count)
    df = np.diff(tf.indptr).astype(np.float64)
    idf = np.log(1.0 + (doc_count - df + 0.5) / (df + 0.5)).astype(np.float32)
    stored = lucene_length(length).astype(np.float32)
    norm = (np.float32(K1) * (np.float32(1 - B) + np.float32(B) * stored / avgdl)).astype(
        np.float32
    )
    rows = np.repeat(np.arange(n_terms), np.diff(tf.indptr))
    freq = tf.data
    weight = idf[rows]
    inverse = (np.float32(1.0) / norm[tf.indices]).astype(np.float32)
    data = weight - weight / (np.float32(1.0) + freq * inverse)
    return sp.csr_matrix((data.astype(np.float32), tf.indices, tf.indptr), shape=tf.shape)
