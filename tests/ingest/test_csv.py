"""CSV source."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ingest.errors import SourceError
from ingest.rejects import Rejects
from ingest.sources.csv import read_csv
from ingest.tables import GraphTables

DATA = Path(__file__).parent / "data" / "csv"
PRODUCTS = DATA / "products.csv"
INTERACTIONS = DATA / "interactions.csv"
CATEGORIES = DATA / "categories.csv"


def _copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA, tmp_path / "csv"))


def _read(folder: Path, rejects: Rejects | None = None) -> GraphTables:
    return read_csv(
        folder / "products.csv",
        folder / "interactions.csv",
        folder / "categories.csv",
        rejects=rejects,
        show_progress=False,
    )


def test_reads_fixture_with_category_table() -> None:
    g = read_csv(PRODUCTS, INTERACTIONS, CATEGORIES, show_progress=False)
    assert g.meta == {
        "source": "csv",
        "products": str(PRODUCTS),
        "interactions": str(INTERACTIONS),
        "categories": str(CATEGORIES),
    }
    assert g.products.to_pylist() == [
        {
            "id": "p1",
            "title": "Needle-nose pliers",
            "description": "Long, thin jaws.",
            "price": 19.9,
        },
        {"id": "p2", "title": "Beaker set", "description": None, "price": None},
        {"id": "p3", "title": "Mystery", "description": None, "price": None},
    ]
    assert g.categories.to_pylist() == [
        {"id": "tools", "name": "Tools", "level": 1},
        {"id": "hand", "name": "Hand Tools", "level": 2},
        {"id": "pliers", "name": "Pliers", "level": 3},
        {"id": "lab", "name": "Lab, Scientific", "level": 1},
    ]
    parents = {r["child_id"]: r["parent_id"] for r in g.subcategory_of.to_pylist()}
    assert parents == {"hand": "tools", "pliers": "hand"}
    assert {r["product_id"]: r["category_id"] for r in g.in_category.to_pylist()} == {
        "p1": "pliers",
        "p2": "lab",
    }
    assert g.brands.column("id").to_pylist() == ["Knipex", "Pyrex"]
    assert {r["product_id"]: r["brand_id"] for r in g.made_by.to_pylist()} == {
        "p1": "Knipex",
        "p2": "Pyrex",
    }
    assert g.users.column("id").to_pylist() == ["u1", "u2"]
    rows = [tuple(r.values()) for r in g.interactions.to_pylist()]
    # By timestamp, then rows without one in file order; kind and weight defaults filled in.
    assert rows == [
        ("u1", "p1", 0, 100, "purchase", 2.5, None),
        ("u1", "p2", 1, 200, "view", 1.0, None),
        ("u1", "p3", 2, None, "view", 1.0, None),
        ("u2", "p1", 0, 50, "interaction", 1.0, None),
        ("u2", "p3", 1, None, "interaction", 1.0, None),
    ]


def test_category_paths_without_category_table() -> None:
    g = read_csv(DATA / "products_paths.csv", INTERACTIONS, show_progress=False)
    assert g.categories.to_pylist() == [
        {"id": "Tools", "name": "Tools", "level": 1},
        {"id": "Tools > Hand Tools", "name": "Hand Tools", "level": 2},
        {"id": "Tools > Hand Tools > Pliers", "name": "Pliers", "level": 3},
        {"id": "Lab, Scientific", "name": "Lab, Scientific", "level": 1},
    ]
    assert {r["product_id"]: r["category_id"] for r in g.in_category.to_pylist()} == {
        "p1": "Tools > Hand Tools > Pliers",
        "p2": "Tools > Hand Tools",
        "p3": "Lab, Scientific",
    }
    assert g.subcategory_of.num_rows == 2
    assert g.products.column("price").to_pylist() == [19.9, 7.0, None, None]
    assert g.brands.num_rows == 0


def test_parent_may_follow_child_and_bom_is_accepted(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "categories.csv").write_text(
        "\ufeffid,parent_id,name\npliers,hand,Pliers\nhand,tools,Hand\ntools,,Tools\nlab,,Lab\n",
        encoding="utf-8",
    )
    g = _read(folder)
    levels = {r["id"]: r["level"] for r in g.categories.to_pylist()}
    assert levels == {"pliers": 3, "hand": 2, "tools": 1, "lab": 1}


BAD = [
    # (file, content, fragments of the message, reason in skip mode or None when it always raises)
    ("products.csv", "title,price\nA,1\n", ["products.csv:1", "'id'"], None),
    (
        "products.csv",
        "id,title,price\np1,A,1\n,B,2\n",
        ["products.csv:3", "missing id"],
        "missing id",
    ),
    ("products.csv", "id,price\np1,cheap\n", ["products.csv:2", "price", "'cheap'"], None),
    ("products.csv", "id,price\np1,nan\n", ["products.csv:2", "price", "'nan'"], None),
    ("products.csv", "id,category\np1,nowhere\n", ["products.csv:2", "'nowhere'"], None),
    ("products.csv", "id,title\np1,A\np1,B\n", ["products.csv:3", "duplicate", "'p1'"], None),
    ("products.csv", "id,title\np1,A,extra\n", ["products.csv:2", "expected 2 fields"], None),
    ("products.csv", "", ["products.csv", "empty file"], None),
    ("products.csv", 'id,title\np1,"unterminated\n', ["products.csv:", "malformed CSV"], None),
    ("products.csv", 'id,title\np1,"A"B\n', ["products.csv:2", "malformed CSV"], None),
    ("interactions.csv", "user_id\nu1\n", ["interactions.csv:1", "'product_id'"], None),
    ("interactions.csv", "user_id,product_id\nu1,p9\n", ["interactions.csv:2", "'p9'"], None),
    ("interactions.csv", "user_id,product_id\n,p1\n", ["interactions.csv:2", "user_id"], None),
    (
        "interactions.csv",
        "user_id,product_id,timestamp\nu1,p1,1\nu1,p2,12.5\n",
        ["interactions.csv:3", "timestamp", "'12.5'"],
        "timestamp is not an integer",
    ),
    (
        "interactions.csv",
        "user_id,product_id,weight\nu1,p1,\nu1,p2,heavy\n",
        ["interactions.csv:3", "weight", "'heavy'"],
        "weight is not a finite number",
    ),
    ("interactions.csv", "\n", ["interactions.csv", "empty file"], None),
    (
        "categories.csv",
        "id,name,parent_id\ntools,Tools,\nhand,Hand,tool\npliers,Pliers,hand\n",
        ["categories.csv:3", "unknown parent", "'tool'"],
        "unknown parent category",
    ),
    ("categories.csv", "id,parent_id\na,b\nb,a\n", ["categories.csv:", "cycle"], None),
    ("categories.csv", "name\nTools\n", ["categories.csv:1", "'id'"], None),
]


@pytest.mark.parametrize(("name", "content", "fragments", "reason"), BAD)
def test_bad_input_raises_with_file_line_and_value(
    tmp_path: Path, name: str, content: str, fragments: list[str], reason: str | None
) -> None:
    folder = _copy(tmp_path)
    (folder / name).write_text(content)
    with pytest.raises(SourceError) as caught:
        _read(folder)
    for fragment in fragments:
        assert fragment in str(caught.value)
    if reason is not None:
        rejects = Rejects("skip")
        _read(folder, rejects=rejects)
        # Rows of other files that named what the dropped row defined are rejected too.
        assert rejects.summary()[reason] >= 1


def test_skip_mode_writes_rejects_and_keeps_good_rows(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "products.csv").write_text(
        "id,title,price,category\np1,A,1,pliers\np2,B,x,lab\np3,C,,nowhere\n,D,,\np4,E,2,\n"
    )
    (folder / "interactions.csv").write_text(
        "user_id,product_id,timestamp\nu1,p1,5\nu1,p2,6\nu1,p4,oops\nu2,p4,1\nu1,p4,7\n"
    )
    rejects = Rejects("skip")
    g = _read(folder, rejects=rejects)
    assert g.products.column("id").to_pylist() == ["p1", "p4"]
    rows = [(r["user_id"], r["product_id"], r["order"]) for r in g.interactions.to_pylist()]
    # the rejected rows keep their places (p2 at 6 before p4 at 7; 'oops' as no timestamp, last):
    # a load of the corrected file gives every row the same position (issue 19)
    assert rows == [("u1", "p1", 0), ("u1", "p4", 2), ("u2", "p4", 0)]
    assert rejects.summary() == {
        "price is not a finite number": 1,
        "unknown category": 1,
        "missing id": 1,
        "unknown product": 1,
        "timestamp is not an integer": 1,
    }
    out = rejects.write(tmp_path / "rejects.jsonl")
    lines = [
        (Path(r["path"]).name, r["line"]) for r in map(json.loads, out.read_text().splitlines())
    ]
    assert lines == [
        ("products.csv", 3),
        ("products.csv", 4),
        ("products.csv", 5),
        ("interactions.csv", 3),
        ("interactions.csv", 4),
    ]


def test_line_numbers_count_quoted_newlines(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "products.csv").write_text('id,description,price\np1,"two\nlines",1\np2,,bad\n')
    with pytest.raises(SourceError, match=r"products\.csv:4: price is not a finite number: 'bad'"):
        _read(folder)
