"""Tests of monitor.query: the parser, the matcher, evidence and scoring."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import QuerySyntaxError
from monitor.letters import own_letters
from monitor.query import (And, KeywordMatcher, Near, Not, Or, Term, folded_words, normalize_word, parse_query,
                           spellings, tokenize)


def matches(query: str, title: str = "", text: str = "") -> bool:
    return "q" in KeywordMatcher({"q": query}).match(title, text)


def words(node: Term) -> list[str]:
    return [w + ("*" if prefix else "") for w, prefix in node.words]


# --- tokenising -------------------------------------------------------------


def test_tokenize_splits_on_non_alphanumerics_and_keeps_offsets():
    text = "Kim Jong-un's “envoy”, São Paulo"
    toks = tokenize(text)
    assert [t for t, _, _ in toks] == ["kim", "jong", "un", "s", "envoy", "sao", "paulo"]
    assert all(normalize_word(text[s:e]) == t for t, s, e in toks)


def test_normalize_folds_case_accents_and_ligatures():
    assert normalize_word("ÉCOLE") == "ecole"
    assert normalize_word("ﬁnance") == "finance"
    assert normalize_word("Cafe\u0301") == "cafe"


# --- parser -----------------------------------------------------------------


def test_parse_term_phrase_prefix():
    assert words(parse_query("trade")) == ["trade"]
    assert words(parse_query('"north korea"')) == ["north", "korea"]
    assert words(parse_query("abduct*")) == ["abduct*"]
    assert words(parse_query('"north korea*"')) == ["north", "korea*"]
    # A hyphenated word is a phrase: hyphen == space.
    assert words(parse_query("jong-un")) == ["jong", "un"]


def test_parse_boolean_operators_and_precedence():
    node = parse_query("a b OR c AND NOT d")
    assert isinstance(node, Or)
    left, right = node.children
    assert isinstance(left, And) and [words(c) for c in left.children] == [["a"], ["b"]]
    assert isinstance(right, And) and isinstance(right.children[1], Not)


def test_parse_minus_is_not_and_parentheses_group():
    node = parse_query("(a OR b) -c")
    assert isinstance(node, And)
    assert isinstance(node.children[0], Or)
    assert isinstance(node.children[1], Not) and words(node.children[1].child) == ["c"]


def test_parse_near_binds_tighter_than_and():
    node = parse_query('x abduct* NEAR/5 ("north korea*" OR japan)')
    assert isinstance(node, And)
    near = node.children[1]
    assert isinstance(near, Near) and near.distance == 5 and isinstance(near.right, Or)


def test_lowercase_keywords_are_words():
    node = parse_query("trade and tariffs")
    assert isinstance(node, And) and [words(c) for c in node.children] == [["trade"], ["and"], ["tariffs"]]


def test_field_and_weight():
    node = parse_query('title:trade text:"free trade"^2.5 title:(wto OR gatt)')
    assert isinstance(node, And)
    first, second, group = node.children
    assert first.field == "title" and second.field == "text" and second.weight == 2.5
    assert all(child.field == "title" for child in group.children)


@pytest.mark.parametrize(
    ("query", "position"),
    [
        ("", 0),
        ("   ", 0),
        ("(trade OR tariff", 0),
        ("trade)", 5),
        ('"north korea', 0),
        ("trade AND", 6),
        ("trade OR", 6),
        ("OR trade", 0),
        ("trade AND OR tariff", 10),
        ("a NEAR b", 2),
        ("a NEAR/ b", 2),
        ("*", 0),
        ('"*"', 0),
        ("a *", 2),
        ("NOT trade", 0),
        ("-trade", 0),
        ("trade OR NOT tariff", 9),
        ("()", 1),
        ("a NEAR/3 (b AND c)", 10),
        ("a NEAR/3 NOT b", 9),
        ("trade NOT", 6),
        ("a ^2", 2),
    ],
)
def test_syntax_errors_have_positions(query, position):
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    assert info.value.position == position
    assert info.value.query == query
    assert f"at position {position}" in str(info.value)


def test_matcher_reports_bad_query():
    with pytest.raises(QuerySyntaxError):
        KeywordMatcher({"ok": "trade", "bad": "(trade"})


# --- matching ---------------------------------------------------------------


def test_word_boundaries():
    assert matches("trade", text="Trade talks resumed.")
    assert not matches("trade", text="A trader and a tradesman met.")
    assert matches("trade*", text="A trader met.")
    assert matches("trade*", text="A tradesman met.")
    assert not matches("trade*", text="Untraded goods.")


def test_phrase_and_hyphen_normalisation():
    for text in ("Kim Jong-un spoke", "KIM JONG UN spoke", "kim jong‑un spoke"):
        assert matches('"kim jong-un"', text=text)
    assert not matches('"kim jong-un"', text="Kim met Jong Un")
    assert matches('"north korea*"', text="North Korean officials")
    assert not matches('"north korea"', text="North Korean officials")
    assert matches("japan", text="Japan’s abductees")


def test_and_or_not():
    assert matches("trade tariff", text="trade and tariff")
    assert not matches("trade tariff", text="trade only")
    assert matches("trade OR tariff", text="tariff only")
    assert matches("trade -show", text="trade policy")
    assert not matches("trade -show", text="trade show")
    assert not matches('trade NOT "trade show"', text="a trade show")


def test_near_both_orders_and_distance_limit():
    q = "abduct* NEAR/3 japan*"
    assert matches(q, text="abducted three young Japanese")
    assert matches(q, text="Japanese citizens were abducted")
    assert not matches(q, text="abducted one two three four Japanese")
    assert matches("a NEAR/0 b", text="b a")
    assert not matches("a NEAR/0 b", text="a x b")
    # NEAR does not cross from title to text.
    assert not matches("a NEAR/5 b", title="a", text="b")


def test_near_with_phrases_and_groups():
    q = '(abduct* OR kidnap*) NEAR/4 ("north korea*" OR pyongyang)'
    assert matches(q, text="citizens kidnapped by North Korean agents")
    assert matches(q, text="Pyongyang admitted abducting them")
    assert not matches(q, text="kidnapped in Iraq, far away from all the news of North Korea")


def test_field_restriction():
    assert matches("title:trade", title="Trade news", text="")
    assert not matches("title:trade", title="News", text="trade")
    assert matches("x NOT title:(dollar OR stocks)", title="Deficit", text="x")
    assert not matches("x NOT title:(dollar OR stocks)", title="Dollar falls", text="x")


def test_no_match_returns_nothing():
    assert KeywordMatcher({"q": "trade"}).match("", "") == {}
    assert KeywordMatcher({}).match("trade", "trade") == {}


# --- evidence ---------------------------------------------------------------


def test_hit_offsets_point_into_original_strings():
    title = "N. Korea’s KIM JONG-UN meets envoy"
    text = "Talks on trade. Pyongyang said Kim Jong Un was pleased; trade deficits widened."
    m = KeywordMatcher({"nk": '"n korea*" OR "kim jong-un" OR pyongyang', "tr": '"trade deficit*" OR trade'})
    result = m.match(title, text)
    sources = {"title": title, "text": text}
    for _, evidence in result.values():
        for hit in evidence.hits:
            surface = sources[hit.field][hit.start : hit.end]
            want = parse_query(f'"{hit.term}"') if hit.term.count(" ") else parse_query(hit.term)
            got = [w for w, _, _ in tokenize(surface)]
            assert len(got) == len(want.words)
            assert all(g.startswith(w) if p else g == w for g, (w, p) in zip(got, want.words))
    nk_hits = {(h.field, sources[h.field][h.start : h.end]) for h in result["nk"][1].hits}
    assert nk_hits == {("title", "N. Korea"), ("title", "KIM JONG-UN"), ("text", "Pyongyang"), ("text", "Kim Jong Un")}
    assert set(result["nk"][1].terms) == {"n korea*", "kim jong-un", "pyongyang"}


def test_not_and_unmatched_or_branches_give_no_hits():
    result = KeywordMatcher({"q": "trade OR tariff NOT show"}).match("", "trade here, no tariffs")
    assert [h.term for h in result["q"][1].hits] == ["trade"]


def test_near_hits_are_only_the_close_pairs():
    text = "abducted long ago and far away in a story told again. Later: Japanese abducted."
    result = KeywordMatcher({"q": "abduct* NEAR/2 japan*"}).match("", text)
    spans = [text[h.start : h.end] for h in result["q"][1].hits]
    assert spans == ["Japanese", "abducted"]
    assert result["q"][1].hits[1].start == text.rindex("abducted")


def test_snippet_highlights_the_text_hits():
    filler = "Lorem ipsum dolor sit amet. " * 30
    text = filler + "The trade deficit widened as tariffs rose. " + filler
    _, evidence = KeywordMatcher({"q": '"trade deficit" OR tariff*'}).match("", text)["q"]
    snippet = evidence.snippet
    assert len(snippet.text) <= 260
    assert snippet.text.startswith("…") and snippet.text.endswith("…")
    assert [snippet.text[s:e] for s, e in snippet.highlights] == ["trade deficit", "tariffs"]
    assert "[trade deficit] widened as [tariffs]" in snippet.marked()


def test_snippet_falls_back_to_title():
    _, evidence = KeywordMatcher({"q": "tariff*"}).match("Tariffs rise", "Nothing here.")["q"]
    assert evidence.snippet.text == "Tariffs rise"
    assert evidence.snippet.highlights == ((0, 7),)


def test_snippet_prefers_window_with_most_distinct_terms():
    text = "tariff " + "x " * 200 + "tariff and quota together"
    _, evidence = KeywordMatcher({"q": "tariff OR quota"}).match("", text)["q"]
    assert "tariff and quota together" in evidence.snippet.text
    assert len(evidence.snippet.highlights) == 2


# --- scoring ----------------------------------------------------------------


def test_score_rule_and_title_weight():
    m = KeywordMatcher({"q": "trade"})
    assert m.match("", "trade")["q"][0] == 1.0
    assert m.match("trade", "")["q"][0] == pytest.approx(math.log2(3))
    assert m.match("", "trade trade trade")["q"][0] == 2.0
    heavy = KeywordMatcher({"q": "trade"}, title_weight=7.0)
    assert heavy.match("trade", "")["q"][0] == 3.0
    per_query = KeywordMatcher({"q": "trade", "r": "trade"}, title_weights={"r": 1.0})
    result = per_query.match("trade", "")
    assert result["q"][0] > result["r"][0] == 1.0


def test_story_about_topic_outscores_passing_mention():
    m = KeywordMatcher({"q": 'tariff* OR "trade deficit" OR wto'})
    passing = m.match("Carmaker profits rise", "Profits rose; tariffs were mentioned once.")["q"][0]
    about = m.match(
        "WTO rules on steel tariffs",
        "The WTO ruled that the steel tariffs broke its rules; the tariffs widened the trade deficit.",
    )["q"][0]
    assert about > 2 * passing


# A full-length article: a lead paragraph about a carmaker, then many more
# paragraphs about it. Every sentence is different, as in a real story.
LEAD = (
    "Northfield Motors reported a third-quarter profit of 412 million dollars on Tuesday, "
    "up from 380 million a year earlier, as demand for its pickup trucks and sport utility "
    "vehicles held up better than analysts had expected across its home market."
)
BODY = " ".join(
    f"In paragraph {n} the company described plant number {n}, which employs {100 + n} workers "
    f"and built {2000 + 7 * n} vehicles in the quarter, {n % 5 + 1} percent more than planned."
    for n in range(1, 40)
)


def test_passing_mention_deep_in_a_long_article_stays_below_threshold():
    m = KeywordMatcher({"trade": 'tariff* OR "trade war*"'})
    assert len(tokenize(LEAD + BODY)) > 600
    aside = " Executives said tariffs had not affected the quarter."
    deep = m.match("Northfield Motors profit rises", LEAD + " " + BODY + aside)["trade"][0]
    assert deep < 1.0
    # One mention in the lead of a long article is still one mention: an aside.
    lead = m.match("Northfield Motors profit rises", LEAD + aside + " " + BODY)["trade"][0]
    assert lead == 0.5
    # Without the aside rule the lead mention would count in full.
    flat = KeywordMatcher({"trade": 'tariff* OR "trade war*"'}, aside_words=0)
    assert flat.match("Northfield Motors profit rises", LEAD + aside + " " + BODY)["trade"][0] == 1.0


def test_a_long_article_that_names_its_topic_twice_or_in_the_title_is_not_an_aside():
    m = KeywordMatcher({"trade": 'tariff* OR "trade war*"'})
    aside = " Executives said tariffs had not affected the quarter."
    twice = m.match("Northfield Motors profit rises", LEAD + aside + " " + BODY + aside)["trade"][0]
    assert twice == pytest.approx(math.log2(2.5))
    titled = m.match("Northfield Motors hit by tariffs", LEAD + " " + BODY + aside)["trade"][0]
    assert titled == pytest.approx(math.log2(3.5))
    # A NEAR pair is one occurrence, however many terms it joins.
    pair = KeywordMatcher({"abductions": "abduct* NEAR/5 pyongyang"})
    clause = " Pyongyang has admitted abducting Japanese citizens decades ago."
    assert pair.match("Missile test", LEAD + " " + BODY + clause)["abductions"][0] == pytest.approx(math.log2(1.5))
    assert pair.match("Missile test", LEAD + clause)["abductions"][0] == 2.0  # a feed-sized story


def test_a_feed_sized_story_is_never_an_aside():
    m = KeywordMatcher({"trade": "tariff*"})
    assert m.match("Carmaker profits rise", LEAD + " Tariffs were mentioned once.")["trade"][0] == 1.0


def test_feed_sized_story_scores_as_without_the_lead_rule():
    story = ("Carmakers warned on Tuesday that new steel tariffs would raise prices, and "
             "officials said the tariffs could start a trade war with Europe.")
    assert len(tokenize(story)) < 60
    shipped = KeywordMatcher({"q": 'tariff* OR "trade war*"'})
    flat = KeywordMatcher({"q": 'tariff* OR "trade war*"'}, deep_weight=1.0)
    assert shipped.match("Steel tariffs", story)["q"][0] == flat.match("Steel tariffs", story)["q"][0]
    assert shipped.match("Steel tariffs", story)["q"][0] == pytest.approx(math.log2(5) + 1.0)


def test_a_story_about_the_topic_still_matches_when_its_hits_are_deep():
    m = KeywordMatcher({"trade": 'tariff* OR "trade war*" OR wto'})
    section = " The WTO was asked to rule on the tariffs, and both sides warned of a trade war."
    score, evidence = m.match("Northfield Motors profit rises", LEAD + " " + BODY + section)["trade"]
    assert score == pytest.approx(3 * math.log2(1.5))  # three distinct terms, each counted 0.5
    assert score >= 1.0
    assert set(evidence.terms) == {"tariff*", "trade war*", "wto"}
    assert "WTO" in evidence.snippet.text  # the snippet shows the deep passage


def test_lead_length_and_deep_weight_are_settings():
    aside = " Executives said tariffs had not affected the quarter."
    text = LEAD + " " + BODY + aside
    assert KeywordMatcher({"q": "tariff*"}, deep_weight=1.0).match("", text)["q"][0] == 1.0
    assert KeywordMatcher({"q": "tariff*"}, lead_words=10_000, aside_words=0).match("", text)["q"][0] == 1.0
    assert KeywordMatcher({"q": "tariff*"}, lead_words=10_000).match("", text)["q"][0] == 0.5
    assert KeywordMatcher({"q": "tariff*"}, aside_words=10_000).match("", text)["q"][0] == pytest.approx(math.log2(1.5))
    assert (KeywordMatcher({"q": "tariff*"}, deep_weight=0.25).match("", text)["q"][0]
            == pytest.approx(0.25 * math.log2(1.25), abs=1e-6))
    with pytest.raises(ValueError, match="deep_weight"):
        KeywordMatcher({"q": "tariff*"}, deep_weight=1.5)
    with pytest.raises(ValueError, match="aside_words"):
        KeywordMatcher({"q": "tariff*"}, aside_words=-1)


def test_a_deep_hit_ranks_below_a_lead_hit_in_the_evidence():
    m = KeywordMatcher({"q": "wto OR tariff*"})
    text = LEAD + " The WTO said nothing. " + BODY + " Tariffs were discussed."
    _, evidence = m.match("", text)["q"]
    assert evidence.terms == ("wto", "tariff*")


def test_term_weight():
    m = KeywordMatcher({"q": "wto^2 OR trade^0.5"})
    assert m.match("", "wto")["q"][0] == 2.0
    assert m.match("", "trade")["q"][0] == 0.5


# --- many watchlists in one matcher ----------------------------------------


def test_hundred_watchlists_compile_into_one_matcher():
    queries = {f"w{i}": f'"topic{i} alpha" OR (word{i} NEAR/2 shared*) OR title:only{i}' for i in range(100)}
    queries["neg"] = "shared NOT word7"
    m = KeywordMatcher(queries)
    result = m.match("only42 headline", "topic17 alpha; word7 sharedthing; shared")
    assert set(result) == {"w17", "w7", "w42"}
    assert result["w7"][1].terms == ("shared*", "word7")
    assert set(m.match("", "shared")) == {"neg"}
    assert m.match("", "topic17 beta") == {}


# --- properties -------------------------------------------------------------

_word = st.text(st.characters(categories=("Lu", "Ll", "Nd")), min_size=1, max_size=8)
_sep = st.sampled_from([" ", "-", "’", "'", ", ", "\n", "  ", "—", "."])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_word, _sep), min_size=1, max_size=30), st.integers(0, 29), st.booleans())
def test_hits_slice_to_the_term(pieces, pick, use_prefix):
    text = "".join(w + s for w, s in pieces)
    target = normalize_word(pieces[pick % len(pieces)][0])
    if not target:
        return
    query = target[:2] + "*" if use_prefix else target
    if any(c.isspace() for c in query):
        return
    try:
        node = parse_query(query)
    except QuerySyntaxError:
        return  # a word that folds into several tokens or none
    result = KeywordMatcher({"q": query}).match("", text)
    assert "q" in result
    for hit in result["q"][1].hits:
        got = [w for w, _, _ in tokenize(text[hit.start : hit.end])]
        want = node.words
        assert len(got) == len(want)
        assert all(g.startswith(w) if p else g == w for g, (w, p) in zip(got, want))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.text(max_size=60))
def test_snippet_highlights_stay_inside_snippet(text, title):
    m = KeywordMatcher({"q": "a* OR e* OR 1*"})
    for _, evidence in m.match(title, text).values():
        snippet = evidence.snippet
        for start, end in snippet.highlights:
            assert 0 <= start < end <= len(snippet.text)
            assert tokenize(snippet.text[start:end])


# -- what matching skips for speed --------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.text(alphabet="abc ÉéßİıÅ北朝鮮ガ’-_½ﬁ\u0301\n", max_size=200)))
def test_folded_words_are_the_words_of_tokenize(text):
    assert folded_words(text) == [word for word, _, _ in tokenize(text)]


def test_min_scores_leave_out_weak_matches_and_keep_the_rest_as_they_were():
    matcher = KeywordMatcher({"trade": "trade OR tariff*", "korea": '"north korea" OR pyongyang'})
    title, text = "Tariffs rise again", "Trade talks stalled as tariffs rose; Pyongyang said nothing."
    everything = matcher.match(title, text)
    assert set(everything) == {"trade", "korea"}
    wanted = {"trade": everything["trade"][0], "korea": everything["korea"][0] + 0.01}
    assert matcher.match(title, text, min_scores=wanted) == {"trade": everything["trade"]}
    assert matcher.match(title, text, min_scores={}) == everything


# -- letters of their own ------------------------------------------------------


def test_a_swedish_word_is_not_the_folded_english_acronym():
    matcher = KeywordMatcher({"trade": "gatt"})
    assert matcher.match("Priserna har gått upp", "", language="sv") == {}
    assert matcher.match("Priserna har gått upp", "", language="sv-SE") == {}
    # The acronym itself, in any language's story, and any story whose language is unknown, as before.
    assert "trade" in matcher.match("GATT-förhandlingarna fortsätter", "", language="sv")
    assert "trade" in matcher.match("Priserna har gått upp", "")


def test_a_query_word_with_its_own_letter_matches_both_spellings():
    matcher = KeywordMatcher({"city": "malmö", "spain": '"españa"'})
    swedish = matcher.match("Hamnen i Malmö växer", "", language="sv")
    [hit] = swedish["city"][1].hits
    assert (hit.start, hit.end) == (9, 14)
    assert "city" in matcher.match("Malmo port expands", "", language="en")
    assert "city" in matcher.match("Malmö port expands", "", language="en")
    assert "spain" in matcher.match("El año de España", "", language="es")
    assert "spain" in matcher.match("Espana wins", "", language="es")


def test_a_word_with_its_own_letter_matches_in_its_own_spelling_inside_an_or():
    # An OR skips the terms whose first word did not occur; it looked only at the folded spelling.
    matcher = KeywordMatcher({"city": "malmö OR stockholm", "prices": "gått OR xyzzy"})
    assert set(matcher.match("Hamnen i Malmö växer", "Priserna har gått upp", language="sv")) == {"city", "prices"}
    assert set(matcher.match("Malmo port expands", "", language="en")) == {"city"}


def test_marks_that_are_accents_in_the_story_language_still_fold():
    matcher = KeywordMatcher({"cafe": "cafe", "spain": "ano"})
    assert "cafe" in matcher.match("Ett café i Malmö", "", language="sv")
    assert "cafe" in matcher.match("Un café à Paris", "", language="fr")
    assert matcher.match("El año", "", language="es") == {}
    assert "spain" in matcher.match("El año", "", language="fr")


def test_spellings_of_a_query_word():
    assert spellings("gatt") == ()
    assert spellings("Malmö") == ("malmö",)
    assert spellings("naïve") == ()
    assert spellings("café") == ("café",)  # Icelandic é is a letter of its own
    assert normalize_word("Gått", own_letters("sv")) == "gått"
    assert normalize_word("Gått") == "gatt"


def test_one_watchlists_spelling_never_counts_for_another():
    # Every watchlist is compiled into one matcher: "gått" in one must not make "gatt" in another match.
    matcher = KeywordMatcher({"trade": "gatt priserna", "prices": "priserna NOT gatt", "swe": "gått"})
    found = matcher.match("Priserna har gått upp i Malmö", "", language="sv")
    assert sorted(found) == ["prices", "swe"]
    alone = KeywordMatcher({"trade": "gatt priserna"}).match("Priserna har gått upp i Malmö", "", language="sv")
    assert alone == {}
    # In an English story GATT is GATT for both spellings.
    assert sorted(matcher.match("GATT talks: priserna", "", language="en")) == ["swe", "trade"]


def test_romanian_comma_and_cedilla_letters_are_one_letter_and_three_letter_codes_count():
    matcher = KeywordMatcher({"city": "timișoara"})
    assert "city" in matcher.match("Protest la Timişoara", "", language="ro")  # cedilla, as many keyboards type it
    assert "city" in matcher.match("Protest la Timișoara", "", language="ro")
    assert own_letters("swe") == own_letters("sv") and own_letters("SV_se") == own_letters("sv")


@pytest.mark.parametrize("language", ["tr", "az", "tur", None])
def test_dotted_and_dotless_i_are_one_letter_in_turkish_capitals_and_lower_case(language):
    # casefold() knows only I -> i: a Turkish headline in capitals (IŞIK, "light") was not the ışık
    # of its text, and ILIK (lukewarm, ılık) was not ılık. Matching folds ı and i together.
    matcher = KeywordMatcher({"city": "istanbul", "light": "ışık", "warm": '"ılık su"', "izmir": "izmir"})
    for title in ("İSTANBUL'DA YAĞMUR", "İstanbul'da yağmur", "Istanbul rains", "ıstanbul"):
        assert "city" in matcher.match(title, "", language=language), title
    for title in ("IŞIK KESİLDİ", "Işık kesildi", "ışık kesildi", "isik"):
        assert "light" in matcher.match(title, "", language=language), title
    for title in ("ILIK SU", "Ilık su", "ılık su", "ilik su"):  # lenient: ilik (marrow) is one spelling with it
        assert "warm" in matcher.match(title, "", language=language), title
    assert "izmir" in matcher.match("İZMİR'DE DEPREM", "", language=language)
    # Offsets index the story as written, though İ folds to two characters.
    [hit] = matcher.match("Yağmur İSTANBUL'DA", "", language=language)["city"][1].hits
    assert (hit.start, hit.end) == (7, 15)
