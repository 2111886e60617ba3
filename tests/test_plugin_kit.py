"""The plugin authors' kit: the template's own tests, the guide's generated reference, and a suite
immune to unrelated plugins installed beside it."""

import importlib.util
import os
import subprocess
import sys
import tomllib

import pytest

from conftest import OWN_PLUGINS, ROOT
from monitor import Monitor, load_config
from monitor.plugins import LOAD_ENV

TEMPLATE = ROOT / "examples" / "plugin-template"


def _guide_script():
    spec = importlib.util.spec_from_file_location("update_plugin_guide", ROOT / "scripts" / "update_plugin_guide.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plugin_template_passes_its_own_tests_with_our_fixtures():
    # The template is not installed: its package goes on PYTHONPATH and its tests register it
    # through make_monitor(plugins=[...]). The fixtures come from our pytest11 entry point.
    env = {**os.environ, "PYTHONPATH": str(TEMPLATE / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TEMPLATE / "tests")],
        cwd=TEMPLATE, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout


def test_the_template_declares_an_entry_point_to_its_package():
    project = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())
    [(name, target)] = project["project"]["entry-points"]["news_monitor"].items()
    assert name == "wordlist" and (TEMPLATE / "src" / target / "__init__.py").is_file()
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert ours["project"]["entry-points"]["pytest11"] == {"news_monitor": "monitor.testing"}


def test_the_plugin_guide_is_generated_from_the_code():
    script = _guide_script()
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert script.render(guide) == guide, "docs/plugins.md is stale; run: python scripts/update_plugin_guide.py"
    for cls in script.public_dataclasses():
        assert f"### `{cls.__name__}`" in guide
    # The classes a plugin meets in every channel and classifier: each field explained.
    for name in ("Alert", "RenderedAlert", "Match", "Evidence", "Story", "Watchlist"):
        section = guide.split(f"### `{name}`")[1].split("\n### ")[0]
        rows = [row for row in section.splitlines() if row.startswith("| `")]
        assert rows and all(not row.rstrip().endswith("|  |") for row in rows), f"{name} has an undocumented field"


FOREIGN = '''
from monitor import Match, hookimpl


class EverythingMatches:
    def classify(self, stories, watchlists):
        for story in stories:
            for watchlist in watchlists:
                yield Match(story_id=story.id, watchlist=watchlist.name, score=99.0, classifier="foreign")


@hookimpl
def register_classifiers(register):
    register("foreign", EverythingMatches())
'''


@pytest.fixture
def foreign_plugin_installed(tmp_path, monkeypatch):
    """A third-party classifier installed in the environment: a distribution with a news_monitor entry point."""
    site = tmp_path / "site"
    dist = site / "news_monitor_foreign-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "news_monitor_foreign.py").write_text(FOREIGN)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: news-monitor-foreign\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[news_monitor]\nforeign = news_monitor_foreign\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("news_monitor_foreign", None)


def test_the_suites_monitors_ignore_a_foreign_plugin(foreign_plugin_installed, open_monitor, make_config, monkeypatch):
    assert os.environ[LOAD_ENV] == ",".join(OWN_PLUGINS)
    ours = open_monitor("[watchlists.everything]\nquery = \"zeppelin\"\n")
    assert "foreign" not in ours.classifiers and "keywords" in ours.classifiers

    # The same environment without the guard: the foreign plugin loads and would match everything.
    monkeypatch.delenv(LOAD_ENV)
    exposed = Monitor.open(load_config(make_config("[watchlists.everything]\nquery = \"zeppelin\"\n"), env={}))
    try:
        assert "foreign" in exposed.classifiers
        assert "news-monitor-foreign 1.0" in exposed.plugin_origins["foreign"]
    finally:
        exposed.close()


def test_monitor_subprocesses_of_the_suite_ignore_it_too(foreign_plugin_installed, make_config):
    path = make_config("")
    env = {**os.environ, "PYTHONPATH": str(foreign_plugin_installed)}
    guarded = subprocess.run([sys.executable, "-m", "monitor", "plugins", "--config", str(path)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert guarded.returncode == 0 and "keywords" in guarded.stdout and "foreign" not in guarded.stdout
    del env[LOAD_ENV]
    exposed = subprocess.run([sys.executable, "-m", "monitor", "plugins", "--config", str(path)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert "foreign  (entry point (news-monitor-foreign 1.0))" in exposed.stdout
