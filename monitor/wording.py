"""Counts in words: "1 story", "2 stories", "1 new story", "0 entries"."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` followed by ``word`` in the right number (``many`` for irregular plurals).

    The last word of ``word`` is inflected, so ``plural(2, "new story")`` is
    ``"2 new stories"``.
    """
    if count == 1:
        return f"{count} {word}"
    if many is None:
        head, _, last = word.rpartition(" ")
        many = (head + " " if head else "") + _plural_of(last)
    return f"{count} {many}"


def _plural_of(word: str) -> str:
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"
