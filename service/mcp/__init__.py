"""dockyard speaks MCP: `/mcp` (streamable HTTP on the service's own port, same tokens and
roles as the REST API) and `dockyard mcp --stdio` (a local stdio server that forwards to it)."""
