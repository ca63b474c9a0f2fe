"""The HTTP API (FastAPI TestClient): responses, status codes for bad input, OpenAPI schema."""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

import kg
from gnn.fusion import FusionRecommender
from ingest.tables import GraphTables
from kg.query import Recommender
from kg.query.search import MAX_QUERY_LENGTH
from kg.serve import HttpLimits, create_app
from kg.serve_limits import BodyLimits
from kg.serve_models import MAX_ID_LENGTH
from kg.serve_run import current_blas_threads
from tests.kg.query_helpers import TinyRun, load_tables, tiny_run

#: Ids of the tiny shop renamed to hold '/' (and a '%2F' that must stay as written); each new id
#: sorts where the old one did, as the model's product order is the sorted ids.
SLASHED = {"p0": "p0/kit%2F", "p7": "p7/kit", "u1": "u1/shop"}


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recommender:
    run = tiny_run(tmp_path_factory)
    return Recommender.load(run.run, load_tables(run))


@pytest.fixture(scope="module")
def client(rec: Recommender) -> Iterator[TestClient]:
    with TestClient(create_app(rec)) as c:
        yield c


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _renamed(tables: GraphTables, ids: dict[str, str]) -> GraphTables:
    """``tables`` with the product and user ids in ``ids`` renamed, wherever they occur."""
    columns = {
        "users": ("id",), "products": ("id",), "interactions": ("user_id", "product_id"),
        "in_category": ("product_id",), "made_by": ("product_id",),
        "triples": ("head_id", "tail_id"),
    }  # fmt: skip
    out = {}
    for name, cols in columns.items():
        table = tables.table(name)
        for col in cols:
            values = [ids.get(v, v) for v in table.column(col).to_pylist()]
            i = table.schema.get_field_index(col)
            table = table.set_column(i, table.schema.field(i), pa.array(values, pa.string()))
        out[name] = table
    kept = {n: tables.table(n) for n in ("categories", "brands", "entities", "subcategory_of")}
    return GraphTables(**out, **kept, meta=dict(tables.meta))


@pytest.fixture(scope="module")
def slashed(run: TinyRun) -> Recommender:
    """The tiny run's recommender with the ids of :data:`SLASHED` renamed."""
    model = FusionRecommender.load(run.run, device="cpu")
    for kind in ("product", "user"):
        model.node_ids[kind] = [SLASHED.get(i, i) for i in model.node_ids[kind]]
    return Recommender(model, _renamed(load_tables(run), SLASHED))


def test_health(client: TestClient, rec: Recommender) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok", "version": kg.__version__, "products": 300, "users": 200,
        "categories": rec.index.n_categories, "levels": 3, "search": "exact",
        "blas_threads": current_blas_threads(),  # this process's: the test client serves in it
        "precomputed": None, "worker": os.getpid(), "events_seq": None,
    }  # fmt: skip


def test_related(client: TestClient, rec: Recommender) -> None:
    r = client.get("/products/p0/related-products", params={"k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["operation"] == "related" and body["query"] == "p0"
    assert body["items"] == [x.to_dict() for x in rec.related("p0", k=5)]
    same = client.get(
        "/products/p0/related-products", params={"k": 50, "same_category": "true"}
    ).json()
    leaf = rec.related("p0", k=1, same_category=True)[0].category_id
    assert same["items"] and all(x["category_id"] == leaf for x in same["items"])
    top = [x["product_id"] for x in body["items"][:2]]
    rest = client.get("/products/p0/related-products", params={"k": 5, "exclude": top}).json()
    assert not set(top) & {x["product_id"] for x in rest["items"]}
    with_paths = client.get(
        "/products/p0/related-products", params={"k": 3, "paths": "true"}
    ).json()
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
    r = client.get("/users/u1/cross-category-recommendations", params={"k": 3, "level": 2})
    assert r.status_code == 200
    items = r.json()["items"]
    assert items == [x.to_dict() for x in rec.cross_category("u1", k=3, level=2)]
    # without a level: the tree's first level with two categories or more (1 here)
    r = client.get("/users/u1/cross-category-recommendations", params={"k": 3})
    assert r.json()["items"] == [x.to_dict() for x in rec.cross_category("u1", k=3, level=1)]
    product = items[0]["product_id"]
    r = client.get(f"/users/u1/explanations/{product}", params={"max_paths": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["user_id"] == "u1" and body["product_id"] == product
    assert body["paths"] == [p.to_dict() for p in rec.explain("u1", product, max_paths=2)]


def test_search(client: TestClient, rec: Recommender) -> None:
    r = client.get("/search", params={"q": "machine screws", "user": "u1", "k": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["operation"] == "search" and body["query"] == "machine screws"
    expected = rec.search("machine screws", user="u1", k=4)
    assert [i["product_id"] for i in body["items"]] == [e.product_id for e in expected]
    assert [i["reason"] for i in body["items"]] == [e.reason for e in expected]
    params = {"q": "steel", "products": ["p1", "p2"], "exclude": ["p3"], "brand": "Wexelo"}
    got = client.get("/search", params=params).json()["items"]
    expected = rec.search("steel", ["p1", "p2"], 10, brand="Wexelo", exclude=["p3"])
    assert [i["product_id"] for i in got] == [e.product_id for e in expected]
    assert client.get("/search", params={"q": "steel", "user": "ghost"}).status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "-- & //"},
        {"q": "x" * (MAX_QUERY_LENGTH + 1)},
        {"q": "steel", "k": 0},
        {"q": "steel", "k": 301},
        {"q": "steel", "user": "u1", "products": ["p1"]},
        {"q": "steel", "category": "x" * (MAX_ID_LENGTH + 1)},
    ],
)
def test_bad_search_queries_are_422(client: TestClient, params: dict[str, Any]) -> None:
    r = client.get("/search", params=params)
    assert r.status_code == 422, r.text
    assert len(r.text) < 2000  # a long query is not echoed whole


def test_new_product(
    client: TestClient, rec: Recommender, tables: GraphTables, offline: None
) -> None:
    (row,) = [r for r in tables.products.to_pylist() if r["id"] == "p3"]
    body = {"title": row["title"], "description": row["description"], "k": 7}
    r = client.post("/related-products", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["operation"] == "related" and out["query"] is None
    items = out["items"]
    assert [x["rank"] for x in items] == list(range(1, 8))
    assert [x["score"] for x in items] == sorted((x["score"] for x in items), reverse=True)
    expected = rec.related_to_new_product(row["title"], row["description"], k=7)
    assert items == [x.to_dict() for x in expected]
    assert len(client.post("/related-products", json={"title": "bolt"}).json()["items"]) == 10
    dept = rec.related("p0", k=1)[0].category_id.split(" > ")[0]  # type: ignore[union-attr]
    body = {"title": "steel hex bolt", "category_id": dept, "k": 20, "same_category": True}
    inside = client.post("/related-products", json=body).json()["items"]
    assert len(inside) == 20 and all(x["category_id"].startswith(dept + " > ") for x in inside)


def test_new_product_unknown_ids_are_404(client: TestClient, offline: None) -> None:
    for body in (
        {"title": "bolt", "category_id": "No > Such"},
        {"title": "bolt", "brand_id": "zz"},
    ):
        r = client.post("/related-products", json=body)
        assert r.status_code == 404, r.text
        assert r.json()["detail"].startswith("unknown ")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"description": "a bolt"},
        {"title": ""},
        {"title": "  "},
        {"title": "bolt", "k": 0},
        {"title": "bolt", "k": 101},
        {"title": "bolt", "same_category": True},
        {"title": "bolt", "same_category": "maybe", "category_id": "x"},
        {"title": "bolt", "colour": "red"},
        ["bolt"],
    ],
)
def test_new_product_bad_body_is_422(client: TestClient, body: object) -> None:
    r = client.post("/related-products", json=body)
    assert r.status_code == 422, r.text


def _as_served(app: Any, url: str, body: object = None) -> tuple[int, Any]:
    """``GET url`` (``POST`` with a JSON ``body``) through the ASGI app as servers call it:
    the scope's path percent-decoded once from the raw path (Starlette's TestClient decodes
    it twice, so an id holding ``%2F`` would reach the app wrong)."""
    raw, _, query = url.partition("?")
    data = b"" if body is None else json.dumps(body).encode()
    scope = {
        "type": "http", "http_version": "1.1", "method": "GET" if body is None else "POST",
        "scheme": "http", "path": unquote(raw), "raw_path": raw.encode(), "root_path": "",
        "query_string": query.encode(), "server": ("test", 80), "client": ("test", 1),
        "headers": [(b"host", b"test"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode())],
    }  # fmt: skip
    out: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": data, "more_body": False}

    async def send(message: Message) -> None:
        out.append(message)

    asyncio.run(app(scope, receive, send))
    payload = b"".join(m.get("body", b"") for m in out[1:])
    return out[0]["status"], json.loads(payload)


def test_ids_with_slashes(slashed: Recommender) -> None:
    app = create_app(slashed)
    product, other, user = SLASHED["p0"], SLASHED["p7"], SLASHED["u1"]
    url = f"/products/{quote(product, safe='')}/related-products"
    assert url == "/products/p0%2Fkit%252F/related-products"
    status, body = _as_served(app, f"{url}?k=5&exclude={quote(other, safe='')}")
    assert status == 200, body
    assert body["query"] == product
    assert body["items"] == [x.to_dict() for x in slashed.related(product, k=5, exclude=[other])]
    status, body = _as_served(app, f"/users/{quote(user, safe='')}/recommendations?k=4")
    assert status == 200, body
    assert body["query"] == user
    assert body["items"] == [x.to_dict() for x in slashed.recommend(user, k=4)]
    status, body = _as_served(app, "/recommendations?k=3", [product, other])
    assert body["items"] == [x.to_dict() for x in slashed.recommend([product, other], k=3)]
    status, body = _as_served(
        app, f"/users/{quote(user, safe='')}/cross-category-recommendations?k=3"
    )
    assert status == 200, body
    assert body["items"] == [x.to_dict() for x in slashed.cross_category(user, k=3)]
    for target in (product, other):
        status, body = _as_served(
            app, f"/users/{quote(user, safe='')}/explanations/{quote(target, safe='')}"
        )
        assert status == 200, body
        assert body["user_id"] == user and body["product_id"] == target
        assert body["paths"] == [p.to_dict() for p in slashed.explain(user, target)]
        steps = body["paths"][0]["steps"]
        assert steps[0]["source"]["id"] == user and steps[-1]["target"]["id"] == target
    # Plain ids keep working on the same app; an unencoded '/' reaches the id as well (the
    # path converter takes everything before the route's suffix).
    assert _as_served(app, "/products/p1/related-products?k=2")[0] == 200
    status, body = _as_served(app, "/products/p7/kit/related-products?k=2")
    assert status == 200 and body["query"] == "p7/kit"
    status, body = _as_served(app, f"/products/{quote('p7/nope', safe='')}/related-products")
    assert status == 404 and body["detail"] == "unknown product id 'p7/nope'"
    with TestClient(app) as client:  # the trailing-slash redirect
        assert client.get("/products/p1/related-products/").status_code == 200


@pytest.mark.parametrize(
    ("method", "url", "params", "json"),
    [
        ("get", "/products/nope/related-products", {}, None),
        ("get", "/products/p0/related-products", {"exclude": ["gone"]}, None),
        ("get", "/users/ghost/recommendations", {}, None),
        ("get", "/users/u0/recommendations", {"categories": ["No > Such"]}, None),
        ("post", "/recommendations", {}, ["p1", "zz9"]),
        ("get", "/users/ghost/cross-category-recommendations", {}, None),
        ("get", "/users/u0/explanations/nope", {}, None),
        ("get", "/users/ghost/explanations/p0", {}, None),
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
        ("get", "/products/p0/related-products", {"k": 0}, None),
        ("get", "/products/p0/related-products", {"k": 301}, None),
        ("get", "/products/p0/related-products", {"k": "ten"}, None),
        ("get", "/products/p0/related-products", {"same_category": "maybe"}, None),
        ("get", "/users/u0/recommendations", {"k": -3}, None),
        ("post", "/recommendations", {}, []),
        ("post", "/recommendations", {}, {"products": ["p1"]}),
        ("post", "/recommendations", {}, [""]),
        ("post", "/recommendations", {"k": 1000}, ["p1"]),
        ("get", "/users/u0/cross-category-recommendations", {"level": 0}, None),
        ("get", "/users/u0/cross-category-recommendations", {"level": 4}, None),
        ("get", "/users/u0/explanations/p1", {"max_paths": 0}, None),
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
        "/products/{product_id}/related-products",
        "/related-products",
        "/users/{user_id}/recommendations",
        "/recommendations",
        "/users/{user_id}/cross-category-recommendations",
        "/users/{user_id}/explanations/{product_id}",
        "/search",
    }
    methods = {(p, m) for p, ops in paths.items() for m in ops}
    assert {m for _, m in methods} == {"get", "post"}
    assert sorted(p for p, m in methods if m == "post") == ["/recommendations", "/related-products"]
    schemas = spec["components"]["schemas"]
    models = ("RecommendationList", "RecommendationModel", "GraphPathModel", "HealthModel")
    for name in (*models, "NewProductModel"):
        assert name in schemas
    assert set(schemas["RecommendationModel"]["required"]) >= {"product_id", "score", "rank"}
    related = paths["/products/{product_id}/related-products"]["get"]
    ok = related["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/RecommendationList")
    assert "404" in related["responses"] and "422" in related["responses"]
    k = next(p for p in related["parameters"] if p["name"] == "k")
    assert k["schema"]["minimum"] == 1 and k["schema"]["maximum"] == 300
    # Only /search takes text (q, scored in process): these are all the inputs, and the one
    # body is a list of ids.
    names = {
        p["name"] for ops in paths.values() for op in ops.values() for p in op.get("parameters", [])
    }
    assert names == {
        "product_id", "user_id", "k", "same_category", "exclude", "paths", "categories",
        "exclude_seen", "level", "max_paths", "q", "user", "products", "category", "brand",
    }  # fmt: skip
    q = next(p for p in paths["/search"]["get"]["parameters"] if p["name"] == "q")
    assert q["required"] and q["schema"]["maxLength"] == MAX_QUERY_LENGTH
    bodies = {
        p: op["requestBody"]["content"]["application/json"]["schema"]
        for p, ops in paths.items()
        for op in ops.values()
        if "requestBody" in op
    }
    assert set(bodies) == {"/recommendations", "/related-products"}
    array = bodies["/recommendations"]
    assert array["type"] == "array" and array["items"]["type"] == "string"
    assert bodies["/related-products"]["$ref"].endswith("/NewProductModel")
    new = schemas["NewProductModel"]
    assert new["required"] == ["title"] and new["additionalProperties"] is False
    assert set(new["properties"]) == {
        "title", "description", "category_id", "brand_id", "k", "same_category",
    }  # fmt: skip
    assert new["properties"]["k"]["minimum"] == 1 and new["properties"]["k"]["maximum"] == 100
    new_related = paths["/related-products"]["post"]["responses"]
    assert new_related["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RecommendationList"
    )
    assert "404" in new_related and "422" in new_related


def test_parameters_have_the_python_api_names_and_defaults(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()["paths"]
    routes = {
        "/products/{product_id}/related-products": Recommender.related,
        "/users/{user_id}/recommendations": Recommender.recommend,
        "/users/{user_id}/cross-category-recommendations": Recommender.cross_category,
        "/users/{user_id}/explanations/{product_id}": Recommender.explain,
    }
    for route, method in routes.items():
        python = inspect.signature(method).parameters
        for param in spec[route]["get"]["parameters"]:
            if param["in"] != "query":
                continue
            name = param["name"]
            assert name in python, (route, name)
            default = python[name].default
            if default not in (None, ()):
                assert param["schema"].get("default") == default, (route, name)


def test_answers_match_their_response_models(client: TestClient) -> None:
    """The ranking endpoints send their records' dicts without FastAPI's response validation:
    every answer must still be exactly what its documented model describes."""
    from kg.serve import ExplanationModel, RecommendationList

    listings = [
        client.get("/products/p0/related-products", params={"k": 5, "paths": "true"}),
        client.get("/users/u3/recommendations", params={"k": 5, "paths": "true"}),
        client.post("/recommendations", params={"k": 3}, json=["p1", "p2"]),
        client.get("/users/u1/cross-category-recommendations", params={"k": 5, "level": 2}),
    ]
    paths = 0
    for r in listings:
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert RecommendationList.model_validate(body, strict=True).model_dump() == body
        paths += sum(item["path"] is not None for item in body["items"])
    assert paths > 0  # the nested path models were checked too
    product = listings[3].json()["items"][0]["product_id"]
    r = client.get(f"/users/u1/explanations/{product}")
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["paths"] and ExplanationModel.model_validate(body, strict=True).model_dump() == body


def test_a_bug_is_500_with_the_exception_raised_to_the_server(
    rec: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An internal ``ValueError`` is a bug, not bad input: 500, and the exception reaches the
    server, which logs its traceback."""
    bugged = copy.copy(rec)

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("an internal bug")

    monkeypatch.setattr(bugged, "related", broken)
    with TestClient(create_app(bugged), raise_server_exceptions=False) as c:
        r = c.get("/products/p0/related-products")
        assert r.status_code == 500
        assert r.json() == {"detail": "internal server error"}
        assert c.get("/health").status_code == 200  # the app keeps answering
    with TestClient(create_app(bugged)) as c, pytest.raises(ValueError, match="internal bug"):
        c.get("/products/p0/related-products")


def test_long_ids_are_422_and_bad_input_is_never_echoed_whole(client: TestClient) -> None:
    long_id = "x" * (MAX_ID_LENGTH + 1)
    for url in (
        f"/products/{long_id}/related-products",
        f"/users/{long_id}/recommendations",
        f"/users/u1/explanations/{long_id}",
    ):
        r = client.get(url)
        assert r.status_code == 422, url
        assert long_id not in r.text and len(r.text) < 1000
    r = client.get("/products/p0/related-products", params={"exclude": [long_id]})
    assert r.status_code == 422 and long_id not in r.text
    r = client.post("/recommendations", json=[long_id])
    assert r.status_code == 422 and long_id not in r.text
    # an unknown id within the limit: 404, quoting a short prefix
    unknown = "y" * MAX_ID_LENGTH
    r = client.get(f"/products/{unknown}/related-products")
    assert r.status_code == 404 and unknown not in r.text
    assert r.json()["detail"].startswith("unknown product id 'yyyy")
    # many bad values: the first few errors, each quoting a prefix
    r = client.post("/recommendations", json=[long_id] * 1000)
    assert r.status_code == 422 and len(r.text) < 5000
    assert r.json()["detail"][-1]["msg"] == "990 more errors"
    r = client.post("/recommendations", content=b"[" + b'"p1",' * 1000 + b"oops")
    assert r.status_code == 422 and len(r.text) < 1000


def test_body_and_url_limits(rec: Recommender) -> None:
    limits = HttpLimits(max_body_bytes=1000, max_url_bytes=2000)
    with TestClient(create_app(rec, limits=limits)) as c:
        assert c.post("/recommendations", json=["p1"] * 100).status_code == 200  # 701 bytes
        r = c.post("/recommendations", json=["p1"] * 200)  # 1,401 bytes, Content-Length
        assert r.status_code == 413 and r.headers["connection"] == "close"
        chunks = (b'"p1",' for _ in range(300))  # chunked: no Content-Length
        r = c.post("/recommendations", content=chunks)
        assert r.status_code == 413
        r = c.post("/related-products", json={"title": "t" * 2000})
        assert r.status_code == 413
        r = c.get("/products/p0/related-products", params={"exclude": ["p1"] * 500})
        assert r.status_code == 414
        assert c.get("/products/p0/related-products", params={"k": 2}).status_code == 200


def test_a_body_shorter_than_its_length_times_out() -> None:
    """The middleware answers 408 when the body stops arriving, without calling the app."""
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    sent: list[Message] = []

    async def run() -> None:
        stalled = asyncio.Event()  # never set: the client sent 10 of 100 bytes and waits
        parts = [{"type": "http.request", "body": b"0123456789", "more_body": True}]

        async def receive() -> Message:
            if parts:
                return parts.pop()
            await stalled.wait()
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http", "method": "POST", "path": "/recommendations",
            "raw_path": b"/recommendations", "query_string": b"",
            "headers": [(b"content-length", b"100"), (b"content-type", b"application/json")],
        }  # fmt: skip
        await BodyLimits(app, HttpLimits(body_timeout=0.2))(scope, receive, send)

    asyncio.run(run())
    assert not called
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert b"did not arrive within 0.2 s" in sent[1]["body"]
