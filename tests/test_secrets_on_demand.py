"""Commands that only read need no channel secrets; the commands that send name the one missing."""

from __future__ import annotations

import json

from conftest import seed_rss


def test_read_commands_work_without_a_channels_secret_and_senders_name_it(feed_server, make_config, cli_run,
                                                                           monkeypatch):
    url = feed_server.serve("/seeds.xml", seed_rss())
    feed_server.serve("/hook", b"ok", headers={"Content-Type": "text/plain"})
    config = make_config(
        f'[alerts]\nnew_source_window = 0\n[sources.wire]\nurl = "{url}"\n'
        '[channels.hook]\ntype = "webhook"\nurl = "${HOOK_URL}"\n'
        '[watchlists.trade]\nchannels = ["console", "hook"]\n'
    )
    # Polled once where the secret is set (the daemon's machine)...
    monkeypatch.setenv("HOOK_URL", feed_server.url("/hook"))
    assert cli_run("once", "--config", config).exit_code == 0
    assert len(feed_server.hits("/hook")) == 2

    # ...then read where it is not (an analyst's shell).
    monkeypatch.delenv("HOOK_URL")
    reads = {
        "matches": cli_run("matches", "--config", config, "--nl"),
        "sources": cli_run("sources", "--config", config),
        "search": cli_run("search", "--config", config, "abductees"),
        "alerts": cli_run("alerts", "--config", config),
        "check": cli_run("check", "--no-env", "--config", config),
    }
    for name, result in reads.items():
        assert result.exit_code == 0, f"monitor {name}: {result.output}"
    assert len(reads["matches"].output.splitlines()) == 6
    assert {json.loads(line)["watchlist"] for line in reads["matches"].output.splitlines()} >= {"trade"}
    assert "wire  ok (HTTP 200)  stories: 2" in reads["sources"].output
    assert "Kim Jong-un" in reads["search"].output
    assert reads["alerts"].output.count("  sent     hook  ") == 2
    check = reads["check"].output
    assert "OK: " in check and "wire: every 15m" in check
    assert f"not checked (--no-env): channel hook: {config}: channels.hook.url: environment variable HOOK_URL is not set" in check

    missing = f"error: {config}: channels.hook.url: environment variable HOOK_URL is not set"
    for args in (["run"], ["once"], ["alerts", "--retry"]):
        result = cli_run(*args, "--config", config)
        assert result.exit_code == 2, result.output
        assert result.output.strip() == missing, result.output
    plain_check = cli_run("check", "--config", config)
    assert plain_check.exit_code == 1 and missing in plain_check.output and "--no-env" in plain_check.output
    assert len(feed_server.hits("/seeds.xml")) == 1  # nothing polled without the secret
