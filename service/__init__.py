"""dockyard: a sandboxed, containerised executor service for AI code-fix agents."""

__version__ = "0.1.0"
