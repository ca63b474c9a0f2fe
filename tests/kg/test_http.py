"""The HTTP API (FastAPI TestClient): responses, status codes for bad input, OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kg.query import Recommender
from kg.serve import create_app
from tests.kg.query_helpers import load_tables, tiny_run


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recommender:
    run = tiny_run(tmp_path_factory)
    return Recommender.load(run.run, load_tables(run))


@pytest.fixture(scope="module")
def client(rec: Recommender) -> Iterator[TestClient]:
    with TestClient(create_app(rec)) as c:
        yield c


def test_health(client: TestClient, rec: Recommender) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok", "version": "0.1.0", "products": 300, "users": 200,
        "categories": rec.index.n_categories, "levels": 3,
    }  # fmt: skip


def test_related(client: TestClient, rec: Recommender) -> None:
    r = client.get("/products/p0/related", params={"k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["operation"] == "related" and body["query"] == "p0"
    assert body["items"] == [x.to_dict() for x in rec.related("p0", k=5)]
    same = client.get("/products/p0/related", params={"k": 50, "same_category": "true"}).json()
    leaf = rec.related("p0", k=1, same_category=True)[0].category_id
    assert same["items"] and all(x["category_id"] == leaf for x in same["items"])
    top = [x["product_id"] for x in body["items"][:2]]
    rest = client.get("/products/p0/related", params={"k": 5, "exclude": top}).json()
    assert not set(top) & {x["product_id"] for x in rest["items"]}
    with_paths = client.get("/products/p0/related", params={"k": 3, "paths": "true"}).json()
    assert any(x["path"] is not None for x in with_paths["items"])


def test_user_recommendations_and_new_user(client: TestClient, rec: Recommender) -> None:
    r = client.get("/users/u3/recommendations", params={"k": 4})
    assert r.status_code == 200
    assert r.json()["items"] == [x.to_dict() for x in rec.recommend("u3", k=4)]
    dept = rec.related("p0", k=1)[0].category_id.split(" > ")[0]  # type: ignore[union-attr]
    filtered = client.get("/users/u3/recommendations", params={"k": 8, "categories": [dept]})
    assert all(x["category_id"].startswith(dept) for x in filtered.json()["items"])
    r = client.post("/recommendations", params={"k": 4}, json=["p1", "p2", "p3"])
    assert r.status_code == 200
    body = r.json()
    assert body["query"] is None
    assert body["items"] == [x.to_dict() for x in rec.recommend(["p1", "p2", "p3"], k=4)]


def test_cross_category_and_explain(client: TestClient, rec: Recommender) -> None:
    r = client.get("/users/u1/cross-category", params={"k": 3, "level": 2})
    assert r.status_code == 200
    items = r.json()["items"]
    assert items == [x.to_dict() for x in rec.cross_category("u1", k=3, level=2)]
    product = items[0]["product_id"]
    r = client.get(f"/users/u1/explain/{product}", params={"max_paths": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["user_id"] == "u1" and body["product_id"] == product
    assert body["paths"] == [p.to_dict() for p in rec.explain("u1", product, max_paths=2)]


@pytest.mark.parametrize(
    ("method", "url", "params", "json"),
    [
        ("get", "/products/nope/related", {}, None),
        ("get", "/products/p0/related", {"exclude": ["gone"]}, None),
        ("get", "/users/ghost/recommendations", {}, None),
        ("get", "/users/u0/recommendations", {"categories": ["No > Such"]}, None),
        ("post", "/recommendations", {}, ["p1", "zz9"]),
        ("get", "/users/ghost/cross-category", {}, None),
        ("get", "/users/u0/explain/nope", {}, None),
        ("get", "/users/ghost/explain/p0", {}, None),
    ],
)
def test_unknown_ids_are_404(
    client: TestClient, method: str, url: str, params: dict, json: list | None
) -> None:
    r = client.request(method.upper(), url, params=params, json=json)
    assert r.status_code == 404
    assert r.json()["detail"].startswith("unknown ")


@pytest.mark.parametrize(
    ("method", "url", "params", "json"),
    [
        ("get", "/products/p0/related", {"k": 0}, None),
        ("get", "/products/p0/related", {"k": 301}, None),
        ("get", "/products/p0/related", {"k": "ten"}, None),
        ("get", "/products/p0/related", {"same_category": "maybe"}, None),
        ("get", "/users/u0/recommendations", {"k": -3}, None),
        ("post", "/recommendations", {}, []),
        ("post", "/recommendations", {}, {"products": ["p1"]}),
        ("post", "/recommendations", {}, [""]),
        ("post", "/recommendations", {"k": 1000}, ["p1"]),
        ("get", "/users/u0/cross-category", {"level": 0}, None),
        ("get", "/users/u0/cross-category", {"level": 4}, None),
        ("get", "/users/u0/explain/p1", {"max_paths": 0}, None),
    ],
)
def test_bad_parameters_are_422(
    client: TestClient, method: str, url: str, params: dict, json: object
) -> None:
    r = client.request(method.upper(), url, params=params, json=json)
    assert r.status_code == 422, r.text


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) == {
        "/health",
        "/products/{product_id}/related",
        "/users/{user_id}/recommendations",
        "/recommendations",
        "/users/{user_id}/cross-category",
        "/users/{user_id}/explain/{product_id}",
    }
    methods = {(p, m) for p, ops in paths.items() for m in ops}
    assert {m for _, m in methods} == {"get", "post"}
    assert [p for p, m in methods if m == "post"] == ["/recommendations"]
    schemas = spec["components"]["schemas"]
    for name in ("RecommendationList", "RecommendationModel", "GraphPathModel", "HealthModel"):
        assert name in schemas
    assert set(schemas["RecommendationModel"]["required"]) >= {"product_id", "score", "rank"}
    related = paths["/products/{product_id}/related"]["get"]
    ok = related["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/RecommendationList")
    assert "404" in related["responses"] and "422" in related["responses"]
    k = next(p for p in related["parameters"] if p["name"] == "k")
    assert k["schema"]["minimum"] == 1 and k["schema"]["maximum"] == 300
    # Nothing takes query text: these are all the inputs, and the one body is a list of ids.
    names = {
        p["name"] for ops in paths.values() for op in ops.values() for p in op.get("parameters", [])
    }
    assert names == {
        "product_id", "user_id", "k", "same_category", "exclude", "paths", "categories",
        "exclude_seen", "level", "max_paths",
    }  # fmt: skip
    bodies = [
        op["requestBody"] for ops in paths.values() for op in ops.values() if "requestBody" in op
    ]
    (body,) = bodies
    array = body["content"]["application/json"]["schema"]
    assert array["type"] == "array" and array["items"]["type"] == "string"
