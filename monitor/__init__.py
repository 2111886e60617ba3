"""news-monitor: poll feeds, classify stories against watchlists, alert on matches.

Plugins import only the names in ``__all__``.
"""

from .app import Monitor
from .cli import config_options, handle_errors, load_cli_config, open_cli_monitor  # noqa: E402  (after .app: cli imports it)
from .config import Config, Secret, load_config, parse_duration
from .delivery import (
    ChannelOption,
    alert_http_client,
    close_http_client,
    post_alert,
    read_channel_options,
    receiver_body_line,
)
from .errors import (
    ClassifierError,
    ConfigError,
    ConfigErrors,
    DeliveryError,
    FetchError,
    InvalidPluginError,
    MonitorError,
    ParseError,
    PluginConfigError,
    PluginError,
    QuerySyntaxError,
    SourceError,
    StorageError,
)
from .budget import PollInterrupted
from .hookspecs import hookimpl
from .limits import EntryLimits, NewestEntries, cut_entry, cut_note, cut_text
from .models import (
    Alert,
    AlertFailed,
    AlertSent,
    ClassifierFailed,
    EntryData,
    Event,
    Evidence,
    FetchResult,
    FetchState,
    Hit,
    Match,
    MatchFound,
    ParsedEntries,
    RenderedAlert,
    Reported,
    Snippet,
    Source,
    SourceFailed,
    SourceUpdated,
    Story,
    UpdateResult,
    Watchlist,
)
from .neterrors import network_error_words
from .netpolicy import NetworkPolicy, RefusedAddress
from .evaluation import InputError, Scores, read_stories
from .normalize import canonical_url, html_to_text
from .polling import parse_retry_after
from .query import KeywordMatcher, parse_query, query_error_words
from .safetext import json_safe, safe_line, safe_text
from .storage import Storage, is_postgres_url, open_store
from .rendering import (
    alert_subject,
    also_reported_line,
    digest_subject,
    group_by_watchlist,
    render_digest_plain,
    render_plain,
)
from .version import USER_AGENT, __version__

__all__ = [
    "USER_AGENT", "Alert", "AlertFailed", "AlertSent", "ClassifierError", "ClassifierFailed",
    "Config", "ConfigError", "EntryLimits", "PollInterrupted", "NewestEntries", "cut_entry", "cut_note", "cut_text", "ConfigErrors", "DeliveryError", "EntryData", "Event", "Evidence",
    "FetchError", "FetchResult", "FetchState", "Hit", "InvalidPluginError", "KeywordMatcher",
    "Match", "MatchFound", "Monitor", "MonitorError", "NetworkPolicy", "RefusedAddress", "ParseError", "PluginConfigError",
    "ParsedEntries", "PluginError", "QuerySyntaxError", "RenderedAlert", "Secret", "Snippet", "Source",
    "SourceError", "SourceFailed", "SourceUpdated", "StorageError", "Story", "UpdateResult",
    "Watchlist", "__version__", "alert_subject", "canonical_url", "hookimpl", "html_to_text",
    "load_config", "parse_duration", "parse_query", "parse_retry_after", "query_error_words", "render_plain",
    "digest_subject", "group_by_watchlist", "post_alert", "render_digest_plain",
    "Reported", "also_reported_line",
    "ChannelOption", "read_channel_options", "alert_http_client", "close_http_client", "network_error_words",
    "receiver_body_line",
    # text from the outside, made safe to print and log
    "safe_line", "safe_text", "json_safe",
    # the storage interface (docs/plugins.md: the storage API for plugins)
    "Storage", "is_postgres_url", "open_store",
    # helpers for commands that plugins add through register_commands
    "config_options", "handle_errors", "load_cli_config", "open_cli_monitor",
    # reading labelled stories (JSON lines), for plugins that train
    "InputError", "Scores", "read_stories",
]
