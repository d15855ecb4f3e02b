"""FastMCP (Python `mcp` 1.x) interop server for mcp-bridge.

Usage: python fastmcp_server.py --transport sse|streamable-http --port N [--path /mcp]
       python fastmcp_server.py --transport stdio

Binds 127.0.0.1 only (stdio: no socket, messages on stdin/stdout, logs on stderr). Tools:
  echo(text)            -> "echo: <text>"
  progress(steps, delay) per step: one log message (ctx.info) then one progress
                         notification (ctx.report_progress); returns a fixed text
  sample(prompt)        -> one sampling/createMessage request to the client; returns its text
  elicit(question)      -> one elicitation/create request (a form asking for one string `answer`);
                           returns `elicited[<action>]: <answer>`
  roots()               -> one roots/list request to the client; returns the roots as JSON
Every server->client message is request-scoped (related to the tools/call), so on Streamable
HTTP it travels on that call's POST stream and on legacy SSE on the one event stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import SamplingMessage, TextContent


def build(port: int, path: str | None) -> FastMCP:
    # --path serves either transport on the same URL, as a server upgraded in place does.
    paths = {"sse_path": path, "streamable_http_path": path} if path else {}
    mcp = FastMCP(
        "interop-fastmcp",
        host="127.0.0.1",
        port=port,
        log_level="INFO",  # uvicorn access lines: what the upstream saw, for failure reports
        **paths,
    )

    @mcp.tool()
    async def echo(text: str) -> str:
        """Echo the text back."""
        return f"echo: {text}"

    @mcp.tool()
    async def progress(ctx: Context, steps: int = 5, delay: float = 0.02) -> str:
        """Send, per step, a log message and a progress notification, then return."""
        for i in range(1, steps + 1):
            await ctx.info(f"progress step {i}/{steps}")
            await ctx.report_progress(i, steps, message=f"step {i} of {steps}")
            if delay > 0:
                await asyncio.sleep(delay)
        return f"progress done after {steps} steps"

    @mcp.tool()
    async def sample(ctx: Context, prompt: str) -> str:
        """Ask the client to sample a message for the prompt."""
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=50,
            related_request_id=ctx.request_context.request_id,
        )
        content = result.content
        text = content.text if isinstance(content, TextContent) else json.dumps(content.model_dump(mode="json"))
        return f"sampled[{result.model}/{result.role}]: {text}"

    @mcp.tool()
    async def elicit(ctx: Context, question: str) -> str:
        """Ask the user the question (elicitation/create, a form with one string) and return the answer."""
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
        result = await ctx.session.elicit_form(
            message=question,
            requestedSchema=schema,
            related_request_id=ctx.request_context.request_id,
        )
        answer = (result.content or {}).get("answer", "")
        return f"elicited[{result.action}]: {answer}"

    @mcp.tool()
    async def roots(ctx: Context) -> str:
        """List the client's roots."""
        result = await ctx.session.list_roots()
        return json.dumps([{"uri": str(r.uri), "name": r.name} for r in result.roots], sort_keys=True)

    return mcp


def watch_parent() -> None:
    """Exit once the process that started us is gone (the test runner was killed)."""
    parent = os.getppid()

    def loop() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=loop, daemon=True).start()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", choices=["sse", "streamable-http", "stdio"], required=True)
    ap.add_argument("--port", type=int, default=0, help="required for sse and streamable-http")
    ap.add_argument("--path", help="the endpoint path of either transport (default /sse or /mcp)")
    args = ap.parse_args()
    if args.transport != "stdio" and not args.port:
        ap.error("--port is required for sse and streamable-http")
    if os.environ.get("INTEROP_PARENT_WATCH") != "0":
        watch_parent()
    where = "stdin/stdout" if args.transport == "stdio" else f"127.0.0.1:{args.port}"
    print(f"fastmcp interop server: {args.transport} on {where}", file=sys.stderr, flush=True)
    build(args.port, args.path).run(transport=args.transport)
    return 0


if __name__ == "__main__":
    sys.exit(main())
