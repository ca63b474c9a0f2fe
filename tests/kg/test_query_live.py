"""Live events change what the query layer answers, in place (issue 21)."""

from __future__ import annotations

import numpy as np
import pytest

from ingest import schema
from ingest.events import AppliedEvent
from kg.query import Recommender, UnknownIdError
from kg.query.live import LiveState
from tests.kg.query_helpers import TinyRun, tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory)


@pytest.fixture
def rec(run: TinyRun) -> Recommender:
    """A fresh recommender per test (live events change it in place)."""
    return Recommender.load(run.run, run.tables, text_model=run.bert, text_cache=run.text_cache)


def _view(seq: int, user: str, product: str, order: int | None = None) -> AppliedEvent:
    event = schema.InteractionEvent(f"e{seq}", user, product, "view", 1_733_500_000 + seq)
    return AppliedEvent(seq, event, order)


def _product(seq: int, pid: str, title: str, **fields) -> AppliedEvent:
    return AppliedEvent(seq, schema.ProductEvent(f"e{seq}", pid, title, **fields))


def test_an_interaction_moves_the_users_ranking_and_the_cooccurrence(rec: Recommender) -> None:
    live = LiveState(rec)
    before = [r.product_id for r in rec.recommend("u0", k=10)]
    history = rec.history_of("u0")
    last = live.max_order["u0"]
    target = before[0]
    touched = live.apply([_view(1, "u0", target, last + 1)])
    assert touched.users == {"u0"} and touched.applied == 1
    assert rec.history_of("u0").tolist() == [*history.tolist(), rec.index.product_index[target]]
    after = [r.product_id for r in rec.recommend("u0", k=10)]
    assert target not in after  # seen now
    assert after != before
    # the pair (previous last item -> target) now co-occurs, in the model's blend and related
    prev = rec.index.product_ids[int(history[-1])]
    assert prev in touched.products and target in touched.products
    row, _ = rec.cooc.row(int(history[-1]))
    assert rec.index.product_index[target] in row.tolist()
    # a replay (same seq, or an order the state already holds) changes nothing
    again = live.apply([_view(1, "u0", target, last + 1), _view(2, "u0", target, last + 1)])
    assert again.applied == 0 and again.skipped == 1
    assert len(rec.history_of("u0")) == len(history) + 1


def test_a_new_user_comes_into_being_with_their_first_event(rec: Recommender) -> None:
    live = LiveState(rec)
    with pytest.raises(UnknownIdError):
        rec.recommend("brand-new", k=5)
    live.apply([_view(1, "brand-new", "p3", 0), _view(2, "brand-new", "p7", 1)])
    got = rec.recommend("brand-new", k=5)
    assert len(got) == 5 and not {"p3", "p7"} & {r.product_id for r in got}
    assert rec.explain("brand-new", got[0].product_id, max_paths=3) is not None


def test_a_new_product_is_placed_recommended_related_and_explained(rec: Recommender) -> None:
    live = LiveState(rec)
    n = rec.n_products
    source = rec.index.product_ids[0]
    leaf = rec.index.category_ids[int(rec.index.leaf[0])]
    brand = rec.index.brand_ids[int(rec.index.brand[0])]
    title = rec.index.titles[0]
    assert rec.search(title, k=1)  # the search index is built before the product comes
    touched = live.apply([
        _product(1, "new-1", f"{title} (new edition)", category=tuple(leaf.split(" > ")),
                 brand=brand),
    ])  # fmt: skip
    assert touched.catalogue and touched.applied == 1
    assert rec.n_products == n + 1 and rec.index.product_index["new-1"] == n
    assert rec.index.leaf[n] == rec.index.leaf[0] and rec.index.brand[n] == rec.index.brand[0]
    assert np.isfinite(rec.scorer.vectors[n]).all() and np.linalg.norm(rec.scorer.vectors[n]) > 0
    # (the tiny test BERT has random weights: the category and brand place it, so the top tenth
    # of the catalogue, not the top few; the Amazon benchmark measures placement quality)
    related = [r.product_id for r in rec.related(source, k=30)]
    assert "new-1" in related
    # it can be recommended at once, and co-occurrence from live events lifts it: once other
    # users go from its twin to it, a user who views the twin gets it near the top
    users = [u for u in rec.index.user_ids
             if rec.index.product_index[source] not in rec.history_of(u)]  # fmt: skip
    user, others = users[0], users[1:6]
    live.apply([_view(2, user, source, live.max_order[user] + 1)])
    ranked = [r.product_id for r in rec.recommend(user, k=rec.n_products)]
    before = ranked.index("new-1")
    seq = 10
    for other in others:
        live.apply([_view(seq, other, source, live.max_order[other] + 1),
                    _view(seq + 1, other, "new-1", live.max_order[other] + 2)])  # fmt: skip
        seq += 2
    ranked = [r.product_id for r in rec.recommend(user, k=rec.n_products)]
    assert ranked.index("new-1") < min(before, 10)
    assert rec.explain(user, "new-1", max_paths=2)
    assert [r.product_id for r in rec.related("new-1", k=3)]  # it has related products too
    found = [r.product_id for r in rec.search(f"{title} (new edition)", k=rec.n_products)]
    assert "new-1" in found and len(found) == rec.n_products
    # and an interaction with it is counted like any other
    live.apply([_view(99, user, "new-1", live.max_order[user] + 1)])
    assert rec.history_of(user)[-1] == n


def test_a_retired_or_unavailable_product_leaves_every_ranking(rec: Recommender) -> None:
    live = LiveState(rec)
    user = rec.index.user_ids[0]
    top = rec.recommend(user, k=1)[0].product_id
    related_top = rec.related("p0", k=1)[0].product_id
    cross = rec.cross_category(user, k=1)[0].product_id
    live.apply([
        AppliedEvent(1, schema.RetireEvent("e1", top), retired=True),
        _product(2, related_top, "x", available=False),
        AppliedEvent(3, schema.RetireEvent("e3", cross), retired=True),
    ])  # fmt: skip
    everything = rec.n_products
    assert top not in {r.product_id for r in rec.recommend(user, k=everything - 50)}
    assert related_top not in {r.product_id for r in rec.related("p0", k=everything - 50)}
    assert cross not in {r.product_id for r in rec.cross_category(user, k=10)}
    # available again
    live.apply([_product(4, related_top, "x", available=True)])
    assert related_top == rec.related("p0", k=1)[0].product_id
