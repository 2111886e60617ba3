"""Editing the ``[sources]`` of a configuration file in place, comments and layout kept.

``monitor sources add``, ``import`` and ``remove`` change only the tables
they name: tomlkit keeps every other byte of the file as the user wrote it.
The file is replaced atomically, and only after the new text has passed the
same validation as ``monitor check`` would apply to it.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from urllib.parse import urlsplit

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import ParseError as TomlParseError
from tomlkit.items import Comment, Item, Null, Table, Whitespace

from .config import load_config
from .errors import ConfigError, ConfigErrors

MAX_NAME = 40


def slugify(text: str) -> str:
    """A source name from a feed title: ``"NYT > Business"`` becomes ``"nyt-business"``.

    Names hold ASCII letters, digits, ``-``, ``_`` and ``.`` only: accents are
    folded, other characters dropped, so a title in another script may give
    ``""`` (then :func:`name_for` uses the host).
    """
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:MAX_NAME].rstrip("-")


def name_for(title: str | None, url: str) -> str:
    """A name for a feed: from its title, else from its host (``feeds.example.com`` -> ``example-com``)."""
    host = (urlsplit(url).hostname or "").removeprefix("www.").removeprefix("feeds.")
    return slugify(title or "") or slugify(host) or "feed"


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever is not taken."""
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def _rendered_order(container: Container, path: tuple[str, ...] = ()) -> Iterator[tuple[Container, int, tuple[str, ...]]]:
    """Every item of the document in the order it is written: ``(container, index in its body, key path)``."""
    for index, (key, item) in enumerate(container.body):
        here = (*path, key.key) if key is not None else path
        yield container, index, here
        if isinstance(item, Table):
            yield from _rendered_order(item.value, here)


def _comments_directly_above(order: list[tuple[Container, int, tuple[str, ...]]], at: int) -> list[int]:
    """Where in ``order`` the comment lines written directly above item ``at`` are: no blank line or value between."""
    found = []
    for i in range(at - 1, -1, -1):
        container, index, _ = order[i]
        item = container.body[index][1]
        if _writes_nothing(item):
            continue
        if not isinstance(item, Comment):
            break
        found.append(i)
    return found[::-1]


def _trailing_comments(order: list[tuple[Container, int, tuple[str, ...]]], at: int, end: int) -> list[int]:
    """Where the comment lines (and blank lines between them) after the last value of table ``at`` are."""
    found: list[int] = []
    for i in range(end - 1, at, -1):
        container, index, _ = order[i]
        item = container.body[index][1]
        if _writes_nothing(item):
            continue
        if not isinstance(item, (Comment, Whitespace)):
            break
        found.append(i)
    found.reverse()
    while found and not isinstance(order[found[0]][0].body[order[found[0]][1]][1], Comment):
        found.pop(0)  # the blank line that set them apart from the table's values
    return found


def _last_written(order: list[tuple[Container, int, tuple[str, ...]]], at: int) -> tuple[Container, int] | None:
    """Where the item written last before item ``at`` of ``order`` is (``None``: nothing is)."""
    for container, index, _ in reversed(order[:at]):
        if not _writes_nothing(container.body[index][1]):
            return container, index
    return None


def _writes_nothing(item: Item) -> bool:
    # An item removed earlier, or a [sources] left implicit.
    return isinstance(item, Null) or (isinstance(item, Table) and item.is_super_table())


def _append_text(container: Container, index: int, text: str) -> None:
    """Make the item at ``index`` of ``container`` write ``text`` (whole lines) after itself."""
    item = container.body[index][1]
    if isinstance(item, Whitespace):
        container.body[index] = (None, Whitespace(item.s + text))  # the document is parsed again at once
    else:
        item.trivia.trail += text


class SourcesFile:
    """The configuration file as tomlkit reads it, for editing its sources.

    :raises ConfigErrors: the file is not valid TOML (with file and line).
    """

    def __init__(self, path: Path):
        self.path = path
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        try:
            self.doc = tomlkit.parse(text)
        except TomlParseError as exc:
            raise ConfigErrors([ConfigError(f"not valid TOML: {exc}", file=str(path))]) from None

    def _sources(self) -> MutableMapping | None:
        # A Table, or a proxy over several when [sources.*] tables are spread through the file.
        sources = self.doc.get("sources")
        return sources if isinstance(sources, MutableMapping) else None

    def sources(self) -> dict[str, str]:
        """``{name: url}`` of the sources this file configures."""
        table = self._sources()
        if table is None:
            return {}
        return {name: str(t.get("url", "")) for name, t in table.items() if isinstance(t, MutableMapping)}

    def add(self, name: str, url: str, *, interval: str | None = None, category: str | None = None,
            comment: str | None = None) -> None:
        """Append ``[sources.NAME]`` with its url (and interval, category); the name must be new."""
        if name in self.sources():
            raise ConfigErrors([ConfigError(f"a source named {name!r} exists already; choose another --name",
                                            file=str(self.path), key=f"sources.{name}")])
        table = tomlkit.table()
        if comment:
            table.comment(comment)
        table.add("url", url)
        if interval is not None:
            table.add("interval", interval)
        if category:
            table.add("category", category)
        table.add(tomlkit.nl())  # a blank line before whatever table follows
        sources = self._sources()
        if sources is None:
            sources = tomlkit.table(is_super_table=True)
            self.doc.add("sources", sources)
        sources[name] = table

    def remove(self, name: str) -> str:
        """Delete ``[sources.NAME]`` with the comment lines written directly above it, and return its url.

        "Directly above" is no blank line between: a comment block set apart by
        one stays. Every other table keeps its comments, including the block
        directly above the next table, which tomlkit keeps inside this one.
        """
        sources = self._sources()
        if sources is None or name not in self.sources():
            known = ", ".join(self.sources()) or "none"
            raise ConfigErrors([ConfigError(f"no source named {name!r} in this file (its sources: {known})",
                                            file=str(self.path), key=f"sources.{name}")])
        url = self.sources()[name]
        order = list(_rendered_order(self.doc))
        at = next(i for i, (_, _, path) in enumerate(order) if path == ("sources", name))
        end = at + 1
        while end < len(order) and order[end][2][:2] == ("sources", name):
            end += 1
        own = _comments_directly_above(order, at)
        # tomlkit keeps the comments written below the table's last value (those above the next table
        # among them) inside the table: they are not the table's, and stay.
        kept = "".join(order[i][0].body[order[i][1]][1].as_string() for i in _trailing_comments(order, at, end))
        written_before = _last_written(order, min([at, *own]))
        del sources[name]
        for i in own:
            container, index, _ = order[i]
            container.body[index] = (None, Null())  # as tomlkit itself removes an item: indices stay valid
        if kept:
            if written_before is not None:
                _append_text(*written_before, kept)
            text = tomlkit.dumps(self.doc)
            self.doc = tomlkit.parse(text if written_before is not None else kept + text)
        return url

    def save(self) -> None:
        """Check the new text as a configuration, then replace the file atomically (its mode kept).

        :raises ConfigErrors: the edited file would not load; the file is left untouched.
        """
        text = tomlkit.dumps(self.doc)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            # Validate the file where it will live: relative paths resolve against its folder.
            try:
                load_config(tmp)
            except ConfigErrors as exc:
                for error in exc.errors:
                    error.file = str(self.path)
                raise
            if self.path.exists():
                os.chmod(tmp, self.path.stat().st_mode & 0o7777)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
