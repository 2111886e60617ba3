"""The feedback store: one verdict per story and watchlist, refused when it names nothing stored."""

from __future__ import annotations

import pytest

from conftest import rss, seed_rss
from monitor.feedback import Feedback, FeedbackError, feedback_from, record_feedback
from monitor.health import readiness


@pytest.fixture
def polled(open_monitor, feed_server):
    feed_server.serve("/feed.xml", seed_rss(feed_server.base))
    feed_server.serve("/weather.xml", rss([{"title": "Rain expected in Lisbon", "guid": "w1",
                                            "description": "Showers all week along the coast."}]))
    monitor = open_monitor(f'[sources.wire]\nurl = "{feed_server.url("/feed.xml")}"\n'
                           f'[sources.weather]\nurl = "{feed_server.url("/weather.xml")}"\n')
    monitor.run_once(deliver=False)
    return monitor


def test_a_verdict_is_stored_and_replaced_when_given_again(polled) -> None:
    store = polled.store
    story_id = store.query("SELECT story_id FROM matches WHERE watchlist = 'trade'")[0]["story_id"]
    names = list(polled.config.watchlists)
    first = record_feedback(store, Feedback(story_id, "trade", "wrong"), names)
    again = record_feedback(store, Feedback(story_id, "trade", "right", note="on reflection"), names)
    assert first == again
    rows = store.feedback_rows(story_id=story_id)
    assert [(r["watchlist"], r["verdict"], r["note"]) for r in rows] == [("trade", "right", "on reflection")]


@pytest.mark.parametrize("change, message", [
    ({"verdict": "maybe"}, "unknown verdict 'maybe'"),
    ({"watchlist": "weather"}, "no watchlist named 'weather'"),
    ({"story_id": "nope"}, "no stored story with id 'nope'"),
])
def test_a_verdict_naming_nothing_stored_is_refused(polled, change: dict, message: str) -> None:
    story_id = polled.store.query("SELECT story_id FROM matches LIMIT 1")[0]["story_id"]
    fields = {"story_id": story_id, "watchlist": "trade", "verdict": "wrong", **change}
    with pytest.raises(FeedbackError, match=message):
        record_feedback(polled.store, Feedback(**fields), list(polled.config.watchlists))
    assert polled.store.query("SELECT count(*) AS n FROM feedback")[0]["n"] == 0


def test_right_or_wrong_needs_a_match_and_missed_does_not(polled) -> None:
    store = polled.store
    names = list(polled.config.watchlists)
    story_id = store.query("SELECT id FROM stories WHERE source = 'weather'")[0]["id"]
    with pytest.raises(FeedbackError, match="say 'missed'"):
        record_feedback(store, Feedback(story_id, "trade", "wrong"), names)
    record_feedback(store, Feedback(story_id, "trade", "missed"), names)
    assert store.feedback_rows(watchlist="trade")[0]["verdict"] == "missed"


def test_readiness_names_a_migration_not_applied(polled) -> None:
    polled.store.db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm012_feedback'")
    polled.store.db.conn.commit()
    state = readiness(polled.config)
    assert not state.ready and state.checks["migrations"] == "not applied: m012_feedback"


def test_the_form_and_the_api_give_a_verdict_through_one_reader() -> None:
    given = feedback_from({"story_id": "s1", "watchlist": "trade", "verdict": "wrong", "note": "x" * 600}, "api")
    assert given == Feedback("s1", "trade", "wrong", note="x" * 500, origin="api")
    assert given.id is None and given.match_id is None  # not stored yet: the stored fields come from the store
    for fields in ({"story_id": "s1", "watchlist": "trade"}, {"story_id": "s1", "watchlist": 3, "verdict": "wrong"}):
        with pytest.raises(FeedbackError, match="expected story_id, watchlist and verdict, each a non-empty string"):
            feedback_from(fields, "web")
