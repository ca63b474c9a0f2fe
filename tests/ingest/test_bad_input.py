"""Malformed inputs of every source (Amazon, CSV, KGAT, RecBole, synthetic configs), through
``kgrec ingest`` into the real Neo4j (issue 19).

Each case is a copy of a good fixture with one thing broken. ``kgrec ingest`` must answer with
exit status 1 and one line on stderr that names the file (and the line or record where the
format has them) and says what is wrong, and must leave the graph exactly as it was: the test
loads a shop first and compares counts and a checksum of every ``(user, order, product)``
before and after.
"""

from __future__ import annotations

import codecs
import json
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ingest.neo4j_writer import graph_counts, write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from kg.cli import main

pytestmark = pytest.mark.neo4j

DATA = Path(__file__).parent / "data"
AMAZON_ITEMS = json.loads((DATA / "amazon" / "Tiny.item.json").read_text())
AMAZON_INTER = json.loads((DATA / "amazon" / "Tiny.inter.json").read_text())
LONG = "x" * 200_000  # over the 131,072-character field limit
_INTER = (DATA / "recbole" / "Tiny.inter").read_text()
_ITEM = (DATA / "recbole" / "Tiny.item").read_text()


@dataclass(frozen=True)
class Case:
    """One broken input: the files that differ from the good fixture, and what the one error
    line must contain (each of ``expect``)."""

    name: str
    source: str
    files: dict[str, bytes | str | Callable[[Path], None]] = field(default_factory=dict)
    expect: tuple[str, ...] = ()
    args: tuple[str, ...] = ()


def _json(value: object) -> str:
    return json.dumps(value, indent=2)


def _items(**changes: object) -> str:
    """The Amazon item fixture with records replaced (``None`` deletes one)."""
    items = dict(AMAZON_ITEMS)
    for key, value in changes.items():
        if value is None:
            items.pop(key, None)
        else:
            items[key] = value
    return _json(items)


def _item(**fields: object) -> dict:
    return {**AMAZON_ITEMS["0"], **fields}


def _nested(depth: int) -> str:
    return '{"0": {"title": "A", "description": ' + "[" * depth + "]" * depth + "}}"


def _zip_without_member(folder: Path) -> None:
    (folder / "kg_final.txt").unlink()
    with zipfile.ZipFile(folder / "kg_final.txt.zip", "w") as archive:
        archive.writestr("other.txt", "0 0 3\n")


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _csv_products(*rows: str, header: str = "id,title,description,brand,category,price") -> str:
    return "\n".join([header, *rows]) + "\n"


def _csv_line_42_not_utf8() -> bytes:
    rows = [f"p{i},Product {i},,Acme,pliers,1.5" for i in range(1, 41)]
    rows.insert(40, "p41,Bad \xff byte,,Acme,pliers,1")  # line 42 (header is line 1)
    text = _csv_products(*rows)
    return text.replace("\xff", "\udcff").encode("utf-8", "surrogateescape")


CASES = [
    # ---------------------------------------------------------------- Amazon processed JSON
    Case("amazon-no-item-file", "amazon", {"Tiny.item.json": _remove("Tiny.item.json")},
         ("no *.item.json file",)),
    Case("amazon-empty-item-file", "amazon", {"Tiny.item.json": "  \n"}, ("Tiny.item.json", "empty file")),
    Case("amazon-top-level-list", "amazon", {"Tiny.item.json": "[1, 2]"}, ("top level is not a JSON object",)),
    Case("amazon-truncated-json", "amazon", {"Tiny.item.json": '{"0": {"title": "A"'},
         ("Tiny.item.json:1", "malformed JSON")),
    Case("amazon-extra-data", "amazon", {"Tiny.item.json": _items() + "\n{}"}, ("Extra data",)),
    Case("amazon-not-utf8", "amazon", {"Tiny.item.json": b'{\n"0": {"title": "Caf\xe9"}}'},
         ("Tiny.item.json:2", "not UTF-8")),
    Case("amazon-deep-nesting", "amazon", {"Tiny.item.json": _nested(100_000)},
         ("Tiny.item.json:1", "nested too deeply")),
    Case("amazon-lone-surrogate-title", "amazon",
         {"Tiny.item.json": _items(**{"0": _item(title="\\ud800")}).replace("\\\\ud800", "\\ud800")},
         ("record '0'", "lone surrogate")),
    Case("amazon-no-title", "amazon", {"Tiny.item.json": _items(**{"0": {"brand": "Acme"}})},
         ("record '0'", "no 'title'")),
    Case("amazon-empty-title", "amazon", {"Tiny.item.json": _items(**{"0": _item(title="")})},
         ("record '0'", "empty 'title'")),
    Case("amazon-blank-title", "amazon", {"Tiny.item.json": _items(**{"0": _item(title=" \t ")})},
         ("record '0'", "empty 'title'")),
    Case("amazon-title-not-string", "amazon", {"Tiny.item.json": _items(**{"0": _item(title=42)})},
         ("'title' is not a string",)),
    Case("amazon-description-list", "amazon",
         {"Tiny.item.json": _items(**{"1": _item(description=["a"])})}, ("'description' is not a string",)),
    Case("amazon-title-too-long", "amazon", {"Tiny.item.json": _items(**{"2": _item(title=LONG)})},
         ("record '2'", "131,072-character limit")),
    Case("amazon-duplicate-item", "amazon",
         {"Tiny.item.json": _items()[:-2] + ',\n  "0": {"title": "again"}\n}'}, ("duplicate item id",)),
    Case("amazon-record-not-object", "amazon", {"Tiny.item.json": _items(**{"1": "oops"})},
         ("record '1'", "not an object")),
    Case("amazon-empty-item-id", "amazon", {"Tiny.item.json": _items(**{"": _item()})}, ("empty item id",)),
    Case("amazon-brand-number", "amazon", {"Tiny.item.json": _items(**{"0": _item(brand=7)})},
         ("'brand' is not a string",)),
    Case("amazon-categories-object", "amazon",
         {"Tiny.item.json": _items(**{"0": _item(categories={"a": 1})})}, ("'categories' is not a string",)),
    Case("amazon-unknown-product", "amazon", {"Tiny.inter.json": _json({"10": [0, 99]})},
         ("Tiny.inter.json", "unknown product (position 1)", "99")),
    Case("amazon-item-not-integer", "amazon", {"Tiny.inter.json": _json({"10": [0, "x"]})},
         ("item id is not an integer",)),
    Case("amazon-item-bool", "amazon", {"Tiny.inter.json": _json({"10": [True]})},
         ("item id is not an integer",)),
    Case("amazon-history-not-list", "amazon", {"Tiny.inter.json": _json({"10": 5})},
         ("record '10'", "not a list")),
    Case("amazon-duplicate-user", "amazon", {"Tiny.inter.json": '{"10": [0], "10": [1]}'},
         ("duplicate user id",)),
    Case("amazon-empty-user-id", "amazon", {"Tiny.inter.json": '{"": [0]}'}, ("empty user id",)),
    Case("amazon-inter-malformed", "amazon", {"Tiny.inter.json": '{"10": [0,, 1]}'},
         ("Tiny.inter.json:1", "malformed JSON")),
    Case("amazon-surrogate-user", "amazon", {"Tiny.inter.json": '{"\\udc00": [0]}'},
         ("user id is not valid Unicode",)),
    Case("amazon-two-item-files", "amazon", {"Other.item.json": "{}"}, ("several *.item.json files",)),
    # ----------------------------------------------------------------------------- CSV
    Case("csv-no-products-file", "csv", {"products.csv": _remove("products.csv")},
         ("products.csv", "file not found")),
    Case("csv-empty-products", "csv", {"products.csv": ""}, ("products.csv", "empty file")),
    Case("csv-header-without-id", "csv", {"products.csv": "title,price\nA,1\n"},
         ("products.csv:1", "lacks required column 'id'")),
    Case("csv-duplicate-product", "csv",
         {"products.csv": _csv_products("p1,A,,,,", "p1,B,,,,", "p2,C,,,,", "p3,D,,,,")},
         ("products.csv:3", "duplicate product id", "'p1'")),
    Case("csv-price-not-number", "csv", {"products.csv": _csv_products("p1,A,,,,cheap", "p2,B,,,,", "p3,C,,,,")},
         ("products.csv:2", "price is not a finite number", "'cheap'")),
    Case("csv-price-infinite", "csv", {"products.csv": _csv_products("p1,A,,,,inf", "p2,B,,,,", "p3,C,,,,")},
         ("products.csv:2", "price is not a finite number")),
    Case("csv-unknown-category", "csv", {"products.csv": _csv_products("p1,A,,,nowhere,", "p2,B,,,,", "p3,C,,,,")},
         ("products.csv:2", "unknown category", "'nowhere'")),
    Case("csv-not-utf8-line-42", "csv", {"products.csv": _csv_line_42_not_utf8()},
         ("products.csv:42", "not UTF-8")),
    Case("csv-field-too-long", "csv", {"products.csv": _csv_products(f"p1,{LONG},,,,", "p2,B,,,,", "p3,C,,,,")},
         ("products.csv:2", "131,072-character limit")),
    Case("csv-unbalanced-quote", "csv", {"products.csv": _csv_products('p1,"A,,,,', "p2,B,,,,")},
         ("products.csv:2", "malformed CSV", "never closed")),
    Case("csv-field-count", "csv", {"products.csv": _csv_products("p1,A,,,", "p2,B,,,,", "p3,C,,,,")},
         ("products.csv:2", "expected 6 fields")),
    Case("csv-interaction-unknown-product", "csv", {"interactions.csv": "user_id,product_id\nu1,p9\n"},
         ("interactions.csv:2", "unknown product", "'p9'")),
    Case("csv-timestamp-text", "csv", {"interactions.csv": "user_id,product_id,timestamp\nu1,p1,noon\n"},
         ("interactions.csv:2", "timestamp is not an integer")),
    Case("csv-timestamp-overflow", "csv",
         {"interactions.csv": f"user_id,product_id,timestamp\nu1,p1,{2**63}\n"},
         ("interactions.csv:2", "outside the int64 range", str(2**63))),
    Case("csv-weight-nan", "csv", {"interactions.csv": "user_id,product_id,weight\nu1,p1,nan\n"},
         ("interactions.csv:2", "weight is not a finite number")),
    Case("csv-missing-user", "csv", {"interactions.csv": "user_id,product_id\n,p1\n"},
         ("interactions.csv:2", "missing user_id")),
    Case("csv-category-cycle", "csv",
         {"categories.csv": "id,name,parent_id\ntools,Tools,pliers\nhand,Hand,tools\npliers,P,hand\nlab,Lab,\n"},
         ("categories.csv", "category cycle")),
    Case("csv-unknown-parent", "csv",
         {"categories.csv": "id,name,parent_id\ntools,Tools,\nhand,Hand,nowhere\npliers,P,hand\nlab,Lab,\n"},
         ("categories.csv:3", "unknown parent category")),
    # ---------------------------------------------------------------------------- KGAT
    Case("kgat-no-interactions", "kgat",
         {"train.txt": _remove("train.txt"), "test.txt": _remove("test.txt")},
         ("neither train.txt nor test.txt",)),
    Case("kgat-token-not-integer", "kgat", {"train.txt": "0 0 1\n1 2 x\n"},
         ("train.txt:2", "not a non-negative integer id", "'x'")),
    Case("kgat-not-a-triple", "kgat", {"kg_final.txt": "0 0 3\n1 0\n"},
         ("kg_final.txt:2", "expected 3 integers")),
    Case("kgat-item-list-gap", "kgat", {"item_list.txt": "org_id remap_id freebase_id\nB1 0 m.a\nB2 5 m.b\n"},
         ("item_list.txt", "remap ids are not 0..1")),
    Case("kgat-empty-train", "kgat", {"train.txt": "\n"}, ("train.txt", "empty file")),
    Case("kgat-not-utf8", "kgat", {"train.txt": b"0 0 1\n1 2\n\xff\n"}, ("train.txt:3", "not UTF-8")),
    Case("kgat-unknown-item", "kgat", {"train.txt": "0 0 1\n1 7\n"},
         ("train.txt:2", "unknown product", "7")),
    Case("kgat-zip-without-member", "kgat", {"kg_final.txt": _zip_without_member},
         ("kg_final.txt.zip", "expected one kg_final.txt")),
    Case("kgat-huge-remap-id", "kgat",
         {"user_list.txt": "org_id remap_id\nA1 0\nA2 123456789012345678901234567890\n"},
         ("user_list.txt:3", "at most 18 digits")),
    Case("kgat-unknown-relation", "kgat", {"kg_final.txt": "0 0 3\n1 7 3\n"},
         ("kg_final.txt:2", "relation id not in relation_list.txt")),
    Case("kgat-id-too-long", "kgat", {"train.txt": "0 0 1\n1 1234567890123456789\n"},
         ("train.txt:2", "not a non-negative integer id")),
    # ------------------------------------------------------------------- RecBole atomic files
    Case("recbole-no-inter-file", "recbole", {"Tiny.inter": _remove("Tiny.inter")}, ("no *.inter",)),
    Case("recbole-bad-header-type", "recbole", {"Tiny.inter": "user_id:token\titem_id:blob\nu1\ti1\n"},
         ("Tiny.inter:1", "header field is not name:type")),
    Case("recbole-no-user-field", "recbole", {"Tiny.inter": "item_id:token\ni1\n"},
         ("Tiny.inter:1", "lacks required field 'user_id'")),
    Case("recbole-unknown-item", "recbole", {"Tiny.inter": _INTER + "u1\ti9\t1\t978301100\ts9\n"},
         ("Tiny.inter:8", "unknown item", "'i9'")),
    Case("recbole-rating-text", "recbole", {"Tiny.inter": _INTER + "u1\ti2\tgood\t978301100\ts9\n"},
         ("Tiny.inter:8", "rating is not a finite number")),
    Case("recbole-timestamp-overflow", "recbole", {"Tiny.inter": _INTER + "u1\ti2\t1\t1e30\ts9\n"},
         ("Tiny.inter:8", "outside the int64 range")),
    Case("recbole-not-utf8", "recbole", {"Tiny.inter": _INTER.encode() + b"u1\ti2\t1\t5\tcaf\xe9\n"},
         ("Tiny.inter:8", "not UTF-8")),
    Case("recbole-field-too-long", "recbole", {"Tiny.item": _ITEM + f"i5\t{LONG}\t\t\t\t\n"},
         ("Tiny.item:6", "131,072-character limit")),
    Case("recbole-field-count", "recbole", {"Tiny.inter": _INTER + "u1\ti2\n"},
         ("Tiny.inter:8", "expected 5 fields")),
    # ------------------------------------------------------------------- synthetic config
    Case("synthetic-malformed-toml", "synthetic", {"shop.toml": "preset = \"tiny\"\nn_products = \n"},
         ("shop.toml:2", "malformed TOML")),
    Case("synthetic-unknown-key", "synthetic", {"shop.toml": "preset = \"tiny\"\nproducts = 5\n"},
         ("shop.toml:2", "unknown setting 'products'")),
    Case("synthetic-wrong-type", "synthetic", {"shop.toml": "n_products = \"many\"\n"},
         ("shop.toml:1", "n_products must be a TOML int", "'many'")),
    Case("synthetic-refused-value", "synthetic", {"shop.toml": "preset = \"tiny\"\nn_products = 0\n"},
         ("shop.toml", "n_products and n_users must be >= 1")),
    Case("synthetic-unknown-preset", "synthetic", {"shop.toml": "preset = \"huge\"\n"},
         ("shop.toml", "unknown preset", "'huge'")),
    Case("synthetic-branching-strings", "synthetic", {"shop.toml": "branching = [\"a\", \"b\"]\n"},
         ("shop.toml:1", "branching must be a list of integers")),
    Case("synthetic-too-large", "synthetic", {"shop.toml": "n_products = 1_000_000_000_000\n"},
         ("shop.toml", "at most 100,000,000 products")),
    Case("synthetic-probability", "synthetic", {"shop.toml": "preset = \"tiny\"\np_view = 1.5\n"},
         ("shop.toml", "bad probability")),
    Case("synthetic-not-utf8", "synthetic", {"shop.toml": b"seed = 1\n# caf\xe9\n"}, ("shop.toml:2", "not UTF-8")),
    Case("synthetic-missing-config", "synthetic", {"shop.toml": _remove("shop.toml")},
         ("shop.toml", "file not found")),
]  # fmt: skip


def _prepare(case: Case, tmp_path: Path) -> list[str]:
    """The broken input on disk, and the ``kgrec ingest`` arguments that read it."""
    folder = tmp_path / case.source
    if case.source == "amazon":
        shutil.copytree(DATA / "amazon", folder)
        args = ["amazon", str(folder)]
    elif case.source == "csv":
        shutil.copytree(DATA / "csv", folder)
        args = [
            "csv",
            *(f"--{n}={folder / f'{n}.csv'}" for n in ("products", "interactions", "categories")),
        ]
    elif case.source in ("kgat", "recbole"):
        shutil.copytree(DATA / case.source, folder)
        args = [case.source, str(folder)]
    else:
        folder.mkdir()
        (folder / "shop.toml").write_text('preset = "tiny"\n')
        args = ["synthetic", "--config", str(folder / "shop.toml")]
    for name, content in case.files.items():
        if callable(content):
            content(folder)
        elif isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_bytes(content.encode("utf-8", "surrogatepass"))
    return ["ingest", *args, *case.args, "--no-progress"]


def _state(driver) -> tuple[dict, list]:
    records, _, _ = driver.execute_query(
        "MATCH (u:User)-[r:INTERACTED]->(p:Product) "
        "WITH u.id + '|' + toString(r.order) + '|' + p.id AS t ORDER BY t RETURN collect(t) AS ts"
    )
    return graph_counts(driver), records[0]["ts"]


@pytest.fixture(scope="module")
def loaded(neo4j_driver, neo4j_server):
    """The session's Neo4j holding a tiny shop (loaded once for the module)."""
    from tests.conftest import clear_database

    clear_database(neo4j_driver)
    write_graph(neo4j_driver, generate_shop(SyntheticConfig.preset("tiny"), show_progress=False),
                show_progress=False)  # fmt: skip
    return neo4j_driver, neo4j_server


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 40
    assert {c.source for c in CASES} == {"amazon", "csv", "kgat", "recbole", "synthetic"}
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(
    case: Case, loaded, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    driver, settings = loaded
    monkeypatch.setenv("NEO4J_URI", settings.uri)
    monkeypatch.setenv("NEO4J_USERNAME", settings.user)
    monkeypatch.setenv("NEO4J_PASSWORD", settings.password)
    argv = _prepare(case, tmp_path)
    before = _state(driver)
    capsys.readouterr()
    status = main(argv)
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert status == 1, out
    assert len(lines) == 1, out.err
    assert lines[0].startswith("kgrec: error: "), lines[0]
    for part in case.expect:
        assert part in lines[0], (part, lines[0])
    assert len(lines[0]) < 1200, "errors show a short prefix of the bad value"
    assert _state(driver) == before


def test_a_byte_order_mark_is_accepted_in_json_as_in_csv(tmp_path: Path) -> None:
    from ingest.sources.amazon import read_amazon

    folder = Path(shutil.copytree(DATA / "amazon", tmp_path / "bom"))
    for path in folder.iterdir():
        path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    assert read_amazon(folder, show_progress=False).equals(
        read_amazon(DATA / "amazon", show_progress=False)
    )
