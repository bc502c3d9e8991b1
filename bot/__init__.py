"""dockyard-bot: turns a bug report into a draft PR (or a patch file) through the dockyard control API.

It talks to the service through the client SDK (`dockyard_client`, the `dockyard-client`
distribution), which other bots should use too; `bot.client.DockyardPort` is only the narrow,
job-id-based port the fixer and the agent call.
"""
