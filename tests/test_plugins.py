"""Plugins: loading by entry point and by path, disabling by name, isolation, the hook contract."""

import ast
import inspect
from pathlib import Path

import pytest

from conftest import ROOT, rss
from monitor import InvalidPluginError, Monitor, hookspecs, load_config
from monitor.plugins import load_plugins, make_plugin_manager

LOCAL_PLUGINS = Path(__file__).parent / "local_plugins"
SHIPPED = {"http_source", "file_source", "directory_source", "feed_parser", "json_feed", "keywords", "learned", "console_alerts"}


def test_shipped_plugins_load_through_the_entry_point_group():
    pm = make_plugin_manager()
    origins = load_plugins(pm)
    assert SHIPPED <= set(origins)
    assert all(origins[name].startswith("entry point (news-monitor") for name in SHIPPED)


def test_plugins_command_lists_plugins_and_their_hooks(cli_run, make_config):
    result = cli_run("plugins", "--config", make_config(""))
    assert result.exit_code == 0
    assert "keywords  (entry point (news-monitor" in result.output
    assert "hooks: register_classifiers" in result.output


def test_a_shipped_plugin_can_be_disabled_by_name(make_config, cli_run):
    path = make_config('[monitor]\ndisable_plugins = ["console_alerts"]\n', name="m.toml")
    result = cli_run("check", "--config", path)
    assert result.exit_code == 1
    assert "channels.console.type: unknown channel type 'console'" in result.output


def test_a_shipped_plugin_can_be_replaced(make_config, tmp_path, feed_server, capsys):
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    (plugins_dir / "loud_console.py").write_text(
        "from monitor import hookimpl\n"
        "class Loud:\n"
        "    def send(self, rendered, alert):\n"
        "        print('LOUD:', rendered.subject.upper())\n"
        "@hookimpl\n"
        "def register_channel_types(register):\n"
        "    register('console', lambda name, options, monitor: Loud())\n"
    )
    url = feed_server.serve("/f", rss([{"title": "Pyongyang summit", "guid": "1"}]))
    path = make_config(
        f'[monitor]\ndb = "{tmp_path / "m.db"}"\ndisable_plugins = ["console_alerts"]\nplugins_dir = "plugins"\n'
        f'[alerts]\nnew_source_window = 0\n[sources.f]\nurl = "{url}"\n'
    )
    with Monitor.open(load_config(path, env={})) as monitor:
        monitor.run_once()
    assert "LOUD: [NORTH_KOREA] PYONGYANG SUMMIT" in capsys.readouterr().out


def test_local_plugins_by_path_implement_every_pipeline_hook_and_a_failing_classifier_is_isolated(
    make_config, feed_server, tmp_path
):
    items = [
        {"title": "MARKER story", "guid": "custom-1"},
        {"title": "SKIPME story", "guid": "2"},
        {"title": "Plain story about Pyongyang", "guid": "3"},
    ]
    url = feed_server.serve("/f", rss(items))
    path = make_config(
        f'[monitor]\ndb = "{tmp_path / "m.db"}"\nplugins_dir = "{LOCAL_PLUGINS}"\n'
        f'[sources.f]\nurl = "{url}"\n[watchlists.marked]\nthreshold = 1\n'
    )
    with Monitor.open(load_config(path, env={})) as monitor:
        assert "recorder" in monitor.plugin_origins
        recorder = monitor.pm.get_plugin("recorder")
        [result] = monitor.run_once()
        stories = {s["title"]: s for s in monitor.store.query("SELECT * FROM stories")}
        found = {(m["story_id"], m["watchlist"]) for m in monitor.store.query("SELECT * FROM matches")}
    assert result.error is None and result.new_stories == 2
    assert "SKIPME story" not in stories
    assert stories["MARKER story"]["id"] == "custom:custom-1"
    assert stories["MARKER story"]["language"] == "xx"
    # The exploding classifier failed; the marker and keyword classifiers still matched.
    assert ("custom:custom-1", "marked") in found
    assert any(w == "north_korea" for _, w in found)
    assert "ClassifierFailed" in recorder.EVENTS and "SourceUpdated" in recorder.EVENTS


def test_a_misspelled_hook_is_refused_at_start(tmp_path):
    (tmp_path / "typo.py").write_text("from monitor import hookimpl\n@hookimpl\ndef register_clasifiers(register):\n    pass\n")
    with pytest.raises(InvalidPluginError, match="register_clasifiers"):
        load_plugins(make_plugin_manager(), plugins_dir=tmp_path)


def test_a_plugin_that_fails_to_import_is_named(tmp_path):
    (tmp_path / "broken.py").write_text("import does_not_exist_anywhere\n")
    with pytest.raises(InvalidPluginError, match="broken.py") as info:
        load_plugins(make_plugin_manager(), plugins_dir=tmp_path)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_shipped_plugins_import_only_the_public_monitor_api():
    import monitor

    public = set(monitor.__all__)
    for path in (ROOT / "plugins").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "monitor":
                assert node.module == "monitor", f"{path.name} imports from {node.module}"
                names = {alias.name for alias in node.names}
                assert names <= public, f"{path.name} imports non-public {names - public}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("monitor.") for a in node.names), path.name


def test_every_hookspec_is_documented_the_pluggy_way():
    specs = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "news_monitor_spec")]
    assert len(specs) >= 10
    for spec in specs:
        doc = inspect.getdoc(spec) or ""
        for arg in inspect.signature(spec).parameters:
            assert f":param {arg}:" in doc, f"{spec.__name__} does not document {arg}"
        assert ":returns:" in doc, spec.__name__
        if spec.news_monitor_spec.get("firstresult"):
            assert "Stops at first non-None result." in doc, spec.__name__


def test_every_hook_is_in_the_plugin_guide():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    for name in dir(make_plugin_manager().hook):
        if not name.startswith("_"):
            assert f"### `{name}(" in guide, f"docs/plugins.md lacks {name}: run python scripts/update_plugin_guide.py"
