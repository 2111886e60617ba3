"""The package version and the User-Agent that names it."""

from importlib import metadata

try:
    __version__ = metadata.version("news-monitor")
except metadata.PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0+unknown"

USER_AGENT = f"news-monitor/{__version__} (feed monitor; +python-httpx)"
