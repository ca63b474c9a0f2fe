"""Train / validation / test splits of the interactions of a :class:`~ingest.tables.GraphTables`.

A :class:`Split` holds integer indices: user ``u`` is ``split.user_ids[u]`` and item ``i`` is
``split.item_ids[i]`` (all users and all products of the tables, each sorted by id, so items
nobody interacted with are still ranked).

Protocol (the same for every scorer, so numbers are comparable):

* Models are fitted on the **train** interactions only; early stopping and hyper-parameter
  choices look at the **valid** targets only.
* Evaluating on ``"valid"``: the known history of a user is their train interactions.
* Evaluating on ``"test"``: the known history is train **plus** valid interactions, in their
  original order (under leave-one-out: the valid item appended to the train sequence).
  Sequential scorers may use it as input; models are not refitted on it.
* The known history of ``on`` is excluded from the ranking (those items get ``-inf``).
* A target that is already in the known history (a repeat purchase) cannot be ranked and is
  dropped; ``meta["dropped_repeat_targets"]`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from ingest.tables import GraphTables

__all__ = ["EvalOn", "Split", "given_split", "leave_one_out"]

EvalOn = Literal["valid", "test"]
_TRAIN, _VALID, _TEST = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Split:
    """Interactions of every user, split for training and evaluation.

    Attributes:
        user_ids: user id of each user index, sorted.
        item_ids: product id of each item index, sorted (all products of the tables).
        train_sequences: per user, the item indices of their train interactions in
            chronological (``order``) order; may be empty.
        test_history: per user, item indices of their train and valid interactions in order:
            the history a scorer may use when evaluated on ``"test"``.
        valid: per user, distinct validation target items (sorted); empty = not evaluated.
        test: per user, distinct test target items (sorted); empty = not evaluated.
        train: ``(n_users, n_items)`` binary CSR matrix of train interactions.
        known_test: ``(n_users, n_items)`` binary CSR matrix of train and valid interactions.
        meta: protocol name, options and counts.
    """

    user_ids: list[str]
    item_ids: list[str]
    train_sequences: list[np.ndarray]
    test_history: list[np.ndarray]
    valid: list[np.ndarray]
    test: list[np.ndarray]
    train: sp.csr_matrix
    known_test: sp.csr_matrix
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        """Number of users."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items (products)."""
        return len(self.item_ids)

    def targets(self, on: EvalOn) -> list[np.ndarray]:
        """Target items of every user for ``on`` (``"valid"`` or ``"test"``)."""
        return self.valid if _check_on(on) == "valid" else self.test

    def history(self, on: EvalOn) -> list[np.ndarray]:
        """Known item sequence of every user when evaluating ``on`` (see module doc)."""
        return self.train_sequences if _check_on(on) == "valid" else self.test_history

    def known(self, on: EvalOn) -> sp.csr_matrix:
        """Binary ``(n_users, n_items)`` matrix of the items excluded from ranking for ``on``."""
        return self.train if _check_on(on) == "valid" else self.known_test

    def eval_users(self, on: EvalOn) -> np.ndarray:
        """Indices of the users with at least one target for ``on``, ascending, int64."""
        sizes = np.fromiter((t.size for t in self.targets(on)), np.int64, self.n_users)
        return np.flatnonzero(sizes).astype(np.int64)

    def train_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (user, item) train pairs as two int64 arrays, sorted by user then item."""
        coo = self.train.tocoo()
        order = np.lexsort((coo.col, coo.row))
        return coo.row[order].astype(np.int64), coo.col[order].astype(np.int64)

    def item_popularity(self) -> np.ndarray:
        """Number of train users of each item, shape ``(n_items,)``, float64."""
        return np.asarray(self.train.sum(axis=0), dtype=np.float64).ravel()

    def ids_fingerprint(self) -> str:
        """SHA-256 of the user and item id lists; saved models check it on load."""
        import hashlib

        digest = hashlib.sha256()
        for ids in (self.user_ids, self.item_ids):
            digest.update("\x1f".join(ids).encode())
            digest.update(b"\x1e")
        return digest.hexdigest()

    def stats(self) -> dict[str, int]:
        """Counts of users, items, train pairs and targets."""
        return {
            "users": self.n_users,
            "items": self.n_items,
            "train_interactions": int(sum(s.size for s in self.train_sequences)),
            "train_pairs": int(self.train.nnz),
            "valid_users": int(self.eval_users("valid").size),
            "valid_targets": int(sum(t.size for t in self.valid)),
            "test_users": int(self.eval_users("test").size),
            "test_targets": int(sum(t.size for t in self.test)),
        }


def leave_one_out(tables: GraphTables) -> Split:
    """Per user, by ``order``: last item = test, second-to-last = valid, the rest = train.

    Users with fewer than 3 interactions keep everything in train and have no targets.

    Args:
        tables: tables with users, products and interactions.

    Returns:
        The split; ``meta["protocol"] == "leave_one_out"``.
    """
    users, items, user_ids, item_ids = _encode(tables)
    counts = np.bincount(users, minlength=len(user_ids))
    start = np.cumsum(counts) - counts
    from_end = counts[users] - 1 - (np.arange(users.size) - start[users])
    long_enough = counts[users] >= 3
    role = np.full(users.size, _TRAIN, np.int8)
    role[long_enough & (from_end == 1)] = _VALID
    role[long_enough & (from_end == 0)] = _TEST
    return _build(users, items, role, user_ids, item_ids, {"protocol": "leave_one_out"})


def given_split(tables: GraphTables, *, valid_fraction: float = 0.0, seed: int = 0) -> Split:
    """Use the ``split`` column: ``"train"`` rows train, ``"test"`` rows test (KGAT-style).

    Rows marked ``"valid"`` are validation targets. Otherwise there is no validation unless
    ``valid_fraction`` > 0 carves one out of train: per user with at least 2 train rows,
    ``max(1, round(valid_fraction * n_train))`` rows (at most ``n_train - 1``) drawn at random
    with ``seed``. The same tables, fraction and seed always give the same split.

    Args:
        tables: tables whose interactions all have a ``split`` of train, valid or test.
        valid_fraction: share of each user's train rows moved to validation, in ``[0, 1)``.
        seed: seed of that draw.

    Returns:
        The split; ``meta["protocol"] == "given"``.

    Raises:
        ValueError: a row has a null or unknown ``split``, or ``valid_fraction`` is out of range.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    users, items, user_ids, item_ids = _encode(tables)
    names = tables.interactions.column("split")
    order = _row_order(tables)
    codes = {"train": _TRAIN, "valid": _VALID, "validation": _VALID, "test": _TEST}
    mapped = pc.index_in(names, value_set=pa.array(list(codes)))
    if mapped.null_count:
        row = pc.index(pc.is_null(mapped), True).as_py()
        raise ValueError(
            f"interactions row {row}: split is {names[row].as_py()!r}; given_split needs "
            f"one of {sorted(codes)} on every row"
        )
    role = np.asarray([codes[c] for c in codes], np.int8)[mapped.to_numpy()][order]
    if valid_fraction > 0:
        if (role == _VALID).any():
            raise ValueError("the tables already mark valid rows; use valid_fraction=0")
        role = _carve_valid(users, role, valid_fraction, seed)
    meta = {"protocol": "given", "valid_fraction": valid_fraction, "seed": seed}
    return _build(users, items, role, user_ids, item_ids, meta)


# ---------------------------------------------------------------------------------- helpers
def _check_on(on: str) -> str:
    if on not in ("valid", "test"):
        raise ValueError(f"on must be 'valid' or 'test', got {on!r}")
    return on


def _row_order(tables: GraphTables) -> np.ndarray:
    """Row permutation that sorts interactions by (user id, order)."""
    inter = tables.interactions
    idx = pa.array(np.arange(inter.num_rows))
    keyed = pa.table({"u": inter.column("user_id"), "o": inter.column("order"), "i": idx})
    return keyed.sort_by([("u", "ascending"), ("o", "ascending")]).column("i").to_numpy()


def _encode(tables: GraphTables) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """User and item index of every interaction, rows sorted by (user, order)."""
    inter = tables.interactions
    user_ids = sorted(
        set(tables.users.column("id").to_pylist())
        | set(pc.unique(inter.column("user_id")).to_pylist())
    )
    item_ids = sorted(tables.products.column("id").to_pylist())
    order = _row_order(tables)
    users = pc.index_in(inter.column("user_id"), value_set=pa.array(user_ids, pa.string()))
    items = pc.index_in(inter.column("product_id"), value_set=pa.array(item_ids, pa.string()))
    if items.null_count:
        row = pc.index(pc.is_null(items), True).as_py()
        raise ValueError(
            f"interactions row {row}: product {inter.column('product_id')[row].as_py()!r} "
            "is not in the products table"
        )
    u = users.to_numpy().astype(np.int64)[order]
    i = items.to_numpy().astype(np.int64)[order]
    return u, i, user_ids, item_ids


def _carve_valid(users: np.ndarray, role: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    role = role.copy()
    train_rows = np.flatnonzero(role == _TRAIN)
    u = users[train_rows]
    n_train = np.bincount(u, minlength=int(users.max(initial=-1)) + 1)
    n_valid = np.where(
        n_train >= 2,
        np.minimum(np.maximum(1, np.rint(fraction * n_train)), n_train - 1),
        0,
    ).astype(np.int64)
    key = np.random.default_rng(seed).random(train_rows.size)
    by_user = np.lexsort((key, u))
    sorted_u = u[by_user]
    first = np.searchsorted(sorted_u, sorted_u, side="left")
    rank = np.arange(sorted_u.size) - first
    chosen = train_rows[by_user[rank < n_valid[sorted_u]]]
    role[chosen] = _VALID
    return role


def _per_user(users: np.ndarray, values: np.ndarray, n_users: int) -> list[np.ndarray]:
    """Split ``values`` (sorted by user) into one array per user."""
    counts = np.bincount(users, minlength=n_users)
    return np.split(values, np.cumsum(counts)[:-1])


def _binary(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _targets(
    users: np.ndarray, items: np.ndarray, known: sp.csr_matrix, n_users: int
) -> tuple[list[np.ndarray], int]:
    """Distinct targets per user, without those already known; and how many were dropped."""
    pairs = np.unique(users * known.shape[1] + items)
    u, i = pairs // known.shape[1], pairs % known.shape[1]
    repeat = np.asarray(known[u, i]).ravel() > 0 if pairs.size else np.zeros(0, bool)
    return _per_user(u[~repeat], i[~repeat], n_users), int(repeat.sum())


def _build(
    users: np.ndarray,
    items: np.ndarray,
    role: np.ndarray,
    user_ids: list[str],
    item_ids: list[str],
    meta: dict[str, Any],
) -> Split:
    n_users, n_items = len(user_ids), len(item_ids)
    shape = (n_users, n_items)
    is_train, is_valid, is_test = role == _TRAIN, role == _VALID, role == _TEST
    history = ~is_test
    train = _binary(users[is_train], items[is_train], shape)
    known_test = _binary(users[history], items[history], shape)
    valid, dropped_valid = _targets(users[is_valid], items[is_valid], train, n_users)
    test, dropped_test = _targets(users[is_test], items[is_test], known_test, n_users)
    meta = {
        **meta,
        "dropped_repeat_targets": {"valid": dropped_valid, "test": dropped_test},
    }
    return Split(
        user_ids=list(user_ids),
        item_ids=list(item_ids),
        train_sequences=_per_user(users[is_train], items[is_train], n_users),
        test_history=_per_user(users[history], items[history], n_users),
        valid=valid,
        test=test,
        train=train,
        known_test=known_test,
        meta=meta,
    )
