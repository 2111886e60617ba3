"""The news-monitor benchmark suite: how fast, how big, and against what.

Run it with ``python -m bench`` (see docs/bench.md). Nothing here is imported
by the monitor itself.
"""
