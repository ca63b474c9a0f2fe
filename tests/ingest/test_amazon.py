"""Amazon processed-JSON source."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from ingest.errors import SourceError
from ingest.rejects import Rejects
from ingest.sources.amazon import read_amazon, split_category_path

DATA = Path(__file__).parent / "data" / "amazon"
REAL = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "amazon2018-industrial-scientific"
)

ROOT = "Industrial & Scientific"
GAUGES = f"{ROOT} > Test, Measure & Inspect > Gauges"
STAPLES = f"{ROOT} > Fasteners > Collated Fasteners > Staples"

GOOD_ITEMS = {
    "0": {"title": "A.", "description": "", "brand": "", "categories": ""},
    "1": {"title": "B.", "description": "", "brand": "", "categories": ""},
}


def _write(folder: Path, items: str | dict, inter: str | dict, name: str = "T") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, content in (("item", items), ("inter", inter)):
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        (folder / f"{name}.{suffix}.json").write_text(text)
    return folder


def test_category_split_keeps_names_with_comma_space() -> None:
    text = "Industrial &amp; Scientific,Test, Measure & Inspect,Gauges"
    assert split_category_path(text) == [ROOT, "Test, Measure & Inspect", "Gauges"]
    assert split_category_path("") == []
    assert split_category_path(" A ,,B") == ["A", "B"]  # empty names dropped
    assert split_category_path("A,B, C") == ["A", "B, C"]


def test_reads_fixture() -> None:
    g = read_amazon(DATA, show_progress=False)
    assert g.meta == {
        "source": "amazon", "path": str(DATA), "name": "Tiny", "category_separator": ",",
    }  # fmt: skip
    products = {r["id"]: r for r in g.products.to_pylist()}
    assert list(products) == ["0", "1", "2", "3"]
    assert products["0"]["title"] == "Caliper & Gauge Set."
    assert products["0"]["description"] == 'Measures "small" things.'
    assert products["1"]["title"] == "Staples"
    assert products["1"]["description"] is None

    assert g.brands.to_pylist() == [
        {"id": "Acme & Sons", "name": "Acme & Sons"},
        {"id": "Stanley", "name": "Stanley"},
    ]
    assert sorted(map(tuple, (r.values() for r in g.made_by.to_pylist()))) == [
        ("0", "Acme & Sons"),
        ("1", "Stanley"),
        ("2", "Stanley"),
    ]

    categories = {r["id"]: (r["name"], r["level"]) for r in g.categories.to_pylist()}
    assert categories == {
        ROOT: (ROOT, 1),
        f"{ROOT} > Test, Measure & Inspect": ("Test, Measure & Inspect", 2),
        GAUGES: ("Gauges", 3),
        f"{ROOT} > Fasteners": ("Fasteners", 2),
        f"{ROOT} > Fasteners > Collated Fasteners": ("Collated Fasteners", 3),
        STAPLES: ("Staples", 4),
    }
    parents = {r["child_id"]: r["parent_id"] for r in g.subcategory_of.to_pylist()}
    assert parents == {
        f"{ROOT} > Test, Measure & Inspect": ROOT,
        GAUGES: f"{ROOT} > Test, Measure & Inspect",
        f"{ROOT} > Fasteners": ROOT,
        f"{ROOT} > Fasteners > Collated Fasteners": f"{ROOT} > Fasteners",
        STAPLES: f"{ROOT} > Fasteners > Collated Fasteners",
    }
    # Leaf only; product 3 has neither category nor brand.
    assert {r["product_id"]: r["category_id"] for r in g.in_category.to_pylist()} == {
        "0": GAUGES,
        "1": STAPLES,
        "2": f"{ROOT} > Fasteners > Collated Fasteners",
    }

    assert g.users.column("id").to_pylist() == ["10", "11", "12"]
    rows = g.interactions.to_pylist()
    assert [(r["user_id"], r["product_id"], r["order"]) for r in rows] == [
        ("10", "0", 0),
        ("10", "1", 1),
        ("10", "2", 2),
        ("11", "2", 0),
        ("11", "0", 1),
        ("12", "3", 0),
        ("12", "1", 1),
        ("12", "0", 2),
    ]
    assert {(r["ts"], r["kind"], r["weight"], r["split"]) for r in rows} == {
        (None, "interaction", 1.0, None)
    }


def test_name_is_found_or_refused(tmp_path: Path) -> None:
    assert read_amazon(DATA, "Tiny", show_progress=False).counts()["products"] == 4
    with pytest.raises(SourceError, match=r"no \*\.item\.json"):
        read_amazon(tmp_path, show_progress=False)
    _write(tmp_path, GOOD_ITEMS, {"u": [0]}, name="A")
    _write(tmp_path, GOOD_ITEMS, {"u": [1]}, name="B")
    with pytest.raises(SourceError, match="several") as caught:
        read_amazon(tmp_path, show_progress=False)
    assert "A.item.json" in str(caught.value) and "B.item.json" in str(caught.value)
    assert read_amazon(tmp_path, "B", show_progress=False).interactions.num_rows == 1


BAD_ITEMS = [
    # (item file text, expected fragments of the message)
    ('{\n  "0": {"title": "A."}\n  "1": {"title": "B."}\n}', ["T.item.json:3", "malformed JSON"]),
    ('{\n  "0": {"title": "A.",}\n}', ["T.item.json:2", "malformed JSON", "column 23"]),
    ("  \n", ["T.item.json", "empty file"]),
    ('[{"title": "A."}]', ["T.item.json:1", "not a JSON object"]),
    ('{\n  "0": {"title": "A."},\n  "1": "oops"\n}', ["T.item.json:3", "'1'", "'oops'"]),
    ('{\n  "0": {"title": "A."},\n  "7": {"brand": "X"}\n}', ["T.item.json:3", "'7'", "title"]),
    ('{\n  "0": {"title": "A."},\n  "0": {"title": "B."}\n}', ["T.item.json:3", "duplicate"]),
    ('{"0": {"title": "A.", "brand": 5}}', ["T.item.json:1", "'brand'", ": 5"]),
    ("{ }", ["T.item.json", "no item records"]),
]


@pytest.mark.parametrize(("items", "fragments"), BAD_ITEMS)
def test_bad_item_file_names_file_line_and_value(
    tmp_path: Path, items: str, fragments: list[str]
) -> None:
    _write(tmp_path, items, {"u": [0]})
    with pytest.raises(SourceError) as caught:
        read_amazon(tmp_path, show_progress=False)
    for fragment in fragments:
        assert fragment in str(caught.value)


BAD_INTERACTIONS = [
    ('{"u1": [0, "1"]}', ["T.inter.json:1", "'u1'", "not an integer", "'1'"]),
    ('{"u1": [0, true]}', ["T.inter.json:1", "'u1'", "not an integer", "True"]),
    ('{"u1": [0, 1.0]}', ["T.inter.json:1", "not an integer", "1.0"]),
    ('{"u1": [0, 99]}', ["T.inter.json:1", "'u1'", "unknown product", "99"]),
    ('{\n"u1": [0],\n"u2": 3\n}', ["T.inter.json:3", "'u2'", "not a list", "3"]),
    ('{"u1": [0], "u2": [1}', ["T.inter.json:1", "malformed JSON", "column 21"]),
    ('{"u1": [0],\n "u1": [1]}', ["T.inter.json:2", "duplicate user id", "'u1'"]),
    ("", ["T.inter.json", "empty file"]),
]


@pytest.mark.parametrize(("inter", "fragments"), BAD_INTERACTIONS)
def test_bad_interaction_file_names_file_record_and_value(
    tmp_path: Path, inter: str, fragments: list[str]
) -> None:
    _write(tmp_path, GOOD_ITEMS, inter)
    with pytest.raises(SourceError) as caught:
        read_amazon(tmp_path, show_progress=False)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_skip_mode_drops_bad_records_and_keeps_source_positions(tmp_path: Path) -> None:
    items = '{\n  "0": {"title": "A."},\n  "1": "oops",\n  "2": {"title": "C."}\n}'
    inter = '{"u1": [0, 1, "x", 2], "u2": 5, "u3": [2]}'
    _write(tmp_path, items, inter)
    rejects = Rejects("skip")
    g = read_amazon(tmp_path, rejects=rejects, show_progress=False)
    assert g.products.column("id").to_pylist() == ["0", "2"]
    assert g.users.column("id").to_pylist() == ["u1", "u3"]
    rows = [(r["user_id"], r["product_id"], r["order"]) for r in g.interactions.to_pylist()]
    # positions are those of the source list (issue 19): a clean load numbers them the same
    assert rows == [("u1", "0", 0), ("u1", "2", 3), ("u3", "2", 0)]
    assert rejects.summary() == {
        "item record is not an object": 1,
        "unknown product": 1,  # item 1 was itself rejected
        "item id is not an integer": 1,
        "interaction list is not a list": 1,
    }
    out = rejects.write(tmp_path / "rejects.jsonl")
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["record"], r["line"], r["value"]) for r in written] == [
        ("1", 3, "oops"),
        ("u1", 1, 1),
        ("u1", 1, "x"),
        ("u2", 1, 5),
    ]
    assert all(r["path"].endswith("T.inter.json") for r in written[1:])


def test_skip_mode_still_raises_on_whole_file_problems(tmp_path: Path) -> None:
    _write(tmp_path, GOOD_ITEMS, '{"u1": [0')
    with pytest.raises(SourceError, match="malformed JSON"):
        read_amazon(tmp_path, rejects=Rejects("skip"), show_progress=False)


def test_explicit_raise_mode_matches_default(tmp_path: Path) -> None:
    _write(tmp_path, GOOD_ITEMS, '{"u1": [0, 42]}')
    with pytest.raises(SourceError, match=r"unknown product \(position 1\): 42"):
        read_amazon(tmp_path, rejects=Rejects("raise"), show_progress=False)


def test_fixture_copy_reads_identically(tmp_path: Path) -> None:
    copy = shutil.copytree(DATA, tmp_path / "copy")
    assert read_amazon(copy, show_progress=False).equals(read_amazon(DATA, show_progress=False))


@pytest.mark.skipif(not REAL.exists(), reason=f"{REAL} is absent")
def test_real_industrial_scientific_counts() -> None:
    start = time.perf_counter()
    g = read_amazon(REAL, show_progress=False)
    seconds = time.perf_counter() - start
    counts = g.counts()
    assert counts["users"] == 8_317
    assert counts["products"] == 4_344
    assert counts["interactions"] == 58_492
    assert counts["brands"] == 1_546
    assert counts["categories"] == 922
    assert counts["in_category"] == 4_213  # 131 items have an empty category string
    assert counts["made_by"] == 4_332
    assert counts["subcategory_of"] == 922 - 1  # one root
    levels = g.categories.column("level").to_pylist()
    assert levels.count(1) == 1 and levels.count(2) == 25
    assert g.products.column("description").null_count == 4_344 - 4_221
    assert seconds < 30
