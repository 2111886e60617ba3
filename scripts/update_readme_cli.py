"""Rewrite README.md's command-line reference from the click commands (monitor.clireference)."""

import re
from pathlib import Path

from monitor.clireference import cli_markdown, full_cli

README = Path(__file__).resolve().parents[1] / "README.md"

text = README.read_text()
new = re.sub(
    r"(<!-- cli:start -->\n).*?(<!-- cli:end -->)",
    lambda m: m.group(1) + cli_markdown(full_cli()) + m.group(2),
    text,
    flags=re.S,
)
README.write_text(new)
print("README.md command-line reference updated" if new != text else "README.md already current")
