"""The HTTP API of the query layer (FastAPI): :func:`create_app` wraps a loaded
:class:`~kg.query.Recommender`; ``kgrec serve`` runs it (:mod:`kg.serve_run`).

Endpoints (read-only but for ``POST /events``, which is off unless ``kgrec serve --events``:
:mod:`kg.serve_events`; none takes Cypher or any other query language from the caller). Routes are
nouns: what is returned, under the product or user it is for.

* ``GET /health``
* ``GET /products/{product_id}/related-products?k=&same_category=&exclude=&paths=``
* ``POST /related-products`` with a JSON new product (title, description, category, brand;
  cold start)
* ``GET /users/{user_id}/recommendations?k=&categories=&exclude_seen=&paths=``
* ``POST /recommendations?k=&categories=`` with a JSON list of product ids (a new user)
* ``GET /users/{user_id}/cross-category-recommendations?k=&level=``
* ``GET /users/{user_id}/explanations/{product_id}?max_paths=``
* ``GET /search?q=&user=&products=&k=&category=&brand=&exclude=`` (personalised product
  search, :meth:`~kg.query.Recommender.search`; ``user`` a user id, or ``products`` the ids of
  a new user)

Endpoints take ids and numbers only, except ``/search``, whose ``q`` is the text of a search
query: plain words, never passed to Neo4j or parsed as a query language (it is analysed and
scored in process, :mod:`kg.query.search`). A ``q`` that is empty, has no letter or digit, or is
longer than 512 characters (:data:`~kg.query.search.MAX_QUERY_LENGTH`) answers 422.

Parameters have the names and defaults of the Python API (:class:`~kg.query.Recommender`).
The ranking endpoints are ``async def``: they run on the event loop, not in FastAPI's thread
pool. A query is a few milliseconds of numpy work that holds the GIL for most of it, so a worker
serves one at a time either way (``kgrec serve --workers`` adds processes); the thread-pool
hand-offs cost about a millisecond per request. The cold-start endpoint, which runs the text
encoder, stays in the thread pool.

With precomputed answers (``kgrec precompute``, :mod:`kg.query.answers`: ``create_app(rec,
answers)``), related products, recommendations and cross-category recommendations send the
stored bytes, the same as the live answer, when every parameter but ``k`` is the default and
``k`` is at most the store's; any other request, and any answer the store does not hold
(invalidated), is computed live. ``/health`` says up to which ``k`` (``precomputed``).

Unknown ids answer 404; parameters out of range (``k`` outside ``1..n_products``, a level
not in the tree, an id longer than 512 characters...) 422; request size limits 408, 413 and 414
(:mod:`kg.serve_limits`); a bug 500, with its traceback in the server log. Error details quote
at most a short prefix of a bad value. ``/openapi.json`` documents the response models;
``/docs`` shows them.

Ids in the path may hold ``/``: send them percent-encoded (``urllib.parse.quote(id,
safe="")``); the server decodes ``%2F`` before routing, and the routes take the id with
Starlette's ``path`` converter (everything up to the route's fixed suffix).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint annotations at runtime,
# and some (the k bound) are built inside create_app.
import os
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import StringConstraints

from kg import __version__
from kg.query import Recommender, UnknownIdError
from kg.query.answers import JSON_ENCODER, AnswerStore
from kg.query.search import MAX_QUERY_LENGTH, check_query
from kg.serve_limits import BodyLimits, HttpLimits, short, validation_details
from kg.serve_models import (
    MAX_ID_LENGTH,
    ErrorModel,
    ExplanationModel,
    HealthModel,
    NewProductModel,
    RecommendationList,
)
from kg.serve_run import current_blas_threads

if TYPE_CHECKING:
    from kg.query.feed import EventFeed
    from kg.serve_events import EventsConfig

__all__ = ["HttpLimits", "create_app"]


def _json(payload: dict[str, Any]) -> Response:
    """``payload`` as a JSON response, encoded as FastAPI's ``JSONResponse`` encodes.

    The ranking endpoints return their records' ``to_dict()`` output as is: FastAPI would
    otherwise validate and re-serialise it through the response model (0.15-0.4 ms of server
    CPU per request, measured under ``bench/bench_query.py``'s load generator; most for results
    with paths). The response models still document the endpoints (``/openapi.json``), and the
    tests check the answers against them."""
    return Response(JSON_ENCODER.encode(payload).encode("utf-8"), media_type="application/json")


def _one_torch_thread() -> None:
    """One torch thread in this worker, the endpoints that run torch (encoding a new
    product's text or a search query) being the first to import it when the text encoder was
    not preloaded (``kgrec serve --lazy-text-encoder``): the workers share the cores."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _invalid_parameter(name: str, value: Any, message: str) -> JSONResponse:
    """422 for a query parameter that passed its declared constraints but is still invalid,
    in the shape of FastAPI's validation errors."""
    error = {"type": "value_error", "loc": ["query", name], "msg": message, "input": value}
    return JSONResponse(status_code=422, content={"detail": validation_details([error])})


def _errors(app: FastAPI) -> None:
    """404 for unknown ids, 422 for invalid parameters, 500 for anything else; no detail
    quotes more than a short prefix of the input."""

    @app.exception_handler(UnknownIdError)
    async def _unknown(request: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": f"unknown {exc.kind} id "
                                                                f"{short(exc.id)!r}"})  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": validation_details(exc.errors())})

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer: the server logs its traceback.
        return JSONResponse(status_code=500, content={"detail": "internal server error"})


def create_app(
    recommender: Recommender,
    answers: AnswerStore | None = None,
    limits: HttpLimits | None = None,
    events: "tuple[EventFeed, str, EventsConfig] | None" = None,
) -> FastAPI:
    """The FastAPI application serving ``recommender`` (see the module docstring).

    Args:
        recommender: a loaded recommender; it is shared by all requests (read-only).
        answers: precomputed answers of ``recommender`` (:class:`~kg.query.answers.AnswerStore`,
            opened against it): requests whose parameters other than ``k`` are the defaults,
            with ``k`` up to the store's, are answered from it; ``None``: all live.
        limits: request size and time limits (default :class:`HttpLimits`).
        events: ``(feed, token, config)``: serve ``POST /events`` and tail the event log
            (:mod:`kg.serve_events`); the feed invalidates ``answers`` as events arrive.
    """
    rec = recommender
    ix = rec.index
    n = rec.n_products
    app = FastAPI(
        title="kgrec",
        version=__version__,
        description="Graph-aware related, personalised and cross-category recommendations "
        "with graph-path explanations.",
    )
    app.add_middleware(BodyLimits, limits=limits or HttpLimits())
    _errors(app)
    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorModel, "description": "unknown id"}
    }
    K = Annotated[int, Query(ge=1, le=n, description=f"number of results, 1..{n}")]
    encoded = f"at most {MAX_ID_LENGTH} characters; percent-encoded in the URL ('/' as %2F)"
    ProductId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, description=encoded)]
    UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, description=encoded)]
    Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]
    Paths = Annotated[bool, Query(description="attach a graph path to each result")]
    Categories = Annotated[
        list[Id] | None,
        Query(max_length=100, description="keep products under any of these category ids"),
    ]
    counted: dict[int, int | None] = {}

    def threads() -> int | None:
        """This worker's BLAS threads, counted once per process (workers are forked)."""
        pid = os.getpid()
        if pid not in counted:
            counted[pid] = current_blas_threads()
        return counted[pid]

    def listing(op: str, query: str | None, items: list[Any]) -> Response:
        return _json({"operation": op, "query": query, "items": [r.to_dict() for r in items]})

    def stored(op: str, query: str, k: int) -> Response | None:
        """The precomputed answer, byte for byte what :func:`listing` sends for it, or
        ``None`` when it must be computed live."""
        assert answers is not None
        if events is not None and events[0].dropped:  # a catalogue change: all may be stale
            return None
        items = answers.items(op, query, k)
        if items is None:
            return None
        head = f'{{"operation":"{op}","query":{JSON_ENCODER.encode(query)},"items":['
        return Response(head.encode("utf-8") + items + b"]}", media_type="application/json")

    @app.get("/health", response_model=HealthModel)
    async def health() -> dict[str, Any]:
        """Liveness, and the size of what is loaded."""
        return {
            "status": "ok",
            "version": __version__,
            "products": ix.n_products,
            "users": len(ix.user_ids),
            "categories": ix.n_categories,
            "levels": ix.max_depth,
            "search": rec.search_mode,
            "blas_threads": threads(),
            "precomputed": None if answers is None else answers.k,
            "worker": os.getpid(),
            "events_seq": None if events is None else events[0].seq,
        }

    @app.get(
        "/products/{product_id:path}/related-products",
        response_model=RecommendationList,
        responses=errors,
    )
    async def related_products(
        product_id: ProductId,
        k: K = 10,
        same_category: Annotated[
            bool | None, Query(description="true: same leaf only; false: other leaves only")
        ] = None,
        exclude: Annotated[
            list[Id], Query(max_length=1000, description="product ids to leave out")
        ] = [],  # noqa: B006
        paths: Paths = False,
    ) -> Response:
        """Products related to a product (graph-aware score)."""
        if answers is not None and same_category is None and not exclude and not paths:
            done = stored("related", product_id, k)
            if done is not None:
                return done
        out = rec.related(product_id, k, same_category=same_category, exclude=exclude, paths=paths)
        return listing("related", product_id, out)

    @app.post("/related-products", response_model=RecommendationList, responses=errors)
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

    @app.get(
        "/users/{user_id:path}/recommendations",
        response_model=RecommendationList,
        responses=errors,
    )
    async def recommendations(
        user_id: UserId,
        k: K = 10,
        categories: Categories = None,
        exclude_seen: Annotated[
            bool, Query(description="leave out the products in the user's history")
        ] = True,
        paths: Paths = False,
    ) -> Response:
        """Personalised products for a known user."""
        if answers is not None and categories is None and exclude_seen and not paths:
            done = stored("recommend", user_id, k)
            if done is not None:
                return done
        out = rec.recommend(
            user_id, k, exclude_seen=exclude_seen, categories=categories, paths=paths
        )
        return listing("recommend", user_id, out)

    @app.post("/recommendations", response_model=RecommendationList, responses=errors)
    async def recommendations_for_new_user(
        products: Annotated[
            list[Id],
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

    @app.get(
        "/users/{user_id:path}/cross-category-recommendations",
        response_model=RecommendationList,
        responses=errors,
    )
    async def cross_category_recommendations(
        user_id: UserId,
        k: K = 10,
        level: Annotated[
            int | None,
            Query(
                ge=1,
                le=ix.max_depth,
                description="category tree level, 1 = top (default: the first level with two "
                "categories or more)",
            ),
        ] = None,
    ) -> Response:
        """Products from level-`level` categories the user has not bought in, with paths."""
        if answers is not None and level in (None, answers.level):
            done = stored("cross_category", user_id, k)
            if done is not None:
                return done
        return listing("cross_category", user_id, rec.cross_category(user_id, k, level=level))

    @app.get("/search", response_model=RecommendationList, responses=errors)
    async def search(
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=MAX_QUERY_LENGTH,
                description=f"the query text: words, at most {MAX_QUERY_LENGTH} characters",
            ),
        ],
        user: Annotated[Id | None, Query(description="rank for this user (a user id)")] = None,
        products: Annotated[
            list[Id] | None,
            Query(
                max_length=1000,
                description="rank for a new user: their product ids, "
                "oldest first (instead of user)",
            ),
        ] = None,
        k: K = 10,
        category: Annotated[
            Id | None, Query(description="keep only products under this category id")
        ] = None,
        brand: Annotated[
            Id | None, Query(description="keep only products of this brand id")
        ] = None,
        exclude: Annotated[
            list[Id], Query(max_length=1000, description="product ids to leave out")
        ] = [],  # noqa: B006
    ) -> Response:
        """Products for a text query, ranked by BM25, text vectors, the categories and brands
        the query names and, for a user, the personalised score of recommendations."""
        try:
            check_query(q)
        except ValueError as exc:
            return _invalid_parameter("q", q, str(exc))
        if user is not None and products is not None:
            return _invalid_parameter("products", products, "give user or products, not both")
        _one_torch_thread()
        who: str | list[str] | None = user if products is None else products
        out = rec.search(q, who, k, category=category, brand=brand, exclude=exclude)
        return listing("search", q, out)

    @app.get(
        "/users/{user_id:path}/explanations/{product_id:path}",
        response_model=ExplanationModel,
        responses=errors,
    )
    async def explanations(
        user_id: UserId,
        product_id: ProductId,
        max_paths: Annotated[int, Query(ge=1, le=20)] = 3,
    ) -> Response:
        """Typed graph paths from the user's history to the product, strongest first."""
        found = rec.explain(user_id, product_id, max_paths=max_paths)
        paths = [p.to_dict() for p in found]
        return _json({"user_id": user_id, "product_id": product_id, "paths": paths})

    if events is not None:
        from kg.serve_events import add_event_routes

        add_event_routes(app, *events)
    return app
