"""`monitor train` on real data: held-out figures on a slice of Reuters-21578 ModApte train,
and models that read words only (the default on large training sets)."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from conftest import shared_corpus
from monitor.cli import _register_plugin_commands
from monitor_plugins.learned import shipped_model_path
from monitor_plugins.learned_model import CHAR_CHARS, Example, dump_model, load_model, train

_register_plugin_commands()  # what main() does before running the CLI: adds `train`

COUNTS = re.compile(r"(\w+): 5-fold cross-validated P=(\S+) R=(\S+) F1=(\S+) \(tp=(\d+) fp=(\d+) fn=(\d+)\)")


def _reuters_slice(tmp_path, rows: int):
    """The first ``rows`` stories of the ModApte TRAIN split, Reuters' own topics as labels (never the test split)."""
    source = shared_corpus("reuters21578", "train.jsonl")
    out = tmp_path / "reuters_slice.jsonl"
    with source.open(encoding="utf-8") as lines, out.open("w", encoding="utf-8") as written:
        for _, line in zip(range(rows), lines):
            row = json.loads(line)
            written.write(json.dumps({"id": str(row["newid"]), "title": row.get("title") or "",
                                      "text": row.get("body") or "",
                                      "labels": [t.replace("-", "_") for t in row.get("topics", [])]}) + "\n")
    return out


@pytest.mark.slow
def test_cross_validated_figures_on_a_reuters_modapte_train_slice(tmp_path, make_config, cli_run):
    # A guard on held-out figures through the real CLI and a real SQLite database: each story
    # is judged by a model trained without it. A slice keeps it to a minute; the whole split
    # is bench/reuters_modapte.py.
    examples = _reuters_slice(tmp_path, 2500)
    config = make_config('[watchlists.earn]\ndescription = "Company earnings"\n'
                         'query = \'earnings OR profit* OR "net income" OR dividend*\'\n'
                         '[watchlists.acq]\ndescription = "Mergers and acquisitions"\n'
                         "query = 'acquisition* OR acquire* OR merger* OR takeover* OR stake'\n")
    figures = {}
    for name in ("earn", "acq"):
        result = cli_run("train", name, "--examples", examples, "--config", config)
        assert result.exit_code == 0, result.output
        found = COUNTS.search(result.output)
        assert found and found.group(1) == name, result.output
        figures[name] = [float(x) for x in found.groups()[1:4]]
    # Below what 5-fold CV gives on the whole split (earn 0.969, acq 0.926: README), as a smaller
    # training set should be; a drop under these says the learner got worse.
    assert figures["earn"][2] >= 0.93 and figures["acq"][2] >= 0.85, figures
    stored = dict(sqlite3.connect(tmp_path / "monitor.db").execute("SELECT watchlist, cv_f1 FROM learned_models"))
    assert stored.keys() == {"earn", "acq"} and abs(stored["earn"] - figures["earn"][2]) < 1e-3


def test_a_large_training_set_gives_a_words_only_model_that_round_trips(tmp_path):
    # Below the size where character n-grams are the default, `--no-char-ngrams` asks for the
    # same kind of model; it keeps the shipped file layout, so shipped models still load.
    examples = [Example(f"Tariffs on steel raised {i}", "The trade ministry raised import duties.", True)
                for i in range(6)] + [Example(f"Bakery wins award {i}", "The sourdough took first prize.", False)
                                      for i in range(6)]
    model = train("trade", "tariff*", examples, chars=False)
    counted = model.featurizer.counts([("Tariffs", "x")]).indices
    assert len(counted) and (counted < 2**18).all()  # word n-grams only, no character n-gram counted
    again = load_model(dump_model(model))
    assert again.featurizer.chars is False
    docs = [("Steel tariffs raised again", "Import duties rise."), ("Bakery opens", "Bread.")]
    assert [round(p, 6) for p, _ in again.predict(docs)] == [round(p, 6) for p, _ in model.predict(docs)]
    assert again.predict(docs)[0][0] > again.cutoff > again.predict(docs)[1][0]
    shipped = load_model(shipped_model_path("trade").read_bytes())
    assert shipped.featurizer.chars is True and CHAR_CHARS > 0


def test_train_reads_words_only_when_told(tmp_path, make_config, cli_run):
    rows = [{"title": f"Tariffs on steel raised {i}", "summary": "The trade ministry raised import duties.",
             "labels": ["trade"]} for i in range(6)]
    rows += [{"title": f"Bakery wins award {i}", "summary": "The sourdough took first prize.", "labels": []}
             for i in range(6)]
    examples = tmp_path / "ex.jsonl"
    examples.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = make_config("")
    for flag, chars in (("--no-char-ngrams", False), ("--char-ngrams", True)):
        result = cli_run("train", "trade", "--examples", examples, "--config", config, flag, "--force")
        assert result.exit_code == 0, result.output
        [data] = sqlite3.connect(tmp_path / "monitor.db").execute(
            "SELECT model FROM learned_models WHERE watchlist = 'trade'").fetchone()
        assert load_model(data).featurizer.chars is chars
