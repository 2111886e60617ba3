"""The database schema, one migration per change, applied in order on open."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("news_monitor")


@migrations()
def m001_initial(db: Database) -> None:
    db["sources"].create(
        {
            "name": str, "url": str, "kind": str, "enabled": int,
            "status": str, "http_status": int, "last_error": str,
            "etag": str, "last_modified": str, "body_hash": str,
            "last_fetch_at": str, "last_success_at": str, "next_poll_at": str,
            "error_count": int, "stories_count": int,
            "first_polled_at": str, "created_at": str,
        },
        pk="name",
        defaults={"enabled": 1, "error_count": 0, "stories_count": 0},
        not_null={"url", "kind"},
    )
    db["stories"].create(
        {
            "id": str, "source": str, "guid": str, "url": str,
            "title": str, "text": str, "summary": str,
            "published_at": str, "fetched_at": str, "first_seen_at": str, "updated_at": str,
            "author": str, "language": str, "content_hash": str,
        },
        pk="id",
        not_null={"source", "title", "text"},
    )
    db["stories"].create_index(["source", "first_seen_at"])
    db["stories"].create_index(["published_at"])
    db["stories"].enable_fts(["title", "text"], tokenize="porter unicode61", create_triggers=True)
    db["matches"].create(
        {
            "id": int, "story_id": str, "watchlist": str, "score": float,
            "classifier": str, "evidence": str, "matched_at": str,
        },
        pk="id",
        foreign_keys=[("story_id", "stories", "id")],
        not_null={"story_id", "watchlist", "score"},
    )
    db["matches"].create_index(["story_id", "watchlist"], unique=True)
    db["matches"].create_index(["watchlist", "matched_at"])
    db["outbox"].create(
        {
            "id": int, "match_id": int, "channel": str, "status": str,
            "attempts": int, "next_attempt_at": str, "last_error": str,
            "created_at": str, "sent_at": str, "updated_at": str,
        },
        pk="id",
        foreign_keys=[("match_id", "matches", "id")],
        defaults={"attempts": 0, "status": "pending"},
        not_null={"match_id", "channel", "status"},
    )
    db["outbox"].create_index(["match_id", "channel"], unique=True)
    db["outbox"].create_index(["status", "next_attempt_at"])


@migrations()
def m002_outbox_delivery(db: Database) -> None:
    # claimed_at: set when a dispatcher takes a row ('sending'), so a crash
    # mid-send is visible and recoverable. digest_id: the rows sent together
    # in one digest message share it (the smallest outbox id of the batch).
    db["outbox"].add_column("claimed_at", str)
    db["outbox"].add_column("digest_id", int)
    db["outbox"].create_index(["channel", "status", "sent_at"])
    db["channel_state"].create(
        {"channel": str, "digest_spec": str, "next_digest_at": str, "updated_at": str},
        pk="channel",
    )


@migrations()
def m003_polling_state(db: Database) -> None:
    # The URL polling actually uses after permanent redirects (the configured
    # one stays in ``url``), and the adaptive interval the last poll chose.
    db["sources"].add_column("effective_url", str)
    db["sources"].add_column("poll_interval", float)
    # What a successful poll read around (a malformed feed, dropped duplicates).
    db["sources"].add_column("last_note", str)
    # Ids of pruned stories: a story still in its feed must not come back as new.
    db["pruned_stories"].create({"id": str, "source": str, "pruned_at": str}, pk="id")
    db["pruned_stories"].create_index(["pruned_at"])


@migrations()
def m004_semantic_models(db: Database) -> None:
    # What `monitor train` learned per watchlist (the semantic plugin): a
    # logistic model over sentence embeddings, weights as a JSON list.
    db["semantic_models"].create(
        {
            "watchlist": str, "embedder": str, "dim": int, "weights": str, "bias": float,
            "cutoff": float, "positives": int, "negatives": int,
            "labels_file": str, "trained_at": str,
        },
        pk="watchlist",
        not_null={"embedder", "dim", "weights", "bias", "cutoff"},
    )


@migrations()
def m008_learned_models_and_feedback(db: Database) -> None:
    # `monitor train` stores a learned watchlist model here (an .npz blob, see
    # monitor_plugins.learned_model), with the cross-validated figures it was
    # accepted on, so a worse model can be refused.
    db["learned_models"].create(
        {
            "watchlist": str, "model": bytes, "format": int, "examples": int, "positives": int,
            "feedback": int, "cv_precision": float, "cv_recall": float, "cv_f1": float,
            "origin": str, "trained_at": str,
        },
        pk="watchlist",
        not_null={"model"},
    )
    # Verdicts on a story for a watchlist: 'right' or 'wrong' about a match, or
    # 'right' about a story the watchlist missed. The story's title and text are
    # kept so a verdict still teaches after retention prunes the story.
    db["feedback"].create(
        {
            "id": int, "story_id": str, "watchlist": str, "verdict": str, "match_id": int,
            "title": str, "text": str, "created_at": str,
        },
        pk="id",
        not_null={"story_id", "watchlist", "verdict"},
    )
    db["feedback"].create_index(["watchlist", "story_id"], unique=True)
