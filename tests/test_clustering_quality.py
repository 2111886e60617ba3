"""Quality guard: the shipped clustering on the held-out half of the story-cluster dev corpus.

The shipped weights and threshold were fitted on half 0 of the gold stories
(bench/eval_clustering.py); half 1 was not used to fit them. These tests
fail when a change drops the figures clearly below what they are today.
"""

from __future__ import annotations

import pytest

from bench.eval_clustering import cluster_stream, half_of, read_corpus, score, singletons
from conftest import shared_corpus
from monitor.clustering import ClusterSettings

# subset: (B-cubed precision at least, B-cubed F1 at least); measured today minus a small margin.
FLOORS = {"allsides21": (0.97, 0.83), "basil": (0.98, 0.95), "neus": (0.955, 0.72)}


@pytest.fixture(scope="module")
def held_out():
    articles = read_corpus(shared_corpus("clustering", "dev.jsonl"))
    return [a for a in articles if half_of(a.gold) == 1]


@pytest.mark.slow
@pytest.mark.parametrize("subset", sorted(FLOORS))
def test_shipped_clustering_on_held_out_stories(held_out, subset):
    part = [a for a in held_out if a.subset == subset]
    gold = {a.id: a.gold for a in part}
    figures = score(cluster_stream(part, ClusterSettings()), gold)
    alone = score(singletons(part), gold)
    min_precision, min_f1 = FLOORS[subset]
    assert figures.bcubed_p >= min_precision, figures
    assert figures.bcubed_f1 >= min_f1, figures
    assert figures.bcubed_f1 > alone.bcubed_f1 + 0.15  # far above every article alone
