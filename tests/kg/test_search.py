"""The contract of ``Recommender.search`` on the synthetic ``tiny`` shop: ordering, ``k``
bounds, filters, exclusions, new-user lists, reasons and ``explain`` on the results."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.tables import GraphTables
from kg.query import Recommendation, Recommender, UnknownIdError
from kg.query.analyzer import analyze, escape_query
from kg.query.lexical import LexicalIndex
from kg.query.query_vectors import QueryVectors, query_key
from kg.query.search import MAX_QUERY_LENGTH, SearchWeights


def _check(results: list[Recommendation], k: int) -> None:
    assert len(results) == k
    assert [r.rank for r in results] == list(range(1, k + 1))
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert len({r.product_id for r in results}) == k
    for r in results:
        assert sum(r.terms.values()) == pytest.approx(r.score, abs=1e-4)
        assert r.reason


@pytest.fixture(scope="module")
def users(tables: GraphTables) -> list[str]:
    return sorted(set(tables.interactions.column("user_id").to_pylist()))[:5]


@pytest.fixture(scope="module")
def titles(tables: GraphTables) -> dict[str, str]:
    p = tables.products
    return dict(zip(p.column("id").to_pylist(), p.column("title").to_pylist(), strict=True))


def test_ordering_and_terms(rec: Recommender, users: list[str]) -> None:
    for user in (None, users[0]):
        got = rec.search("machine screws brass", user=user, k=10)
        _check(got, 10)
        names = {"lexical", "coverage", "dense", "category_link", "brand_link"}
        assert set(got[0].terms) == (names if user is None else names | {"personal"})
    assert rec.search("machine screws brass", k=10) == rec.search("Machine  SCREWS brass", k=10)


def test_title_words_find_the_product(rec: Recommender, titles: dict[str, str]) -> None:
    found = 0
    for pid in list(titles)[:: max(1, len(titles) // 20)]:
        got = rec.search(titles[pid], k=5)
        found += pid in {r.product_id for r in got}
        assert any("matches" in r.reason for r in got)
    assert found >= 15  # titles repeat words across products; most are still found


def test_k_bounds(rec: Recommender) -> None:
    n = rec.n_products
    assert len(rec.search("screws", k=1)) == 1
    _check(rec.search("screws", k=n), n)
    for k in (0, -1, n + 1):
        with pytest.raises(ValueError, match="k"):
            rec.search("screws", k=k)


@pytest.mark.parametrize("query", ["", "   ", "-- / &&", "x" * (MAX_QUERY_LENGTH + 1)])
def test_bad_queries(rec: Recommender, query: str) -> None:
    with pytest.raises(ValueError, match="query"):
        rec.search(query)


def test_filters(rec: Recommender, tables: GraphTables) -> None:
    leaf = dict(zip(*(tables.in_category.column(c).to_pylist() for c in ("product_id", "category_id")), strict=True))  # fmt: skip
    some = sorted(set(leaf.values()))[0]
    top = some.split(" > ")[0]
    got = rec.search("steel", category=top, k=5)
    _check(got, 5)
    assert all(leaf[r.product_id].startswith(top + " > ") for r in got)
    brand = rec.index.brand_ids[0]
    mine = rec.search("steel", brand=brand, k=3)
    assert mine and all(r.brand_id == brand for r in mine)
    both = rec.search("steel", category=top, brand=brand, k=1)
    assert all(r.brand_id == brand and r.category_id.startswith(top) for r in both)
    with pytest.raises(UnknownIdError):
        rec.search("steel", category="no such category")
    with pytest.raises(UnknownIdError):
        rec.search("steel", brand="no such brand")


def test_exclusions(rec: Recommender, users: list[str]) -> None:
    first = rec.search("machine screws", user=users[1], k=10)
    drop = [r.product_id for r in first[:3]]
    again = rec.search("machine screws", user=users[1], k=10, exclude=drop)
    _check(again, 10)
    assert not set(drop) & {r.product_id for r in again}
    assert [r.product_id for r in again[:7]] == [r.product_id for r in first[3:]]
    with pytest.raises(UnknownIdError):
        rec.search("screws", exclude=["no such product"])


def test_users_and_new_users(rec: Recommender, users: list[str], tables: GraphTables) -> None:
    history = [
        r["product_id"]
        for r in sorted(tables.interactions.to_pylist(), key=lambda r: r["order"])
        if r["user_id"] == users[2]
    ]
    anonymous = rec.search("steel", k=10)
    as_list = rec.search("steel", user=history[:3], k=10)
    _check(as_list, 10)
    assert all(r.terms["personal"] >= 0 for r in as_list)
    assert [r.product_id for r in as_list] != [r.product_id for r in anonymous]
    assert rec.search("steel", user=history[:3], k=10) == as_list  # deterministic
    assert any("given history" in r.reason for r in as_list)
    with pytest.raises(UnknownIdError):
        rec.search("steel", user="no such user")
    with pytest.raises(UnknownIdError):
        rec.search("steel", user=["no such product"])


def test_personal_term_is_the_recommend_score(rec: Recommender, users: list[str]) -> None:
    """With only the user term, the search pool is reranked by ``recommend``'s score."""
    user = users[3]
    wanted = {r.product_id: r.score for r in rec.recommend(user, k=rec.n_products, exclude_seen=False)}  # fmt: skip
    got = rec.search("steel", user=user, k=10)
    for r in got:
        weight = rec.product_search.weights.user
        assert r.terms["personal"] == pytest.approx(
            weight * wanted[r.product_id], rel=1e-4, abs=1e-5
        )


def test_explain_works_on_results(rec: Recommender, users: list[str]) -> None:
    for r in rec.search("machine screws", user=users[4], k=3):
        paths = rec.explain(users[4], r.product_id)
        assert isinstance(paths, list)
        assert all(p.steps[-1].target.id == r.product_id for p in paths)


def test_graph_links_in_reasons(rec: Recommender, tables: GraphTables) -> None:
    """A query naming a leaf category links it by name (a filter when unambiguous)."""
    leaf = tables.categories.filter(tables.categories.column("level").to_numpy() == 3)
    name, cid = leaf.column("name")[0].as_py(), leaf.column("id")[0].as_py()
    parts = rec.product_search.parts(name)
    assert cid in {link.id for link in parts.links.categories if link.by == "name"}
    got = rec.search(name, k=3)
    assert all(r.category_id.startswith(cid) for r in got)
    assert all(name in r.reason for r in got)


def test_typos_are_corrected(rec: Recommender, titles: dict[str, str]) -> None:
    word = next(w for w in analyze(titles["p1"]) if len(w) >= 6)
    typo = word[:2] + word[3] + word[2] + word[4:]  # two letters swapped
    assert typo not in rec.product_search.lexical
    parts = rec.product_search.parts(typo)
    assert word in parts.variants[typo]
    got = rec.search(typo, k=5)
    assert any(f"for {typo!r}" in r.reason for r in got)


def test_coverage_is_the_share_of_query_words_held(
    rec: Recommender, titles: dict[str, str]
) -> None:
    search = rec.product_search
    lex = search.lexical
    first, second = [w for w in dict.fromkeys(analyze(titles["p1"])) if w.isalpha()][:2]
    typo = "zq" + second  # two letters inserted: not one edit from anything held
    products = np.arange(rec.n_products)
    holds = {
        w: np.array([float(bool(f)) for f in lex.fields_with(w, products)]) for w in (first, second)
    }
    # repeats count once; a word no product holds stays in the share
    parts = search.parts(f"{first} {second} {first}")
    assert parts.coverage == pytest.approx((holds[first] + holds[second]) / 2.0)
    assert parts.coverage[rec.index.product_index["p1"]] == 1.0
    missing = search.parts(f"{first} {typo}")
    assert missing.coverage == pytest.approx(holds[first] / 2.0)
    # a typo counts w_typo where a product holds one of its variants
    word = next(w for w in analyze(titles["p1"]) if len(w) >= 6)
    swapped = word[:2] + word[3] + word[2] + word[4:]
    fixed = search.parts(swapped)
    held = np.zeros(rec.n_products, bool)
    for v in fixed.variants[swapped]:
        held |= np.array([bool(f) for f in lex.fields_with(v, products)])
    assert fixed.coverage == pytest.approx(search.weights.typo * held)


def test_weights_are_checked() -> None:
    with pytest.raises(ValueError, match="dense"):
        SearchWeights(dense=-1)
    with pytest.raises(ValueError, match="pool"):
        SearchWeights(pool=0)


# ---------------------------------------------------------------- the parts on their own
def test_lexical_index_bm25_by_hand() -> None:
    """Lucene's BM25 on three one-field documents, computed here from the formula."""
    docs = {"a": "red steel screw", "b": "steel steel bolt", "c": "blue nut"}
    lex = LexicalIndex({"title": docs}, ["a", "b", "c"])
    avgdl, n = 8 / 3, 3
    idf = np.log(1 + (n - 2 + 0.5) / (2 + 0.5))

    def bm25(tf: int, dl: int) -> float:
        return idf * tf / (tf + 1.2 * (0.25 + 0.75 * dl / avgdl))

    got = lex.scores(["steel"])
    assert got == pytest.approx([bm25(1, 3), bm25(2, 3), 0.0], rel=1e-5)
    assert lex.scores(["nothing"]).tolist() == [0.0, 0.0, 0.0]
    assert lex.variants("stel") == ["steel"] and lex.variants("bolt") == []


def test_query_vectors_cache(rec: Recommender) -> None:
    """The real encoder behind a bounded LRU cache keyed by the normalised query."""
    vectors = QueryVectors(lambda: rec.new_products.encoder, size=2)
    a = vectors.vector("Steel  Screws")
    assert a.shape == (rec.product_search.dense.dim,)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert vectors.vector("steel screws") is a
    assert vectors.cache_info().misses == 1 and vectors.cache_info().hits == 1
    vectors.vector("bolts")
    vectors.vector("nuts")  # "steel screws" is the least recently used: out
    assert np.array_equal(vectors.vector("steel screws"), a)
    assert vectors.cache_info().misses == 4 and vectors.cache_info().currsize == 2
    vectors.cache_clear()
    assert vectors.cache_info().currsize == 0
    assert query_key("  A\tB ") == "a b"


def test_escape_query() -> None:
    assert escape_query('AND (hp) 61-xl "ink"') == 'and \\(hp\\) 61\\-xl \\"ink\\"'
