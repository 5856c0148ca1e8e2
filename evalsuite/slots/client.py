"""The harness side of MCP: start a tool server over stdio, list its tools for the model, and execute the
model's calls on it, only for tools on the allow-list.

    with ToolServer(allow=["calculate", "get_weather"]) as server:
        server.tools          # [{"type": "function", "function": {name, description, parameters}}] (allowed only)
        server.call("calculate", {"expression": "2 + 3"})   # ToolResult(text="5", error=False)

The MCP SDK is asynchronous; this class runs its session on a private event loop in a background thread so
the benchmark (and a model adapter generating with torch) stays plain synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from dataclasses import dataclass


class ToolNotAllowed(PermissionError):
    """A call to a tool that is not on the allow-list; it is never sent to the server."""


@dataclass
class ToolResult:
    """What a tool call returned, as the text that goes back into the tool slot."""

    text: str
    error: bool = False


class ToolServer:
    """An MCP tool server process over stdio (by default `python -m evalsuite.slots.tools_server`)."""

    def __init__(self, allow: list[str], command: list[str] | None = None, timeout: float = 30.0):
        self.allow = set(allow)
        self.command = command or [sys.executable, "-m", "evalsuite.slots.tools_server"]
        self.timeout = timeout
        self.tools: list[dict] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-client", daemon=True)
        self._session = None
        self._stop: asyncio.Event | None = None
        self._task = None

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout)

    async def _serve(self, ready: asyncio.Future) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(command=self.command[0], args=self.command[1:])
        try:
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                listed = await session.list_tools()
                self._session = session
                self._stop = asyncio.Event()
                ready.set_result(listed.tools)
                await self._stop.wait()
        except Exception as e:  # the server failed to start: hand the error to the caller waiting on `ready`
            if not ready.done():
                ready.set_exception(e)
            else:
                raise

    def __enter__(self) -> ToolServer:
        self._thread.start()
        ready = asyncio.run_coroutine_threadsafe(self._make_ready(), self._loop).result(self.timeout)
        listed = asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(ready), self.timeout),
                                                  self._loop).result(self.timeout + 5)
        missing = self.allow - {t.name for t in listed}
        if missing:
            self.__exit__(None, None, None)
            raise ToolNotAllowed(f"allow-listed tools the server does not offer: {sorted(missing)}")
        self.tools = [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                                          "parameters": t.input_schema}}
                      for t in listed if t.name in self.allow]
        return self

    async def _make_ready(self) -> asyncio.Future:
        ready = self._loop.create_future()
        self._task = self._loop.create_task(self._serve(ready))
        return ready

    def call(self, name: str, arguments: dict) -> ToolResult:
        """Run one tool call on the server; a tool outside the allow-list raises ToolNotAllowed."""
        if name not in self.allow:
            raise ToolNotAllowed(f"tool {name!r} is not on the allow-list")
        result = self._run(self._session.call_tool(name, arguments))
        text = "".join(getattr(c, "text", "") for c in result.content)
        if result.is_error:
            return ToolResult(text=text, error=True)
        value = result.structured_content
        if isinstance(value, dict) and set(value) == {"result"}:  # the SDK wraps non-object results
            value = value["result"]
        if value is None:
            try:
                value = json.loads(text)
            except ValueError:
                return ToolResult(text=text)
        # one compact JSON form whichever way the SDK returned it (it pretty-prints some): fewer tokens in the
        # tool slot, and the same text for the same answer
        return ToolResult(text=value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                                                sort_keys=True))

    def __exit__(self, *exc) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._task is not None:
            # shutting down: the server process may already be gone, which is no error of the caller's
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(self._task), self.timeout),
                                                 self._loop).result(self.timeout + 5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout)
