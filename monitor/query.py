"""The keyword query language and a matcher that runs every watchlist in one pass.

Query language
--------------
Matching is case-insensitive and on whole words (CJK: substrings, see
Normalisation), over a story's title and text.

==========================  ==================================================
``trade``                   the word *trade* (not *trader*, not *tradesman*)
``abduct*``                 any word starting with *abduct*
``"north korea"``           a phrase: the words in this order, adjacent
``"north korea*"``          a phrase whose last word is a prefix
``a b`` / ``a AND b``       both (adjacent terms are joined by AND)
``a OR b``                  either
``NOT a`` / ``-a``          absence of *a* (only next to something positive)
``( ... )``                 grouping
``a NEAR/5 b``              *a* and *b* in the same field, in either order,
                            with at most 5 words between them; operands are
                            terms, phrases, prefixes or ( ... OR ... ) groups
``title:a``, ``text:"x"``,  the term (or every term of the group) only
``title:(a OR b)``          counts in that field
``a^3``                     the term's weight in the score (default 1)
==========================  ==================================================

Precedence, tightest first: NEAR, NOT, AND (explicit or implicit), OR. The
keywords must be upper-case; lower-case ``and``/``or``/``not`` are plain words.

Normalisation: text is split into words on every character that is not a
letter or digit, and each word is folded (NFKD, accents dropped, casefolded),
except for the letters the story's language counts as its own
(:mod:`monitor.letters`: Swedish *gått* is not *gatt*); a query word with such
a letter matches both its spellings (``malmö``: *Malmö* and *Malmo*). Dotted
and dotless i are one letter, in every language: ``istanbul`` matches
*İSTANBUL* and *Istanbul*, ``ışık`` matches *IŞIK* (Turkish capitals).
So a hyphen or an apostrophe is the same as a space: ``"kim jong-un"`` matches
*Kim Jong Un*, *Kim Jong-un* and *KIM JONG‐UN*; ``japan`` matches *Japan's*
(and *Japan’s*); ``"japan's"`` is the phrase *japan s*. Query text is split
the same way, so a word such as ``jong-un`` is a two-word phrase.

Chinese, Japanese and Korean have no spaces between words (Korean puts its
particles on the noun: *북한이*). Each Han, kana or Hangul character is a word
of its own, in the text and in the query alike, so ``北朝鮮`` is the phrase
北 朝 鮮 and matches inside *北朝鮮が弾道ミサイルを発射*; ``북한`` matches
*북한이*. For ``NEAR/k`` each such character counts as a word; for the lead
and aside rules, as half of one.

Scoring
-------
A query that matches gets the score::

    score = sum over distinct positive terms t of  weight(t) * log2(1 + x(t))
    x(t)  = title_weight * (hits of t in the title)
            + (hits of t in the lead of the text)
            + deep_weight * (hits of t after the lead)

The lead is the first ``lead_words`` (60) words of the text, about the first
paragraph of a wire story; ``deep_weight`` is 0.5. Only hits that support the
match count (the terms of OR branches that matched, the pairs that satisfied a
NEAR; never a NOT). One mention in the lead scores 1.0, a title mention 1.58
(with ``title_weight`` 2), three mentions 2.0, seven 3.0, and each further
distinct term adds its own share: the logarithm gives diminishing returns for
repeats, so a story *about* a topic (many mentions, several terms, the title)
outscores one that names it once in passing. The daemon compares the score
with the watchlist's ``threshold``.

Why the lead: a news story says what it is about in its title and first
sentences. A feed item (a title and a sentence or three) is all lead, so it
scores as if the rule did not exist. In a full-length article a single mention
deep in the text (0.58) stays below a threshold of 1.0 — the passing aside a
reader would not file under the topic — while two distinct terms there
(1.17), three mentions of one term (1.32) or one mention in the lead (1.0)
still reach it.

The aside rule: in a text longer than ``aside_words`` (150) words, a match
that rests on a single occurrence (one term, or one NEAR pair however many
terms it joins) and has nothing in the title is an aside, and its score is
multiplied by ``deep_weight``. One mention of North Korea in the first
paragraph of a long story about South Korea's election scores 0.5; a
feed-sized story is never an aside.

Speed: all terms of all queries are compiled into one Aho-Corasick automaton
over the normalised words, so a story is scanned once whatever the number of
watchlists; only the queries that had a term hit are then evaluated, and in
an OR only the terms whose first word occurred. Word offsets are found only
for a story where some query matched, and evidence (hits, snippet) only for
a match that reaches its ``min_scores`` (the keyword classifier passes the
watchlists' thresholds).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import accumulate, islice

import ahocorasick

from monitor.errors import QuerySyntaxError
from monitor.letters import NO_LETTERS, ONE_I, SAME_LETTER, letter_sets, own_letters
from monitor.models import Evidence, Hit, Snippet

__all__ = [
    "And",
    "KeywordMatcher",
    "Near",
    "Node",
    "Not",
    "Or",
    "Term",
    "folded_words",
    "make_snippet",
    "normalize_word",
    "parse_query",
    "query_error_words",
    "is_cjk",
    "split_cjk",
    "terms_of",
    "tokenize",
]

FIELDS = ("title", "text")
SNIPPET_WIDTH = 240
LEAD_WORDS = 60
DEEP_WEIGHT = 0.5
ASIDE_WORDS = 150
# Chinese words average about two characters; Japanese ones, with their kana, more.
CJK_CHAR_WORDS = 0.5

# ---------------------------------------------------------------------------
# Normalisation


# Scripts written without spaces between words: Han (Chinese characters, kanji),
# Japanese kana and Korean Hangul (spaced, but particles stick to the noun).
# Each of their characters is a word of its own, so a query phrase of them
# matches as a substring: 北朝鮮 is the phrase 北 朝 鮮 inside 北朝鮮が発射.
_CJK_CHARS = (
    "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_CJK_RE = re.compile(f"[{_CJK_CHARS}]")
_ASCII_WORD_RE = re.compile(r"[^\W_]+")
# Combining marks are included so that decomposed accents stay inside a word.
_WORD_RE = re.compile(f"[{_CJK_CHARS}]|(?:(?![{_CJK_CHARS}])[^\\W_]|[\u0300-\u036f])+")
# The same words in a text without CJK characters, without the look-ahead at every character.
_PLAIN_WORD_RE = re.compile("(?:[^\\W_]|[\u0300-\u036f])+")


def is_cjk(word: str) -> bool:
    """Whether a (normalised) word is one Chinese, Japanese or Korean character."""
    return len(word) == 1 and _CJK_RE.match(word) is not None


def normalize_word(word: str, own: frozenset[str] = NO_LETTERS) -> str:
    """Fold one word: NFKD, drop accents and anything not a letter or digit, casefold.

    :param own: letters to keep as they are (:func:`monitor.letters.own_letters`
        of the story's language): Swedish *gått* stays *gått*, not *gatt*.
    """
    if word.isascii():
        return word.lower() if word.isalnum() else "".join(c for c in word if c.isalnum()).lower()
    if len(word) == 1 and _CJK_RE.match(word):
        # NFKC, not NFKD: dropping a kana's voicing mark would make ガス (gas) カス (dregs).
        return unicodedata.normalize("NFKC", word)
    if own:
        composed = unicodedata.normalize("NFC", word).translate(SAME_LETTER).casefold()
        if any(c in own for c in composed):
            return "".join(c if c in own else normalize_word(c) for c in composed)
    decomposed = unicodedata.normalize("NFKD", word)
    # İ decomposes to I and a dot; I casefolds to i; ı is i (monitor.letters.ONE_I).
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().translate(ONE_I)
    # NFKD/casefold can themselves produce marks or punctuation (e.g. "½").
    folded = unicodedata.normalize("NFKD", folded)
    return "".join(c for c in folded if c.isalnum() and not unicodedata.combining(c))


def tokenize(text: str, own: frozenset[str] = NO_LETTERS) -> list[tuple[str, int, int]]:
    """Split ``text`` into ``(normalised word, start, end)``; offsets index ``text``.

    :param own: letters not folded (see :func:`normalize_word`).
    """
    return list(iter_tokens(text, own))


def iter_tokens(text: str, own: frozenset[str] = NO_LETTERS) -> Iterator[tuple[str, int, int]]:
    """:func:`tokenize`, one word at a time."""
    if text.isascii():
        # The common case, and the hot path: ASCII lower-casing keeps every
        # offset, and an ASCII word of letters and digits is already folded.
        return ((m.group(), m.start(), m.end()) for m in _ASCII_WORD_RE.finditer(text.lower()))
    return ((norm, m.start(), m.end()) for m in _word_re(text).finditer(text) if (norm := _fold(m.group(), own)))


class _Spans:
    """The character spans of a text's :func:`tokenize` words, found only as far as someone asks:
    a match's hits are mostly in the title and lead, and a long text's later words need none.

    :param whole: every word the pattern finds folds to something (:func:`_folded_words`), so
        the ``n``-th word found is the ``n``-th folded word and needs no folding again.
    """

    def __init__(self, text: str, own: frozenset[str] = NO_LETTERS, whole: bool = False):
        if not whole:
            self._rest: Iterator[tuple[int, int]] = ((start, end) for _, start, end in iter_tokens(text, own))
        elif text.isascii():
            self._rest = map(re.Match.span, _ASCII_WORD_RE.finditer(text))
        else:
            self._rest = map(re.Match.span, _word_re(text).finditer(text))
        self._found: list[tuple[int, int]] = []

    def __getitem__(self, index: int) -> tuple[int, int]:
        found = self._found
        if index >= len(found):
            # In growing steps, each taken at C speed.
            found.extend(islice(self._rest, max(index + 1 - len(found), len(found), 32)))
            if index >= len(found):
                raise IndexError(index)
        return found[index]


def folded_words(text: str, own: frozenset[str] = NO_LETTERS) -> list[str]:
    """The normalised words of :func:`tokenize`, without their offsets (several times faster)."""
    return _folded_words(text, own)[0]


def _folded_words(text: str, own: frozenset[str] = NO_LETTERS) -> tuple[list[str], bool]:
    """:func:`folded_words`, and whether every word found folded to something (none was left out)."""
    if text.isascii():
        return _ASCII_WORD_RE.findall(text.lower()), True
    folded = [_fold(word, own) for word in _word_re(text).findall(text)]
    if all(folded):
        return folded, True
    return [norm for norm in folded if norm], False


def _word_re(text: str) -> re.Pattern[str]:
    # Without CJK characters the same words are found without a look-ahead at every character.
    return _WORD_RE if _CJK_RE.search(text) else _PLAIN_WORD_RE


def _fold(word: str, own: frozenset[str] = NO_LETTERS) -> str:
    # Most words of a text with one curly quote are still ASCII letters and digits: folded but for case.
    return word.lower() if word.isascii() else normalize_word(word, own)


def spellings(word: str) -> tuple[str, ...]:
    """The forms other than the fully folded one that ``word`` takes in stories of some language.

    ``malmö`` is *malmo* in an English story and *malmö* in a Swedish one: a
    query word with such a letter matches both. ``gatt`` has no other form, so
    it never matches a Swedish *gått*.
    """
    if word.isascii():
        return ()
    folded = normalize_word(word)
    return tuple(sorted({normalize_word(word, own) for own in letter_sets()} - {folded, ""}))


def split_cjk(query: str) -> tuple[str, list[str]]:
    """``(rest, runs)``: the runs of CJK characters in a full-text search, and the query without them.

    SQLite's FTS5 tokenizer takes a whole run of Han, kana or Hangul as one
    token, so a search for ``北朝鮮`` would find only the exact run; the store
    matches each run as a substring instead, and the rest with FTS5.
    """
    runs = [m.group() for m in re.finditer(f"[{_CJK_CHARS}]+", query)]
    if not runs:
        return query, []
    rest = re.sub(f'"?[{_CJK_CHARS}]+"?', " ", query)
    rest = re.sub(r"^\s*((AND|OR|NOT)\s+)+|(\s+(AND|OR|NOT))+\s*$", " ", rest)
    return " ".join(rest.split()), runs


# ---------------------------------------------------------------------------
# Syntax tree


class Node:
    """Base class of parsed query nodes; ``pos`` is the node's offset in the query."""

    pos: int


@dataclass(frozen=True)
class Term(Node):
    """A word, prefix or phrase: ``words`` is a tuple of ``(folded word, is_prefix)``;
    ``forms[i]`` are the other spellings word ``i`` takes in stories of some
    language (:func:`spellings`), empty for most words."""

    words: tuple[tuple[str, bool], ...]
    label: str
    pos: int = 0
    field: str | None = None
    weight: float = 1.0
    forms: tuple[tuple[str, ...], ...] = ()

    def spelled(self, k: int) -> tuple[str, ...]:
        """Word ``k`` as folded and as spelled in stories of some language."""
        return (self.words[k][0], *self.forms[k]) if self.forms else (self.words[k][0],)


@dataclass(frozen=True)
class And(Node):
    children: tuple[Node, ...]
    pos: int = 0


@dataclass(frozen=True)
class Or(Node):
    children: tuple[Node, ...]
    pos: int = 0


@dataclass(frozen=True)
class Not(Node):
    child: Node
    pos: int = 0


@dataclass(frozen=True)
class Near(Node):
    left: Node
    right: Node
    distance: int
    pos: int = 0


# ---------------------------------------------------------------------------
# Lexer


@dataclass(frozen=True)
class _Tok:
    kind: str  # WORD PHRASE LPAREN RPAREN AND OR NOT MINUS NEAR FIELD END
    value: str
    pos: int
    field: str | None = None
    weight: float = 1.0
    distance: int = 0


_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"'})
_WORD_CHARS_RE = re.compile(r'[^\s()"]+')
_FIELD_RE = re.compile(r"(title|text):")
_WEIGHT_RE = re.compile(r"\^(\d+(?:\.\d+)?)")
_NEAR_RE = re.compile(r"NEAR(?:/(\d+))?")


def _lex(query: str) -> list[_Tok]:
    text = query.translate(_QUOTES)  # same length, so positions still hold
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(_Tok("LPAREN" if c == "(" else "RPAREN", c, i))
            i += 1
        elif c == "-" and i + 1 < n and (text[i + 1] in '("' or not text[i + 1].isspace()):
            toks.append(_Tok("MINUS", c, i))
            i += 1
        else:
            i = _lex_term(text, query, i, toks)
    toks.append(_Tok("END", "", n))
    return toks


def _lex_term(text: str, query: str, i: int, toks: list[_Tok]) -> int:
    """Lex a word, keyword or (optionally field-prefixed) phrase starting at ``i``."""
    start = i
    fld = None
    m = _FIELD_RE.match(text, i)
    if m and m.end() < len(text) and not text[m.end()].isspace():
        if text[m.end()] == "(":
            toks.append(_Tok("FIELD", m.group(1), i, field=m.group(1)))
            return m.end()
        if text[m.end()] == ")":
            raise QuerySyntaxError(f"{m.group()} needs a word, phrase or group after it", i, query)
        fld, i = m.group(1), m.end()
    if text[i] == '"':
        close = text.find('"', i + 1)
        if close < 0:
            raise QuerySyntaxError("unclosed quote", i, query)
        value, i = text[i + 1 : close], close + 1
        kind = "PHRASE"
    else:
        m = _WORD_CHARS_RE.match(text, i)
        assert m is not None
        value, i = m.group(), m.end()
        kind = "WORD"
        if fld is None:
            keyword = _keyword(value, start, query)
            if keyword is not None:
                toks.append(keyword)
                return i
    weight = 1.0
    if kind == "WORD" and "^" in value:
        value, _, raw = value.partition("^")
        raw = "^" + raw
    else:
        m = _WEIGHT_RE.match(text, i)
        raw = m.group() if m else ""
        i += len(raw)
    if raw:
        wm = _WEIGHT_RE.fullmatch(raw)
        if not wm:
            raise QuerySyntaxError("a weight must look like ^2 or ^0.5", start, query)
        weight = float(wm.group(1))
    toks.append(_Tok(kind, value, start, field=fld, weight=weight))
    return i


def _keyword(value: str, pos: int, query: str) -> _Tok | None:
    if value in ("AND", "OR", "NOT"):
        return _Tok(value, value, pos)
    if value.startswith("NEAR"):
        m = _NEAR_RE.fullmatch(value)
        if m is None or m.group(1) is None:
            raise QuerySyntaxError("NEAR needs a distance, e.g. NEAR/5", pos, query)
        return _Tok("NEAR", value, pos, distance=int(m.group(1)))
    return None


# ---------------------------------------------------------------------------
# Parser


_UNARY_START = {"WORD", "PHRASE", "LPAREN", "NOT", "MINUS", "FIELD"}


class _Parser:
    """Recursive descent: or := and (OR and)*; and := unary ([AND] unary)*;
    unary := (NOT|-) unary | near; near := primary (NEAR/k primary)*."""

    def __init__(self, query: str):
        self.query = query
        self.toks = _lex(query)
        self.i = 0

    def error(self, message: str, pos: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, pos, self.query)

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise self.error("empty query", 0)
        node = self.parse_or()
        if self.tok.kind == "RPAREN":
            raise self.error("unbalanced ')'", self.tok.pos)
        if self.tok.kind != "END":  # pragma: no cover - every other token starts a unary
            raise self.error(f"unexpected {self.tok.value!r}", self.tok.pos)
        return node

    def parse_or(self) -> Node:
        first = self.parse_and()
        children = [first]
        while self.tok.kind == "OR":
            self.take()
            children.append(self.parse_and())
        return first if len(children) == 1 else Or(tuple(children), first.pos)

    def parse_and(self) -> Node:
        first = self.parse_unary()
        children = [first]
        while self.tok.kind == "AND" or self.tok.kind in _UNARY_START:
            if self.tok.kind == "AND":
                self.take()
            children.append(self.parse_unary())
        return first if len(children) == 1 else And(tuple(children), first.pos)

    def parse_unary(self) -> Node:
        if self.tok.kind in ("NOT", "MINUS"):
            op = self.take()
            return Not(self.parse_unary(), op.pos)
        return self.parse_near()

    def parse_near(self) -> Node:
        node = self.parse_primary()
        while self.tok.kind == "NEAR":
            op = self.take()
            right = self.parse_primary()
            for operand in (node, right):
                self.check_near_operand(operand)
            node = Near(node, right, op.distance, op.pos)
        return node

    def check_near_operand(self, node: Node) -> None:
        if isinstance(node, Or):
            for child in node.children:
                self.check_near_operand(child)
        elif not isinstance(node, (Term, Near)):
            raise self.error("NEAR operands must be terms, phrases or (... OR ...) groups", node.pos)

    def parse_primary(self) -> Node:
        tok = self.tok
        if tok.kind in ("WORD", "PHRASE"):
            self.take()
            return _make_term(tok, self.query)
        if tok.kind == "FIELD":
            self.take()
            if self.tok.kind != "LPAREN":  # pragma: no cover - the lexer only emits FIELD before "("
                raise self.error("expected '('", self.tok.pos)
            return _restrict(self.parse_primary(), tok.field or "")
        if tok.kind == "LPAREN":
            self.take()
            if self.tok.kind == "RPAREN":
                raise self.error("empty parentheses", self.tok.pos)
            node = self.parse_or()
            if self.tok.kind != "RPAREN":
                raise self.error("unclosed '('", tok.pos)
            self.take()
            return node
        if tok.kind == "END":
            prev = self.toks[self.i - 1] if self.i else tok
            raise self.error(f"{prev.value} at the end of the query needs an operand", prev.pos)
        if tok.kind == "RPAREN":
            raise self.error("expected a term before ')'", tok.pos)
        raise self.error(f"{tok.value} cannot appear here", tok.pos)


def _restrict(node: Node, fld: str) -> Node:
    """Apply a ``title:(...)`` restriction to every term of a group."""
    if isinstance(node, Term):
        return dataclasses.replace(node, field=node.field or fld)
    if isinstance(node, And):
        return And(tuple(_restrict(c, fld) for c in node.children), node.pos)
    if isinstance(node, Or):
        return Or(tuple(_restrict(c, fld) for c in node.children), node.pos)
    if isinstance(node, Not):
        return Not(_restrict(node.child, fld), node.pos)
    assert isinstance(node, Near)
    return Near(_restrict(node.left, fld), _restrict(node.right, fld), node.distance, node.pos)


def _make_term(tok: _Tok, query: str) -> Term:
    value = tok.value
    if value.strip() == "*" or (tok.kind == "WORD" and value == "*"):
        raise QuerySyntaxError("a bare * matches everything; put it after a word, e.g. abduct*", tok.pos, query)
    words: list[tuple[str, bool]] = []
    forms: list[tuple[str, ...]] = []
    for m in re.finditer(f"(?:{_WORD_RE.pattern})" + r"(\*)?|\*", value):
        if m.group() == "*":
            raise QuerySyntaxError("* must follow a word", tok.pos, query)
        norm = normalize_word(m.group().rstrip("*"))
        if norm:
            words.append((norm, m.group(1) is not None))
            forms.append(spellings(m.group().rstrip("*")))
    if not words:
        what = "phrase" if tok.kind == "PHRASE" else "term"
        raise QuerySyntaxError(f"{what} {value!r} has no letters or digits", tok.pos, query)
    label = " ".join(value.casefold().split())
    return Term(tuple(words), label, tok.pos, tok.field, tok.weight, tuple(forms) if any(forms) else ())


def parse_query(text: str) -> Node:
    """Parse a query into a tree of :class:`Term`, :class:`And`, :class:`Or`,
    :class:`Not` and :class:`Near` nodes.

    :raises QuerySyntaxError: with a 0-based ``position`` for an empty query,
        unbalanced parentheses or quotes, a dangling operator, NEAR without a
        distance, a bare ``*``, or a query that could match by absence alone
        (e.g. ``NOT trade`` or ``a OR -b``).
    """
    node = _Parser(text).parse()
    if _evaluate(node, _Occurrences({})) is not None:
        raise QuerySyntaxError(
            "the query can match a story by absence alone; combine NOT with a positive term",
            _first_not(node),
            text,
        )
    return node


def query_error_words(exc: QuerySyntaxError) -> str:
    """The error on one line: what, the position, and for a query of several lines its line and column
    and the text there."""
    text = exc.query
    if "\n" not in text.strip():
        return str(exc)
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
    near = " ".join(text[exc.position : exc.position + 30].split())
    return f"{exc} (line {line}, column {column}{f': {near}' if near else ''})"


def _first_not(node: Node) -> int:
    for sub in _walk(node):
        if isinstance(sub, Not):
            return sub.pos
    return node.pos  # pragma: no cover - only NOT makes absence match


def _walk(node: Node, into_not: bool = True) -> Iterable[Node]:
    yield node
    if isinstance(node, (And, Or)):
        for child in node.children:
            yield from _walk(child, into_not)
    elif isinstance(node, Not):
        if into_not:
            yield from _walk(node.child, into_not)
    elif isinstance(node, Near):
        yield from _walk(node.left, into_not)
        yield from _walk(node.right, into_not)


def terms_of(node: Node) -> list[Term]:
    """Every :class:`Term` in ``node``, positive or negated."""
    return [sub for sub in _walk(node) if isinstance(sub, Term)]


def positive_terms(node: Node) -> list[Term]:
    """The terms of ``node`` outside any NOT: a match rests on an occurrence of one of them."""
    return [sub for sub in _walk(node, into_not=False) if isinstance(sub, Term)]


# ---------------------------------------------------------------------------
# Evaluation

# An occurrence: (field, first word index, last word index + 1, terms that make it up).
_Occ = tuple[str, int, int, tuple[Term, ...]]


@dataclass
class _Occurrences:
    """Where each (spelling, is_prefix) atom occurred, per field, as sets of word indexes.

    Atoms are keyed by the spelling seen, not by the folded word: ``gått`` in a
    Swedish story is an occurrence for a query word spelled ``gått``, never for
    one spelled ``gatt`` in another watchlist.
    """

    atoms: Mapping[tuple[str, bool], Mapping[str, set[int]]]
    # Keyed by identity: terms live as long as their compiled query, and
    # hashing a frozen dataclass rehashes all its fields on every lookup.
    cache: dict[int, list[_Occ]] = field(default_factory=dict)

    def of(self, term: Term) -> list[_Occ]:
        found = self.cache.get(id(term))
        if found is None:
            found = self.cache[id(term)] = self._find(term)
        return found

    def _at(self, term: Term, k: int) -> Mapping[str, set[int]]:
        """Where word ``k`` of ``term`` occurred, per field, in any of its own spellings."""
        is_prefix = term.words[k][1]
        if not term.forms or not term.forms[k]:
            return self.atoms.get((term.words[k][0], is_prefix), {})
        merged: dict[str, set[int]] = defaultdict(set)
        for form in term.spelled(k):
            for fld, where in self.atoms.get((form, is_prefix), {}).items():
                merged[fld] |= where
        return merged

    def _find(self, term: Term) -> list[_Occ]:
        found: list[_Occ] = []
        for fld, starts in self._at(term, 0).items():
            if term.field not in (None, fld):
                continue
            # Narrow the candidate starts word by word, walking the smaller
            # set each time: a phrase whose later word is rare costs little
            # however often its first word occurs.
            positions = set(starts)
            for k in range(1, len(term.words)):
                following = self._at(term, k).get(fld)
                if not following:
                    positions = set()
                elif len(following) < len(positions):
                    positions = {q - k for q in following if q - k in positions}
                else:
                    positions = {p for p in positions if p + k in following}
                if not positions:
                    break
            found.extend((fld, i, i + len(term.words), (term,)) for i in sorted(positions))
        return found


def _evaluate(node: Node, occ: _Occurrences) -> list[_Occ] | None:
    """``None`` when ``node`` does not match; else the occurrences supporting the match
    (possibly empty, for a satisfied NOT)."""
    if isinstance(node, Term):
        found = occ.of(node)
        return found or None
    if isinstance(node, And):
        out: list[_Occ] = []
        for child in node.children:
            sub = _evaluate(child, occ)
            if sub is None:
                return None
            out.extend(sub)
        return out
    if isinstance(node, Or):
        # A big OR of terms is the common watchlist: a term whose first word did not occur is skipped in one
        # look-up (a word with other spellings, malmö, is looked up in each of them by _evaluate).
        atoms = occ.atoms
        matched = [sub for c in node.children
                   if not (type(c) is Term and c.words[0] not in atoms and not c.forms)
                   and (sub := _evaluate(c, occ)) is not None]
        return [o for sub in matched for o in sub] if matched else None
    if isinstance(node, Not):
        return [] if _evaluate(node.child, occ) is None else None
    if isinstance(node, Near):
        return _evaluate_near(node, occ)
    raise TypeError(f"not a query node: {node!r}")  # pragma: no cover


def _evaluate_near(node: Near, occ: _Occurrences) -> list[_Occ] | None:
    left = _evaluate(node.left, occ)
    right = _evaluate(node.right, occ)
    if not left or not right:
        return None
    # Pairing every left with every right is quadratic in the text's length
    # (a long text repeating both terms took minutes); only the right
    # occurrences whose start lies in a window around each left one can pair.
    by_field: dict[str, list[_Occ]] = defaultdict(list)
    for o in right:
        by_field[o[0]].append(o)
    starts: dict[str, list[int]] = {}
    longest: dict[str, int] = {}
    for fld, group in by_field.items():
        group.sort(key=lambda o: o[1])
        starts[fld] = [o[1] for o in group]
        longest[fld] = max(o[2] - o[1] for o in group)
    out: list[_Occ] = []
    for lf, ls, le, lt in left:
        group = by_field.get(lf)
        if not group:
            continue
        lo = bisect.bisect_left(starts[lf], ls - node.distance - longest[lf])
        hi = bisect.bisect_right(starts[lf], le + node.distance)
        for _, rs, re_, rt in group[lo:hi]:
            gap = rs - le if rs >= le else ls - re_
            if max(ls, rs) < min(le, re_) or gap > node.distance:
                continue  # overlapping spans are one mention, not two near each other
            out.append((lf, min(ls, rs), max(le, re_), lt + rt))
    return out or None


# ---------------------------------------------------------------------------
# Matcher


@dataclass(frozen=True)
class _Compiled:
    name: str
    node: Node
    title_weight: float


class KeywordMatcher:
    """Compiles many named queries into one automaton and matches stories against all of them.

    :param queries: watchlist name -> query text. Every query is parsed up front,
        so a bad one raises :class:`QuerySyntaxError` here (its ``query`` names it).
    :param title_weight: how much a title hit counts against a text hit.
    :param title_weights: per-query overrides of ``title_weight``.
    :param lead_words: text hits within this many words of the start of the text
        count fully; see "Scoring" in the module docstring.
    :param deep_weight: how much a text hit after the lead counts (1.0 turns the
        lead rule off).
    :param aside_words: in a text longer than this many words, a match that
        rests on a single occurrence (one term, or one NEAR pair) and not on
        the title is an aside: its score is multiplied by ``deep_weight``.
        ``0`` turns the aside rule off.
    """

    def __init__(
        self,
        queries: Mapping[str, str],
        *,
        title_weight: float = 2.0,
        title_weights: Mapping[str, float] | None = None,
        lead_words: int = LEAD_WORDS,
        deep_weight: float = DEEP_WEIGHT,
        aside_words: int = ASIDE_WORDS,
    ):
        if lead_words < 0 or aside_words < 0 or not 0.0 <= deep_weight <= 1.0:
            raise ValueError("lead_words and aside_words must be >= 0 and deep_weight between 0 and 1")
        self.lead_words = lead_words
        self.deep_weight = deep_weight
        self.aside_words = aside_words
        overrides = dict(title_weights or {})
        self.queries: dict[str, _Compiled] = {}
        for name, text in queries.items():
            self.queries[name] = _Compiled(name, parse_query(text), overrides.get(name, title_weight))
        # Keyed by spelling: every form a query word takes in some language is an atom of its own.
        self._by_atom: dict[tuple[str, bool], set[str]] = defaultdict(set)
        for name, compiled in self.queries.items():
            for term in terms_of(compiled.node):
                for k, (_, is_prefix) in enumerate(term.words):
                    for form in term.spelled(k):
                        self._by_atom[(form, is_prefix)].add(name)
        self._automaton = _build_automaton(self._by_atom)
        # A query can match only where the first word of one of its positive terms occurred: only
        # those atoms make it a candidate (a NOT's word, or a phrase's common later word, does not).
        self._triggers: dict[tuple[str, bool], set[str]] = defaultdict(set)
        for name, compiled in self.queries.items():
            for term in positive_terms(compiled.node):
                for form in term.spelled(0):
                    self._triggers[(form, term.words[0][1])].add(name)

    def match(self, title: str, text: str, min_scores: Mapping[str, float] | None = None,
              language: str | None = None) -> dict[str, tuple[float, Evidence]]:
        """Match one story against every query.

        :param min_scores: query name -> the least score worth reporting (a
            watchlist's threshold); a query scoring less is left out, and its
            evidence is never built.
        :param language: the story's language, if known: its own letters are
            not folded (:mod:`monitor.letters`).
        :returns: for each query that matched, ``(score, evidence)``; queries that
            did not match are absent. Hit offsets index the ``title``/``text`` given.
        """
        title, text = title or "", text or ""
        own = own_letters(language)
        (title_words, title_whole), (text_words, text_whole) = _folded_words(title, own), _folded_words(text, own)
        words = {"title": title_words, "text": text_words}
        atoms = self._scan(words)
        if not atoms:
            return {}
        occ = _Occurrences(atoms)
        triggers = self._triggers
        candidates = set().union(*(triggers[a] for a in atoms if a in triggers))
        if not candidates:
            return {}
        # The text's word layout once some query has support; its word offsets only for a
        # match worth reporting, and only as far as its hits need.
        layout: tuple[Callable[[str, float], float], bool] | None = None
        spans: dict[str, _Spans] = {}
        results = {}
        for name in sorted(candidates):
            compiled = self.queries[name]
            support = _evaluate(compiled.node, occ)
            if not support:
                continue
            if layout is None:
                layout = self._layout(text, words["text"])
            place_weight, long_text = layout
            hits = _hits(support, words, place_weight)
            score = _score(hits, compiled.title_weight)
            if long_text and _is_aside(support):
                score = round(score * self.deep_weight, 6)
            if min_scores is not None and score < min_scores.get(name, 0.0):
                continue
            if not spans:
                spans.update(title=_Spans(title, own, title_whole), text=_Spans(text, own, text_whole))
            results[name] = (score, _evidence(hits, spans, {"title": title, "text": text}, compiled.title_weight))
        return results

    def _layout(self, text: str, text_words: list[str]) -> tuple[Callable[[str, float], float], bool]:
        """How much a hit counts by its place, and whether the text is long (for the aside rule)."""
        if text.isascii() or not _CJK_RE.search(text):  # the common case: a token is a word
            return self._place_weight, 0 < self.aside_words < len(text_words)
        at_word = _word_positions(text_words)
        long_text = 0 < self.aside_words < (at_word[-1] + 1 if at_word else 0)

        def place_weight(fld: str, index: float) -> float:
            return self._place_weight(fld, at_word[int(index)] if fld == "text" else index)

        return place_weight, long_text

    def _place_weight(self, fld: str, index: float) -> float:
        """How much a hit at word ``index`` of ``fld`` counts (before ``title_weight``)."""
        if fld == "title" or index < self.lead_words:
            return 1.0
        return self.deep_weight

    def _scan(self, words: Mapping[str, list[str]]) -> dict[tuple[str, bool], dict[str, set[int]]]:
        atoms: dict[tuple[str, bool], dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        if self._automaton is None:
            return {}
        for fld, found in words.items():
            if not found:
                continue
            # Every word is framed \x01word\x02, so keys anchor at word starts and ends;
            # word i starts at offset (length of the words before it) + 2 * i.
            before = [0, *accumulate(map(len, found))]
            starts = range(len(found))
            for end, (atom, length) in self._automaton.iter("\x01" + "\x02\x01".join(found) + "\x02"):
                start = end - length + 1
                index = bisect.bisect_left(starts, start, key=lambda i: before[i] + 2 * i)
                atoms[atom][fld].add(index)
        return atoms


def _word_positions(words: list[str]) -> list[float]:
    """How many words precede each token, for the lead and aside rules.

    A CJK character is a token of its own but only part of a word: counted as
    :data:`CJK_CHAR_WORDS` of one, a Japanese or Chinese text's lead and
    length come out about as long as an English one's.
    """
    out, at = [], 0.0
    for word in words:
        out.append(at)
        at += CJK_CHAR_WORDS if _CJK_RE.match(word) else 1.0
    return out


def _is_aside(support: list[_Occ]) -> bool:
    """One occurrence in the text and none in the title: a passing mention."""
    places = {(fld, first, last) for fld, first, last, _ in support}
    return len(places) == 1 and next(iter(places))[0] == "text"


def _build_automaton(atoms: Iterable[tuple[str, bool]]) -> ahocorasick.Automaton | None:
    automaton = ahocorasick.Automaton()
    for word, is_prefix in atoms:
        key = "\x01" + word + ("" if is_prefix else "\x02")
        automaton.add_word(key, ((word, is_prefix), len(key)))
    if len(automaton) == 0:
        return None
    automaton.make_automaton()
    return automaton


@dataclass(frozen=True)
class _ScoredHit:
    term: str  # the term's label
    field: str
    first: int  # word index of the hit's first word
    last: int  # word index after its last word
    weight: float  # the term's ^weight
    place: float = 1.0  # 1.0 in the title and the lead, ``deep_weight`` after it

    def at(self, spans: Mapping[str, _Spans]) -> Hit:
        """The hit with the character offsets of its words."""
        words = spans[self.field]
        return Hit(self.term, self.field, words[self.first][0], words[self.last - 1][1])


def _hits(
    support: list[_Occ],
    words: Mapping[str, list[str]],
    place_weight: Callable[[str, int], float],
) -> list[_ScoredHit]:
    """Turn supporting occurrences into word-index hits, one per term and place, in reading order."""
    seen: dict[tuple[str, str, int, int], _ScoredHit] = {}
    for fld, first, last, terms in support:
        found = words[fld]
        for term in terms:
            # A NEAR occurrence spans both operands; locate each term inside it.
            n = len(term.words)
            for i in range(first, last - n + 1):
                if _term_at(term, found, i):
                    seen.setdefault((term.label, fld, i, i + n),
                                    _ScoredHit(term.label, fld, i, i + n, term.weight, place_weight(fld, i)))
                    break
    return sorted(seen.values(), key=lambda h: (FIELDS.index(h.field), h.first, h.last))


def _term_at(term: Term, words: list[str], i: int) -> bool:
    for k, (_, is_prefix) in enumerate(term.words):
        got = words[i + k]
        if not any(got.startswith(want) if is_prefix else got == want for want in term.spelled(k)):
            return False
    return True


def _score(hits: list[_ScoredHit], title_weight: float) -> float:
    mass: dict[str, float] = defaultdict(float)
    weight: dict[str, float] = {}
    for h in hits:
        mass[h.term] += title_weight if h.field == "title" else h.place
        weight[h.term] = max(weight.get(h.term, 0.0), h.weight)
    return round(sum(weight[t] * math.log2(1 + x) for t, x in mass.items()), 6)


def _evidence(scored: list[_ScoredHit], spans: Mapping[str, _Spans], sources: Mapping[str, str],
              title_weight: float) -> Evidence:
    contribution: dict[str, float] = defaultdict(float)
    for h in scored:
        contribution[h.term] += h.weight * (title_weight if h.field == "title" else h.place)
    terms = tuple(sorted(contribution, key=lambda t: (-contribution[t], t)))
    hits = [h.at(spans) for h in scored]
    text_hits = [h for h in hits if h.field == "text"]
    if text_hits:
        snippet = make_snippet(sources["text"], text_hits)
    else:
        snippet = make_snippet(sources["title"], hits)
    return Evidence(terms=terms, hits=tuple(hits), snippet=snippet)


def make_snippet(source: str, hits: list[Hit], width: int = SNIPPET_WIDTH) -> Snippet:
    """The ``width``-character window of ``source`` with the most distinct terms (then
    hits), cut at word boundaries, with "…" where it was cut."""
    if not hits:
        return Snippet(source[:width])
    hits = sorted(hits, key=lambda h: (h.start, h.end))
    lo, hi = _best_window(hits, width)
    pad = max(0, width - (hi - lo)) // 2
    start = max(0, lo - pad)
    end = min(len(source), max(hi, start + width))
    start = max(0, min(start, end - width, lo))
    start, end = _snap(source, start, end, lo, hi)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(source) else ""
    shift = len(prefix) - start
    highlights = tuple((h.start + shift, h.end + shift) for h in hits if h.start >= start and h.end <= end)
    return Snippet(prefix + source[start:end] + suffix, highlights)


def _best_window(hits: list[Hit], width: int) -> tuple[int, int]:
    # Hits are sorted by start and a hit ends after it starts, so none beyond
    # ``first.start + width`` fits the window: looking only that far keeps
    # this linear in the number of hits (it was quadratic).
    starts = [h.start for h in hits]
    best: tuple[int, int, int, int] | None = None
    for i, first in enumerate(hits):
        stop = bisect.bisect_right(starts, first.start + width, lo=i)
        inside = [h for h in hits[i:stop] if h.end - first.start <= width] or [first]
        key = (len({h.term for h in inside}), len(inside))
        if best is None or key > best[:2]:
            best = (*key, first.start, max(h.end for h in inside))
    assert best is not None
    return best[2], best[3]


def _snap(source: str, start: int, end: int, lo: int, hi: int) -> tuple[int, int]:
    """Move the cut points onto whitespace (never past the hits) and trim it."""
    if start > 0 and not source[start - 1].isspace():
        while start < lo and not source[start - 1].isspace():
            start += 1
    if end < len(source) and not source[end].isspace():
        while end > hi and not source[end].isspace():
            end -= 1
    while start < lo and source[start].isspace():
        start += 1
    while end > hi and source[end - 1].isspace():
        end -= 1
    return start, end
