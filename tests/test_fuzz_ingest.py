"""Hypothesis over parse -> bound -> normalise -> classify, with a time and memory bound per input.

The strategies and the property live in ``scripts/fuzz_ingest.py``; the long
run (``python scripts/fuzz_ingest.py --minutes 10``) adds loopback HTTP and
SQLite. Here a few dozen examples keep the suite fast.
"""

from __future__ import annotations

import sys

from hypothesis import HealthCheck, given, settings

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import fuzz_ingest  # noqa: E402

TOOLS = fuzz_ingest.tools()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(fuzz_ingest.documents(repeat=300, many=150))
def test_any_feed_like_input_is_read_or_rejected_within_bounds(doc):
    _fmt, media, body = doc
    outcome = fuzz_ingest.check_parse_path(TOOLS, media, body)
    assert outcome["entries"] <= fuzz_ingest.LIMITS.max_entries


def test_the_bounds_scale_with_the_input():
    assert fuzz_ingest.time_bound(10_000_000) > fuzz_ingest.time_bound(0)
    assert fuzz_ingest.memory_bound(10_000_000) > fuzz_ingest.memory_bound(0)
