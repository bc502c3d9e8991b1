"""The protocol with the in-box helper: frames (`wire`), request ids, deadlines, restarts (`helper`)."""

from service.channel.helper import ChannelClosed, Channels, HelperChannel, Reply

__all__ = ["ChannelClosed", "Channels", "HelperChannel", "Reply"]
