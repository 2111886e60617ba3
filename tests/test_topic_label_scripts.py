"""The labelled-news tooling: merging annotators' files and re-reading text from git mirrors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MERGE = ROOT / "scripts" / "merge_topic_labels.py"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


labelled_news = load_script("labelled_news")
merge_topic_labels = load_script("merge_topic_labels")


def write_jsonl(path: Path, rows: list[dict], ensure_ascii: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=ensure_ascii) + "\n" for row in rows))


def pool_row(uid: str, text: str = "story text") -> dict:
    return {"uid": uid, "source_repo": "someone/news", "commit": "c" * 40, "path": "news.csv",
            "key": f"row:{uid}", "title": "", "text": text, "selected_by": "random"}


def label(uid: str, labels: list[str], borderline: bool = False, reason: str = "why") -> dict:
    return {"uid": uid, "labels": labels, "borderline": borderline, "reason": reason}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    # Ten stories; four labelled by two annotators, who disagree on trade once. The raw
    # line separator (U+2028) in the text must not split a JSON line in two.
    write_jsonl(tmp_path / "pool.jsonl", [pool_row(f"n-{i}", text=f"secret text {i}\u2028more") for i in range(10)],
                ensure_ascii=False)
    write_jsonl(tmp_path / "labels" / "shard_00.ann1.jsonl", [
        label("n-0", ["trade"]), label("n-1", ["north_korea"]), label("n-2", []), label("n-3", ["trade"]),
        label("n-4", []), label("n-5", ["north_korea", "abductions"]),
    ])
    write_jsonl(tmp_path / "labels" / "shard_01.ann2.jsonl", [
        label("n-0", ["trade"]), label("n-1", ["north_korea"]), label("n-2", []), label("n-3", [], reason="prices"),
        label("n-6", ["trade"]), label("n-7", []),
    ])
    return tmp_path


def run_merge(workdir: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MERGE), "--workdir", str(workdir), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)


def test_merge_resolves_a_disputed_topic_by_dropping_it_and_marking_borderline(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged.jsonl"
    done = run_merge(workdir, out)
    assert done.returncode == 0, done.stderr
    rows = {row["uid"]: row for row in map(json.loads, out.read_text().split("\n")[:-1])}
    assert len(rows) == 8
    assert rows["n-0"]["labels"] == ["trade"] and not rows["n-0"]["borderline"]
    assert rows["n-3"]["labels"] == [] and rows["n-3"]["borderline"]
    assert rows["n-3"]["reason"].startswith("disputed (trade 1 of 2)")
    assert rows["n-5"]["labels"] == ["north_korea", "abductions"]
    assert rows["n-3"]["annotators"] == ["ann1", "ann2"]
    assert "secret text" not in out.read_text()
    assert {"source_repo", "commit", "path", "key"} <= set(rows["n-6"])


def test_merge_reports_agreement_per_topic_on_the_overlap(workdir: Path, tmp_path: Path) -> None:
    done = run_merge(workdir, tmp_path / "merged.jsonl")
    ready = (workdir / "READY").read_text()
    assert ready == done.stdout
    trade = json.loads(ready.split("  trade: ")[1].split("\n")[0])
    # Overlap n-0..n-3: trade yes/yes, no/no, no/no, yes/no -> 3 of 4 agree;
    # p_yes 0.5 and 0.25 give chance agreement 0.5, so kappa is (0.75 - 0.5) / 0.5.
    assert trade == {"stories": 4, "both_yes": 1, "disagree": 1, "raw_agreement": 0.75, "kappa": 0.5}
    north_korea = json.loads(ready.split("  north_korea: ")[1].split("\n")[0])
    assert north_korea["raw_agreement"] == 1.0 and north_korea["kappa"] == 1.0


def test_merge_names_each_bad_line_and_keeps_the_rest(workdir: Path, tmp_path: Path) -> None:
    bad = workdir / "labels" / "shard_02.ann3.jsonl"
    bad.write_text(json.dumps(label("n-8", ["trade"])) + "\n" + "{not json\n"
                   + json.dumps(label("n-9", ["sport"])) + "\n" + json.dumps(label("n-99", [])) + "\n")
    out = tmp_path / "merged.jsonl"
    done = run_merge(workdir, out)
    assert done.returncode == 0
    assert f"{bad}:2: not valid JSON" in done.stderr
    assert f"{bad}:3: labels must be a list drawn from" in done.stderr
    assert f"{bad}:4: uid n-99 is not in the pool" in done.stderr
    assert "Traceback" not in done.stderr
    assert '"uid": "n-8"' in out.read_text()


def test_merge_without_a_pool_fails_in_one_line(tmp_path: Path) -> None:
    done = run_merge(tmp_path, tmp_path / "merged.jsonl")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "pool.jsonl" in done.stderr and "Traceback" not in done.stderr


def test_cohen_kappa_is_undefined_when_both_raters_never_say_yes() -> None:
    assert merge_topic_labels.cohen_kappa([(False, False)] * 5) is None
    assert merge_topic_labels.cohen_kappa([(True, True), (False, False)]) == 1.0


def make_mirror(mirrors: Path, repo: str, files: dict[str, str]) -> str:
    """A bare git mirror laid out as the fetch tool lays it; returns the commit."""
    work = mirrors.parent / "work"
    work.mkdir()
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "data"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    target = mirrors / repo.replace("/", "+") / "repo"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(target)], check=True)
    return commit


def test_labelled_rows_get_their_text_back_from_the_mirror(tmp_path: Path) -> None:
    mirrors = tmp_path / "mirrors"
    csv_text = "text,category\n\"Trade gap narrows as exports rise\",business\n\"Oscars night\",entertainment\n"
    commit = make_mirror(mirrors, "someone/bbc", {"datasets/bbcnews/data/train.csv": csv_text,
                                                  "datasets/bbcnews/data/val.csv": "text,category\n",
                                                  "datasets/bbcnews/data/test.csv": "text,category\n"})
    source = labelled_news.Source("someone/bbc", commit, "test", "test", labelled_news.read_bbc)
    items = list(labelled_news.read_bbc(labelled_news.Git(labelled_news.git_dir_for(mirrors, "someone/bbc")), source))
    wanted = items[0]
    labels_file = tmp_path / "labels.jsonl"
    write_jsonl(labels_file, [
        {"uid": wanted.uid, "source_repo": "someone/bbc", "commit": commit, "path": wanted.path,
         "key": wanted.key, "labels": ["trade"], "borderline": False, "reason": "trade data"},
        {"uid": "n-gone", "source_repo": "someone/bbc", "commit": commit, "path": wanted.path,
         "key": "row:7", "labels": [], "borderline": False, "reason": "x"},
    ])
    joined = labelled_news.load_labelled(labels_file, mirrors, sources=(source,))
    assert [row["text"] for row in joined] == ["Trade gap narrows as exports rise"]
    assert joined[0]["labels"] == ["trade"] and joined[0]["outlet"] == "BBC News (business)"


def test_a_missing_mirror_is_named() -> None:
    with pytest.raises(labelled_news.SourceError, match="no mirror of someone/absent"):
        labelled_news.git_dir_for(Path("/nonexistent"), "someone/absent")


def test_abc_cross_heads_stay_inside_their_story() -> None:
    text = ("Grain exporter under fire\nFirst paragraph.\n\nEmail questions\nMore of the same story.\n\n"
            "Floods close the highway\nA second story.\n")
    stories = list(labelled_news.abc_articles(text))
    assert [(line, title) for line, title, _ in stories] == [(1, "Grain exporter under fire"), (7, "Floods close the highway")]
    assert "More of the same story." in stories[0][2]


def test_truncate_cuts_at_a_word_boundary_and_says_so() -> None:
    text = " ".join(f"w{i}" for i in range(1000))
    cut, truncated = labelled_news.truncate(text, max_words=900)
    assert truncated and cut.endswith("w899 [...]")
    assert labelled_news.truncate("short story", max_words=900) == ("short story", False)
