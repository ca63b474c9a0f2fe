"""KGAT-layout source."""

from __future__ import annotations

import shutil
import time
import zipfile
from pathlib import Path

import pytest

from ingest.errors import SourceError
from ingest.rejects import Rejects
from ingest.sources.kgat import read_kgat
from ingest.tables import GraphTables

DATA = Path(__file__).parent / "data" / "kgat"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
AMAZON_BOOK = SHARED / "kgat-amazon-book"
LAST_FM = SHARED / "kgat-last-fm"

GENRE = "http://rdf.freebase.com/ns/film.genre"
SIMILAR = "http://rdf.freebase.com/ns/common.similar"


def _copy(tmp_path: Path, *drop: str) -> Path:
    folder = Path(shutil.copytree(DATA, tmp_path / "kgat"))
    for name in drop:
        (folder / name).unlink()
    return folder


def _triples(g: GraphTables) -> list[tuple[str, ...]]:
    return [tuple(r.values()) for r in g.triples.to_pylist()]


def test_reads_fixture() -> None:
    g = read_kgat(DATA, show_progress=False)
    assert g.meta == {"source": "kgat", "path": str(DATA), "n_items": 3}
    # User 2 has an empty train line; user 3 is only in user_list.txt.
    assert g.users.column("id").to_pylist() == ["0", "1", "2", "3"]
    assert g.products.column("id").to_pylist() == ["0", "1", "2"]
    assert g.products.column("title").null_count == 3
    assert g.entities.to_pylist() == [
        {"id": "3", "name": "m.genre"},
        {"id": "4", "name": '"""The gift""@en"'},  # org id with a space in entity_list.txt
    ]
    rows = [
        (r["user_id"], r["product_id"], r["order"], r["split"]) for r in g.interactions.to_pylist()
    ]
    assert rows == [
        ("0", "0", 0, "train"),
        ("0", "1", 1, "train"),
        ("1", "2", 0, "train"),
        ("0", "2", 2, "test"),
        ("1", "0", 1, "test"),
    ]
    assert set(g.interactions.column("kind").to_pylist()) == {"interaction"}
    assert set(g.interactions.column("weight").to_pylist()) == {1.0}
    assert g.interactions.column("ts").null_count == 5
    assert _triples(g) == [
        ("Product", "0", GENRE, "Entity", "3"),
        ("Product", "1", GENRE, "Entity", "3"),
        ("Product", "2", SIMILAR, "Entity", "4"),
        ("Entity", "3", SIMILAR, "Entity", "4"),
        ("Product", "0", SIMILAR, "Product", "2"),
    ]


def test_without_id_maps(tmp_path: Path) -> None:
    folder = _copy(
        tmp_path, "item_list.txt", "relation_list.txt", "entity_list.txt", "user_list.txt"
    )
    g = read_kgat(folder, show_progress=False)
    assert g.meta["n_items"] == 3  # max item id in train/test + 1
    assert g.users.column("id").to_pylist() == ["0", "1", "2"]
    assert g.products.column("id").to_pylist() == ["0", "1", "2"]
    assert g.entities.to_pylist() == [{"id": "3", "name": None}, {"id": "4", "name": None}]
    assert _triples(g)[0] == ("Product", "0", "r0", "Entity", "3")
    assert _triples(g)[2] == ("Product", "2", "r1", "Entity", "4")


def test_item_ids_in_kg_only_become_products_below_n_items(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "item_list.txt")
    (folder / "train.txt").write_text("0 0 4\n")  # n_items = 5: KG ids 3 and 4 are products
    (folder / "test.txt").unlink()
    g = read_kgat(folder, show_progress=False)
    assert g.products.column("id").to_pylist() == ["0", "1", "2", "3", "4"]
    assert g.entities.num_rows == 0
    assert {r[0] for r in _triples(g)} == {"Product"}


def test_single_split_and_zipped_kg(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "train.txt")
    kg = (folder / "kg_final.txt").read_bytes()
    (folder / "kg_final.txt").unlink()
    with zipfile.ZipFile(folder / "kg_final.txt.zip", "w") as archive:
        archive.writestr("kg_final.txt", kg)
    g = read_kgat(folder, show_progress=False)
    assert g.triples.num_rows == 5
    assert set(g.interactions.column("split").to_pylist()) == {"test"}
    assert g.interactions.column("order").to_pylist() == [0, 0]
    assert _triples(g) == _triples(read_kgat(DATA, show_progress=False))


def test_blank_lines_give_the_same_triples(tmp_path: Path) -> None:
    # A blank line sends the KG through the line-by-line parser instead of the fast path.
    folder = _copy(tmp_path)
    lines = (folder / "kg_final.txt").read_text().splitlines()
    (folder / "kg_final.txt").write_text("\n".join([*lines[:2], "", *lines[2:]]) + "\n")
    assert _triples(read_kgat(folder, show_progress=False)) == _triples(
        read_kgat(DATA, show_progress=False)
    )


def test_needs_train_or_test(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "train.txt", "test.txt")
    with pytest.raises(SourceError, match=r"neither train\.txt nor test\.txt"):
        read_kgat(folder, show_progress=False)


BAD_FILES = [
    # (file, content, expected message fragments, reason in skip mode or None if it always raises)
    ("train.txt", "0 0 1\n1 2 x3\n", ["train.txt:2", "'x3'"], "not an integer"),
    ("test.txt", "0 2\n1 -1\n", ["test.txt:2", "'-1'"], "not an integer"),
    ("train.txt", "0 0 1\n1 7\n", ["train.txt:2", "unknown product", "7"], "unknown product"),
    ("kg_final.txt", "0 0 3\n1 0\n", ["kg_final.txt:2", "expected 3", "'1 0'"], "not a triple"),
    (
        "kg_final.txt",
        "0 0 3\n0 9 3\n",
        ["kg_final.txt:2", "relation_list", "9"],
        "unknown relation",
    ),
    ("kg_final.txt", "0 0 3\n1 0 3.5\n", ["kg_final.txt:2", "'3.5'"], "not an integer"),
    ("item_list.txt", "org_id remap_id freebase_id\nB1 zero m.a\n", ["item_list.txt:2"], None),
    ("train.txt", "", ["train.txt", "empty file"], None),
    ("kg_final.txt", "\n\n", ["kg_final.txt", "empty file"], None),
]


@pytest.mark.parametrize(("name", "content", "fragments", "reason"), BAD_FILES)
def test_bad_input_raises_with_file_line_and_value(
    tmp_path: Path, name: str, content: str, fragments: list[str], reason: str | None
) -> None:
    folder = _copy(tmp_path)
    (folder / name).write_text(content)
    with pytest.raises(SourceError) as caught:
        read_kgat(folder, show_progress=False)
    for fragment in fragments:
        assert fragment in str(caught.value)
    if reason is not None:
        rejects = Rejects("skip")
        read_kgat(folder, rejects=rejects, show_progress=False)
        assert rejects.summary() == {reason: 1}


def test_skip_mode_drops_only_the_bad_lines(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "train.txt").write_text("0 0 1\n1 2 x\n1 9 2\n2\n")
    (folder / "kg_final.txt").write_text("0 0 3\n1 0\n2 1 4\n")
    rejects = Rejects("skip")
    g = read_kgat(folder, rejects=rejects, show_progress=False)
    assert rejects.summary() == {"not an integer": 1, "unknown product": 1, "not a triple": 1}
    assert [(r.path.rsplit("/", 1)[-1], r.line) for r in rejects.items] == [
        ("train.txt", 2),
        ("train.txt", 3),
        ("kg_final.txt", 2),
    ]
    rows = [(r["user_id"], r["product_id"], r["order"]) for r in g.interactions.to_pylist()]
    # Line 3 keeps its known item at its own position (the rejected item 9 keeps position 0), and
    # user 1's order runs on across train and test: a corrected file numbers them the same.
    assert rows == [("0", "0", 0), ("0", "1", 1), ("1", "2", 1), ("0", "2", 2), ("1", "0", 2)]
    assert g.triples.num_rows == 2


def test_zip_without_member_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "kg_final.txt")
    with zipfile.ZipFile(folder / "kg_final.txt.zip", "w") as archive:
        archive.writestr("other.txt", "0 0 3\n")
    with pytest.raises(SourceError, match=r"expected one kg_final\.txt"):
        read_kgat(folder, show_progress=False)


@pytest.mark.skipif(not AMAZON_BOOK.exists(), reason=f"{AMAZON_BOOK} is absent")
def test_real_amazon_book_split() -> None:
    start = time.perf_counter()
    g = read_kgat(AMAZON_BOOK, show_progress=False)
    seconds = time.perf_counter() - start
    counts = g.counts()
    assert counts["users"] == 70_679
    assert counts["products"] == 24_915
    assert counts["interactions"] == 846_434
    assert counts["triples"] == 0  # kg_final.txt is missing from the shared copy
    splits = g.interactions.column("split").value_counts().to_pylist()
    assert {d["values"]: d["counts"] for d in splits} == {"train": 652_514, "test": 193_920}
    assert seconds < 30


@pytest.mark.skipif(not LAST_FM.exists(), reason=f"{LAST_FM} is absent")
def test_real_last_fm_kg() -> None:
    g = read_kgat(LAST_FM, show_progress=False)
    counts = g.counts()
    assert counts["triples"] == 464_567
    assert counts["entities"] == 58_266
    assert counts["products"] == 48_123
    assert counts["users"] == 23_566
    assert counts["interactions"] == 616_336  # test.txt only (train.txt is missing)
    assert len(set(g.triples.column("relation").to_pylist())) == 9
