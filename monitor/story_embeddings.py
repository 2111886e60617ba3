"""Sentence embeddings for story clustering, when the ``semantic`` extra is installed.

``[clustering] embeddings`` chooses: ``false`` (the default) never loads a
model; ``"auto"`` uses them when the extra is installed and words alone
otherwise; ``true`` requires the extra. They are opt-in because they cost
about 100 ms a story and 500 MB more (docs/clustering.md) for a gain on
independent reports only. Nothing here imports torch: the model
loads on the first story that needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import MonitorError

# Each story is embedded as its title and this many words of its text: the lead says
# who did what, where; more words cost more and the model reads 256 word pieces at most.
EMBEDDED_WORDS = 60
MODES = ("auto", "true", "false")

Embed = Callable[[Sequence[str]], Any]  # texts -> one unit-length vector (numpy row) per text


class EmbeddingsUnavailable(MonitorError):
    """``embeddings = true`` but the ``semantic`` extra is not installed."""


def embedding_mode(value: Any) -> str:
    """``"auto"``, ``"true"`` or ``"false"`` from a config value (a bool or one of those words)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    word = str(value).strip().lower()
    if word not in MODES:
        raise ValueError(f'must be true, false or "auto", got {value!r}')
    return word


def missing_embedding_requirements() -> list[str]:
    """The import names of the ``semantic`` extra that are not installed (empty when it is)."""
    from monitor_plugins.semantic_model import missing_requirements

    return missing_requirements()


def sentence_embedder(mode: str) -> Embed | None:
    """The embedding function for ``mode``, or ``None`` when clustering runs on words alone."""
    if mode == "false":
        return None
    from monitor_plugins.semantic_model import INSTALL_HINT, Embedder, missing_requirements

    if missing_requirements():
        if mode == "true":
            raise EmbeddingsUnavailable(f"clustering.embeddings = true needs the semantic extra: {INSTALL_HINT}")
        return None
    return Embedder().embed


def embedded_text(title: str, text: str) -> str:
    """What is embedded for a story (the semantic plugin's own choice of title and lead)."""
    from monitor_plugins.semantic_model import story_text

    return story_text(title, text, EMBEDDED_WORDS)
