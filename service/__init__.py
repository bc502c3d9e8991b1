"""dockyard: a sandboxed, containerised executor service for AI code-fix agents."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The one place the version is declared is the package metadata (pyproject.toml).
    __version__ = version("dockyard")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
