"""Python SDK (`mcp` 1.x and 2.x) interop client for mcp-bridge.

    python py_client.py --transport sse|streamable|client --url URL [--timeout SECONDS]
                        [--header 'NAME: VALUE']... [--ca-file PEM]
    python py_client.py --transport stdio --command 'PROGRAM ARG...' [--timeout SECONDS]

  sse         legacy HTTP+SSE, `mcp.client.sse.sse_client` (1.x only)
  streamable  Streamable HTTP: 1.x `streamablehttp_client`, 2.x `streamable_http_client`,
              with a `ClientSession` and an explicit `initialize()`
  stdio       the SDK's own `stdio_client`: starts the server (split like a shell would split
              --command, no shell) and talks to it directly -- the reference for bridged runs
  client      2.x high-level `mcp.Client(url)`: probes `server/discover` (2026-07-28) first and
              falls back to `initialize`

  --header    an extra HTTP header on every request (the SDK's `headers=`), repeatable
  --ca-file   trust the CA certificates in this PEM file for https (through the SDK's
              `httpx_client_factory=`); both options are for the 1.x transports only

Runs the scenario of scenario.json and prints ONE JSON summary line on stdout; exits 0 on
success, 1 on a scenario failure, 3 on the overall timeout. Diagnostics (the last inbound
messages, SDK warnings) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import time
import traceback
from contextlib import AsyncExitStack
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import anyio

import mcp.types as types

HERE = Path(__file__).resolve().parent
# scenario.json, or the file named by --scenario (scenario-era.json adds elicitation and change
# notifications, for the servers that have those tools).
SCENARIO: dict[str, Any] = json.loads((HERE / "scenario.json").read_text())
MCP_VERSION = dist_version("mcp")
MAJOR = int(MCP_VERSION.split(".")[0])

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX32_RE = re.compile(r"\b[0-9a-fA-F]{32}\b")
ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


def norm(v: Any) -> Any:
    """Same normalisation rules as ts_client.cjs: volatile ids and times replaced, keys sorted."""
    if isinstance(v, str):
        return ISO_RE.sub("<time>", HEX32_RE.sub("<hex32>", UUID_RE.sub("<uuid>", v)))
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(v[k]) for k in sorted(v)}
    return v


def dump(model: Any) -> Any:
    if hasattr(model, "model_dump"):
        return model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return model


def tool_result(r: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "content": norm([dump(c) for c in (r.content or [])]),
        "isError": bool(getattr(r, "isError", None) or getattr(r, "is_error", None)),
    }
    sc = getattr(r, "structuredContent", None)
    if sc is None:
        sc = getattr(r, "structured_content", None)
    if sc is not None:
        out["structuredContent"] = norm(sc)
    return out


def pick(tools: list[str], table: dict[str, Any]) -> str | None:
    for name in table:
        if name in tools:
            return name
    return None


def http_options(args: argparse.Namespace) -> dict[str, Any]:
    """`headers=` and an `httpx_client_factory=` trusting --ca-file, for the 1.x transports."""
    opts: dict[str, Any] = {}
    if not (args.header or args.ca_file):
        return opts
    if MAJOR >= 2:
        raise SystemExit("--header/--ca-file are implemented for the 1.x transports only")
    if args.header:
        pairs = [h.split(":", 1) for h in args.header]
        if any(len(p) != 2 for p in pairs):
            raise SystemExit(f"--header wants 'NAME: VALUE', got {args.header}")
        opts["headers"] = {k.strip(): v.strip() for k, v in pairs}
    if args.ca_file:
        import ssl

        import httpx

        verify = ssl.create_default_context(cafile=args.ca_file)

        def factory(headers: Any = None, timeout: Any = None, auth: Any = None) -> httpx.AsyncClient:
            # create_mcp_http_client, plus the trust anchor (verify cannot be set afterwards)
            return httpx.AsyncClient(headers=headers, timeout=timeout, auth=auth, verify=verify)

        opts["httpx_client_factory"] = factory
    return opts


def leaves(err: BaseException) -> list[BaseException]:
    """The real exceptions inside (nested) exception groups."""
    if isinstance(err, BaseExceptionGroup):
        return [leaf for sub in err.exceptions for leaf in leaves(sub)]
    return [err]


def describe(err: BaseException) -> str:
    return "; ".join(f"{type(e).__name__}: {e}" for e in leaves(err))


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


class HttpTrace(logging.Handler):
    """httpx's INFO lines ("HTTP Request: POST ... 202 Accepted"), kept for failure reports."""

    def __init__(self, t0: float) -> None:
        super().__init__(logging.INFO)
        self.t0 = t0
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"+{int((time.monotonic() - self.t0) * 1000)}ms {record.getMessage()}")


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.stage = "start"
        self.summary: dict[str, Any] = {"client": f"py{MAJOR}-{args.transport}", "ok": False}
        self.meta: dict[str, Any] = {"sdk": f"mcp=={MCP_VERSION}", "url": args.url or args.command, "errors": [], "timingsMs": {}}
        self.inbound: list[tuple[float, str]] = []
        self.last_inbound = time.monotonic()
        self.preamble_logs: list[dict[str, Any]] = []
        self.log_sink: list[dict[str, Any]] | None = None
        self.sampling_requests: list[Any] = []
        self.elicit_requests: list[Any] = []
        self.changes: list[dict[str, Any]] = []
        self.roots_requests = 0
        self.warnings = Warnings()
        logging.getLogger("mcp").addHandler(self.warnings)
        logging.getLogger("client").addHandler(self.warnings)
        self.http = HttpTrace(self.t0)
        for name in ("httpx", "httpx2"):
            lg = logging.getLogger(name)
            lg.setLevel(logging.INFO)
            lg.propagate = False
            lg.addHandler(self.http)

    def ms(self) -> int:
        return int((time.monotonic() - self.t0) * 1000)

    def note(self, what: str) -> None:
        self.last_inbound = time.monotonic()
        self.inbound.append((self.last_inbound, what))

    # ---- client callbacks ----
    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        # (on_message notes every notification for the trace and the quiet-period clock)
        rec = {"level": params.level, "logger": params.logger, "data": norm(params.data)}
        if self.log_sink is not None:
            self.log_sink.append({"kind": "log", **rec})
        else:
            self.preamble_logs.append(rec)

    async def on_sampling(self, context: Any, params: types.CreateMessageRequestParams) -> Any:
        self.note("sampling/createMessage")
        p = dump(params)
        self.sampling_requests.append(
            norm(
                {
                    "messages": p.get("messages"),
                    "systemPrompt": p.get("systemPrompt"),
                    "maxTokens": p.get("maxTokens"),
                }
            )
        )
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SCENARIO["sampling"]["text"]),
            model=SCENARIO["sampling"]["model"],
            stopReason=SCENARIO["sampling"]["stopReason"],
        )

    async def on_elicit(self, context: Any, params: Any) -> Any:
        self.note("elicitation/create")
        p = dump(params)
        self.elicit_requests.append(norm({"message": p.get("message"), "requestedSchema": p.get("requestedSchema")}))
        return types.ElicitResult(action="accept", content={"answer": SCENARIO["elicitation"]["answer"]})

    async def on_roots(self, context: Any) -> Any:
        self.note("roots/list")
        self.roots_requests += 1
        return types.ListRootsResult(roots=[types.Root(uri=r["uri"], name=r["name"]) for r in SCENARIO["roots"]])

    async def on_message(self, message: Any) -> None:
        # Sees every server notification (and transport exceptions): keeps the quiet-period clock
        # and the diagnostic trace honest.
        if isinstance(message, Exception):
            self.meta["errors"].append(f"{type(message).__name__}: {message}")
            self.note(f"exception {type(message).__name__}: {message}")
        else:
            root = getattr(message, "root", message)
            params = getattr(root, "params", None)
            method = getattr(root, "method", None)
            if method == "notifications/resources/updated":
                self.changes.append({"kind": "resources/updated", "uri": str(params.uri)})
            elif method == "notifications/tools/list_changed":
                self.changes.append({"kind": "tools/list_changed"})
            detail = dump(params) if params is not None else ""
            self.note(f"{getattr(root, 'method', type(root).__name__)} {json.dumps(detail)[:300]}")

    # ---- the scenario ----
    async def scenario(self) -> None:
        a = self.args
        info = types.Implementation(**SCENARIO["clientInfo"])
        callbacks = dict(
            sampling_callback=self.on_sampling,
            list_roots_callback=self.on_roots,
            logging_callback=self.on_log,
            message_handler=self.on_message,
            client_info=info,
        )
        if SCENARIO.get("elicitation"):
            callbacks["elicitation_callback"] = self.on_elicit
        async with AsyncExitStack() as stack:
            self.stage = "connect"
            http = http_options(a)
            self.meta["http"] = {"headers": sorted(http.get("headers", {})), "caFile": bool(a.ca_file)}
            if a.transport == "client":
                if MAJOR < 2:
                    raise SystemExit("--transport client needs mcp 2.x")
                from mcp import Client

                self.stage = "initialize"
                client = await stack.enter_async_context(Client(a.url, **callbacks))
                session = client.session
                server_info = client.server_info
                protocol_version = client.protocol_version
                self.meta["negotiation"] = "discover" if session.initialize_result is None else "initialize"
                # Calls go through the Client, as an application makes them: it answers a
                # 2026-07-28 server's input_required rounds with the callbacks above.
                session = client
            else:
                if a.transport == "stdio":
                    import shlex

                    from mcp.client.stdio import StdioServerParameters, stdio_client

                    argv = shlex.split(a.command)
                    params = StdioServerParameters(command=argv[0], args=argv[1:])
                    read, write = await stack.enter_async_context(stdio_client(params))
                elif a.transport == "sse":
                    if MAJOR >= 2:
                        raise SystemExit("--transport sse is the 1.x legacy client")
                    from mcp.client.sse import sse_client

                    read, write = await stack.enter_async_context(sse_client(a.url, **http))
                elif MAJOR < 2:
                    from mcp.client.streamable_http import streamablehttp_client

                    read, write, get_sid = await stack.enter_async_context(streamablehttp_client(a.url, **http))
                else:
                    from mcp.client.streamable_http import streamable_http_client

                    read, write = await stack.enter_async_context(streamable_http_client(a.url))
                from mcp import ClientSession

                session = await stack.enter_async_context(ClientSession(read, write, **callbacks))
                self.stage = "initialize"
                init = await session.initialize()
                server_info = init.serverInfo if MAJOR < 2 else init.server_info
                protocol_version = init.protocolVersion if MAJOR < 2 else init.protocol_version
            t_init = time.monotonic()
            self.meta["timingsMs"]["initialize"] = self.ms()
            self.summary["serverName"] = server_info.name if server_info else None
            self.summary["protocolVersion"] = protocol_version

            self.stage = "tools/list"
            listed = await session.list_tools()
            tools = sorted(t.name for t in listed.tools)
            self.summary["tools"] = tools

            self.stage = "settle"
            s = SCENARIO["settle"]
            while True:
                now = time.monotonic()
                if now - t_init > s["maxMs"] / 1000:
                    break
                if now - t_init >= s["minMsSinceInit"] / 1000 and now - self.last_inbound >= s["quietMs"] / 1000:
                    break
                await anyio.sleep(0.025)
            self.summary["preambleLogs"] = sorted(self.preamble_logs, key=lambda r: json.dumps(r, sort_keys=True))
            self.summary["preambleRootsRequests"] = self.roots_requests

            self.stage = "echo"
            echo_tool = next((n for n in SCENARIO["echo"]["tools"] if n in tools), None)
            if echo_tool:
                tool = next(t for t in listed.tools if t.name == echo_tool)
                schema = getattr(tool, "inputSchema", None) or getattr(tool, "input_schema", None) or {}
                key = next(iter(schema.get("properties") or {"text": 1}))
                r = await session.call_tool(echo_tool, {key: SCENARIO["echo"]["text"]})
                self.summary["echo"] = {"tool": echo_tool, "result": tool_result(r)}
            else:
                self.summary["echo"] = None

            self.stage = "progress"
            prog_tool = pick(tools, SCENARIO["progress"]["tools"])
            if not prog_tool:
                raise RuntimeError(f"no progress tool among {tools}")
            events: list[dict[str, Any]] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                events.append({"kind": "progress", "progress": progress, "total": total, "message": message})

            self.log_sink = events
            r = await session.call_tool(
                prog_tool, SCENARIO["progress"]["tools"][prog_tool], progress_callback=on_progress
            )
            self.log_sink = None
            # Progress values are JSON numbers: make 1.0 and 1 print alike across SDKs.
            for e in events:
                for k in ("progress", "total"):
                    if isinstance(e.get(k), float) and e[k].is_integer():
                        e[k] = int(e[k])
            self.summary["progress"] = {"tool": prog_tool, "events": events, "result": tool_result(r)}

            self.stage = "sampling"
            sample_tool = pick(tools, SCENARIO["sample"]["tools"])
            if sample_tool:
                before = len(self.sampling_requests)
                r = await session.call_tool(sample_tool, SCENARIO["sample"]["tools"][sample_tool])
                self.summary["sampling"] = {
                    "tool": sample_tool,
                    "requests": self.sampling_requests[before:],
                    "result": tool_result(r),
                }
            else:
                self.summary["sampling"] = None

            self.stage = "roots"
            roots_tool = pick(tools, SCENARIO["roots_tool"]["tools"])
            if roots_tool:
                before = self.roots_requests
                r = await session.call_tool(roots_tool, SCENARIO["roots_tool"]["tools"][roots_tool])
                self.summary["roots"] = {
                    "tool": roots_tool,
                    "requests": self.roots_requests - before,
                    "result": tool_result(r),
                }
            else:
                self.summary["roots"] = None

            if SCENARIO.get("elicit"):
                self.stage = "elicit"
                e = SCENARIO["elicit"]
                before = len(self.elicit_requests)
                r = await session.call_tool(e["tool"], e["arguments"])
                self.summary["elicit"] = {"handled": self.elicit_requests[before:], "result": tool_result(r)}

            if SCENARIO.get("listen"):
                # Subscribe, make the server change things, wait for the news.
                self.stage = "listen"
                li = SCENARIO["listen"]
                await session.subscribe_resource(li["uri"])
                before = len(self.changes)
                r = await session.call_tool(li["touchTool"], {"uri": li["uri"]})
                until = time.monotonic() + li["waitMs"] / 1000
                while len(self.changes) - before < li["expect"] and time.monotonic() < until:
                    await anyio.sleep(0.025)
                got = sorted(self.changes[before:], key=lambda c: c["kind"])
                self.summary["listen"] = {"touched": tool_result(r), "notifications": got}

            self.stage = "close"
        # Leaving the exit stack closes the session: the legacy client drops its GET stream, the
        # Streamable clients send DELETE (failures are only logged by the SDK: look for them).
        failed = [w for w in self.warnings.records if "termination failed" in w.lower()]
        if a.transport in ("sse", "stdio"):
            self.summary["close"] = "closed"
        else:
            self.summary["close"] = "terminated" if not failed else f"termination failed: {failed[0]}"

    def emit(self) -> None:
        self.summary["meta"] = self.meta
        self.meta["warnings"] = self.warnings.records
        self.meta["timingsMs"]["total"] = self.ms()
        sys.stdout.write(json.dumps(self.summary) + "\n")
        sys.stdout.flush()

    def fail(self, code: int, err: BaseException | str) -> None:
        self.summary["ok"] = False
        self.summary["stage"] = self.stage
        self.summary["error"] = err if isinstance(err, str) else describe(err)
        self.emit()
        sys.stderr.write(f"py{MAJOR} client FAILED at stage {self.stage}: {self.summary['error']}\n")
        if isinstance(err, BaseException):
            traceback.print_exception(err, file=sys.stderr)
        sys.stderr.write("last inbound messages (oldest first):\n")
        for t, what in self.inbound[-25:]:
            sys.stderr.write(f"  +{int((t - self.t0) * 1000)}ms <- {what[:400]}\n")
        sys.stderr.write("last HTTP exchanges (oldest first):\n")
        for line in self.http.lines[-25:]:
            sys.stderr.write(f"  {line}\n")
        for w in self.warnings.records[-10:]:
            sys.stderr.write(f"  sdk warning: {w}\n")
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", choices=["sse", "streamable", "client", "stdio"], required=True)
    ap.add_argument("--url")
    ap.add_argument("--command", help="the stdio server to start (--transport stdio)")
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'")
    ap.add_argument("--ca-file", metavar="PEM")
    ap.add_argument("--scenario", metavar="FILE", help="instead of scenario.json (relative to this directory)")
    args = ap.parse_args()
    if (args.transport == "stdio") != bool(args.command) or (args.transport != "stdio") != bool(args.url):
        ap.error("--transport stdio takes --command, every other transport --url")
    if args.scenario:
        SCENARIO.clear()
        SCENARIO.update(json.loads((HERE / args.scenario).read_text()))
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    run = Run(args)

    # Hard backstop in case the event loop itself is wedged.
    signal.signal(signal.SIGALRM, lambda *_: run.fail(3, f"overall timeout of {args.timeout}s (alarm)"))
    signal.alarm(int(args.timeout) + 2)

    async def go() -> None:
        with anyio.fail_after(args.timeout):
            await run.scenario()

    try:
        anyio.run(go)
    except BaseException as e:  # noqa: BLE001 - every failure must become a summary
        if any(isinstance(x, TimeoutError) for x in leaves(e)):
            run.fail(3, f"overall timeout of {args.timeout}s ({describe(e)})")
        if isinstance(e, SystemExit) and e.code in (0, None):
            raise
        run.fail(1, e)
    signal.alarm(0)
    run.summary["ok"] = True
    run.emit()
    os._exit(0)


if __name__ == "__main__":
    main()
