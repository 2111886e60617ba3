"""news-monitor: poll feeds, classify stories against watchlists, alert on matches.

Plugins import only the names in ``__all__``.
"""

from .app import Monitor
from .config import Config, Secret, load_config, parse_duration
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
from .hookspecs import hookimpl
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
    RenderedAlert,
    Snippet,
    Source,
    SourceFailed,
    SourceUpdated,
    Story,
    UpdateResult,
    Watchlist,
)
from .normalize import canonical_url, html_to_text
from .query import KeywordMatcher, parse_query
from .rendering import alert_subject, render_plain
from .version import USER_AGENT, __version__
from .cli import config_options, handle_errors, load_cli_config, open_cli_monitor  # noqa: E402  (after .app: cli imports it)

__all__ = [
    "USER_AGENT", "Alert", "AlertFailed", "AlertSent", "ClassifierError", "ClassifierFailed",
    "Config", "ConfigError", "ConfigErrors", "DeliveryError", "EntryData", "Event", "Evidence",
    "FetchError", "FetchResult", "FetchState", "Hit", "InvalidPluginError", "KeywordMatcher",
    "Match", "MatchFound", "Monitor", "MonitorError", "ParseError", "PluginConfigError",
    "PluginError", "QuerySyntaxError", "RenderedAlert", "Secret", "Snippet", "Source",
    "SourceError", "SourceFailed", "SourceUpdated", "StorageError", "Story", "UpdateResult",
    "Watchlist", "__version__", "alert_subject", "canonical_url", "hookimpl", "html_to_text",
    "load_config", "parse_duration", "parse_query", "render_plain",
    # helpers for commands that plugins add through register_commands
    "config_options", "handle_errors", "load_cli_config", "open_cli_monitor",
]
