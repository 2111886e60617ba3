"""The names this module had before the storage interface (:mod:`monitor.storage`), kept for imports.

``Store`` is the SQLite store; new code opens a store with
:func:`monitor.storage.open_store`, which also takes a PostgreSQL URL.
"""

from __future__ import annotations

from .sqlite_store import SQLiteStore as Store
from .sqlite_store import never_polled, storage_error
from .storage import SavedUpdate, SourceOutcome, match_from_row, story_from_row

__all__ = ["SavedUpdate", "SourceOutcome", "Store", "match_from_row", "never_polled", "storage_error", "story_from_row"]
