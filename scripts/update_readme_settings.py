"""Rewrite README.md's configuration reference from monitor.config.SETTINGS."""

import re
from pathlib import Path

from monitor.config import settings_markdown

README = Path(__file__).resolve().parents[1] / "README.md"

text = README.read_text()
new = re.sub(
    r"(<!-- settings:start -->\n).*?(<!-- settings:end -->)",
    lambda m: m.group(1) + settings_markdown() + m.group(2),
    text,
    flags=re.S,
)
README.write_text(new)
print("README.md settings reference updated" if new != text else "README.md already current")
