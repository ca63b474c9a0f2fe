"""The HTTP API's request and response models (pydantic): they document the endpoints
(``/openapi.json``, ``/docs``) and validate the request bodies."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ErrorModel",
    "ExplanationModel",
    "GraphPathModel",
    "HealthModel",
    "NewProductModel",
    "PathNodeModel",
    "PathStepModel",
    "RecommendationList",
    "RecommendationModel",
]

#: The longest id (product, user, category, brand) the API takes, in characters.
MAX_ID_LENGTH = 512


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
    worker: int | None = Field(
        default=None, description="the process id of the worker that answered"
    )
    events_seq: int | None = Field(
        default=None,
        description="the last event sequence number this worker applied (kgrec serve "
        "--events), or null without live events",
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
        default=None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="its category id (any level of the tree)",
    )
    brand_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_LENGTH, description="its brand id"
    )
    k: int = Field(default=10, ge=1, le=100, description="number of results, 1..100")
    same_category: bool | None = Field(
        default=None,
        description="true: only products under category_id; false: only products outside it "
        "(needs category_id)",
    )

    @model_validator(mode="after")
    def _same_category_needs_a_category(self) -> "NewProductModel":
        if self.same_category is not None and self.category_id is None:
            raise ValueError("same_category needs a category_id")
        return self
