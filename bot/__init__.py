"""dockyard-bot: turns a bug report into a draft PR through the dockyard control API.

`bot.client.DockyardClient` is the typed async API client other bots can reuse.
"""

from bot.client import ApiError, DockyardClient, DockyardClientError, TransportError

__all__ = ["ApiError", "DockyardClient", "DockyardClientError", "TransportError"]
