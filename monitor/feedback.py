"""Readers' verdicts on the classifier's decisions, kept beside the matches.

A verdict is about one story and one watchlist: ``right`` or ``wrong`` for a
stored match, ``missed`` for a story that should have matched. Saying it again
replaces the earlier verdict. The web UI writes here; a learned classifier
can read it back as labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import MonitorError
from .models import VERDICTS, Feedback
from .storage import Storage


__all__ = ["Feedback", "FeedbackError", "feedback_from", "record_feedback"]


class FeedbackError(MonitorError):
    """A verdict that cannot be stored (unknown story, watchlist or verdict)."""


MAX_NOTE = 500


def feedback_from(fields: Mapping[str, Any], origin: str) -> Feedback:
    """The verdict a form or a JSON body gives (``story_id``, ``watchlist``, ``verdict``, ``note``).

    :raises FeedbackError: one of the three is missing or not text.
    """
    given = {key: fields.get(key) for key in ("story_id", "watchlist", "verdict")}
    if not all(isinstance(value, str) and value for value in given.values()):
        raise FeedbackError("expected story_id, watchlist and verdict, each a non-empty string")
    note = fields.get("note")
    return Feedback(**given, note=str(note or "")[:MAX_NOTE], origin=origin)


def record_feedback(store: Storage, feedback: Feedback, watchlists: tuple[str, ...] | list[str]) -> int:
    """Store ``feedback`` (replacing an earlier verdict on the same story and watchlist); returns its row id.

    :param watchlists: the configured watchlist names; a verdict on any other is refused.
    :raises FeedbackError: the verdict, story or watchlist is unknown, or ``right``/``wrong``
        is given for a story that has no match for that watchlist.
    """
    if feedback.verdict not in VERDICTS:
        raise FeedbackError(f"unknown verdict {feedback.verdict!r} (expected one of {', '.join(VERDICTS)})")
    if feedback.watchlist not in watchlists:
        raise FeedbackError(f"no watchlist named {feedback.watchlist!r}")
    if store.story_row(feedback.story_id) is None:
        raise FeedbackError(f"no stored story with id {feedback.story_id!r}")
    matched = store.has_match(feedback.story_id, feedback.watchlist)
    if feedback.verdict in ("right", "wrong") and not matched:
        raise FeedbackError(f"story {feedback.story_id!r} has no match for {feedback.watchlist!r} to call "
                            f"{feedback.verdict} (say 'missed' if it should have matched)")
    # One storage path for every verdict (web, CLI): the learned classifier trains on what it keeps.
    stored = store.add_feedback(feedback.watchlist, "right" if feedback.verdict == "missed" else feedback.verdict,
                                story_id=feedback.story_id, note=feedback.note, origin=feedback.origin)
    return stored.id

