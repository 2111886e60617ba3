"""The learned classifier: shipped models, `monitor train`, feedback, fallback to the query."""

from __future__ import annotations

import json
import logging
import pickle
import re
import sqlite3
import subprocess
import sys

import pytest

from conftest import ROOT, shared_corpus
from monitor import Story, load_config
from monitor.cli import _register_plugin_commands
from monitor.store import Store
from monitor_plugins.learned import LearnedClassifier, shipped_model_path, shipped_names
from monitor_plugins.learned_model import (
    FORMAT,
    Example,
    Figures,
    ModelLoadError,
    adjust,
    cross_validate,
    dump_model,
    load_model,
    train,
)

_register_plugin_commands()  # what main() does before running the CLI: adds `train`

# A small topic for a user's watchlist: stories about bees and beekeeping.
BEES = [
    ("Beekeepers report hive losses after cold winter", "Colonies of honey bees died across the region."),
    ("Honey harvest down as bees struggle", "Apiarists blame mites and a wet summer for a poor honey crop."),
    ("City rooftops host beehives", "Office buildings keep bee colonies to help pollinators."),
    ("Wild bee species declining, study finds", "Bumblebees and solitary bees are losing their habitats."),
    ("Varroa mite spreads to new apiaries", "Beekeepers are treating hives against the parasite."),
    ("Queen bee breeding programme launched", "A new apiary will rear queens resistant to disease."),
    ("Pesticide ban welcomed by beekeepers", "Neonicotinoids harm honey bees, the beekeepers' union said."),
    ("Swarm of bees closes shopping street", "A beekeeper collected the swarm from a lamp post."),
    ("Bee pollination worth billions to farmers", "Orchards depend on honey bees and wild bees to set fruit."),
    ("Hive theft on the rise in almond country", "Thieves stole hundreds of beehives rented for pollination."),
]
OTHER = [
    ("Council approves new bus lanes", "Buses will get priority on three main roads."),
    ("Football club signs striker", "The striker joins on a three-year contract."),
    ("Bakery wins bread award", "The sourdough loaf took first prize."),
    ("Storm cuts power to thousands", "Engineers worked overnight to restore supply."),
    ("Library extends opening hours", "The central library will open on Sundays."),
    ("Bank raises interest rates", "Mortgage costs are set to rise."),
    ("New museum wing opens", "The gallery shows modern sculpture."),
    ("Hospital waiting lists grow", "Patients wait longer for operations."),
    ("School results improve", "More pupils passed their exams this year."),
    ("Train strike called off", "Unions accepted the pay offer."),
    ("Film festival announces line-up", "Forty films will be shown over ten days."),
    ("Airport expansion approved", "A third runway will be built."),
    # The query's word in another sense: the model learns to overrule it.
    ("National spelling bee final held in Washington", "Eleven-year-old speller wins the spelling bee trophy."),
    ("Spelling bee returns to school hall", "Pupils competed in the annual spelling bee."),
    ("County spelling bee crowns champion", "The spelling bee went to twenty rounds."),
]
BEE_CONFIG = '[watchlists.bees]\nquery = "bee OR bees OR beekeeper*"\n'


def _write_examples(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def bee_rows(extra_negatives: int = len(OTHER)):
    rows = [{"title": t, "summary": s, "labels": ["bees"]} for t, s in BEES]
    rows += [{"title": t, "text": s, "labels": []} for t, s in OTHER[:extra_negatives]]
    return rows


# -- the model -------------------------------------------------------------------


def bee_examples():
    return ([Example(t, s, True) for t, s in BEES] + [Example(t, s, False) for t, s in OTHER])


def test_model_round_trips_through_its_file_format_and_pickle():
    model = train("bees", "bee OR bees", bee_examples())
    again = load_model(dump_model(model))
    docs = [("Bees swarm in park", "A beekeeper came."), ("Bus lanes approved", "Buses.")]
    assert [round(p, 6) for p, _ in again.predict(docs)] == [round(p, 6) for p, _ in model.predict(docs)]
    unpickled = pickle.loads(pickle.dumps(model))
    assert [round(p, 6) for p, _ in unpickled.predict(docs)] == [round(p, 6) for p, _ in model.predict(docs)]
    yes, no = model.predict(docs)
    assert yes[0] >= model.cutoff > no[0]
    assert "bees" in model.top_words(*docs[0]) or "beekeeper" in model.top_words(*docs[0])


@pytest.mark.parametrize("data, reason", [
    (b"", "not a readable model"),
    (b"PK\x03\x04 truncated zip", "not a readable model"),
    (b"\x00" * 100, "not an .npz archive"),
])
def test_corrupt_model_bytes_raise_one_clear_error(data, reason):
    with pytest.raises(ModelLoadError, match=reason):
        load_model(data)


def test_a_model_from_another_format_or_sklearn_major_is_refused():
    import io

    import numpy as np

    model = train("bees", None, bee_examples())
    for change, reason in (({"format": FORMAT + 1}, "model format"), ({"sklearn": "0.24.2"}, "scikit-learn 0.24.2")):
        with np.load(io.BytesIO(dump_model(model))) as arrays:
            parts = {k: arrays[k] for k in arrays.files}
        header = json.loads(bytes(parts["header"]).decode())
        header.update(change)
        parts["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **parts)
        with pytest.raises(ModelLoadError, match=reason):
            load_model(buffer.getvalue())


def test_hit_features_say_where_the_query_hit_and_a_story_with_the_hit_in_its_lead_scores_higher():
    from monitor_plugins.learned_model import Featurizer, hit_features

    featurizer = Featurizer("tariff* OR \"trade war\"")
    lead = ("Steel talks resume", "Tariffs on steel rise again. Ministers met in Geneva. The talks go on.")
    aside = ("Steel talks resume", "Ministers met in Geneva. The talks go on. Tariffs on steel rise again.")
    titled = ("Tariffs on steel rise", "Ministers met in Geneva.")
    (_, in_lead), (_, late), (_, in_title) = featurizer.query_scores([lead, aside, titled])
    assert hit_features(in_lead, lead[1]) == [0.0, 1.0, 1.0, 0.25]
    assert hit_features(late, aside[1]) == [0.0, 0.0, 1 / 3, 0.25]  # two sentences before the hit
    assert hit_features(in_title, titled[1])[:3] == [1.0, 0.0, 0.0]
    assert hit_features(None, "no hit") == [0.0] * 4


def test_a_model_stored_before_the_hit_features_still_loads_and_decides_the_same():
    import io

    import numpy as np

    from monitor_plugins.learned_model import Featurizer, LearnedModel

    current = train("bees", "bee OR bees", bee_examples())
    # The layout of a file written before the hit features: three query columns, no "query_features" key.
    older = LearnedModel("bees", Featurizer("bee OR bees", current.featurizer.idf, hits=False),
                         current.coef[:-4].copy(), current.intercept, current.platt, current.cutoff)
    with np.load(io.BytesIO(dump_model(older))) as arrays:
        parts = {k: arrays[k] for k in arrays.files}
    header = json.loads(bytes(parts["header"]).decode())
    del header["query_features"]
    parts["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **parts)
    loaded = load_model(buffer.getvalue())
    docs = [("Bees swarm in park", "A beekeeper came."), ("Bus lanes approved", "Buses.")]
    assert loaded.featurizer.hits is False
    assert [round(p, 6) for p, _ in loaded.predict(docs)] == [round(p, 6) for p, _ in older.predict(docs)]


def test_the_operating_point_is_the_best_f1_cutoff_that_keeps_the_precision_asked_for():
    import numpy as np

    from monitor_plugins.learned_model import _best_cutoff

    # Ten on topic, ten off (probabilities off the 0.025 grid of cutoffs tried).
    targets = np.array([1] * 10 + [0] * 10)
    clean = np.array([0.95] * 8 + [0.41, 0.41] + [0.36, 0.36] + [0.1] * 8)
    assert _best_cutoff(clean, targets) == 0.4  # F1 1.0; of the equals, the one nearest 0.5
    # Two on-topic stories rank below two off-topic ones: at 0.35 recall is whole at precision 0.83
    # (F1 0.91); from 0.4 on, precision 1.0 at recall 0.8 (F1 0.89).
    noisy = np.array([0.95] * 8 + [0.36, 0.36] + [0.38, 0.38] + [0.1] * 8)
    assert _best_cutoff(noisy, targets) == 0.35
    assert _best_cutoff(noisy, targets, min_precision=0.95) == 0.5
    # No cutoff reaches the precision asked for: the best F1 stands.
    assert _best_cutoff(np.full(20, 0.6), targets, min_precision=0.95) == 0.5


def test_column_weights_scale_idf_by_how_much_an_ngram_tells_the_classes_apart():
    import numpy as np

    from monitor_plugins.learned_model import WORD_FEATURES, Featurizer
    from monitor_plugins.hashed_ngrams import column

    examples = bee_examples()
    featurizer = Featurizer(None)
    counts = featurizer.counts([(e.title, e.text) for e in examples])
    targets = np.array([e.positive for e in examples], dtype=int)
    featurizer.fit_idf(counts)
    plain = featurizer.idf.copy()
    featurizer.fit_idf(counts, targets)
    # "honey" is in on-topic stories only, "the" on both sides: the ratio lifts the one and sinks the other.
    honey, the = column("honey", WORD_FEATURES), column("the", WORD_FEATURES)
    assert featurizer.idf[honey] / plain[honey] > 1.0 > featurizer.idf[the] / plain[the]


def test_c_is_chosen_on_the_calibration_folds_and_recorded():
    model = train("bees", "bee OR bees", bee_examples(), c=(0.5, 5.0))
    assert model.meta["c"] in (0.5, 5.0) and model.meta["c_grid"] == [0.5, 5.0]
    assert load_model(dump_model(model)).meta["c"] == model.meta["c"]
    assert train("bees", "bee OR bees", bee_examples(), c=2.0).meta["c"] == 2.0


def test_recall_at_precision_and_average_precision_read_a_ranking():
    import numpy as np

    from monitor_plugins.learned_model import average_precision, recall_at_precision

    gold = np.array([1, 1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    assert recall_at_precision(scores, gold, 0.95) == pytest.approx(2 / 3)  # the third story is off topic
    assert recall_at_precision(scores, gold, 0.75) == 1.0  # 3 of the first 4
    assert recall_at_precision(-scores, gold, 0.95) == 0.0
    assert average_precision(scores, gold) == pytest.approx((1 + 1 + 3 / 4) / 3)


def test_adjust_moves_a_decision_the_feedback_disagrees_with_and_keeps_the_others():
    model = train("bees", None, bee_examples())
    story = ("Beekeeper fined for parking", "The beekeeper left his van on a yellow line.")
    assert model.predict([story])[0][0] >= model.cutoff
    adjusted = adjust(model, [Example(*story, False, 3.0)])
    assert adjusted.predict([story])[0][0] < adjusted.cutoff
    others = [(t, s) for t, s in BEES[:5]]
    assert all(p >= adjusted.cutoff for p, _ in adjusted.predict(others))
    # Adjusting again starts from the base weights, not from the last adjustment.
    assert adjust(adjusted, []).coef.tolist() == model.coef.tolist()


def test_near_duplicates_share_a_group_and_cross_validation_never_splits_a_group():
    from monitor_plugins.learned_model import _folds, near_duplicate_groups

    opening = ("Pyongyang fired a ballistic missile into the sea on Monday, officials in Seoul and Tokyo said, "
               "the third launch this month and the first since the United States and South Korea began their "
               "annual drills, which the North calls a rehearsal for invasion; the missile flew about 600 km.")
    stories = [
        Example("North Korea fires missile", opening, True),
        Example("N. Korea fires missile, Seoul says", opening + " (updates with Japan).", True),  # the same opening
        Example("North Korea fires missile into the sea", "A different text entirely.", True),
        Example("North Korea fires missile into the sea", "Reworded copy of the same story.", True),  # same title
        Example("Bakery wins bread award", "The sourdough took first prize at the county show this year.", False),
        Example("Bus lanes approved", "Buses will get priority on three main roads from next spring.", False),
    ]
    groups = near_duplicate_groups(stories)
    assert groups[0] == groups[1] and groups[2] == groups[3]
    assert len({groups[0], groups[2], groups[4], groups[5]}) == 4
    # Many copies of each story: a plain split would put copies on both sides of a fold.
    many = [s for s in stories for _ in range(5)]
    targets = __import__("numpy").array([s.positive for s in many], dtype=int)
    for train_rows, test_rows in _folds(targets, 3, 0, near_duplicate_groups(many)):
        seen = {near_duplicate_groups(many)[i] for i in train_rows}
        assert not seen & {near_duplicate_groups(many)[i] for i in test_rows}


def test_the_blind_set_leaves_borderline_stories_out(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    import learned_eval

    rebuilt = tmp_path / "news_topics.jsonl"
    rows = [{"uid": "n-1", "source_repo": "a/b", "title": "Kim meets envoy", "text": "North Korea talks.",
             "labels": ["north_korea"], "borderline": False, "outlet": "KCNA"},
            {"uid": "n-2", "source_repo": "a/b", "title": "Exports of rice", "text": "Figures for one crop.",
             "labels": [], "borderline": True, "outlet": "ABC"}]
    rebuilt.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    [corpus] = learned_eval.news_blind(None, rebuilt)
    assert [(i.story.id, sorted(i.labels)) for i in corpus.items] == [("n-1", ["north_korea"])]
    assert corpus.name == "news_blind" and corpus.items[0].story.source == "KCNA"


# -- the shipped models ------------------------------------------------------------


def test_the_shipped_models_load_and_are_small():
    assert shipped_names() == ["abductions", "north_korea", "trade"]
    for name in shipped_names():
        data = shipped_model_path(name).read_bytes()
        assert len(data) < 4_000_000
        assert load_model(data).watchlist == name


def test_provenance_names_every_source_and_keeps_synthetic_out_of_figures():
    provenance = json.loads((ROOT / "plugins" / "models" / "provenance.json").read_text())
    assert "synthetic" in provenance["sources"]["synthetic/synthetic_abductions"].lower()
    for name in ("north_korea", "abductions", "trade"):
        entry = provenance["watchlists"][name]
        assert entry["sources"]["synthetic/synthetic_abductions"]["scored"] is False
        assert entry["examples"] > 10_000 and entry["sklearn"]
        # The 4,110 blind-labelled stories (borderline ones left out) are in the training data.
        assert entry["sources"]["news_blind"]["stories"] > 3_500
        # Figures are held out (cross-validated or cross-corpus), and synthetic stories are never counted.
        assert all(f["view"].startswith(("5-fold CV", "train ")) for f in entry["figures"])
        assert all("synthetic" not in f["view"].split("->")[-1] for f in entry["figures"])


def _recorded(name: str) -> dict[str, dict]:
    """The held-out figures the training script recorded for the shipped model ``name``, by view."""
    import hashlib

    entry = json.loads((ROOT / "plugins" / "models" / "provenance.json").read_text())["watchlists"][name]
    # The figures speak for the file that ships: the script recorded its hash when it wrote both.
    assert entry["sha256"] == hashlib.sha256(shipped_model_path(name).read_bytes()).hexdigest(), (
        f"plugins/models/{name}.npz is not the model its provenance describes: "
        "rerun scripts/train_shipped_models.py")
    return {f["view"]: f for f in entry["figures"]}




@pytest.mark.parametrize("name", ["north_korea", "abductions", "trade"])
def test_the_shipped_models_recorded_cross_validated_figures_never_fall_below_the_floor(name):
    # A retrained model that got worse on held-out folds fails here, whatever its fit-set figures.
    views = _recorded(name)
    assert "5-fold CV" in views, f"no cross-validated figures recorded for the shipped {name} model"
    for view in ("5-fold CV", "5-fold CV: feed-sized (<= 150 words)", "5-fold CV: long-form",
                 "5-fold CV: news_blind", "5-fold CV: ag_news_dev"):
        f = views[view]
        if not f["positives"]:
            continue
        assert f["learned"]["f1"] >= f["floor"]["f1"] - 0.005, (view, f["learned"], f["floor"])
    assert views["5-fold CV"]["learned"]["precision"] >= 0.90, views["5-fold CV"]["learned"]
    assert views["5-fold CV"]["learned"]["f1"] >= 0.85, views["5-fold CV"]["learned"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["north_korea", "trade"])
def test_cross_validated_figures_on_ag_news_dev_beat_the_floor(name):
    # A guard on held-out figures, not fit-set ones: 5-fold CV of a model trained the
    # shipped way on the AG News dev set, beside the naive floor on the same stories.
    from monitor.evaluation import floor_predicts

    path = shared_corpus("ag_news", "dev.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    query = load_config(None).watchlists[name].query
    items = [Example(r["title"], r["summary"], name in r["labels"]) for r in rows]
    learned = cross_validate(name, query, items, folds=5)
    floor = Figures()
    for item in items:
        floor.add(floor_predicts(name, item.title, item.text), item.positive)
    assert learned.f1 >= floor.f1 - 0.01, (learned.describe(), floor.describe())
    assert learned.precision >= 0.90 and learned.f1 >= 0.90, learned.describe()


@pytest.mark.slow
def test_cross_validated_abduction_figures_beat_the_floor_with_near_duplicates_kept_in_one_fold():
    # Abductions are rare in real news: the guard pools the written abduction stories and
    # long articles (their hard negatives: hostages, ransom, custody, fiction) with AG News
    # dev, cross-validates the shipped recipe with near-duplicates grouped, and holds it to
    # the naive floor and to precision 0.90 on the stories it never saw.
    from monitor.evaluation import floor_predicts
    from monitor_plugins.learned_model import near_duplicate_groups

    rows = []
    for path in (ROOT / "tests" / "data" / "abductions_written.jsonl", ROOT / "tests" / "data" /
                 "long_articles_written.jsonl", shared_corpus("ag_news", "dev.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    query = load_config(None).watchlists["abductions"].query
    items = [Example(r["title"], r.get("text") or r.get("summary") or "", "abductions" in r["labels"]) for r in rows]
    learned = cross_validate("abductions", query, items, folds=5, groups=near_duplicate_groups(items))
    floor = Figures()
    for item in items:
        floor.add(floor_predicts("abductions", item.title, item.text), item.positive)
    assert learned.tp + learned.fn >= 25
    assert learned.f1 >= floor.f1 - 0.01, (learned.describe(), floor.describe())
    assert learned.precision >= 0.90 and learned.f1 >= 0.80, learned.describe()


def test_default_config_decides_the_shipped_watchlists_with_the_models(open_monitor):
    monitor = open_monitor("")
    seeds = sorted((ROOT / "seeds").glob("*.txt"))
    stories = []
    for path in seeds:
        lines = path.read_text(encoding="utf-8").strip().splitlines()
        stories.append(Story(id=path.stem, source="seeds", title=lines[0], text="\n".join(lines[1:])))
    stories.append(Story(id="off", source="x", title="Bakery wins bread award", text="The sourdough took first prize."))
    matches = monitor.classify(stories)
    assert {(m.story_id, m.watchlist) for m in matches} == {(s.id, w) for s in stories[:2]
                                                           for w in ("north_korea", "abductions", "trade")}
    assert {m.classifier for m in matches} == {"learned"}
    note = next(m for m in matches if m.watchlist == "trade").evidence
    assert "shipped model: p=" in note.note and "weighed most:" in note.note
    assert note.terms  # the query's hits are kept as evidence


def _real_stories(limit: int) -> list[tuple[str, str]]:
    """Titles and texts from the Reuters train split and the clustering dev set, plus awkward text."""
    docs = []
    for path, text_key in ((shared_corpus("reuters21578", "train.jsonl"), "body"),
                           (shared_corpus("clustering", "dev.jsonl"), "text")):
        with path.open(encoding="utf-8") as lines:
            for line, _ in zip(lines, range(limit)):
                row = json.loads(line)
                docs.append((row.get("title") or "", row.get(text_key) or ""))
    return docs + [("", ""), ("İSTANBUL ŞEHİR straße ﬁnal", "Ünïcödé  \t\n runs 日本語 😀 x y"), ("a", "b " * 3000)]


def test_serving_counts_and_decisions_equal_the_scikit_learn_and_scipy_path():
    """The NumPy-only serving path reads the same hashed n-gram counts as scikit-learn's
    HashingVectorizer and decides as the sparse-matrix product did, on real stories."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import HashingVectorizer

    from monitor_plugins.learned_model import CHAR_CHARS, CHAR_FEATURES, WORD_FEATURES, document

    docs = _real_stories(400)
    texts = [document(title, text) for title, text in docs]
    words = HashingVectorizer(n_features=WORD_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm=None,
                              lowercase=True, token_pattern=r"(?u)\b\w+\b")
    chars = HashingVectorizer(n_features=CHAR_FEATURES, analyzer="char_wb", ngram_range=(3, 5),
                              alternate_sign=False, norm=None, lowercase=True)
    reference = sp.hstack([words.transform(texts), chars.transform([t[:CHAR_CHARS] for t in texts])],
                          format="csr", dtype=np.float64)
    reference.data = np.log1p(reference.data)
    for name in shipped_names():
        model = load_model(shipped_model_path(name).read_bytes())
        assert model.featurizer.chars
        counts = model.featurizer.log_counts(docs)
        assert np.array_equal(counts.indptr, reference.indptr) and np.array_equal(counts.indices, reference.indices)
        assert np.array_equal(counts.data, reference.data)
        raw = model.featurizer.raw(docs, log_counts=counts)
        # Yesterday's decision: tf-idf rows L2-normalised in a SciPy matrix, times the weights.
        rows = np.repeat(np.arange(len(docs)), np.diff(reference.indptr))
        tf_idf = reference.data * model.featurizer.idf[reference.indices].astype(np.float64)
        norms = np.sqrt(np.bincount(rows, weights=tf_idf * tf_idf, minlength=len(docs)))
        norms[norms == 0] = 1.0
        weighted = sp.csr_matrix((tf_idf / norms[rows], reference.indices, reference.indptr), shape=reference.shape)
        coef = model.coef.astype(np.float64)
        before = weighted @ coef[:reference.shape[1]] + raw.dense @ coef[reference.shape[1]:] + model.intercept
        now = model.decisions_of(raw)
        assert np.max(np.abs(now - before)) <= 1e-9, name
        probabilities = [p for p, _ in model.predict(docs, counts)]
        assert [p >= model.cutoff for p in probabilities] == list(model.probabilities_of(before) >= model.cutoff)


def test_serving_the_shipped_models_imports_neither_scikit_learn_nor_scipy(tmp_path):
    """They were most of a daemon's (and each worker process's) memory: training alone needs them."""
    code = (
        "import sys\n"
        "from monitor import Monitor, Story, load_config\n"
        f"config = load_config(None, db={str(tmp_path / 'm.db')!r})\n"
        "with Monitor.open(config) as monitor:\n"
        "    s = Story(id='1', source='x', title='US and China agree to cut tariffs in trade deal',\n"
        "              text='The trade agreement lowers duties on imports and exports.')\n"
        "    print(sorted(m.watchlist for m in monitor.classify([s])))\n"
        "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["['trade']", "[]"]


# -- fallback to the query -------------------------------------------------------------


def test_a_corrupt_stored_model_logs_one_line_and_the_query_decides(open_monitor, caplog):
    monitor = open_monitor(BEE_CONFIG)
    monitor.store.save_learned_model("bees", b"this is not a model", format=1, origin="test")
    story = Story(id="s1", source="x", title="Bees swarm in park", text="A beekeeper came.")
    with caplog.at_level(logging.WARNING, logger="monitor.learned"):
        first = monitor.classify([story])
        second = monitor.classify([story])
    assert [(m.watchlist, m.classifier) for m in first] == [("bees", "keywords")]
    assert [(m.watchlist, m.classifier) for m in second] == [("bees", "keywords")]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("watchlist bees")]
    assert len(lines) == 1, lines
    assert "watchlist bees: the model stored in the database is unusable: not a readable model" in lines[0]
    assert "runs on its query" in lines[0]


def test_a_missing_shipped_model_logs_one_line_check_names_it_and_the_query_decides(open_monitor, caplog):
    monitor = open_monitor(BEE_CONFIG + 'options = { model = "shipped" }\n')
    story = Story(id="s1", source="x", title="Bees swarm in park", text="A beekeeper came.")
    with caplog.at_level(logging.WARNING, logger="monitor.learned"):
        found = monitor.classify([story])
    assert [(m.watchlist, m.classifier) for m in found] == [("bees", "keywords")]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("watchlist bees")]
    assert len(lines) == 1 and "bees.npz is unusable: cannot read it" in lines[0]
    assert any("watchlists.bees.options.model: no shipped model named 'bees'" in p for p in monitor.check())


def test_the_classifier_pickles_and_classifies_in_another_process(open_monitor, tmp_path):
    monitor = open_monitor("")
    classifier = monitor.classifiers["learned"]
    blob = tmp_path / "classifier.pickle"
    blob.write_bytes(pickle.dumps(classifier))
    watchlists = tmp_path / "watchlists.pickle"
    watchlists.write_bytes(pickle.dumps(monitor.watchlists))
    code = (
        "import pickle, sys\n"
        "from monitor import Story\n"
        f"c = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
        f"w = pickle.loads(open({str(watchlists)!r}, 'rb').read())\n"
        "s = Story(id='1', source='x', title='US and China agree to cut tariffs in trade deal', "
        "text='The trade agreement lowers duties on imports and exports.')\n"
        "print(sorted(m.watchlist for m in c.classify([s], w)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['trade']"


# -- monitor train --------------------------------------------------------------------------


def test_train_cross_validates_stores_and_classify_uses_the_model(tmp_path, make_config, cli_run):
    config = make_config(BEE_CONFIG)
    examples = _write_examples(tmp_path / "bees.jsonl", bee_rows())
    trained = cli_run("train", "bees", "--examples", examples, "--config", config)
    assert trained.exit_code == 0, trained.output
    assert re.search(r"bees: 5-fold cross-validated P=\d\.\d{3} R=\d\.\d{3} F1=\d\.\d{3}", trained.output)
    assert "Stored the bees model" in trained.output
    rows = list(sqlite3.connect(tmp_path / "monitor.db").execute(
        "SELECT examples, positives, cv_f1, origin FROM learned_models"))
    assert rows[0][:2] == (25, 10) and rows[0][2] > 0.5 and rows[0][3].startswith("examples: ")

    stories = tmp_path / "in.jsonl"
    _write_examples(stories, [{"id": "hive", "title": "Honey bee colonies collapse", "summary": "Hives lost queens."},
                              {"id": "spell", "title": "City spelling bee won by pupil, 12",
                               "summary": "She spelled the final word in the spelling bee."},
                              {"id": "bus", "title": "Council approves bus lanes", "summary": "Buses."}])
    out = cli_run("classify", str(stories), "--config", config)
    found = {json.loads(line)["id"]: json.loads(line) for line in out.output.splitlines()}
    assert found["hive"]["topics"] == ["bees"] and found["bus"]["topics"] == []
    assert "trained model: p=" in found["hive"]["evidence"]["bees"]["note"]
    # The query matches the spelling bee; the model, having learned that sense, overrules it.
    assert found["spell"]["topics"] == []


def test_train_refuses_a_worse_model_unless_forced(tmp_path, make_config, cli_run):
    config = make_config(BEE_CONFIG)
    good = _write_examples(tmp_path / "good.jsonl", bee_rows())
    assert cli_run("train", "bees", "--examples", good, "--config", config).exit_code == 0
    # Labels that contradict the words: the bee stories split at random between on and off topic.
    noisy = [dict(r, labels=["bees"] if i % 2 else []) for i, r in enumerate(bee_rows())]
    worse = _write_examples(tmp_path / "worse.jsonl", noisy)
    refused = cli_run("train", "bees", "--examples", worse, "--config", config)
    assert refused.exit_code == 1
    assert "not stored: the new model's cross-validated F1" in refused.output and "--force" in refused.output
    forced = cli_run("train", "bees", "--examples", worse, "--config", config, "--force")
    assert forced.exit_code == 0 and "Stored the bees model" in forced.output


def test_train_rejects_bad_input_in_one_line(tmp_path, make_config, cli_run):
    config = make_config(BEE_CONFIG)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "x", "summary": "y", "labels": ["bees"]}\nnot json\n', encoding="utf-8")
    result = cli_run("train", "bees", "--examples", bad, "--config", config)
    assert result.exit_code == 1 and f"{bad}: line 2: not valid JSON" in result.output
    unlabelled = _write_examples(tmp_path / "u.jsonl", [{"title": "x", "summary": "y"}])
    result = cli_run("train", "bees", "--examples", unlabelled, "--config", config)
    assert result.exit_code == 1 and "line 1: no \"labels\" list" in result.output
    one_sided = _write_examples(tmp_path / "o.jsonl", bee_rows(extra_negatives=0))
    result = cli_run("train", "bees", "--examples", one_sided, "--config", config)
    assert result.exit_code == 1 and "needs at least 3 on-topic and 3 off-topic rows" in result.output
    assert "Traceback" not in result.output
    unknown = cli_run("train", "wasps", "--examples", one_sided, "--config", config)
    assert unknown.exit_code == 2 and "no watchlist named 'wasps'" in unknown.output


# -- feedback --------------------------------------------------------------------------------


def test_feedback_then_train_changes_the_decision_and_keeps_sent_alerts(tmp_path, make_config, cli_run, feed_server):
    from conftest import rss

    # A football club nicknamed the Bees: the query hits in the title and the lead, as on the bee
    # stories, and the model, having seen no football among its examples, takes it.
    items = [{"title": "Bees football club wins derby",
              "description": "The Bees beat their rivals two nil, and the beekeeper's son scored.",
              "link": "http://news.test/derby", "guid": "derby"},
             {"title": "Bees swarm over school playground", "description": "A beekeeper collected the swarm.",
              "link": "http://news.test/swarm", "guid": "swarm"},
             {"title": "Spelling bee final goes to 20 rounds", "description": "The spelling bee champion won a trophy.",
              "link": "http://news.test/spelling", "guid": "spelling"}]
    url = feed_server.serve("/f.xml", rss(items))
    config = make_config(BEE_CONFIG + f'[alerts]\nnew_source_window = 0\n[sources.wire]\nurl = "{url}"\n')
    examples = _write_examples(tmp_path / "bees.jsonl", bee_rows())
    assert cli_run("train", "bees", "--examples", examples, "--config", config).exit_code == 0
    polled = cli_run("once", "--config", config)
    assert polled.exit_code == 0, polled.output
    db = sqlite3.connect(tmp_path / "monitor.db")
    matched = dict(db.execute("SELECT s.title, m.id FROM matches m JOIN stories s ON s.id = m.story_id"))
    derby = matched["Bees football club wins derby"]
    assert "Spelling bee final goes to 20 rounds" not in matched  # the query's hit, overruled by the model

    said = cli_run("feedback", str(derby), "wrong", "--config", config)
    assert said.exit_code == 0 and f"match {derby} (bees, story" in said.output and "is wrong" in said.output
    missed_id = db.execute("SELECT id FROM stories WHERE title LIKE 'Bees swarm%'").fetchone()[0]
    assert cli_run("feedback", "--story", missed_id, "--watchlist", "bees", "right", "--config", config).exit_code == 0
    retrained = cli_run("train", "bees", "--config", config)
    assert retrained.exit_code == 0, retrained.output
    assert "Retrained bees from 2 feedback verdicts" in retrained.output

    stories = _write_examples(tmp_path / "again.jsonl", [
        {"id": "p", "title": "Bees football club wins derby",
         "summary": "The Bees beat their rivals two nil, and the beekeeper's son scored."}])
    out = json.loads(cli_run("classify", str(stories), "--config", config).output)
    assert out["topics"] == []
    # Feedback never deletes a match or an alert already sent.
    assert db.execute("SELECT count(*) FROM matches WHERE id = ?", [derby]).fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM outbox WHERE match_id = ? AND status = 'sent'", [derby]).fetchone()[0] == 1


def test_feedback_errors_are_one_line(tmp_path, make_config, cli_run):
    config = make_config(BEE_CONFIG)
    Store(load_config(config).db_path).close()  # an empty database (read commands never create one)
    missing = cli_run("feedback", "999", "wrong", "--config", config)
    assert missing.exit_code == 1 and "no match with id 999" in missing.output
    verdict = cli_run("feedback", "1", "maybe", "--config", config)
    assert verdict.exit_code == 2 and "must be one of right, wrong" in verdict.output
    story = cli_run("feedback", "--story", "nope", "--watchlist", "bees", "right", "--config", config)
    assert story.exit_code == 1 and "no story with id 'nope'" in story.output
    nothing = cli_run("train", "bees", "--config", config)
    assert nothing.exit_code == 1 and "has no model to retrain" in nothing.output





# -- the story's language, in training as in serving ------------------------------------------

# GATT, the trade agreement, in English; the Swedish "gått" (gone) is another word (monitor.letters).
GATT_ROWS = [
    {"title": "GATT talks resume in Geneva", "summary": "Negotiators returned to the GATT round.", "labels": ["trade"]},
    {"title": "Det har gått bra för exporten", "summary": "Försäljningen har gått upp i år.", "labels": [],
     "language": "sv"},
    {"title": "Det har gått bra för exporten", "summary": "Försäljningen har gått upp i år.", "labels": []},
]


def test_training_reads_each_example_in_its_language_as_serving_does(tmp_path):
    from monitor_plugins.learned import examples_from_file
    from monitor_plugins.learned_model import Featurizer

    examples = examples_from_file(_write_examples(tmp_path / "gatt.jsonl", GATT_ROWS), "trade")
    assert [e.language for e in examples] == [None, "sv", None]
    trained = Featurizer("gatt").examples_raw(examples).dense
    # What the learned classifier computes for the same stories when it classifies them.
    served = LearnedClassifier(":memory:")._query_scores(
        {"trade": "gatt"}, [(e.title, e.text) for e in examples], [e.language for e in examples])["trade"]
    assert (trained == Featurizer("gatt").raw([(e.title, e.text) for e in examples], served).dense).all()
    english, swedish, unknown = trained
    assert english.any() and not swedish.any()  # "gått" in a Swedish story is not the agreement
    assert (unknown == english).all()  # without a language every mark folds, as before: gått is gatt


def test_a_language_that_is_not_a_code_is_one_line_naming_the_file_and_line(tmp_path, make_config, cli_run):
    rows = bee_rows() + [{"title": "Bees", "summary": "Bees.", "labels": ["bees"], "language": 7}]
    examples = _write_examples(tmp_path / "bees.jsonl", rows)
    result = cli_run("train", "bees", "--examples", examples, "--config", make_config(BEE_CONFIG))
    assert result.exit_code == 1 and f"line {len(rows)}: language: expected a language code" in result.output
    assert str(examples) in result.output and "Traceback" not in result.output


def test_feedback_trains_in_the_language_its_story_was_stored_with(tmp_path, open_monitor):
    from monitor.models import Source
    from monitor.storage import SourceOutcome
    from monitor_plugins.learned import feedback_examples

    monitor = open_monitor(BEE_CONFIG)
    feed = Source(name="wire", url="http://127.0.0.1:9/feed.xml")
    monitor.store.sync_sources([feed])
    stories = [Story(id="sv1", source="wire", title="Bina har gått bra", text="Biodlare är nöjda.", language="sv",
                     content_hash="a"),
               Story(id="en1", source="wire", title="Bees thrive", text="Beekeepers are pleased.", content_hash="b")]
    monitor.store.save_update(feed, SourceOutcome(status="ok"), stories, [], [], dict(monitor.config.watchlists))
    for story in stories:
        monitor.store.add_feedback("bees", "right", story_id=story.id)
    assert [(e.title, e.language) for e in feedback_examples(monitor, "bees")] == [
        ("Bina har gått bra", "sv"), ("Bees thrive", None)]


# -- monitor eval ------------------------------------------------------------------------------

TRADE_ROWS = [
    {"title": "US raises tariffs on Chinese steel", "summary": "Duties on imports rise to 25 percent.", "labels": ["trade"]},
    {"title": "EU and Japan sign free trade agreement", "summary": "The pact cuts duties on cars.", "labels": ["trade"]},
    {"title": "Import ban on beef lifted", "summary": "Shipments may resume next month.", "labels": ["trade"]},
    {"title": "Exports fall for third month", "summary": "The trade deficit widened in May.", "labels": ["trade"]},
    {"title": "Shares trade higher", "summary": "Stocks rose on Wall Street.", "labels": []},
    {"title": "Yankees trade pitcher", "summary": "The deal sends a starter to Boston.", "labels": []},
    {"title": "Trade show opens", "summary": "Gadget makers show phones.", "labels": []},
    {"title": "Union strike ends", "summary": "Workers return after pay deal.", "labels": []},
]


def test_eval_reports_cross_validated_cross_corpus_and_floor_views(tmp_path, make_config, cli_run):
    labels = _write_examples(tmp_path / "labels.jsonl", TRADE_ROWS)
    other = _write_examples(tmp_path / "other.jsonl", TRADE_ROWS[::-1])
    result = cli_run("eval", labels, "--folds", "3", "--train-on", other, "--config", make_config(""), "--json")
    assert result.exit_code == 0, result.output
    views = json.loads(result.output)["views"]
    assert set(views) == {"configured", "learned, 3-fold cross-validated on this file",
                          "learned, trained on --train-on (cross-corpus)", "naive floor"}
    floor = {r["watchlist"]: r for r in views["naive floor"]}
    # The floor's three regular expressions: tariffs, "trade agreement"/"trade deficit", "import ban".
    assert (floor["trade"]["tp"], floor["trade"]["fp"]) == (4, 0)
    trade_cv = {r["watchlist"]: r for r in views["learned, 3-fold cross-validated on this file"]}["trade"]
    assert trade_cv["tp"] + trade_cv["fn"] == 4
