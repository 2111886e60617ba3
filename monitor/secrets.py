"""Values the configuration took from the environment: the one place that knows them.

Every ``${VAR}`` in the configuration is resolved from the environment and
its value is treated as a secret. :meth:`Secrets.redact` is the one
redaction function: logs, errors, the database and every command's output
show ``${VAR}`` where the value would be, so a source URL carrying a token
reads as it was written in the file. :meth:`Secrets.reveal` turns such text
back into the real value where it must be used (a stored redirect target
that is polled again).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class Secrets:
    """Environment values by variable name, and the two ways through them."""

    values: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.values.values())

    def __contains__(self, value: object) -> bool:
        return value in self.values.values()

    def redact(self, text: str) -> str:
        """``text`` with every environment value replaced by ``${NAME}``, in one pass."""
        if not text or not self:
            return text
        return self._redactor.sub(lambda m: "${" + self._names[m.group(0)] + "}", text)

    def reveal(self, text: str) -> str:
        """The inverse of :meth:`redact` for the names held here; other ``${...}`` stay as they are."""
        if not text or "${" not in text:
            return text
        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                      lambda m: self.values.get(m.group(1)) or m.group(0), text)

    @cached_property
    def _names(self) -> dict[str, str]:
        # A value used under two names is shown under the first.
        names: dict[str, str] = {}
        for name, value in self.values.items():
            if value:
                names.setdefault(value, name)
        return names

    @cached_property
    def _redactor(self) -> re.Pattern[str]:
        # Longest first, so a value containing another is replaced whole.
        values = sorted(self._names, key=len, reverse=True)
        return re.compile("|".join(re.escape(v) for v in values))
