"""The text analyser of product search: Lucene's ``standard-no-stop-words``, in Python.

Neo4j's full-text index ``product_text`` (:mod:`ingest.search_index`) analyses text with
Lucene's ``StandardTokenizer`` (the word boundaries of Unicode UAX #29) and ``LowerCaseFilter``,
no stop words (the analyser Neo4j calls ``standard-no-stop-words``). The in-process BM25 of
the query layer (:mod:`kg.query.lexical`) must cut text into the same terms, or its scores and
Neo4j's would differ. :func:`analyze` does, for the scripts shop catalogues use:

* a token is a run of letters, digits and ``_``; letters stay joined across ``.``, ``'``,
  ``’``, ``:`` and ``·`` (``e.g``, ``don't``), digits across ``.``, ``,``, ``;``, ``'`` and
  ``’`` (``1,000.50``), and letters and digits join each other (``m8x1.25``, ``3d``); any
  other character (space, ``-``, ``/``, ``&``, ``(``...) ends a token;
* a Han ideograph or a Hiragana character is a token of its own;
* every character is lower-cased on its own (Java's ``Character.toLowerCase``: ``İ`` gives
  ``i``, a final ``Σ`` gives ``σ``).

``tests/kg/test_search_index.py`` runs Lucene's own analyser (the jars of the local Neo4j)
on the synthetic catalogue and on hand-picked hard cases and compares the tokens. Not covered:
emoji, South-East Asian scripts and combining marks written as separate code points (Lucene
keeps ``e`` + ``U+0301`` together, this splits them).

:func:`escape_query` makes a text safe to pass to ``db.index.fulltext.queryNodes``, whose
argument is Lucene query syntax.
"""

from __future__ import annotations

import re

__all__ = ["ENGLISH_STOP_WORDS", "analyze", "escape_query", "words"]

_LETTER = r"[^\W\d_]"
_LETTER_JOIN = "[.'’:·\u0387\u2024\u2027\ufe13\ufe52\ufe55\uff07\uff0e\uff1a]"
_DIGIT_JOIN = "[.,;'’\u037e\u0589\u060c\u060d\u066c\u07f8\u2024\u2044\ufe10\ufe14\ufe50\ufe52\ufe54\uff07\uff0c\uff0e\uff1b]"
#: Combining marks and format characters, which stay in the word they follow (UAX #29 WB4).
_MARK = "\u00ad\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u0610-\u061a\u064b-\u065f\u0900-\u0903\u093a-\u094f\u1ab0-\u1aff\u1dc0-\u1dff\u200c\u200d\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f"
_WORD = rf"\w[\w{_MARK}]*"
_TOKEN = re.compile(
    rf"{_WORD}(?:(?:(?<={_LETTER}){_LETTER_JOIN}(?={_LETTER})|(?<=\d){_DIGIT_JOIN}(?=\d)){_WORD})*"
)
#: Han ideographs (and their extensions and compatibility forms) and Hiragana.
_SINGLE = re.compile(
    "([\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f])"
)
#: Lucene's ``StandardAnalyzer`` cuts longer tokens at this many characters.
MAX_TOKEN_LENGTH = 255

#: Lucene's English stop words (``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``). The index keeps
#: them; the product-search benchmark removes them from the queries it builds.
ENGLISH_STOP_WORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
        "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
        "these", "they", "this", "to", "was", "will", "with",
    }
)  # fmt: skip

_QUERY_SPECIAL = re.compile(r'([+\-!(){}\[\]^"~*?:\\/&|])')


def _lower(text: str) -> str:
    """Each character lower-cased on its own, as Java's ``Character.toLowerCase`` does."""
    if text.isascii():
        return text.lower()
    out = []
    for c in text:
        low = c.lower()
        out.append(low if len(low) == 1 else ("i" if c == "İ" else c))
    return "".join(out)


def analyze(text: str | None) -> list[str]:
    """The terms of ``text`` in order, as Lucene's ``standard-no-stop-words`` analyser makes
    them (module docstring); ``[]`` for ``None``."""
    if not text:
        return []
    if not text.isascii():
        text = _SINGLE.sub(r" \1 ", text)
    tokens = _TOKEN.findall(text)
    if any(len(t) > MAX_TOKEN_LENGTH for t in tokens):
        tokens = [
            t[i : i + MAX_TOKEN_LENGTH] for t in tokens for i in range(0, len(t), MAX_TOKEN_LENGTH)
        ]
    return [_lower(t) for t in tokens]


def words(text: str | None) -> list[str]:
    """The distinct terms of ``text``, in first-seen order."""
    return list(dict.fromkeys(analyze(text)))


def escape_query(text: str) -> str:
    """``text`` as a Lucene query that matches its words: the query syntax characters escaped
    with ``\\`` and the text lower-cased (so ``AND``, ``OR``, ``NOT`` are words, not
    operators). Analysed by the index, it gives the terms :func:`analyze` gives."""
    return _QUERY_SPECIAL.sub(r"\\\1", _lower(text))
