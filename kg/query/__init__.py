"""The query layer: related, personalised and cross-category products with explanations.

One entry point, :class:`Recommender` (``Recommender.load(run_folder, tables)``); results are
typed records (:class:`Recommendation`, :class:`GraphPath`). The score formulas are in
:mod:`kg.query.scoring`; the Neo4j write-back of RELATED edges and fused vectors in
:mod:`kg.query.writeback`.
"""

from kg.query.candidates import ApproximateSearch
from kg.query.recommender import Recommender
from kg.query.scoring import ScoreWeights
from kg.query.types import GraphPath, PathNode, PathStep, Recommendation, UnknownIdError

__all__ = [
    "ApproximateSearch",
    "GraphPath",
    "PathNode",
    "PathStep",
    "Recommendation",
    "Recommender",
    "ScoreWeights",
    "UnknownIdError",
]
