#!/usr/bin/env node
// TypeScript SDK (@modelcontextprotocol/sdk 1.x) interop client for mcp-bridge.
//
//   node ts_client.cjs --transport sse|streamable --url URL [--timeout SECONDS] [--scenario FILE]
//   node ts_client.cjs --transport stdio --command 'PROGRAM ARG...' [--timeout SECONDS]
//
// stdio: the SDK's own StdioClientTransport starts the server (--command split on blanks, no
// shell, no quoting) and talks to it directly -- the reference for bridged runs.
//
// Runs the scenario of scenario.json (or FILE: scenario-era.json adds elicitation and change
// notifications, for the servers that have those tools) and prints ONE JSON summary line on stdout; exits 0 on
// success, 1 on a scenario failure, 3 on the overall timeout. Diagnostics (the wire trace of the
// last messages) go to stderr.
//
// Known client quirk (TS SDK 1.x Protocol): progress notifications are dispatched to their
// callback in a microtask, while a response is dispatched synchronously and deletes the progress
// handler. When the last progress notification arrives in the same chunk as the response the
// callback never sees it (the SDK reports "Received a progress notification for an unknown
// token" to onerror). The summary therefore records notifications from a tap on the transport
// (what really arrived, in arrival order), and cross-checks the callback against it: the only
// tolerated difference is exactly that one -- the final progress notification, directly
// followed by the response on the wire, missing from the callback, with the SDK's
// "unknown token" error seen. It is reported in meta.quirks; any other difference fails.
"use strict";

const path = require("node:path");
const fs = require("node:fs");
const { createRequire } = require("node:module");

const ROOT = path.resolve(__dirname, "..", "..", "..");
const INTEROP_DIR = process.env.INTEROP_DIR || path.join(ROOT, ".interop");
const NODE_DIR = path.join(INTEROP_DIR, "node");
let SCENARIO = null;

function parseArgs(argv) {
  const out = { transport: null, url: null, command: null, timeout: 15, scenario: path.join(__dirname, "scenario.json") };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === "--transport") { out.transport = v; i++; }
    else if (a === "--url") { out.url = v; i++; }
    else if (a === "--command") { out.command = v; i++; }
    else if (a === "--timeout") { out.timeout = Number(v); i++; }
    else if (a === "--scenario") { out.scenario = path.resolve(__dirname, v); i++; }
    else { throw new Error(`unknown argument ${a}`); }
  }
  const stdio = out.transport === "stdio";
  if (!["sse", "streamable", "stdio"].includes(out.transport) || !(stdio ? out.command : out.url)) {
    throw new Error("usage: ts_client.cjs --transport sse|streamable --url URL | --transport stdio --command CMD [--timeout S]");
  }
  return out;
}

// ---- normalisation of volatile values (shared rules with the Python clients) ----
const UUID_RE = /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/g;
const HEX32_RE = /\b[0-9a-fA-F]{32}\b/g;
const ISO_RE = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?/g;
function normStr(s) {
  return s.replace(UUID_RE, "<uuid>").replace(HEX32_RE, "<hex32>").replace(ISO_RE, "<time>");
}
function norm(v) {
  if (typeof v === "string") return normStr(v);
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = norm(v[k]);
    return o;
  }
  return v;
}
function toolResult(r) {
  const out = { content: norm(r.content ?? []), isError: Boolean(r.isError) };
  if (r.structuredContent !== undefined) out.structuredContent = norm(r.structuredContent);
  return out;
}

function pick(toolNames, table) {
  for (const name of Object.keys(table)) if (toolNames.includes(name)) return name;
  return null;
}

const state = {
  t0: Date.now(),
  stage: "start",
  summary: { client: "ts", ok: false },
  meta: { quirks: [], errors: [], timingsMs: {} },
  wire: [], // {dir, t, msg}
};

function fail(code, err) {
  const { summary, meta, wire, t0 } = state;
  summary.ok = false;
  summary.stage = state.stage;
  summary.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  summary.meta = meta;
  process.stdout.write(JSON.stringify(summary) + "\n");
  process.stderr.write(`ts client FAILED at stage ${state.stage}: ${summary.error}\n`);
  if (err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
  process.stderr.write("last wire messages (oldest first):\n");
  for (const w of wire.slice(-25)) {
    process.stderr.write(`  +${w.t - t0}ms ${w.dir} ${JSON.stringify(w.msg).slice(0, 400)}\n`);
  }
  process.exit(code);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  SCENARIO = JSON.parse(fs.readFileSync(args.scenario, "utf8"));
  const req = createRequire(path.join(NODE_DIR, "package.json"));
  const { Client } = req("@modelcontextprotocol/sdk/client/index.js");
  const { SSEClientTransport } = req("@modelcontextprotocol/sdk/client/sse.js");
  const { StreamableHTTPClientTransport } = req("@modelcontextprotocol/sdk/client/streamableHttp.js");
  const types = req("@modelcontextprotocol/sdk/types.js");
  const sdkVersion = JSON.parse(fs.readFileSync(path.join(NODE_DIR, "node_modules", "@modelcontextprotocol", "sdk", "package.json"), "utf8")).version;
  state.meta.sdk = `@modelcontextprotocol/sdk@${sdkVersion}`;

  const { summary, meta, wire } = state;
  const t0 = state.t0;
  let lastInbound = Date.now();
  const setStage = (x) => { state.stage = x; };
  summary.client = `ts-${args.transport}`;
  meta.url = args.url ?? args.command;
  const timer = setTimeout(() => fail(3, new Error(`overall timeout of ${args.timeout}s`)), args.timeout * 1000);

  let transport;
  if (args.transport === "stdio") {
    const { StdioClientTransport } = req("@modelcontextprotocol/sdk/client/stdio.js");
    const [command, ...rest] = args.command.split(/\s+/).filter(Boolean);
    transport = new StdioClientTransport({ command, args: rest, stderr: "inherit" });
  } else {
    const url = new URL(args.url);
    transport = args.transport === "sse"
      ? new SSEClientTransport(url)
      : new StreamableHTTPClientTransport(url);
  }

  // Wire tap: Protocol.connect chains a pre-set onmessage before its own dispatch, so this sees
  // every inbound message synchronously and in arrival order.
  let onWire = null;
  transport.onmessage = (msg) => {
    lastInbound = Date.now();
    wire.push({ dir: "<-", t: lastInbound, msg });
    if (onWire) onWire(msg);
  };
  const origSend = transport.send.bind(transport);
  transport.send = (msg, opts) => {
    wire.push({ dir: "->", t: Date.now(), msg });
    return origSend(msg, opts);
  };

  const capabilities = { sampling: {}, roots: { listChanged: false } };
  if (SCENARIO.elicitation) capabilities.elicitation = {};
  const client = new Client(SCENARIO.clientInfo, { capabilities });
  client.onerror = (e) => { meta.errors.push(String(e && e.message ? e.message : e)); };

  const callbackLogs = [];
  let logSink = null;
  const preambleLogs = [];
  client.setNotificationHandler(types.LoggingMessageNotificationSchema, (n) => {
    const p = n.params;
    const rec = { level: p.level, logger: p.logger ?? null, data: norm(p.data) };
    if (logSink) logSink.push({ kind: "log", ...rec });
    else preambleLogs.push(rec);
    callbackLogs.push(rec);
  });
  const samplingRequests = [];
  client.setRequestHandler(types.CreateMessageRequestSchema, (r) => {
    const p = r.params;
    samplingRequests.push(norm({
      messages: p.messages,
      systemPrompt: p.systemPrompt ?? null,
      maxTokens: p.maxTokens,
    }));
    return {
      role: "assistant",
      content: { type: "text", text: SCENARIO.sampling.text },
      model: SCENARIO.sampling.model,
      stopReason: SCENARIO.sampling.stopReason,
    };
  });
  let rootsRequests = 0;
  client.setRequestHandler(types.ListRootsRequestSchema, () => {
    rootsRequests++;
    return { roots: SCENARIO.roots };
  });

  const elicitRequests = [];
  if (SCENARIO.elicitation) {
    client.setRequestHandler(types.ElicitRequestSchema, (r) => {
      elicitRequests.push(norm({ message: r.params.message, requestedSchema: r.params.requestedSchema }));
      return { action: "accept", content: { answer: SCENARIO.elicitation.answer } };
    });
  }
  const changes = [];
  client.setNotificationHandler(types.ResourceUpdatedNotificationSchema, (n) => {
    changes.push({ kind: "resources/updated", uri: n.params.uri });
  });
  client.setNotificationHandler(types.ToolListChangedNotificationSchema, () => {
    changes.push({ kind: "tools/list_changed" });
  });

  setStage("initialize");
  await client.connect(transport);
  const tInit = Date.now();
  meta.timingsMs.initialize = tInit - t0;
  const sv = client.getServerVersion();
  summary.serverName = sv?.name ?? null;
  summary.protocolVersion = transport.protocolVersion
    ?? wire.find((w) => w.dir === "<-" && w.msg.result && w.msg.result.protocolVersion)?.msg.result.protocolVersion
    ?? null;
  if (args.transport === "streamable") meta.sessionIdAssigned = Boolean(transport.sessionId);

  setStage("tools/list");
  const listed = await client.listTools();
  const tools = listed.tools.map((t) => t.name).sort();
  summary.tools = tools;

  setStage("settle");
  const s = SCENARIO.settle;
  for (;;) {
    const now = Date.now();
    if (now - t0 > s.maxMs + meta.timingsMs.initialize) break;
    if (now - tInit >= s.minMsSinceInit && now - lastInbound >= s.quietMs) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  summary.preambleLogs = preambleLogs.slice().sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  summary.preambleRootsRequests = rootsRequests;

  // echo
  setStage("echo");
  const echoTool = SCENARIO.echo.tools.find((n) => tools.includes(n));
  if (echoTool) {
    const schema = listed.tools.find((t) => t.name === echoTool).inputSchema || {};
    const key = Object.keys(schema.properties || { text: 1 })[0];
    const r = await client.callTool({ name: echoTool, arguments: { [key]: SCENARIO.echo.text } });
    summary.echo = { tool: echoTool, result: toolResult(r) };
  } else summary.echo = null;

  // progress
  setStage("progress");
  const progTool = pick(tools, SCENARIO.progress.tools);
  if (!progTool) throw new Error(`no progress tool among ${tools.join(",")}`);
  const wireEvents = [];
  const cbProgress = [];
  let callId = null;
  let responseSeen = false;
  onWire = (msg) => {
    if (responseSeen) return;
    if (msg.method === "notifications/progress" && callId !== null && Number(msg.params.progressToken) === callId) {
      const p = msg.params;
      wireEvents.push({ kind: "progress", progress: p.progress, total: p.total ?? null, message: p.message ?? null });
    } else if (msg.method === "notifications/message") {
      const p = msg.params;
      wireEvents.push({ kind: "log", level: p.level, logger: p.logger ?? null, data: norm(p.data) });
    } else if (callId !== null && msg.id !== undefined && Number(msg.id) === callId && !msg.method) {
      responseSeen = true;
      wireEvents.push({ kind: "response" });
    }
  };
  const sendBefore = wire.length;
  logSink = [];
  const cbEvents = logSink;
  const progPromise = client.callTool(
    { name: progTool, arguments: SCENARIO.progress.tools[progTool] },
    undefined,
    {
      onprogress: (p) => {
        const ev = { kind: "progress", progress: p.progress, total: p.total ?? null, message: p.message ?? null };
        cbProgress.push(ev);
        cbEvents.push(ev);
      },
    },
  );
  // the tools/call we just sent is the first outbound tools/call after sendBefore
  const sent = wire.slice(sendBefore).find((w) => w.dir === "->" && w.msg.method === "tools/call");
  callId = sent ? Number(sent.msg.id) : null;
  const progResult = await progPromise;
  await new Promise((r) => setTimeout(r, 20)); // let queued notification microtasks run
  logSink = null;
  const events = wireEvents.filter((e) => e.kind !== "response");
  // Cross-check the SDK callbacks against the wire.
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(cbEvents, events)) {
    const lastIdx = events.length - 1;
    const quirk =
      lastIdx >= 0 &&
      events[lastIdx].kind === "progress" &&
      wireEvents[wireEvents.length - 1].kind === "response" &&
      same(cbEvents, events.slice(0, lastIdx)) &&
      meta.errors.some((e) => e.includes("progress notification for an unknown token"));
    if (quirk) {
      meta.quirks.push({
        name: "ts-sdk-drops-last-progress-callback",
        detail: "final progress notification arrived in the response's chunk; seen on the wire, missed by the SDK callback",
        dropped: events[lastIdx],
      });
    } else {
      throw new Error(`progress callbacks ${JSON.stringify(cbEvents)} differ from the wire ${JSON.stringify(events)}`);
    }
  }
  summary.progress = { tool: progTool, events, result: toolResult(progResult) };

  // sampling
  setStage("sampling");
  const sampleTool = pick(tools, SCENARIO.sample.tools);
  if (sampleTool) {
    const before = samplingRequests.length;
    const r = await client.callTool({ name: sampleTool, arguments: SCENARIO.sample.tools[sampleTool] });
    summary.sampling = { tool: sampleTool, requests: samplingRequests.slice(before), result: toolResult(r) };
  } else summary.sampling = null;

  // roots
  setStage("roots");
  const rootsTool = pick(tools, SCENARIO.roots_tool.tools);
  if (rootsTool) {
    const before = rootsRequests;
    const r = await client.callTool({ name: rootsTool, arguments: SCENARIO.roots_tool.tools[rootsTool] });
    summary.roots = { tool: rootsTool, requests: rootsRequests - before, result: toolResult(r) };
  } else summary.roots = null;

  // elicitation (scenarios that ask for it)
  if (SCENARIO.elicit) {
    setStage("elicit");
    const before = elicitRequests.length;
    const r = await client.callTool({ name: SCENARIO.elicit.tool, arguments: SCENARIO.elicit.arguments });
    summary.elicit = { handled: elicitRequests.slice(before), result: toolResult(r) };
  }

  // change notifications: subscribe, make the server change things, wait for the news
  if (SCENARIO.listen) {
    setStage("listen");
    const l = SCENARIO.listen;
    await client.subscribeResource({ uri: l.uri });
    const before = changes.length;
    const r = await client.callTool({ name: l.touchTool, arguments: { uri: l.uri } });
    const until = Date.now() + l.waitMs;
    while (changes.length - before < l.expect && Date.now() < until) {
      await new Promise((res) => setTimeout(res, 25));
    }
    const got = changes.slice(before).sort((a, b) => a.kind.localeCompare(b.kind));
    summary.listen = { touched: toolResult(r), notifications: got };
  }

  // close
  setStage("close");
  if (args.transport === "streamable") {
    await transport.terminateSession();
    summary.close = "terminated";
  } else {
    summary.close = "closed";
  }
  await client.close();
  meta.timingsMs.total = Date.now() - t0;
  meta.wireMessages = wire.length;
  summary.ok = true;
  summary.meta = meta;
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(summary) + "\n");
  process.exit(0);
}

main().catch((e) => fail(1, e));
