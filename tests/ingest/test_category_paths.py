"""Category paths joined with ",", ", " or " > ": detection, the ", " resolution, and the Amazon
reader on a ", "-joined sample whose names contain ", "."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.sources.amazon import read_amazon
from ingest.sources.categories import PATH_JOINER
from ingest.sources.category_paths import detect_separator, split_path, split_paths
from tests.conftest import SHARED_DATA
from tests.ingest.comma_space_sample import RENAMED, write_comma_space_sample
from tests.kg.cli_helpers import kgrec

REAL = SHARED_DATA / "amazon2018-industrial-scientific"


def test_single_strings_split_with_comma_or_arrow() -> None:
    assert split_path("A &amp; B,Test, Measure & Inspect,,C ", ",") == [
        "A & B", "Test, Measure & Inspect", "C",
    ]  # fmt: skip
    assert split_path("Tools > Hand Tools>Pliers", " > ") == ["Tools", "Hand Tools", "Pliers"]
    with pytest.raises(ValueError, match="whole file"):
        split_path("A, B", ", ")
    with pytest.raises(ValueError, match="unknown category separator"):
        split_path("A|B", "|")


def test_the_separator_most_strings_use_is_detected() -> None:
    assert detect_separator(["Industrial & Scientific,Test, Measure & Inspect,Gauges"]) == ","
    assert detect_separator(["Electronics, Computers & Accessories, Cables"]) == ", "
    assert detect_separator(["Tools > Tape, Adhesives & Fasteners > Tape"]) == " > "
    assert detect_separator(["A, B", "C, D", "E,F"]) == ", "  # the majority
    assert detect_separator(["A,B", "C, D"]) == ","  # a tie: "," before ", "
    assert detect_separator(["", "Tools"]) == ","  # no separator anywhere: one name each


def test_comma_space_resolution_rules() -> None:
    # Branching: "Electronics" has two subcategories, so it ends a name, although
    # "Electronics, Computers & Accessories" alone would read as a list name.
    texts = [
        "Electronics, Computers & Accessories, Cables & Accessories",
        "Electronics, Camera & Photo, Lenses",
        "Clothing, Shoes & Jewelry, Women",
        "Clothing, Shoes & Jewelry, Men",
    ]
    out = split_paths(texts, ", ")
    assert out[texts[0]] == ["Electronics", "Computers & Accessories", "Cables & Accessories"]
    assert out[texts[1]] == ["Electronics", "Camera & Photo", "Lenses"]
    assert out[texts[2]] == ["Clothing, Shoes & Jewelry", "Women"]  # a list name stays whole
    # A prefix that is a known path (a product sits there) wins over the list reading.
    known = ["Safety, Gloves & Eyewear, Nitrile Gloves", "Safety"]
    assert split_paths(known, ", ")[known[0]] == ["Safety", "Gloves & Eyewear", "Nitrile Gloves"]
    alone = ["Safety, Gloves & Eyewear, Nitrile Gloves"]
    assert split_paths(alone, ", ")[alone[0]] == ["Safety, Gloves & Eyewear", "Nitrile Gloves"]
    # What stays ambiguous (documented): a name with ", " that is not a list ("X, Y & Z") and
    # has no branching or product to mark it is read as two levels.
    assert split_paths(["Tools, Hardware, Hammers"], ", ")["Tools, Hardware, Hammers"] == [
        "Tools", "Hardware", "Hammers",
    ]  # fmt: skip
    assert split_paths(["", " , A"], ", ") == {"": [], " , A": ["A"]}


def test_comma_space_sample_gives_the_true_tree(tmp_path: Path) -> None:
    truth = write_comma_space_sample(tmp_path)
    assert any(", " in name for names in truth.values() for name in names)
    g = read_amazon(tmp_path, show_progress=False)
    assert g.meta["category_separator"] == ", "
    expected = {PATH_JOINER.join(n[:d]): (n[d - 1], d) for n in truth.values() for d in range(1, 4)}
    assert {r["id"]: (r["name"], r["level"]) for r in g.categories.to_pylist()} == expected
    assert {(r["child_id"], r["parent_id"]) for r in g.subcategory_of.to_pylist()} == {
        (c, c.rsplit(PATH_JOINER, 1)[0]) for c in expected if PATH_JOINER in c
    }
    assert {r["product_id"]: r["category_id"] for r in g.in_category.to_pylist()} == {
        k: PATH_JOINER.join(n) for k, n in truth.items()
    }  # the leaf only
    names = set(g.categories["name"].to_pylist())
    assert set(RENAMED.values()) <= names


def test_separator_option_is_honoured(tmp_path: Path) -> None:
    write_comma_space_sample(tmp_path)
    flat = read_amazon(tmp_path, category_separator=",", show_progress=False)
    assert flat.meta["category_separator"] == ","
    assert set(flat.categories["level"].to_pylist()) == {1}  # one flat category per string
    with pytest.raises(ValueError, match="unknown category separator"):
        read_amazon(tmp_path, category_separator=";", show_progress=False)


def test_cli_says_which_separator(tmp_path: Path) -> None:
    write_comma_space_sample(tmp_path / "data")
    proc = kgrec("ingest", "amazon", str(tmp_path / "data"), "--out", str(tmp_path / "t"),
                 "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "category separator: ', ' (the one most category strings use)" in proc.stdout
    proc = kgrec("ingest", "amazon", str(tmp_path / "data"), "--out", str(tmp_path / "t2"),
                 "--category-separator", " > ", "--no-progress")  # fmt: skip
    assert proc.returncode == 0 and "category separator: ' > ' (given)" in proc.stdout
    bad = kgrec("ingest", "amazon", str(tmp_path / "data"), "--category-separator", ";")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


@pytest.mark.skipif(not REAL.exists(), reason=f"{REAL} is absent")
def test_real_paths_joined_with_comma_space_are_recovered() -> None:
    items = json.loads((REAL / "Scientific.item.json").read_text(encoding="utf-8"))
    true = [split_path(v.get("categories") or "", ",") for v in items.values()]
    joined = {", ".join(names): names for names in true}
    assert detect_separator(joined) == ", "
    out = split_paths(joined, ", ")
    wrong = [t for t, names in joined.items() if out[t] != names]
    # 4 of 765: three list-like names that are two levels ("Latches, Draw Latches & Tension
    # Latches") and the one malformed path of item 1161.
    assert len(joined) == 765 and len(wrong) <= 4
