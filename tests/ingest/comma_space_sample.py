"""A ``", "``-joined Amazon sample (the 2014 processed layout) made from the synthetic ``tiny``
shop, with category names that contain ``", "`` themselves."""

from __future__ import annotations

import json
from pathlib import Path

from ingest.sources.categories import PATH_JOINER
from ingest.sources.synthetic import SyntheticConfig, generate_shop

#: Synthetic category names renamed to names holding ", " (at levels 1, 2 and 3).
RENAMED = {
    "Fasteners": "Tape, Adhesives & Fasteners",
    "Wire & Cable": "Wire, Cable & Cords",
    "Measuring Tools": "Test, Measure & Inspect",
    "Tool Storage": "Boxes, Bags & Chests",
    "Hex Bolts": "Hex, Lag & Flange Bolts",
}


def write_comma_space_sample(folder: Path, name: str = "Shop") -> dict[str, list[str]]:
    """Write ``<name>.item.json`` and ``<name>.inter.json`` into ``folder``.

    Products are numbered by their synthetic index (``p7`` is item ``"7"``); each one's
    ``categories`` is its leaf's path, names renamed by :data:`RENAMED`, joined with ``", "``.

    Returns:
        Each item key's true category names, root first.
    """
    shop = generate_shop(SyntheticConfig.preset("tiny", seed=0), show_progress=False)
    key = {pid: pid.removeprefix("p") for pid in shop.products["id"].to_pylist()}
    leaf = {r["product_id"]: r["category_id"] for r in shop.in_category.to_pylist()}
    brand = {r["product_id"]: r["brand_id"] for r in shop.made_by.to_pylist()}
    truth: dict[str, list[str]] = {}
    items = {}
    for product in shop.products.to_pylist():
        names = [RENAMED.get(n, n) for n in leaf[product["id"]].split(PATH_JOINER)]
        truth[key[product["id"]]] = names
        items[key[product["id"]]] = {
            "title": product["title"],
            "description": product["description"],
            "brand": brand.get(product["id"]),
            "categories": ", ".join(names),
        }
    histories: dict[str, list[tuple[int, int]]] = {}
    for r in shop.interactions.to_pylist():
        histories.setdefault(r["user_id"], []).append((r["order"], int(key[r["product_id"]])))
    inter = {user: [item for _, item in sorted(h)] for user, h in histories.items()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.item.json").write_text(json.dumps(items, indent=1), encoding="utf-8")
    (folder / f"{name}.inter.json").write_text(json.dumps(inter), encoding="utf-8")
    return truth
