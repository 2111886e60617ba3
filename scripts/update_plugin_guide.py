"""Rewrite the hook reference at the end of docs/plugins.md from monitor/hookspecs.py."""

import inspect
from pathlib import Path

from monitor import hookspecs

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HEADING = "## Hook reference\n"


def reference() -> str:
    # Hooks in the order hookspecs.py defines them: lifecycle, registries, pipeline, alerts, events.
    specs = [f for _, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "news_monitor_spec")]
    specs.sort(key=lambda f: f.__code__.co_firstlineno)
    parts = [HEADING]
    for spec in specs:
        args = ", ".join(inspect.signature(spec).parameters)
        kind = "firstresult" if spec.news_monitor_spec.get("firstresult") else "all implementations called"
        parts.append(f"### `{spec.__name__}({args})`\n\n*{kind}*\n\n{inspect.getdoc(spec)}\n")
    return "\n".join(parts)


text = GUIDE.read_text()
head = text.split(HEADING)[0]
GUIDE.write_text(head + reference())
print("docs/plugins.md hook reference updated")
