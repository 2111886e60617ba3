"""The docs stay true: the README's configuration reference is the SETTINGS table."""

import re

from conftest import ROOT
from monitor.config import settings_markdown


def test_readme_configuration_reference_matches_the_settings_table():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- settings:start -->\n(.*?)<!-- settings:end -->", readme, re.S)
    assert block, "README.md lost its settings markers"
    assert block.group(1) == settings_markdown(), (
        "README's reference is stale; run: python scripts/update_readme_settings.py"
    )


def test_readme_gives_the_two_commands_that_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/monitor once" in readme
    test_command = 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'
    assert test_command in readme
    assert ".venv/bin/python -m pytest" in ci and '-e ".[test]"' in ci


def test_readme_command_line_reference_matches_the_commands():
    from monitor.clireference import cli_markdown, full_cli

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- cli:start -->\n(.*?)<!-- cli:end -->", readme, re.S)
    assert block, "README.md lost its command-line reference markers"
    assert block.group(1) == cli_markdown(full_cli()), (
        "README's command-line reference is stale; run: python scripts/update_readme_cli.py"
    )
