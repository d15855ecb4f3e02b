"""Python `mcp` 2.x interop client for the 2026-07-28 era (modern mode, no fallback).

    python py2_client.py --url URL [--mode 2026-07-28|auto] [--timeout SECONDS]

`--mode 2026-07-28` (default) is `mcp.Client(..., mode="2026-07-28")`: the client adopts the
modern era without a probe and never falls back; the scenario then sends `server/discover` itself
(`session.discover()`) to learn the server. `auto` probes discover and falls back to `initialize`.
Runs clients/scenario2026.json and prints ONE JSON summary line on stdout, in the same shape as
ts2_client.cjs (MRTR rounds carry only the `sent` side: what the client's HTTP requests held);
exits 0 on success, 1 on a scenario failure, 3 on the overall timeout. `meta.http` lists the
HTTP requests (method, MCP headers, JSON-RPC method and id) and their status.
"""

from __future__ import annotations

import argparse
import json
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
import httpx2
import mcp.types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ResourceUpdated, ToolsListChanged

HERE = Path(__file__).resolve().parent
# The scenario (`--scenario FILE`, in this folder): set in main(). Steps it leaves out are skipped
# and recorded as null (an upstream without those tools).
SCENARIO: dict[str, Any] = {}
LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX32_RE = re.compile(r"\b[0-9a-fA-F]{32}\b")
ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
WIRE_HEADERS = re.compile(r"^(mcp-|accept$|content-type$|last-event-id$)", re.I)


def norm(v: Any) -> Any:
    if isinstance(v, str):
        return ISO_RE.sub("<time>", HEX32_RE.sub("<hex32>", UUID_RE.sub("<uuid>", v)))
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(v[k]) for k in sorted(v) if v[k] is not None}
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def dump(model: Any) -> Any:
    if hasattr(model, "model_dump"):
        return model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return model


def tool_result(r: Any) -> dict[str, Any]:
    d = dump(r)
    return {"content": norm(d.get("content", [])), "isError": bool(d.get("isError", False))}


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.stage = "start"
        self.summary: dict[str, Any] = {"client": f"py2-{args.mode}", "ok": False}
        self.meta: dict[str, Any] = {"sdk": f"mcp=={dist_version('mcp')}", "url": args.url, "errors": [], "http": []}
        self.sink: list[dict[str, Any]] | None = None
        self.handled: dict[str, Any] = {"elicitation": [], "sampling": [], "roots": 0}

    # ---- HTTP tap (httpx event hooks on the client the SDK transport uses) ----
    async def on_request(self, request: httpx2.Request) -> None:
        try:
            body = json.loads(request.content) if request.content else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items() if WIRE_HEADERS.match(k)}
        self.meta["http"].append({"method": request.method, "headers": headers, "body": body})

    async def on_response(self, response: httpx2.Response) -> None:
        for ex in reversed(self.meta["http"]):
            if "status" not in ex:
                ex["status"] = response.status_code
                ex["responseHeaders"] = {
                    k.lower(): v for k, v in response.headers.items() if WIRE_HEADERS.match(k) or k.lower() == "allow"
                }
                break

    # ---- client callbacks ----
    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        if self.sink is not None:
            self.sink.append({"kind": "log", "level": params.level, "logger": params.logger, "data": norm(params.data)})

    async def on_elicit(self, context: Any, params: Any) -> Any:
        p = dump(params)
        self.handled["elicitation"].append(norm({"message": p.get("message"), "requestedSchema": p.get("requestedSchema")}))
        return types.ElicitResult(action="accept", content={"answer": SCENARIO["elicitation"]["answer"]})

    async def on_sampling(self, context: Any, params: Any) -> Any:
        p = dump(params)
        self.handled["sampling"].append(norm({"messages": p.get("messages"), "maxTokens": p.get("maxTokens")}))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SCENARIO["sampling"]["text"]),
            model=SCENARIO["sampling"]["model"],
            stop_reason=SCENARIO["sampling"]["stopReason"],
        )

    async def on_roots(self, context: Any) -> Any:
        self.handled["roots"] += 1
        return types.ListRootsResult(roots=[types.Root(uri=r["uri"], name=r["name"]) for r in SCENARIO["roots"]])

    def rounds_of(self, start: int, tool: str) -> list[dict[str, Any]]:
        calls = [
            e
            for e in self.meta["http"][start:]
            if isinstance(e.get("body"), dict)
            and e["body"].get("method") == "tools/call"
            and e["body"].get("params", {}).get("name") == tool
        ]
        out = []
        for i, e in enumerate(calls):
            p = e["body"]["params"]
            out.append(
                {
                    "sent": {"inputResponses": sorted(p.get("inputResponses") or {}), "requestState": "requestState" in p},
                    "newId": i == 0 or e["body"].get("id") != calls[i - 1]["body"].get("id"),
                }
            )
        return out

    async def scenario(self) -> None:
        sc = SCENARIO
        async with AsyncExitStack() as stack:
            self.stage = "connect"
            http = await stack.enter_async_context(
                httpx2.AsyncClient(event_hooks={"request": [self.on_request], "response": [self.on_response]})
            )
            transport = streamable_http_client(self.args.url, http_client=http)
            client = await stack.enter_async_context(
                Client(
                    transport,
                    mode=self.args.mode,
                    client_info=types.Implementation(**sc["clientInfo"]),
                    sampling_callback=self.on_sampling,
                    elicitation_callback=self.on_elicit,
                    list_roots_callback=self.on_roots,
                    logging_callback=self.on_log,
                    log_level=None,  # opted in per request below, as the TS client does
                )
            )
            session = client.session
            if session.initialize_result is not None:
                d = None  # auto mode fell back to initialize
            elif self.args.mode == "auto":
                d = dump(session.discover_result)
            else:
                # A pinned client adopted a synthesized discover result without asking: ask now.
                d = dump(types.DiscoverResult.model_validate(await session.send_discover(sc["protocolVersion"])))
            self.summary["era"] = "modern" if d else "legacy"
            info = (d or {}).get("_meta", {}).get("io.modelcontextprotocol/serverInfo") or dump(
                getattr(session.initialize_result, "server_info", None)
            )
            self.summary["serverName"] = (info or {}).get("name")
            self.summary["protocolVersion"] = client.protocol_version
            self.summary["discover"] = (
                {"supportedVersions": d.get("supportedVersions"), "capabilities": sorted(d.get("capabilities") or {})}
                if d
                else None
            )

            self.stage = "tools/list"
            listed = await client.list_tools()
            self.summary["tools"] = sorted(t.name for t in listed.tools)
            headers = {}
            for t in listed.tools:
                schema = dump(t).get("inputSchema") or {}
                for k, p in (schema.get("properties") or {}).items():
                    if isinstance(p, dict) and p.get("x-mcp-header"):
                        headers[f"{t.name}.{k}"] = p["x-mcp-header"]
            self.summary["headerParams"] = headers

            async def call(step: dict[str, Any], **kw: Any) -> tuple[int, Any]:
                start = len(self.meta["http"])
                return start, await client.call_tool(step["tool"], step["arguments"], **kw)

            self.stage = "echo"
            self.summary["echo"] = tool_result((await call(sc["echo"]))[1])

            self.stage = "progress"
            if sc.get("progress"):
                await self.progress_step(call)
            else:
                self.summary["progress"] = None

            for stage, step, key in (
                ("elicit", sc.get("elicit"), "elicitation"),
                ("sampling", sc.get("sample"), "sampling"),
                ("roots", sc.get("roots_tool"), "roots"),
            ):
                self.stage = stage
                if not step:
                    self.summary[stage] = None
                    continue
                before = self.handled[key] if key == "roots" else len(self.handled[key])
                start, r = await call(step)
                self.summary[stage] = {
                    "handled": self.handled[key] - before if key == "roots" else self.handled[key][before:],
                    "rounds": self.rounds_of(start, step["tool"]),
                    "result": tool_result(r),
                }

            self.stage = "header"
            if sc.get("header"):
                start, r = await call(sc["header"])
                sent = next(
                    (e for e in self.meta["http"][start:] if (e.get("body") or {}).get("method") == "tools/call"), {}
                )
                self.summary["header"] = {
                    "sent": {k: v for k, v in sent.get("headers", {}).items() if k.startswith("mcp-param-")},
                    "result": tool_result(r),
                }
            else:
                self.summary["header"] = None

            self.stage = "resource"
            if sc.get("resource"):
                res = dump(await client.read_resource(sc["resource"]["uri"]))
                self.summary["resource"] = norm(
                    [{"uri": c.get("uri"), "mimeType": c.get("mimeType"), "text": c.get("text")} for c in res["contents"]]
                )
            else:
                self.summary["resource"] = None

            self.stage = "prompt"
            if sc.get("prompt"):
                pr = dump(await client.get_prompt(sc["prompt"]["name"], sc["prompt"]["arguments"]))
                self.summary["prompt"] = norm(pr["messages"])
            else:
                self.summary["prompt"] = None

            self.stage = "listen"
            if self.summary["era"] == "modern" and sc.get("listen"):
                await self.listen_step(client, call)
            else:
                self.summary["listen"] = None
            self.stage = "close"

    async def progress_step(self, call: Any) -> None:
        sc = SCENARIO
        events: list[dict[str, Any]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            events.append(norm({"kind": "progress", "progress": progress, "total": total, "message": message}))

        self.sink = events
        _, r = await call(sc["progress"], progress_callback=on_progress, meta={LOG_LEVEL_KEY: sc["logLevel"]})
        self.sink = None
        for e in events:
            e.setdefault("logger", None) if e["kind"] == "log" else None
            if e["kind"] == "progress":
                e.setdefault("total", None)
                e.setdefault("message", None)
        self.summary["progress"] = {"events": events, "result": tool_result(r)}


    async def listen_step(self, client: Any, call: Any) -> None:
        sc = SCENARIO
        f = sc["listen"]["filter"]
        got: list[dict[str, Any]] = []
        async with client.listen(
            tools_list_changed=bool(f.get("toolsListChanged")),
            resource_subscriptions=f.get("resourceSubscriptions", []),
        ) as sub:
            step = {"tool": sc["listen"]["touchTool"], "arguments": {"uri": sc["resource"]["uri"]}}
            touched = tool_result((await call(step))[1])
            with anyio.move_on_after(sc["listen"]["waitMs"] / 1000):
                async for ev in sub:
                    if isinstance(ev, ResourceUpdated):
                        got.append({"kind": "resources/updated", "uri": ev.uri, "subscriptionId": True})
                    elif isinstance(ev, ToolsListChanged):
                        got.append({"kind": "tools/list_changed", "subscriptionId": True})
                    else:
                        got.append({"kind": type(ev).__name__})
                    if len(got) >= 2:
                        break
            honored = norm(dump(sub.honored))
        self.summary["listen"] = {"honored": honored, "touched": touched, "notifications": got, "closed": "local"}

    def emit(self) -> None:
        self.summary["meta"] = self.meta
        self.meta["totalMs"] = int((time.monotonic() - self.t0) * 1000)
        sys.stdout.write(json.dumps(self.summary) + "\n")
        sys.stdout.flush()

    def fail(self, code: int, err: BaseException | str) -> None:
        self.summary["ok"] = False
        self.summary["stage"] = self.stage
        self.summary["error"] = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        self.emit()
        sys.stderr.write(f"py2 client FAILED at stage {self.stage}: {self.summary['error']}\n")
        if isinstance(err, BaseException):
            traceback.print_exception(err, file=sys.stderr)
        for e in self.meta["http"][-12:]:
            sys.stderr.write(f"  {e['method']} {json.dumps(e['headers'])} {json.dumps(e['body'])[:300]} -> {e.get('status')}\n")
        sys.stderr.flush()
        os._exit(code)


def leaves(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [x for e in err.exceptions for x in leaves(e)]
    return [err]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--mode", default="2026-07-28", choices=["2026-07-28", "auto"])
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--scenario", default="scenario2026.json")
    args = ap.parse_args()
    SCENARIO.update(json.loads((HERE / args.scenario).read_text()))
    run = Run(args)
    signal.signal(signal.SIGALRM, lambda *_: run.fail(3, f"overall timeout of {args.timeout}s (alarm)"))
    signal.alarm(int(args.timeout) + 2)

    async def go() -> None:
        with anyio.fail_after(args.timeout):
            await run.scenario()

    try:
        anyio.run(go)
    except BaseException as e:  # noqa: BLE001 - every failure must become a summary
        if any(isinstance(x, TimeoutError) for x in leaves(e)):
            run.fail(3, f"overall timeout of {args.timeout}s")
        run.fail(1, leaves(e)[0] if isinstance(e, BaseExceptionGroup) else e)
    signal.alarm(0)
    run.summary["ok"] = True
    run.emit()
    os._exit(0)


if __name__ == "__main__":
    main()
