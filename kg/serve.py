"""The HTTP API of the query layer (FastAPI): :func:`create_app` wraps a loaded
:class:`~kg.query.Recommender`; ``kgrec serve`` runs it with uvicorn.

Endpoints (all read-only; none takes Cypher or any other query text from the caller):

* ``GET /health``
* ``GET /products/{product_id}/related?k=&same_category=&exclude=``
* ``GET /users/{user_id}/recommendations?k=&categories=&exclude_seen=&paths=``
* ``POST /recommendations?k=&categories=`` with a JSON list of product ids (a new user)
* ``POST /products/related`` with a JSON new product (title, description, category, brand; cold
  start)
* ``GET /users/{user_id}/cross-category?k=&level=``
* ``GET /users/{user_id}/explain/{product_id}?max_paths=``

The ranking endpoints are ``async def``: they run on the event loop, not in FastAPI's thread
pool. A query is a few milliseconds of numpy work that holds the GIL for most of it, so a worker
serves one at a time either way (``kgrec serve --workers`` adds processes); the thread-pool
hand-offs (the endpoint, its parameters and its response each cross to a thread and back) cost
about a millisecond per request. The cold-start endpoint, which runs the text encoder, stays in
the thread pool.

With precomputed answers (``kgrec precompute``, :mod:`kg.query.answers`: ``create_app(rec,
answers)``), ``related``, ``recommendations`` and ``cross-category`` send the stored bytes, the
same as the live answer, when every parameter but ``k`` is the default and ``k`` is at most the
store's; any other request is computed live. ``/health`` says up to which ``k`` (``precomputed``).

Unknown ids answer 404, parameters out of range (``k`` outside ``1..n_products``, a level
not in the tree...) 422. ``/openapi.json`` documents the response models; ``/docs`` shows them.

Ids in the path are percent-encoded by the client (``urllib.parse.quote(id, safe="")``), so an
id may hold ``/`` (sent as ``%2F``): the routes match the still-encoded ``raw_path`` of the
request and decode each id after the match (:class:`_EncodedIdRoute`).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint annotations at runtime,
# and some (the k bound) are built inside create_app.
import os
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Match
from starlette.types import Scope

from kg import __version__
from kg.query import Recommender, UnknownIdError
from kg.query.answers import JSON_ENCODER, AnswerStore
from kg.serve_run import current_blas_threads

__all__ = ["create_app"]


class PathNodeModel(BaseModel):
    """A node on a path."""

    label: str = Field(description="User, Product, Category or Brand")
    id: str
    name: str | None = None


class PathStepModel(BaseModel):
    """One relationship of a path, walked from source to target."""

    type: str = Field(description="relationship type, e.g. CO_INTERACTED")
    source: PathNodeModel
    target: PathNodeModel
    forward: bool = Field(description="the relationship points from source to target")


class GraphPathModel(BaseModel):
    """A short typed graph path."""

    kind: str = Field(description="co_interaction, co_interaction_2hop, brand or category")
    weight: float
    text: str = Field(description="Cypher-like pattern, e.g. (User u1)-[:INTERACTED]->...")
    steps: list[PathStepModel]


class RecommendationModel(BaseModel):
    """One ranked product."""

    product_id: str
    score: float
    rank: int = Field(ge=1)
    reason: str
    title: str | None = None
    category_id: str | None = None
    brand_id: str | None = None
    path: GraphPathModel | None = None
    terms: dict[str, float] = Field(description="weighted score terms adding up to score")


class RecommendationList(BaseModel):
    """Ranked products for one query."""

    operation: Literal["related", "recommend", "cross_category"]
    query: str | None = Field(
        description="the product or user id; null for a new user or a new product"
    )
    items: list[RecommendationModel]


class ExplanationModel(BaseModel):
    """Graph paths from a user's history to a product, strongest first."""

    user_id: str
    product_id: str
    paths: list[GraphPathModel]


class HealthModel(BaseModel):
    """Liveness and what is loaded."""

    status: Literal["ok"]
    version: str
    products: int
    users: int
    categories: int
    levels: int
    search: str = Field(
        description="'exact' (every product scored) or 'approximate: n_probe of n_lists "
        "clusters' (kgrec serve --approximate)"
    )
    blas_threads: int | None = Field(
        description="numpy BLAS threads of the worker that answered (kgrec serve --blas-threads)"
    )
    precomputed: int | None = Field(
        description="the k up to which default-parameter answers come precomputed (kgrec "
        "precompute), or null when every answer is computed live"
    )


class ErrorModel(BaseModel):
    """An error."""

    detail: str


class NewProductModel(BaseModel):
    """A product that is not in the graph (cold start): its text, category and brand."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=2000, pattern=r"\S", description="its title")
    description: str | None = Field(default=None, max_length=20000)
    category_id: str | None = Field(
        default=None, min_length=1, description="its category id (any level of the tree)"
    )
    brand_id: str | None = Field(default=None, min_length=1, description="its brand id")
    k: int = Field(default=10, ge=1, le=100, description="number of results, 1..100")
    same_category: bool | None = Field(
        default=None,
        description="true: only products under category_id; false: only products outside it "
        "(needs category_id)",
    )


def _json(payload: dict[str, Any]) -> Response:
    """``payload`` as a JSON response, encoded as FastAPI's ``JSONResponse`` encodes.

    The ranking endpoints return their records' ``to_dict()`` output as is: FastAPI would
    otherwise validate and re-serialise it through the response model (0.15-0.4 ms of server
    CPU per request, measured under ``bench/bench_query.py``'s load generator; most for results
    with paths). The
    response models still document the endpoints (``/openapi.json``), and the tests check the
    answers against them."""
    return Response(JSON_ENCODER.encode(payload).encode("utf-8"), media_type="application/json")


class _EncodedIdRoute(APIRoute):
    """A route matched on the request's ``raw_path``, so a percent-encoded ``/`` (``%2F``) stays
    inside its path segment; the path parameters are percent-decoded after the match.

    Servers decode ``%2F`` in ``scope["path"]`` before routing, where it would split the id.
    ``raw_path`` carries the same ``root_path`` prefix as ``path`` (uvicorn puts it on both).
    Without a ``raw_path`` (it is optional in ASGI) the route matches ``scope["path"]`` as usual.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw, path = scope.get("raw_path"), scope.get("path", "")
        try:
            encoded = raw.decode("ascii") if isinstance(raw, bytes) and raw else None
        except UnicodeDecodeError:
            encoded = None
        if encoded is None:
            return super().matches(scope)
        # the router's redirect_slashes retry adds or strips a trailing '/' in path only
        decoded = unquote(encoded)
        if path == decoded + "/":
            encoded += "/"
        elif path != decoded and path == decoded.rstrip("/"):
            encoded = encoded.rstrip("/")
        match, child = super().matches({**scope, "path": encoded})
        if match is not Match.NONE:
            child["path_params"] = {
                name: unquote(value) if isinstance(value, str) else value
                for name, value in child["path_params"].items()
            }
        return match, child


def _one_torch_thread() -> None:
    """One torch thread in this worker, the only endpoint that runs torch (encoding a new
    product's text) being the first to import it when the text encoder was not preloaded
    (``kgrec serve --lazy-text-encoder``): the workers share the cores."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def create_app(recommender: Recommender, answers: AnswerStore | None = None) -> FastAPI:
    """The FastAPI application serving ``recommender`` (see the module docstring).

    Args:
        recommender: a loaded recommender; it is shared by all requests (read-only).
        answers: precomputed answers of ``recommender`` (:class:`~kg.query.answers.AnswerStore`,
            opened against it): requests whose parameters other than ``k`` are the defaults,
            with ``k`` up to the store's, are answered from it; ``None``: all live.
    """
    rec = recommender
    n, levels = rec.n_products, max(rec.index.max_depth, 1)
    app = FastAPI(
        title="kgrec",
        version=__version__,
        description="Graph-aware related, personalised and cross-category recommendations "
        "with graph-path explanations.",
    )
    app.router.route_class = _EncodedIdRoute
    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorModel, "description": "unknown id"}
    }
    K = Annotated[int, Query(ge=1, le=n, description=f"number of results, 1..{n}")]
    encoded = "percent-encoded in the URL ('/' as %2F)"
    ProductId = Annotated[str, Path(min_length=1, max_length=512, description=encoded)]
    UserId = Annotated[str, Path(min_length=1, max_length=512, description=encoded)]

    @app.exception_handler(UnknownIdError)
    async def _unknown(request: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(ValueError)
    async def _invalid(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    counted: dict[int, int | None] = {}

    def threads() -> int | None:
        """This worker's BLAS threads, counted once per process (workers are forked)."""
        pid = os.getpid()
        if pid not in counted:
            counted[pid] = current_blas_threads()
        return counted[pid]

    def listing(op: str, query: str | None, items: list[Any]) -> Response:
        return _json({"operation": op, "query": query, "items": [r.to_dict() for r in items]})

    def stored(op: str, query: str, index: dict[str, int], k: int) -> Response | None:
        """The precomputed answer, byte for byte what :func:`listing` sends for it, or
        ``None`` when it must be computed live."""
        assert answers is not None
        i = index.get(query)
        if i is None:
            raise UnknownIdError("product" if op == "related" else "user", query)
        items = answers.items(op, i, k)
        if items is None:
            return None
        head = f'{{"operation":"{op}","query":{JSON_ENCODER.encode(query)},"items":['
        return Response(head.encode("utf-8") + items + b"]}", media_type="application/json")

    @app.get("/health", response_model=HealthModel)
    async def health() -> dict[str, Any]:
        """Liveness, and the size of what is loaded."""
        ix = rec.index
        return {
            "status": "ok",
            "version": __version__,
            "products": ix.n_products,
            "users": len(ix.user_ids),
            "categories": ix.n_categories,
            "levels": ix.max_depth,
            "search": rec.search,
            "blas_threads": threads(),
            "precomputed": None if answers is None else answers.k,
        }

    @app.get("/products/{product_id}/related", response_model=RecommendationList, responses=errors)
    async def related(
        product_id: ProductId,
        k: K = 10,
        same_category: Annotated[
            bool | None, Query(description="true: same leaf only; false: other leaves only")
        ] = None,
        exclude: Annotated[list[str], Query(description="product ids to leave out")] = [],  # noqa: B006
        paths: Annotated[bool, Query(description="attach a graph path to each result")] = False,
    ) -> Response:
        """Products related to a product (graph-aware score)."""
        if answers is not None and same_category is None and not exclude and not paths:
            done = stored("related", product_id, rec.index.product_index, k)
            if done is not None:
                return done
        out = rec.related(product_id, k, same_category=same_category, exclude=exclude, paths=paths)
        return listing("related", product_id, out)

    Categories = Annotated[
        list[str] | None, Query(description="keep products under any of these category ids")
    ]

    @app.get(
        "/users/{user_id}/recommendations", response_model=RecommendationList, responses=errors
    )
    async def recommend(
        user_id: UserId,
        k: K = 10,
        categories: Categories = None,
        exclude_seen: bool = True,
        paths: Annotated[bool, Query(description="attach a graph path to each result")] = False,
    ) -> Response:
        """Personalised products for a known user."""
        if answers is not None and categories is None and exclude_seen and not paths:
            done = stored("recommend", user_id, rec.index.user_index, k)
            if done is not None:
                return done
        out = rec.recommend(
            user_id, k, exclude_seen=exclude_seen, categories=categories, paths=paths
        )
        return listing("recommend", user_id, out)

    @app.post("/recommendations", response_model=RecommendationList, responses=errors)
    async def recommend_new_user(
        products: Annotated[
            list[Annotated[str, Field(min_length=1)]],
            Body(
                min_length=1,
                max_length=1000,
                description="the new user's product ids, oldest first",
            ),
        ],
        k: K = 10,
        categories: Categories = None,
    ) -> Response:
        """Personalised products for a new user given by the products they interacted with."""
        return listing("recommend", None, rec.recommend(products, k, categories=categories))

    @app.post("/products/related", response_model=RecommendationList, responses=errors)
    def related_to_new_product(product: NewProductModel) -> Response:
        """Products related to a new product given by its title, description, category and
        brand (cold start: not in the graph, no retraining)."""
        _one_torch_thread()
        out = rec.related_to_new_product(
            product.title,
            product.description,
            category_id=product.category_id,
            brand_id=product.brand_id,
            k=product.k,
            same_category=product.same_category,
        )
        return listing("related", None, out)

    @app.get("/users/{user_id}/cross-category", response_model=RecommendationList, responses=errors)
    async def cross_category(
        user_id: UserId,
        k: K = 10,
        level: Annotated[
            int | None,
            Query(
                ge=1,
                le=levels,
                description="category tree level, 1 = top (default: the first level with two "
                "categories or more)",
            ),
        ] = None,
    ) -> Response:
        """Products from level-`level` categories the user has not bought in, with paths."""
        if answers is not None and level in (None, answers.level):
            done = stored("cross_category", user_id, rec.index.user_index, k)
            if done is not None:
                return done
        return listing("cross_category", user_id, rec.cross_category(user_id, k, level=level))

    @app.get(
        "/users/{user_id}/explain/{product_id}", response_model=ExplanationModel, responses=errors
    )
    async def explain(
        user_id: UserId,
        product_id: ProductId,
        max_paths: Annotated[int, Query(ge=1, le=20)] = 3,
    ) -> Response:
        """Typed graph paths from the user's history to the product, strongest first."""
        found = rec.explain(user_id, product_id, max_paths=max_paths)
        paths = [p.to_dict() for p in found]
        return _json({"user_id": user_id, "product_id": product_id, "paths": paths})

    return app
