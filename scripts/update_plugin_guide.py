"""Rewrite the generated parts of docs/plugins.md: the data-class reference (from the dataclasses
``monitor`` exports) and the hook reference at the end (from monitor/hookspecs.py).

tests/test_docs.py fails when the page is stale: run ``python scripts/update_plugin_guide.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import monitor
from monitor import hookspecs

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HEADING = "## Hook reference\n"
CLASSES_START = "<!-- dataclasses:start -->\n"
CLASSES_END = "<!-- dataclasses:end -->\n"
_PARAM = re.compile(r"^:param (\w+):\s*(.*)$")


def hook_reference() -> str:
    """Every hookspec, in the order hookspecs.py defines them, with its docstring."""
    specs = [f for _, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "news_monitor_spec")]
    specs.sort(key=lambda f: f.__code__.co_firstlineno)
    parts = [HEADING]
    for spec in specs:
        args = ", ".join(inspect.signature(spec).parameters)
        kind = "firstresult" if spec.news_monitor_spec.get("firstresult") else "all implementations called"
        parts.append(f"### `{spec.__name__}({args})`\n\n*{kind}*\n\n{inspect.getdoc(spec)}\n")
    return "\n".join(parts)


def public_dataclasses() -> list[type]:
    """The dataclasses ``monitor`` exports, by name."""
    found = [getattr(monitor, name) for name in monitor.__all__]
    return sorted((c for c in found if inspect.isclass(c) and dataclasses.is_dataclass(c)), key=lambda c: c.__name__)


def _describe(cls: type) -> tuple[str, dict[str, str]]:
    """The docstring's prose and its ``:param name:`` descriptions (continuation lines joined)."""
    doc = inspect.getdoc(cls) or ""
    if doc.startswith(f"{cls.__name__}("):  # dataclass's generated docstring: there is none
        doc = ""
    prose, params, current = [], {}, None
    for line in doc.splitlines():
        m = _PARAM.match(line.strip())
        if m:
            current = m.group(1)
            params[current] = m.group(2)
        elif current and line.startswith(" ") and line.strip():
            params[current] += " " + line.strip()
        else:
            current = None
            prose.append(line)
    return "\n".join(prose).strip(), params


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`"
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f"`{f.default_factory()!r}`"  # type: ignore[misc]
    return "required"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def dataclass_reference() -> str:
    """One section per public dataclass: what it is, then a table of its fields."""
    parts = [CLASSES_START]
    for cls in public_dataclasses():
        prose, params = _describe(cls)
        bases = [b.__name__ for b in cls.__bases__ if b is not object]
        title = f"### `{cls.__name__}`" + (f" ({', '.join(bases)})" if bases else "")
        parts.append(f"{title}\n")
        if prose:
            parts.append(f"{prose}\n")
        fields = dataclasses.fields(cls)
        if fields:
            parts.append("| field | type | default | meaning |\n|---|---|---|---|")
            for f in fields:
                parts.append(f"| `{f.name}` | `{_cell(str(f.type))}` | {_cell(_default(f))} | "
                             f"{_cell(params.get(f.name, ''))} |")
            parts.append("")
        else:
            parts.append("No fields.\n")
    parts.append(CLASSES_END)
    return "\n".join(parts)


def render(text: str) -> str:
    """``text`` (the guide) with both generated parts brought up to date."""
    head = text.split(HEADING)[0]
    before, rest = head.split(CLASSES_START)
    _, after = rest.split(CLASSES_END)
    return before + dataclass_reference() + after + hook_reference()


if __name__ == "__main__":
    GUIDE.write_text(render(GUIDE.read_text()))
    print("docs/plugins.md data classes and hook reference updated")
