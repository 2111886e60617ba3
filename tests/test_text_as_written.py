"""Text as people write it: CJK without spaces between words, and mojibake from publishers."""

import json

import ftfy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import rss, shared_corpus
from monitor.normalize import _FTFY_CONFIG, html_to_text, repair_mojibake
from monitor.query import KeywordMatcher

# Headlines as the agencies published them (NHK, Xinhua, Yonhap, the Asahi).
JAPANESE = "北朝鮮が弾道ミサイルを発射 日本のEEZ外に落下か"
CHINESE = "朝鲜试射一枚弹道导弹"
KOREAN = "북한, 동해상으로 탄도미사일 발사…합참 \"비행거리 분석 중\""
UNRELATED = "天然ガス価格が上昇 電力各社に影響"

CJK_QUERIES = {
    "north_korea_ja": "北朝鮮",
    "north_korea_zh": "朝鲜 AND 导弹",
    "north_korea_ko": "북한 NEAR/12 미사일",
    "gas": "ガス",
    "dregs": "カス",
}


@pytest.mark.parametrize("title, expected", [
    (JAPANESE, {"north_korea_ja"}),
    (CHINESE, {"north_korea_zh"}),
    (KOREAN, {"north_korea_ko"}),
    (UNRELATED, {"gas"}),  # ガス, not カス: a voiced kana is not folded into the plain one
])
def test_cjk_queries_match_without_word_boundaries(title, expected):
    found = KeywordMatcher(CJK_QUERIES).match(title, "")
    assert set(found) == expected
    for name in expected:
        hit = found[name][1].hits[0]
        # Offsets index the title as written, so the snippet highlights the very characters.
        assert title[hit.start:hit.end] in CJK_QUERIES[name]


def test_a_japanese_summary_of_feed_length_is_not_an_aside():
    # 200 characters is about 100 words: a feed summary, not a long article with a passing mention.
    text = "政府は" + "北朝鮮" + "の発表について" + "関係各国と緊密に連携して情報の収集と分析を進めている。" * 7
    score, _ = KeywordMatcher({"nk": "北朝鮮"}).match("官房長官が会見", text)["nk"]
    assert score == 1.0


def test_mixed_latin_and_cjk_words_split_apart():
    found = KeywordMatcher({"kim": '"kim jong un"', "nk": "北朝鮮"}).match("Kim Jong Un北朝鮮総書記が視察", "")
    assert set(found) == {"kim", "nk"}


def test_watchlists_and_search_match_cjk_stories_end_to_end(feed_server, make_config, cli_run):
    url = feed_server.serve("/asia.xml", rss([
        {"title": JAPANESE, "link": "http://news.test/ja", "description": "防衛省 (Ministry of Defense) によりますと、午前7時ごろ発射されました。"},
        {"title": CHINESE, "link": "http://news.test/zh", "description": "据韩联社报道，朝鲜当天向朝鲜半岛东部海域发射。"},
        {"title": KOREAN, "link": "http://news.test/ko", "description": "합동참모본부는 이날 오전 북한이 발사했다고 밝혔다."},
        {"title": UNRELATED, "link": "http://news.test/gas", "description": "電力各社は料金の見直しを検討している。"},
    ]))
    path = make_config(
        "[alerts]\nnew_source_window = 0\n"
        f'[sources.asia]\nurl = "{url}"\n'
        '[watchlists.north_korea_cjk]\nquery = "北朝鮮 OR (朝鲜 NOT 朝鲜半岛) OR 북한"\n'
    )
    assert cli_run("once", "--config", path).exit_code == 0
    matched = cli_run("matches", "--config", path, "--watchlist", "north_korea_cjk", "--nl").output.splitlines()
    assert {json.loads(line)["url"] for line in matched} == {"http://news.test/ja", "http://news.test/ko"}

    found = cli_run("search", "--config", path, "北朝鮮").output
    assert JAPANESE in found and CHINESE not in found and UNRELATED not in found
    both = cli_run("search", "--config", path, "发射 朝鲜").output
    assert CHINESE in both and JAPANESE not in both
    assert "[발사]" in cli_run("search", "--config", path, "발사").output
    mixed = cli_run("search", "--config", path, "北朝鮮 defense").output
    assert JAPANESE in mixed
    assert cli_run("search", "--config", path, "北朝鮮 zeppelin").output.strip() == "No stories match."


# -- mojibake ------------------------------------------------------------------


def cp1252_mojibake(text: str) -> str:
    """What a publisher shows after decoding UTF-8 bytes as Windows-1252 (undefined bytes kept as C1 controls)."""
    return "".join(
        bytes([b]).decode("cp1252", errors="strict") if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else chr(b)
        for b in text.encode("utf-8")
    )


@pytest.mark.parametrize("written", [
    "Japan recalls envoys over new ‘comfort women’ statue in Busan",
    "The wartime “comfort women” — a statue near the Japanese Consul",
    "Kim Jong Un’s sister warns Seoul: “don’t misjudge”",
    "Café owner in Besançon fined €5,000 for naïve pricing",
])
def test_cp1252_mojibake_of_a_real_headline_is_repaired(written):
    garbled = cp1252_mojibake(written)
    assert garbled != written
    assert html_to_text(garbled) == written


def test_text_that_merely_looks_odd_is_left_alone():
    for text in ("naïve café ½ price", "“quoted” and ‘single’", "ﬁnance ＡＢＣ", "Straße", JAPANESE, KOREAN, CHINESE):
        assert html_to_text(text) == text


def test_real_mis_decoded_feed_is_stored_repaired(feed_server, make_config, cli_run):
    body = shared_corpus("feeds", "arminreiter__FeedReader", "Rss20JapanTimes.xml").read_bytes()
    assert "â€œcomfort womenâ€".encode() in body  # the publisher's mojibake, as served
    url = feed_server.serve("/japantimes.xml", body)
    path = make_config(f'[alerts]\nnew_source_window = 0\n[sources.japantimes]\nurl = "{url}"\n')
    assert cli_run("once", "--config", path).exit_code == 0
    out = cli_run("search", "--config", path, "--nl", "comfort women").output
    rows = [json.loads(line) for line in out.splitlines()]
    snippets = " ".join(row["snippet"] for row in rows)
    assert "“[comfort] [women]”" in snippets or "“[comfort women]”" in snippets
    assert "â€" not in snippets
    titles = cli_run("search", "--config", path, "--nl", "Fukushima").output
    assert "[Fukushima]’s radiation" in titles and "â€" not in titles


# -- the mojibake repair's shortcut ----------------------------------------------
# repair_mojibake skips ftfy for text that ftfy would return unchanged (its cost
# per line was most of normalisation); these check it skips nothing ftfy changes.

_ODD = ("ÃÂâ€œ™žŸšŠ\u00a0\u00ad°±²³µ·»¿×÷ØÙàáâäçèéêëìíîïñòóôöùúûüœŒ‚„†‡‰‹›"
        "вЂГўВβ€√≈\x81\x8d\x9d\x00\x07\x1b\x7f\ufeff\ufffc\u206a")
_mixed = st.text(alphabet=st.one_of(st.sampled_from(_ODD), st.sampled_from("ab Z.,!?\n\t-'\""),
                                    st.characters(max_codepoint=0x2fff)), max_size=120)


def _ftfy(value: str) -> str:
    """The repair without the shortcut (ASCII text was never given to ftfy)."""
    return value if value.isascii() else ftfy.fix_text(value, _FTFY_CONFIG)


def _mojibake_of(text: str, encoding: str) -> str:
    return text.encode("utf-8").decode(encoding, errors="replace")


@settings(max_examples=400, deadline=None)
@given(st.one_of(_mixed, st.builds(_mojibake_of, _mixed, st.sampled_from(["cp1252", "latin-1", "cp1251", "mac_roman", "cp437"])),
                 st.builds(lambda a, b: a + "\n" + b, _mixed, _mixed)))
def test_mojibake_repair_equals_ftfy_on_any_text(value):
    assert repair_mojibake(value) == _ftfy(value)


@pytest.mark.parametrize("value", [
    "ok.\nÃ and more",  # ftfy's only pattern anchored at a line's start
    "ok.\nÂ and more",
    "Â x",
    "voila Ã la carte",  # the pattern reaching furthest into ASCII around the odd character
    "plain words, then ‚Ä[",
    "x" * 40 + " café Ã© " + "y" * 40,
    "nothing odd but a\x00control character ’",
    "text with a byte order mark\ufeff ’",
])
def test_mojibake_repair_equals_ftfy_at_the_shortcuts_edges(value):
    assert repair_mojibake(value) == _ftfy(value)
