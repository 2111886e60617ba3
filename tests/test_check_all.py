"""`monitor check` reports every problem of a configuration in one run, as text or JSON."""

import json

BROKEN = '''
[monitor]
log_levl = "INFO"

[schedule]
interval = -5

[sources.typo]
url = "htp://example.org/feed"

[channels.mail]
type = "emial"

[watchlists.w]
query = "korea AND ("
channels = ["mail"]

[watchlists.x]
query = "fine"
channels = ["nope"]

[plugins.semantc]
model = "x"
'''

EXPECTED = {
    "monitor.log_levl": "unknown key",
    "schedule.interval": "a duration cannot be negative",
    "sources.typo.url": "no loaded plugin reads htp: URLs for sources of kind 'feed' (they read: file, http, https); "
                        "did you mean http?",
    "channels.mail.type": "unknown channel type 'emial'",
    "watchlists.w.query": "at position 10",
    "watchlists.x.channels[0]": "unknown channel 'nope'",
    "plugins.semantc": "no loaded plugin is named 'semantc'",
}


def test_check_reports_every_problem_at_once(make_config, cli_run):
    path = make_config(BROKEN)
    result = cli_run("check", "--config", path)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    for key, words in EXPECTED.items():
        assert any(line.startswith(f"error: {path}: {key}: ") and words in line for line in lines), (key, result.output)
    assert len(lines) == len(EXPECTED), result.output  # one line per problem
    assert "Traceback" not in result.output


def test_check_format_json_is_a_list_of_file_key_message_severity(make_config, cli_run):
    path = make_config(BROKEN)
    result = cli_run("check", "--config", path, "--format", "json")
    assert result.exit_code == 1
    problems = json.loads(result.output)
    assert {p["key"] for p in problems} == set(EXPECTED)
    for problem in problems:
        assert set(problem) == {"file", "key", "message", "severity"}
        assert problem["file"] == str(path) and problem["severity"] == "error"
        assert EXPECTED[problem["key"]] in problem["message"]
    clean = cli_run("check", "--config", make_config("", name="clean.toml"), "--format", "json")
    assert clean.exit_code == 0 and json.loads(clean.output) == []


def test_a_scheme_is_refused_when_no_loaded_plugin_reads_it(make_config, cli_run):
    # http(s) is a plugin's like any other scheme: with it disabled, an http source cannot be polled.
    path = make_config('[monitor]\ndisable_plugins = ["http_source"]\n[sources.wire]\nurl = "http://127.0.0.1:9/feed"\n')
    check = cli_run("check", "--config", path)
    assert check.exit_code == 1
    assert f"error: {path}: sources.wire.url: no loaded plugin reads http: URLs for sources of kind 'feed' " \
           "(they read: file)" in check.output
    once = cli_run("once", "--config", path)
    assert once.exit_code == 2 and "sources.wire.url: no loaded plugin reads http: URLs" in once.output


def test_warnings_do_not_fail_the_check(make_config, cli_run):
    path = make_config('[monitor]\ndisable_plugins = ["no_such_plugin"]\n')
    result = cli_run("check", "--config", path, "--format", "json")
    assert result.exit_code == 0
    [warning] = json.loads(result.output)
    assert warning["severity"] == "warning" and warning["key"] == "monitor.disable_plugins"
