"""Hashed n-gram counts of a batch of texts, in NumPy arrays: what the learned models read.

The columns are exactly those of scikit-learn's ``HashingVectorizer`` (word
1-2-grams with ``token_pattern=r"(?u)\\b\\w+\\b"``, and ``char_wb`` 3-5-grams;
``alternate_sign=False``, ``norm=None``, lower-cased; MurmurHash3 of the UTF-8
bytes, seed 0), so models trained on either read the same features. Why not
scikit-learn at serve time: importing it pulls in SciPy (about 85 MB and
seconds per process), and its hasher builds a SciPy matrix from a Python
generator of strings; here the character n-grams of a word are hashed once
and remembered (words repeat), and the batch's counts stay plain arrays.

``mmh3`` is the hash: the same MurmurHash3_x86_32 as scikit-learn's, in C.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mmh3
import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

_TOKEN = re.compile(r"(?u)\b\w+\b")
_INT32_MIN = -(2**31)
# Distinct words whose character n-gram columns are remembered; past it the memory starts afresh.
WORD_CACHE_SIZE = 2**15


def column(gram: str, width: int) -> int:
    """The column ``gram`` hashes to (scikit-learn's rule, including its edge case at -2**31)."""
    h = mmh3.hash(gram, 0)
    if h == _INT32_MIN:
        return (2**31 - 1 - (width - 1)) % width
    return abs(h) % width


def columns(grams: Sequence[str], width: int) -> np.ndarray:
    """:func:`column` of every gram, as an int64 array."""
    hashes = np.fromiter((mmh3.hash(g, 0) for g in grams), dtype=np.int64, count=len(grams))
    out = np.abs(hashes) % width
    edge = hashes == _INT32_MIN
    if edge.any():
        out[edge] = (2**31 - 1 - (width - 1)) % width
    return out


def word_ngrams(text: str) -> list[str]:
    """Lower-cased word unigrams then bigrams, in scikit-learn's order."""
    tokens = _TOKEN.findall(text.lower())
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def char_wb_ngrams(word: str, low: int = 3, high: int = 5) -> list[str]:
    """``char_wb`` n-grams of one (lower-cased) word, padded with a space each side; a word
    shorter than an n-gram counts once, as a whole (scikit-learn's ``_char_wb_ngrams``)."""
    padded = f" {word} "
    size = len(padded)
    out = []
    for n in range(low, high + 1):
        if n >= size:
            out.append(padded)
            break
        out.extend(padded[i:i + n] for i in range(size - n + 1))
    return out


@dataclass
class HashedCounts:
    """A batch's n-gram counts as compressed sparse rows: row ``i``'s columns are
    ``indices[indptr[i]:indptr[i + 1]]`` (ascending), its counts the same slice of ``data``."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]

    def row_numbers(self) -> np.ndarray:
        """The row of every stored value."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))

    def take(self, rows: np.ndarray) -> HashedCounts:
        """The given rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        picks = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return HashedCounts(indptr, self.indices[picks], self.data[picks], (len(rows), self.shape[1]))

    def with_data(self, data: np.ndarray) -> HashedCounts:
        """The same rows and columns with other values."""
        return HashedCounts(self.indptr, self.indices, data, self.shape)

    def to_csr(self) -> sp.csr_matrix:
        """The same counts as a SciPy matrix, for training (SciPy is imported here, not at serve time)."""
        import scipy.sparse as sp

        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)


class NgramCounter:
    """Counts hashed word and character n-grams; remembers each word's character columns.

    Not shared between threads without the caller's lock: the memory is a plain dict.
    """

    def __init__(self, word_width: int, char_width: int):
        self.word_width = word_width
        self.char_width = char_width
        self._char_columns: dict[str, bytes] = {}

    def __getstate__(self) -> dict[str, object]:
        return {"word_width": self.word_width, "char_width": self.char_width, "_char_columns": {}}

    def word_columns(self, text: str) -> np.ndarray:
        return columns(word_ngrams(text), self.word_width)

    def char_columns(self, text: str) -> np.ndarray:
        """Columns (before the word columns' offset) of the ``char_wb`` 3-5-grams of ``text``, lower-cased."""
        known = self._char_columns
        parts = []
        for word in text.lower().split():
            found = known.get(word)
            if found is None:
                if len(known) >= WORD_CACHE_SIZE:
                    known.clear()
                found = known[word] = array("i", [column(g, self.char_width) for g in char_wb_ngrams(word)]).tobytes()
            parts.append(found)
        return np.frombuffer(b"".join(parts), dtype=np.int32).astype(np.int64)

    def count(self, words: Sequence[str], chars: Sequence[str] | None) -> HashedCounts:
        """Counts of ``words[i]``'s word n-grams, then (offset by the word width) of ``chars[i]``'s
        character n-grams, per row; ``chars=None`` leaves the character columns empty."""
        width = self.word_width + self.char_width
        indices, counts = [], []
        for i, text in enumerate(words):
            found = self.word_columns(text)
            if chars is not None:
                found = np.concatenate([found, self.char_columns(chars[i]) + self.word_width])
            # One story's columns at a time: many small sorts cost less than one of the whole batch.
            unique, count = np.unique(found, return_counts=True)
            indices.append(unique)
            counts.append(count)
        indptr = np.zeros(len(indices) + 1, dtype=np.int64)
        np.cumsum([len(u) for u in indices], out=indptr[1:])
        if not indices:
            return HashedCounts(indptr, np.zeros(0, dtype=np.int32), np.zeros(0), (0, width))
        return HashedCounts(indptr, np.concatenate(indices).astype(np.int32),
                            np.concatenate(counts).astype(np.float64), (len(indices), width))
