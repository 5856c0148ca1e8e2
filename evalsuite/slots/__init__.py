"""MCP slot benchmarks: tool-call correctness and slot discipline, measured against a real MCP server."""
