"""Property-based tests of entry normalisation, and a fuzz run of the fetch-parse path."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import faults
from conftest import DATA, seed_rss
from faults import FaultServer
from monitor import EntryData, Monitor, Source, load_config
from monitor.normalize import (
    FUTURE_TOLERANCE,
    canonical_url,
    default_story_key,
    html_to_text,
    normalize_entry,
    tidy_text,
    to_utc,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SOURCE = Source("prop", "http://prop.test/feed")

any_datetime = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                 timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])),
)
text = st.one_of(st.none(), st.text(max_size=300), st.from_regex(r"<(p|b|script|div)>[^<]{0,40}</\1>&amp;[a-z]{0,5};?"))
entries = st.builds(
    EntryData, guid=text, link=st.one_of(st.none(), st.text(max_size=80), st.just("HTTP://Example.COM:80/a?utm_source=x&b=1#f")),
    title=text, summary=text, content=text, published=any_datetime, updated=any_datetime, author=text,
)


@given(any_datetime)
def test_dates_become_utc_and_never_far_future(value):
    result = to_utc(value, NOW)
    if result is not None:
        assert result.tzinfo is not None and result.utcoffset() == timedelta(0)
        assert result <= NOW + FUTURE_TOLERANCE
        assert result.year >= 1970 and result.microsecond == 0


@given(entries)
@settings(max_examples=300, deadline=None)
def test_any_entry_normalises_to_a_plain_story_with_a_stable_key(entry):
    story = normalize_entry(entry, SOURCE, NOW)
    assert story.title and "\n" not in story.title
    assert story.content_hash and len(story.content_hash) == 64
    assert not any(ch in story.text for ch in "\x00\x07\x1b")
    again = normalize_entry(entry, SOURCE, NOW)
    assert default_story_key(story, SOURCE) == default_story_key(again, SOURCE)
    assert default_story_key(story, SOURCE).split(":", 1)[0] in ("guid", "url", "hash")


@settings(deadline=None)  # ftfy's first call is slow on a loaded machine; the property is what counts
@given(st.text(max_size=400))
def test_tidy_text_is_idempotent(value):
    once = tidy_text(value)
    assert tidy_text(once) == once


@given(st.text(alphabet=st.characters(blacklist_characters="<>&"), max_size=200))
def test_plain_text_survives_html_to_text(value):
    assert html_to_text(value) == tidy_text(value)


@given(st.one_of(st.text(max_size=100), st.from_regex(r"https?://[A-Za-z0-9.]{1,20}(:[0-9]{1,5})?/[a-z/]{0,10}(\?[a-z_]{1,6}=[a-z0-9]{0,4}(&[a-z_]{1,6}=[a-z0-9]{0,4})*)?(#[a-z]*)?", fullmatch=True)))
def test_canonical_url_is_idempotent_and_never_raises(url):
    once = canonical_url(url)
    assert canonical_url(once) == once


# -- fuzz: random and mutated bytes served over HTTP, through fetch and parse -----

SAMPLES = [seed_rss(), (DATA / "truncated.xml").read_bytes(), (DATA / "duplicate_guids.xml").read_bytes(),
           b'{"version": "https://jsonfeed.org/version/1.1", "title": "j", "items": [{"id": "1", "content_text": "x"}]}']
CONTENT_TYPES = ["application/rss+xml", "application/atom+xml", "text/html", "application/json",
                 "application/feed+json", "text/plain", "application/octet-stream"]


def mutate(data: bytes, rnd: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rnd.randint(1, 20)):
        op = rnd.randrange(4)
        pos = rnd.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rnd.randrange(256)
        elif op == 1:
            data[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
        elif op == 2:
            del data[pos : pos + rnd.randint(1, 50)]
        else:
            data[pos:pos] = rnd.choice([b"<", b"&", b"]]>", b"<![CDATA[", b"\x1f\x8b", b"&#0;", b"\xff\xfe", b"{"])
    return bytes(data)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    server = FaultServer().start()
    folder = tmp_path_factory.mktemp("fuzz")
    config = folder / "monitor.toml"
    config.write_text(f'[monitor]\ndb = "{folder / "m.db"}"\nlog_level = "ERROR"\n'
                      f'[sources.fuzz]\nurl = "{server.url("/fuzz")}"\n', encoding="utf-8")
    monitor = Monitor.open(load_config(config))
    yield server, monitor
    monitor.close()
    server.stop()


@given(seed=st.integers(0, 2**32 - 1), raw=st.binary(max_size=300), use_raw=st.booleans(),
       content_type=st.sampled_from(CONTENT_TYPES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_bodies_never_escape_a_source_job(fuzz_target, seed, raw, use_raw, content_type):
    server, monitor = fuzz_target
    rnd = random.Random(seed)
    body = raw if use_raw else mutate(rnd.choice(SAMPLES), rnd)
    server.route("/fuzz", faults.feed(body, content_type))
    result = monitor.update_source("fuzz")
    assert not (result.error or "").startswith("internal error"), result.error
    row = monitor.store.source_row("fuzz")
    assert row["status"] in ("ok", "not_modified", "error")
    if row["status"] == "error":
        assert row["last_error"]
