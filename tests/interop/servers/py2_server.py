"""Python `mcp` 2.x (MCPServer) interop server for the 2026-07-28 era.

Usage: python py2_server.py --port N

Streamable HTTP on http://127.0.0.1:N/mcp. The SDK serves both eras on that endpoint, choosing by
the `MCP-Protocol-Version` header (it has no modern-only switch); 2026-07-28 requests get the
modern behaviour (no sessions, MRTR, `subscriptions/listen`). The tools, resource and prompt are
those of servers/ts2_server.cjs, with the same results:
  echo(text), progress(steps, delay) (a log message then a progress notification per step),
  elicit(question) / sample(prompt) / roots() (MRTR: an InputRequiredResult, answered on the retry),
  region_echo(region, text) (`region` marked `x-mcp-header: Region`), touch(uri) (publishes
  resources/updated and tools list_changed to listen streams); resource `interop://greeting`,
  prompt `greet(name)`.
The SDK seals `requestState` on the wire (an opaque token) and hands the tool its own value back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Annotated

import mcp_types as t
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field


def reply(s: str) -> t.CallToolResult:
    return t.CallToolResult(content=[t.TextContent(type="text", text=s)])


def build() -> MCPServer:
    mcp = MCPServer("interop-py2", version="1.0.0", instructions="mcp-bridge interop server (2026-07-28 era)")

    @mcp.tool(description="Echo the text back.")
    async def echo(text: str) -> t.CallToolResult:
        return reply(f"echo: {text}")

    @mcp.tool(description="Send, per step, a log message and a progress notification, then return.")
    async def progress(ctx: Context, steps: int = 5, delay: float = 0.02) -> t.CallToolResult:
        import anyio

        for i in range(1, steps + 1):
            await ctx.info(f"progress step {i}/{steps}")
            await ctx.report_progress(i, steps, message=f"step {i} of {steps}")
            if delay > 0:
                await anyio.sleep(delay)
        return reply(f"progress done after {steps} steps")

    @mcp.tool(description="Ask the user a question (MRTR elicitation) and return the answer.")
    async def elicit(ctx: Context, question: str) -> t.CallToolResult | t.InputRequiredResult:
        got = (ctx.input_responses or {}).get("answer")
        if got is None:
            schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
            return t.InputRequiredResult(
                input_requests={
                    "answer": t.ElicitRequest(
                        params=t.ElicitRequestFormParams(message=question, requested_schema=schema)
                    )
                },
                request_state="elicit-round-1",
            )
        if not isinstance(got, t.ElicitResult):
            return t.CallToolResult(content=[t.TextContent(type="text", text=f"unexpected {got!r}")], is_error=True)
        answer = (got.content or {}).get("answer", "")
        return reply(f"elicited[{got.action}/{ctx.request_state}]: {answer}")

    @mcp.tool(description="Ask the client to sample a message for the prompt (MRTR).")
    async def sample(ctx: Context, prompt: str) -> t.CallToolResult | t.InputRequiredResult:
        got = (ctx.input_responses or {}).get("sample")
        if got is None:
            msg = t.SamplingMessage(role="user", content=t.TextContent(type="text", text=prompt))
            return t.InputRequiredResult(
                input_requests={"sample": t.CreateMessageRequest(params=t.CreateMessageRequestParams(messages=[msg], max_tokens=50))}
            )
        c = got.content[0] if isinstance(got.content, list) else got.content
        body = c.text if isinstance(c, t.TextContent) else json.dumps(c.model_dump(mode="json"))
        return reply(f"sampled[{got.model}/{got.role}]: {body}")

    @mcp.tool(description="List the client's roots (MRTR).")
    async def roots(ctx: Context) -> t.CallToolResult | t.InputRequiredResult:
        got = (ctx.input_responses or {}).get("roots")
        if got is None:
            return t.InputRequiredResult(input_requests={"roots": t.ListRootsRequest()})
        listed = [{"name": r.name, "uri": str(r.uri)} for r in got.roots]
        return reply(json.dumps(listed, separators=(",", ":")))

    @mcp.tool(description="Echo text for a region; region travels as the Mcp-Param-Region header too.")
    async def region_echo(
        ctx: Context, region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], text: str
    ) -> t.CallToolResult:
        header = (ctx.headers or {}).get("mcp-param-region")
        return reply(f"region {region} (header {header}): {text}")

    @mcp.tool(description="Publish resources/updated for the uri and tools/list_changed to listen streams.")
    async def touch(ctx: Context, uri: str) -> t.CallToolResult:
        await ctx.notify_resource_updated(uri)
        await ctx.notify_tools_changed()
        return reply(f"touched {uri}")

    @mcp.resource("interop://greeting", name="greeting", description="A fixed greeting.", mime_type="text/plain")
    def greeting() -> str:
        return "hello from the interop server"

    @mcp.prompt(name="greet", description="Greet someone.")
    def greet(name: str) -> str:
        return f"Please greet {name}."

    return mcp


def watch_parent() -> None:
    parent = os.getppid()

    def loop() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=loop, daemon=True).start()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    if os.environ.get("INTEROP_PARENT_WATCH") != "0":
        watch_parent()
    print(f"py2 interop server: streamable-http on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    build().run(transport="streamable-http", host="127.0.0.1", port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
