"""The MCP server: an RLM as a tool for coding agents and assistants.

`rlm_engine.mcp.server.build_server` makes the server (tools ``rlm_ask``, ``rlm_runs``,
``rlm_resume``; a run's tree and notebook as resources) over the run service; ``rlm
mcp`` serves it over stdio and ``rlm serve`` mounts it at ``/mcp`` (streamable HTTP).
The ``mcp`` SDK is imported by those modules only, never by this package.
"""
