"""The exceptions news-monitor raises.

Every message says what went wrong, where (file, key, URL, plugin) and, where
it helps, what to do. Causes are chained with ``raise ... from``.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of every error news-monitor raises on purpose."""


class ConfigError(MonitorError):
    """A configuration problem, located by file and dotted key."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.message = message
        self.file = file
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.key) if part)
        return f"{where}: {self.message}" if where else self.message


class ConfigErrors(MonitorError):
    """Several configuration problems, reported together."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class QuerySyntaxError(MonitorError):
    """A watchlist query that cannot be parsed; ``position`` is a 0-based offset."""

    def __init__(self, message: str, position: int, query: str = ""):
        self.message = message
        self.position = position
        self.query = query
        super().__init__(f"{message} at position {position}")


class SourceError(MonitorError):
    """A source could not be read. Expected per-source errors are values, not crashes."""

    def __init__(self, message: str, *, url: str | None = None):
        self.message = message
        self.url = url
        super().__init__(f"{url}: {message}" if url else message)


class FetchError(SourceError):
    """The transport failed: connection, timeout, HTTP status, size limit."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        permanent: bool = False,
    ):
        self.status = status
        self.retry_after = retry_after
        self.permanent = permanent
        super().__init__(message, url=url)


class ParseError(SourceError):
    """The bytes arrived but are not a feed we can read."""


class StorageError(MonitorError):
    """The database cannot be opened, locked or written."""


class DatabaseFullError(StorageError):
    """The disk (or the database's size limit) is full: the write was rolled back, nothing stored is lost."""


class DatabaseReadOnlyError(StorageError):
    """The database file or its folder cannot be written (permissions, a read-only mount)."""


class DatabaseDamagedError(StorageError):
    """The database file is damaged: news-monitor refuses to write to it."""


class SchemaTooNewError(StorageError):
    """The database was written by a newer news-monitor than this one."""


class LeaseLost(MonitorError):
    """A fleet worker's write was refused: the lease it worked under is held by another worker now
    (or expired). Nothing of that write is kept; the new holder does the work."""


class PluginError(MonitorError):
    """Base class of plugin problems."""


class InvalidPluginError(PluginError):
    """A plugin failed to import or register."""


class PluginConfigError(PluginError, ConfigError):
    """A plugin refuses its configuration at start-up."""


class ClassifierError(PluginError):
    """A registered classifier raised while classifying."""


class DeliveryError(MonitorError):
    """An alert channel could not deliver.

    :param permanent: ``True`` when retrying cannot help (recipient refused,
        HTTP 4xx other than 429); the outbox marks the alert failed at once.
    :param retry_after: seconds the receiver asked us to wait, if it said.
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        self.permanent = permanent
        self.retry_after = retry_after
        super().__init__(message)
