"""Configuration: every problem is reported with its file and key, and the daemon does not start on it."""

import pytest

from monitor import ConfigErrors, Monitor, Secret, load_config, parse_duration


def errors_of(path, env=None):
    with pytest.raises(ConfigErrors) as info:
        load_config(path, env=env or {})
    return [str(e) for e in info.value.errors]


def test_defaults_alone_are_valid_and_ship_three_watchlists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config/monitor.toml here
    config = load_config(None, env={})
    assert config.file is None
    assert set(config.watchlists) == {"north_korea", "abductions", "trade"}
    assert list(config.channels) == ["console"]
    assert config.sources == {}


def test_every_problem_is_reported_with_file_and_key(make_config):
    path = make_config(
        """
[schedule]
interval = "soon"
max_workers = "four"
colour = "blue"

[sources.wire]
kind = "feed"

[watchlists.trade]
channels = ["console", "pager"]

[channels.slack]
url = "${SLACK_URL}"
"""
    )
    errors = errors_of(path)
    where = str(path)
    assert f"{where}: schedule.interval: expected a duration" in "\n".join(errors)
    assert any(e.startswith(f"{where}: schedule.max_workers: expected a whole number") for e in errors)
    assert any(e.startswith(f"{where}: schedule.colour: unknown key") for e in errors)
    assert any(e.startswith(f"{where}: sources.wire.url: missing") for e in errors)
    assert any(e.startswith(f"{where}: watchlists.trade.channels[1]: unknown channel 'pager'") for e in errors)
    assert any(e.startswith(f"{where}: channels.slack.type: missing") for e in errors)


def test_missing_environment_variable_names_the_key_where_it_is_needed(make_config):
    path = make_config('[channels.ops]\ntype = "console"\nstream = "${OPS_STREAM}"\n')
    # Loading succeeds: reading the database needs no channel secrets...
    config = load_config(path, env={})
    [error] = config.env_errors()
    assert str(error) == f"{path}: channels.ops.stream: environment variable OPS_STREAM is not set"
    # ...what builds the channels to send does.
    with pytest.raises(ConfigErrors) as info:
        Monitor.open(config)
    assert [str(e) for e in info.value.errors] == [str(error)]
    # Outside channel and plugin tables every command needs the value: an error at once.
    path = make_config('[monitor]\ndb = "${DATA_DIR}/monitor.db"\n')
    assert errors_of(path) == [f"{path}: monitor.db: environment variable DATA_DIR is not set"]


def test_environment_secrets_are_resolved_and_redactable(make_config):
    path = make_config('[plugins.example]\ntoken = "Bearer ${API_TOKEN}"\n')
    config = load_config(path, env={"API_TOKEN": "s3cr3t-value"})
    token = config.plugins["example"]["token"]
    assert token == "Bearer s3cr3t-value"
    assert isinstance(token, Secret) and "s3cr3t" not in repr(token)
    assert config.redact("failed with Bearer s3cr3t-value") == "failed with Bearer ${API_TOKEN}"


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[sources.x\nurl = 1\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}: not valid TOML")


def test_missing_file_is_an_error(tmp_path):
    [error] = errors_of(tmp_path / "nope.toml")
    assert "nope.toml: file not found" in error


def test_relative_source_paths_resolve_against_the_config_file(make_config, tmp_path):
    path = make_config('[sources.local]\nurl = "articles"\nkind = "directory"\n')
    config = load_config(path, env={})
    assert config.sources["local"].url == str((tmp_path / "articles").resolve())
    assert config.sources["local"].interval == 900.0  # schedule.interval default


def test_user_tables_are_laid_over_the_defaults(make_config):
    path = make_config('[watchlists.trade]\nthreshold = 7.5\n\n[watchlists.tech]\nquery = "semiconductor*"\n')
    config = load_config(path, env={})
    assert config.watchlists["trade"].threshold == 7.5
    assert config.watchlists["trade"].query  # kept from the defaults
    assert config.watchlists["tech"].channels == ("console",)
    assert "north_korea" in config.watchlists


@pytest.mark.parametrize(
    "text, seconds", [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("1.5h", 5400.0), ("2d", 172800.0), ("250ms", 0.25)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_check_command_reports_problems_and_fails(make_config, cli_run):
    path = make_config('[sources.x]\nurl = "http://127.0.0.1:9/feed"\nspeed = 3\n')
    result = cli_run("check", "--config", path)
    assert result.exit_code == 1
    assert f"error: {path}: sources.x.speed: unknown key" in result.output


def test_check_reports_a_bad_query_with_watchlist_and_position(make_config, cli_run):
    path = make_config('[watchlists.broken]\nquery = \'("north korea" OR pyongyang\'\n')
    result = cli_run("check", "--config", path)
    assert result.exit_code == 1
    assert "watchlists.broken.query" in result.output
    assert "position" in result.output


def test_check_passes_on_the_default_configuration(cli_run):
    from conftest import ROOT

    result = cli_run("check", "--config", ROOT / "config" / "monitor.toml")
    assert result.exit_code == 0, result.output
    assert "OK:" in result.output and "3 watchlists" in result.output


def test_run_refuses_to_start_on_a_bad_config(make_config, cli_run, tmp_path):
    path = make_config('[watchlists.trade]\nchannels = ["nowhere"]\n')
    result = cli_run("run", "--config", path)
    assert result.exit_code == 2
    assert "unknown channel 'nowhere'" in result.output
    assert not (tmp_path / "monitor.db").exists()
