"""RecBole atomic files (``.inter`` / ``.item``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest.errors import SourceError
from ingest.rejects import Rejects
from ingest.sources.recbole import read_recbole
from ingest.tables import GraphTables
from tests.kg.cli_helpers import kgrec

DATA = Path(__file__).parent / "data" / "recbole"
INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def _copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA, tmp_path / "recbole"))


def test_reads_the_sample() -> None:
    g = read_recbole(DATA, show_progress=False)
    assert g.meta == {"source": "recbole", "path": str(DATA), "name": "Tiny", "item_file": True,
                      "category_separator": ", "}  # fmt: skip
    products = {r["id"]: r for r in g.products.to_pylist()}
    assert list(products) == ["i1", "i2", "i3", "i4"]
    assert products["i1"]["title"] == "Nitrile Gloves, Box of 100"  # token_seq text as it is
    assert products["i1"]["price"] == 12.5 and products["i2"]["price"] is None
    assert products["i3"]["title"] == "Mystery item" and products["i3"]["description"] is None
    assert g.brands["id"].to_pylist() == ["Acme & Sons", "Stanley"]
    tapes = "Industrial & Scientific > Tapes, Adhesives & Sealants"
    assert {r["product_id"]: r["category_id"] for r in g.in_category.to_pylist()} == {
        "i1": f"{tapes} > Duct Tape",
        "i2": "Industrial & Scientific > Fasteners > Bolts",
        "i4": f"{tapes} > Masking Tape",
    }
    levels = {r["id"]: r["level"] for r in g.categories.to_pylist()}
    assert levels[tapes] == 2 and levels[f"{tapes} > Duct Tape"] == 3
    assert {r["child_id"]: r["parent_id"] for r in g.subcategory_of.to_pylist()}[tapes] == (
        "Industrial & Scientific"
    )
    # by timestamp; a row without one comes after; rating is the weight
    rows = [(r["user_id"], r["product_id"], r["order"], r["ts"], r["weight"])
            for r in g.interactions.to_pylist()]  # fmt: skip
    assert rows == [
        ("u1", "i1", 0, 978300760, 5.0),
        ("u1", "i2", 1, 978300800, 4.0),
        ("u1", "i4", 2, 978301000, 1.0),
        ("u2", "i1", 0, 978300900, 2.5),
        ("u2", "i3", 1, None, 3.0),
    ]
    assert g.users["id"].to_pylist() == ["u1", "u2"]


def test_without_an_item_file_the_items_are_the_interactions(tmp_path: Path) -> None:
    (tmp_path / "d.inter").write_text(INTER_HEADER + "a\tx\t1\t10\nb\ty\t\t\na\ty\t\t5\n")
    g = read_recbole(tmp_path, show_progress=False)
    assert g.products["id"].to_pylist() == ["x", "y"]
    assert g.products["title"].null_count == 2 and g.categories.num_rows == 0
    assert g.meta["item_file"] is False


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("Tiny.inter", "user_id\titem_id\n", r"Tiny.inter:1: header field is not name:type"),
        ("Tiny.inter", "user_id:token\titem:token\n", r"header lacks required field 'item_id'"),
        ("Tiny.inter", "user_id:int\titem_id:token\n", r"header field is not name:type"),
        ("Tiny.inter", INTER_HEADER + "u1\ti1\tfive\t1\n", r"Tiny.inter:2: rating is not a finite"),
        ("Tiny.inter", INTER_HEADER + "u1\ti1\t1\tnan\n", r"Tiny.inter:2: timestamp is not a fin"),
        ("Tiny.inter", INTER_HEADER + "u1\ti9\t1\t1\n", r"Tiny.inter:2: unknown item .*'i9'"),
        ("Tiny.inter", INTER_HEADER + "\ti1\t1\t1\n", r"Tiny.inter:2: missing user_id"),
        ("Tiny.inter", INTER_HEADER + "u1\ti1\t1\n", r"Tiny.inter:2: expected 4 fields"),
        ("Tiny.inter", "", r"Tiny.inter: empty file"),
        ("Tiny.item", "item_id:token\ttitle:token_seq\ni1\tA\ni1\tB\n", r"Tiny.item:3: duplicate"),
        ("Tiny.item", "item_id:token\tprice:float\ni1\tcheap\n", r"Tiny.item:2: price is not"),
    ],
)
def test_bad_input_names_file_line_and_value(
    tmp_path: Path, file: str, text: str, message: str
) -> None:
    folder = _copy(tmp_path)
    (folder / file).write_text(text, encoding="utf-8")
    with pytest.raises(SourceError, match=message):
        read_recbole(folder, show_progress=False)


def test_skip_mode_keeps_the_good_rows(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    with (folder / "Tiny.inter").open("a", encoding="utf-8") as out:
        out.write("u3\ti9\t1\t1\ts\nu3\ti2\tbad\t1\ts\nu3\ti2\t1\t1\ts\n")
    rejects = Rejects("skip")
    g = read_recbole(folder, rejects=rejects, show_progress=False)
    assert rejects.summary() == {"unknown item": 1, "rating is not a finite number": 1}
    assert [r.line for r in rejects.items] == [8, 9]
    assert g.interactions.num_rows == 6 and g.users["id"].to_pylist() == ["u1", "u2", "u3"]


def test_folder_and_name(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no \*\.inter file"):
        read_recbole(tmp_path, show_progress=False)
    folder = _copy(tmp_path)
    shutil.copy(folder / "Tiny.inter", folder / "Other.inter")
    with pytest.raises(SourceError, match="several"):
        read_recbole(folder, show_progress=False)
    assert read_recbole(folder, "Tiny", show_progress=False).equals(
        read_recbole(DATA, show_progress=False)
    )


def test_cli_reads_recbole(tmp_path: Path) -> None:
    proc = kgrec("ingest", "recbole", str(DATA), "--out", str(tmp_path / "t"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "category separator: ', '" in proc.stdout
    expected = read_recbole(DATA, show_progress=False)
    assert GraphTables.load(tmp_path / "t").fingerprint() == expected.fingerprint()
    folder = _copy(tmp_path)
    (folder / "Tiny.inter").write_text(INTER_HEADER + "u1\ti9\t1\t1\n")
    bad = kgrec("ingest", "recbole", str(folder), "--out", str(tmp_path / "t2"), "--no-progress")
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 1 and len(lines) == 1 and "Tiny.inter:2: unknown item" in lines[0]
    assert not (tmp_path / "t2").exists()
