#!/usr/bin/env node
// TypeScript SDK v2 (@modelcontextprotocol/client 2.x) interop client: the 2026-07-28 era.
//
//   node ts2_client.cjs --url URL [--mode modern|auto|legacy] [--timeout SECONDS]
//
// `--mode modern` (default) pins the client to 2026-07-28 (`versionNegotiation: { mode: { pin } }`):
// no fallback. `auto` probes `server/discover` and falls back to `initialize`; `legacy` is the
// plain 2025 handshake. Runs clients/scenario2026.json and prints ONE JSON summary line on stdout
// (strings normalised, keys sorted); exits 0 on success, 1 on a scenario failure, 3 on the
// overall timeout. `meta.http` holds every HTTP exchange as the client's own fetch saw it (request
// headers that matter, body, status, response body): the wire facts of tests/interop/README.md.
"use strict";

const path = require("node:path");
const fs = require("node:fs");
const { createRequire } = require("node:module");

const ROOT = path.resolve(__dirname, "..", "..", "..");
const INTEROP_DIR = process.env.INTEROP_DIR || path.join(ROOT, ".interop");
const NODE2_DIR = path.join(INTEROP_DIR, "node2");
// The scenario (`--scenario FILE`, in this folder): set in main(). Steps it leaves out are
// skipped and recorded as null (an upstream without those tools).
let SCENARIO = null;
const LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel";

function parseArgs(argv) {
  const out = { url: null, mode: "modern", timeout: 15 };
  for (let i = 0; i < argv.length; i++) {
    const [a, v] = [argv[i], argv[i + 1]];
    if (a === "--url") { out.url = v; i++; }
    else if (a === "--mode") { out.mode = v; i++; }
    else if (a === "--timeout") { out.timeout = Number(v); i++; }
    else if (a === "--scenario") { out.scenario = v; i++; }
    else throw new Error(`unknown argument ${a}`);
  }
  if (!out.url || !["modern", "auto", "legacy"].includes(out.mode)) {
    throw new Error("usage: ts2_client.cjs --url URL [--mode modern|auto|legacy] [--timeout S] [--scenario FILE]");
  }
  return out;
}

// ---- normalisation (same rules as ts_client.cjs / py_client.py) ----
const UUID_RE = /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/g;
const HEX32_RE = /\b[0-9a-fA-F]{32}\b/g;
const ISO_RE = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?/g;
const normStr = (s) => s.replace(UUID_RE, "<uuid>").replace(HEX32_RE, "<hex32>").replace(ISO_RE, "<time>");
function norm(v) {
  if (typeof v === "string") return normStr(v);
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v).sort()) if (v[k] !== undefined) o[k] = norm(v[k]);
    return o;
  }
  return v;
}
const toolResult = (r) => ({ content: norm(r.content ?? []), isError: Boolean(r.isError) });

// ---- HTTP tap: the client's own fetch, wrapped ----
const WIRE_HEADERS = /^(mcp-|accept$|content-type$|last-event-id$)/i;
function parseBody(text) {
  if (text == null) return null;
  try { return JSON.parse(text); } catch { /* SSE or not JSON */ }
  const msgs = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
    if (data) { try { msgs.push(JSON.parse(data)); } catch { msgs.push(data); } }
  }
  return msgs;
}
function makeTap(exchanges) {
  return async (input, init = {}) => {
    const headers = {};
    new Headers(init.headers).forEach((v, k) => { if (WIRE_HEADERS.test(k)) headers[k] = v; });
    const ex = { method: init.method || "GET", headers, body: parseBody(init.body ?? null) };
    exchanges.push(ex);
    const res = await fetch(input, init);
    ex.status = res.status;
    ex.responseHeaders = {};
    res.headers.forEach((v, k) => { if (WIRE_HEADERS.test(k) || k === "allow") ex.responseHeaders[k] = v; });
    ex.done = res.clone().text().then((t) => { ex.response = parseBody(t); }, () => { ex.response = "<aborted>"; });
    return res;
  };
}

const state = { t0: Date.now(), stage: "start", summary: { client: "ts2", ok: false }, meta: { errors: [], http: [] } };

function emit() {
  const { summary, meta } = state;
  meta.http = meta.http.map(({ done, ...rest }) => rest);
  summary.meta = meta;
  process.stdout.write(JSON.stringify(summary) + "\n");
}
function fail(code, err) {
  state.summary.ok = false;
  state.summary.stage = state.stage;
  state.summary.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  emit();
  process.stderr.write(`ts2 client FAILED at stage ${state.stage}: ${state.summary.error}\n`);
  if (err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
  process.stderr.write("last HTTP exchanges (oldest first):\n");
  for (const e of state.meta.http.slice(-12)) {
    process.stderr.write(`  ${e.method} ${JSON.stringify(e.headers)} ${JSON.stringify(e.body).slice(0, 300)} -> ${e.status} ${JSON.stringify(e.response ?? null).slice(0, 300)}\n`);
  }
  process.exit(code);
}

// The MRTR rounds of one tools/call, read off the HTTP tap: each POST of that call, what it
// carried (inputResponses keys, requestState) and what came back (resultType, inputRequests keys,
// requestState). Request ids differ per round (the spec: a retry is a new request).
async function roundsOf(exchanges, from, tool) {
  const calls = exchanges.slice(from).filter((e) => e.body && e.body.method === "tools/call" && e.body.params?.name === tool);
  await Promise.all(calls.map((e) => e.done));
  return calls.map((e) => {
    const msgs = Array.isArray(e.response) ? e.response : [e.response];
    const answer = msgs.find((m) => m && m.id === e.body.id && (m.result || m.error));
    const r = answer?.result ?? {};
    return {
      sent: {
        inputResponses: Object.keys(e.body.params.inputResponses ?? {}).sort(),
        requestState: e.body.params.requestState ?? null,
      },
      got: {
        resultType: r.resultType ?? null,
        inputRequests: Object.fromEntries(Object.entries(r.inputRequests ?? {}).map(([k, v]) => [k, v.method])),
        requestState: r.requestState ?? null,
      },
      id: e.body.id,
    };
  }).map((r, i, all) => ({
    // requestState is the server's own (Python seals it): keep whether it was there and echoed
    sent: { inputResponses: r.sent.inputResponses, requestState: r.sent.requestState !== null },
    got: { ...r.got, requestState: r.got.requestState !== null },
    newId: i === 0 || r.id !== all[i - 1].id,
    echoedState: i === 0 ? null : r.sent.requestState === all[i - 1].got.requestState,
  }));
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  SCENARIO = JSON.parse(fs.readFileSync(path.join(__dirname, args.scenario ?? "scenario2026.json"), "utf8"));
  const req = createRequire(path.join(NODE2_DIR, "package.json"));
  const { Client, StreamableHTTPClientTransport } = req("@modelcontextprotocol/client");
  const sdkVersion = JSON.parse(fs.readFileSync(path.join(NODE2_DIR, "node_modules/@modelcontextprotocol/client/package.json"), "utf8")).version;
  const { summary, meta } = state;
  meta.sdk = `@modelcontextprotocol/client@${sdkVersion}`;
  meta.url = args.url;
  summary.client = `ts2-${args.mode}`;
  const setStage = (s) => { state.stage = s; };
  const timer = setTimeout(() => fail(3, new Error(`overall timeout of ${args.timeout}s`)), args.timeout * 1000);

  const exchanges = meta.http;
  const transport = new StreamableHTTPClientTransport(new URL(args.url), { fetch: makeTap(exchanges) });
  const negotiation = args.mode === "modern" ? { mode: { pin: SCENARIO.protocolVersion } } : { mode: args.mode };
  const client = new Client(SCENARIO.clientInfo, {
    capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: false } },
    versionNegotiation: negotiation,
  });
  client.onerror = (e) => meta.errors.push(String(e && e.message ? e.message : e));

  let sink = null; // where log / list-changed / updated notifications go right now
  const record = (kind) => (n) => { if (sink) sink.push({ kind, ...norm(n.params ?? {}) }); };
  client.setNotificationHandler("notifications/message", (n) => {
    if (sink) sink.push({ kind: "log", level: n.params.level, logger: n.params.logger ?? null, data: norm(n.params.data) });
  });
  client.setNotificationHandler("notifications/tools/list_changed", record("tools/list_changed"));
  client.setNotificationHandler("notifications/resources/updated", record("resources/updated"));

  const handled = { elicitation: [], sampling: [], roots: 0 };
  client.setRequestHandler("elicitation/create", async (r) => {
    handled.elicitation.push(norm({ message: r.params.message, requestedSchema: r.params.requestedSchema }));
    return { action: "accept", content: { answer: SCENARIO.elicitation.answer } };
  });
  client.setRequestHandler("sampling/createMessage", async (r) => {
    handled.sampling.push(norm({ messages: r.params.messages, maxTokens: r.params.maxTokens }));
    return {
      role: "assistant",
      content: { type: "text", text: SCENARIO.sampling.text },
      model: SCENARIO.sampling.model,
      stopReason: SCENARIO.sampling.stopReason,
    };
  });
  client.setRequestHandler("roots/list", async () => { handled.roots++; return { roots: SCENARIO.roots }; });

  setStage("connect");
  await client.connect(transport);
  const discover = client.getDiscoverResult?.();
  summary.era = discover ? "modern" : "legacy";
  summary.serverName = client.getServerVersion()?.name ?? null;
  summary.protocolVersion = transport.protocolVersion ?? null;
  summary.discover = discover
    ? { supportedVersions: discover.supportedVersions, capabilities: Object.keys(discover.capabilities ?? {}).sort() }
    : null;

  const call = async (step, extra = {}) => {
    const from = exchanges.length;
    const r = await client.callTool({ name: step.tool, arguments: step.arguments, ...extra.params }, extra.options);
    return { from, r };
  };

  setStage("tools/list");
  const listed = await client.listTools();
  summary.tools = listed.tools.map((t) => t.name).sort();
  const headers = {};
  for (const t of listed.tools) {
    for (const [k, p] of Object.entries(t.inputSchema?.properties ?? {})) {
      if (p["x-mcp-header"]) headers[`${t.name}.${k}`] = p["x-mcp-header"];
    }
  }
  summary.headerParams = headers;

  setStage("echo");
  summary.echo = toolResult((await call(SCENARIO.echo)).r);

  setStage("progress");
  if (SCENARIO.progress) {
  const events = [];
  sink = events;
  const prog = await call(SCENARIO.progress, {
    params: { _meta: { [LOG_LEVEL_KEY]: SCENARIO.logLevel } },
    options: { onprogress: (p) => events.push({ kind: "progress", progress: p.progress, total: p.total ?? null, message: p.message ?? null }) },
  });
  await new Promise((r) => setTimeout(r, 20)); // queued notification microtasks
  sink = null;
  summary.progress = { events, result: toolResult(prog.r) };
  } else summary.progress = null;

  for (const [stage, step, key] of [["elicit", SCENARIO.elicit, "elicitation"], ["sampling", SCENARIO.sample, "sampling"], ["roots", SCENARIO.roots_tool, "roots"]]) {
    setStage(stage);
    if (!step) { summary[stage] = null; continue; }
    const before = key === "roots" ? handled.roots : handled[key].length;
    const c = await call(step);
    summary[stage] = {
      handled: key === "roots" ? handled.roots - before : handled[key].slice(before),
      rounds: await roundsOf(exchanges, c.from, step.tool),
      result: toolResult(c.r),
    };
  }

  setStage("header");
  if (SCENARIO.header) {
    const h = await call(SCENARIO.header);
    const hx = exchanges.slice(h.from).find((e) => e.body?.method === "tools/call");
    summary.header = { sent: Object.fromEntries(Object.entries(hx?.headers ?? {}).filter(([k]) => k.startsWith("mcp-param-"))), result: toolResult(h.r) };
  } else summary.header = null;

  setStage("resource");
  if (SCENARIO.resource) {
    const res = await client.readResource({ uri: SCENARIO.resource.uri });
    summary.resource = norm(res.contents.map((c) => ({ uri: c.uri, mimeType: c.mimeType ?? null, text: c.text ?? null })));
  } else summary.resource = null;

  setStage("prompt");
  if (SCENARIO.prompt) {
    const pr = await client.getPrompt(SCENARIO.prompt);
    summary.prompt = norm(pr.messages);
  } else summary.prompt = null;

  setStage("listen");
  if (summary.era === "modern" && SCENARIO.listen) {
    const got = [];
    const sub = await client.listen(SCENARIO.listen.filter);
    sink = got;
    const step = { tool: SCENARIO.listen.touchTool, arguments: { uri: SCENARIO.resource.uri } };
    const touched = toolResult((await call(step)).r);
    const until = Date.now() + SCENARIO.listen.waitMs;
    while (got.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    sink = null;
    await sub.close();
    summary.listen = {
      honored: norm(sub.honoredFilter),
      touched,
      // the subscription id is the server's own; keep only that it was there
      notifications: got.map(({ _meta, ...rest }) => ({ ...rest, subscriptionId: Boolean(_meta && _meta["io.modelcontextprotocol/subscriptionId"]) })),
      closed: await Promise.race([sub.closed, new Promise((r) => setTimeout(() => r("pending"), 2000))]),
    };
  } else summary.listen = null;

  setStage("close");
  await client.close();
  await Promise.all(exchanges.map((e) => e.done).filter(Boolean).map((p) => Promise.race([p, new Promise((r) => setTimeout(r, 200))])));
  meta.totalMs = Date.now() - state.t0;
  summary.ok = true;
  clearTimeout(timer);
  emit();
  process.exit(0);
}

main().catch((e) => fail(1, e));
