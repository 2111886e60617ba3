"""Placeholder keyword matcher (replaced by the full query language)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import QuerySyntaxError
from .models import Evidence, Hit, Snippet

_TOKEN = re.compile(r'\s*(\(|\)|"[^"]*"|[^\s()"]+)')


def parse_query(text: str):
    tokens = [(m.group(1), m.start(1)) for m in _TOKEN.finditer(text)]
    if not tokens:
        raise QuerySyntaxError("empty query", 0, text)
    pos = 0

    def expr():
        nonlocal pos
        node = term_and()
        while pos < len(tokens) and tokens[pos][0] == "OR":
            pos += 1
            node = ("or", node, term_and())
        return node

    def term_and():
        nonlocal pos
        node = atom()
        while pos < len(tokens) and tokens[pos][0] not in ("OR", ")"):
            if tokens[pos][0] == "AND":
                pos += 1
            node = ("and", node, atom())
        return node

    def atom():
        nonlocal pos
        if pos >= len(tokens):
            raise QuerySyntaxError("unexpected end of query", len(text), text)
        tok, at = tokens[pos]
        pos += 1
        if tok == "(":
            node = expr()
            if pos >= len(tokens) or tokens[pos][0] != ")":
                raise QuerySyntaxError("missing )", at, text)
            pos += 1
            return node
        word = tok.strip('"').lower()
        pattern = r"\b" + re.escape(word.rstrip("*")) + (r"\w*" if word.endswith("*") else r"\b")
        return ("term", word, re.compile(pattern, re.I))

    node = expr()
    if pos != len(tokens):
        raise QuerySyntaxError("unexpected token", tokens[pos][1], text)
    return node


def _eval(node, title, text, hits):
    if node[0] == "term":
        found = False
        for field, value in (("title", title), ("text", text)):
            for m in node[2].finditer(value):
                hits.append(Hit(node[1], field, m.start(), m.end()))
                found = True
        return found
    left = _eval(node[1], title, text, hits)
    right = _eval(node[2], title, text, hits)
    return (left and right) if node[0] == "and" else (left or right)


class KeywordMatcher:
    def __init__(self, queries: Mapping[str, str], *, title_weight: float = 2.0):
        self.queries = {name: parse_query(q) for name, q in queries.items()}
        self.title_weight = title_weight

    def match(self, title: str, text: str) -> dict[str, tuple[float, Evidence]]:
        out = {}
        for name, node in self.queries.items():
            hits: list[Hit] = []
            if _eval(node, title, text, hits):
                score = sum(self.title_weight if h.field == "title" else 1.0 for h in hits)
                terms = tuple(dict.fromkeys(h.term for h in hits))
                first = next((h for h in hits if h.field == "text"), None)
                snippet = Snippet(title, tuple((h.start, h.end) for h in hits if h.field == "title"))
                if first:
                    start = max(0, first.start - 100)
                    piece = text[start:start + 240]
                    snippet = Snippet(piece, tuple((h.start - start, h.end - start) for h in hits
                                                   if h.field == "text" and h.start >= start and h.end <= start + 240))
                out[name] = (score, Evidence(terms=terms, hits=tuple(hits), snippet=snippet))
        return out
