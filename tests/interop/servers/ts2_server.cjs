#!/usr/bin/env node
// TypeScript SDK v2 (@modelcontextprotocol/server 2.x) interop server: the 2026-07-28 era.
//
//   node ts2_server.cjs --port N [--legacy reject|stateless]
//
// Serves Streamable HTTP on http://127.0.0.1:N/mcp through the SDK's own `createMcpHandler`.
// `--legacy reject` (the default) is a MODERN-ONLY server: every pre-2026 request is refused
// (`initialize` → 400 -32022 naming the supported versions, GET/DELETE → 405), which is what
// a legacy-only client meets and fails on. `--legacy stateless` is the SDK's dual-era default
// (2025 traffic served by a fresh stateless instance per request, hence no server-to-client
// requests for 2025 clients).
//
// Tools (same names and results as tests/interop/servers/py2_server.py):
//   echo(text)              -> "echo: <text>"
//   progress(steps, delay)  per step: a log message (info) then a progress notification; then a
//                           fixed text. Log messages need `_meta["io.modelcontextprotocol/logLevel"]`.
//   elicit(question)        MRTR: input_required with one `elicitation/create` (form: {answer})
//                           and requestState "elicit-round-1"; on the retry returns the answer
//   sample(prompt)          MRTR: one `sampling/createMessage`; returns the sampled text
//   roots()                 MRTR: one `roots/list`; returns the roots as JSON
//   region_echo(region, text) `region` is marked `x-mcp-header: Region` (clients mirror it as
//                           `Mcp-Param-Region`); returns the value the header carried too
//   touch(uri)              publishes resources/updated for uri and tools list_changed on the
//                           listen streams (subscriptions/listen); returns "touched <uri>"
// Resource `interop://greeting` (text), prompt `greet(name)`.
//
// The first stderr line says "ts2 interop server listening on 127.0.0.1:N" (the runner waits
// for it). Exits when its parent dies (a killed test run leaves nothing behind).
"use strict";

const path = require("node:path");
const http = require("node:http");
const { createRequire } = require("node:module");

const ROOT = path.resolve(__dirname, "..", "..", "..");
const INTEROP_DIR = process.env.INTEROP_DIR || path.join(ROOT, ".interop");
const req = createRequire(path.join(INTEROP_DIR, "node2", "package.json"));
const {
  McpServer, createMcpHandler, inputRequired, inputResponse, acceptedContent,
} = req("@modelcontextprotocol/server");
const { toNodeHandler } = req("@modelcontextprotocol/node");
const { z } = req("zod");

function parseArgs(argv) {
  const out = { port: null, legacy: "reject" };
  for (let i = 0; i < argv.length; i++) {
    const [a, v] = [argv[i], argv[i + 1]];
    if (a === "--port") { out.port = Number(v); i++; }
    else if (a === "--legacy") { out.legacy = v; i++; }
    else throw new Error(`unknown argument ${a}`);
  }
  if (!out.port || !["reject", "stateless"].includes(out.legacy)) {
    throw new Error("usage: ts2_server.cjs --port N [--legacy reject|stateless]");
  }
  return out;
}

const text = (t) => ({ content: [{ type: "text", text: t }] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Filled in once the handler exists: `touch` publishes on the handler's listen bus.
let notifier = null;

function build() {
  const server = new McpServer(
    { name: "interop-ts2", version: "1.0.0" },
    {
      capabilities: { logging: {}, resources: { subscribe: true, listChanged: true }, tools: { listChanged: true } },
      instructions: "mcp-bridge interop server (2026-07-28 era)",
    },
  );

  server.registerTool("echo", {
    description: "Echo the text back.",
    inputSchema: z.object({ text: z.string() }),
  }, async ({ text: t }) => text(`echo: ${t}`));

  server.registerTool("progress", {
    description: "Send, per step, a log message and a progress notification, then return.",
    inputSchema: z.object({ steps: z.number().int().default(5), delay: z.number().default(0.02) }),
  }, async ({ steps, delay }, ctx) => {
    const token = ctx.mcpReq._meta?.progressToken;
    for (let i = 1; i <= steps; i++) {
      await ctx.mcpReq.log("info", `progress step ${i}/${steps}`);
      if (token !== undefined) {
        await ctx.mcpReq.notify({
          method: "notifications/progress",
          params: { progressToken: token, progress: i, total: steps, message: `step ${i} of ${steps}` },
        });
      }
      if (delay > 0) await sleep(delay * 1000);
    }
    return text(`progress done after ${steps} steps`);
  });

  server.registerTool("elicit", {
    description: "Ask the user a question (MRTR elicitation) and return the answer.",
    inputSchema: z.object({ question: z.string() }),
  }, async ({ question }, ctx) => {
    const got = inputResponse(ctx.mcpReq.inputResponses, "answer");
    if (got.kind === "missing") {
      return inputRequired({
        inputRequests: {
          answer: inputRequired.elicit({
            message: question,
            requestedSchema: { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] },
          }),
        },
        requestState: "elicit-round-1",
      });
    }
    if (got.kind !== "elicit") return { ...text(`unexpected input response ${got.kind}`), isError: true };
    const state = ctx.mcpReq.requestState() ?? null;
    return text(`elicited[${got.action}/${state}]: ${got.content?.answer ?? ""}`);
  });

  server.registerTool("sample", {
    description: "Ask the client to sample a message for the prompt (MRTR).",
    inputSchema: z.object({ prompt: z.string() }),
  }, async ({ prompt }, ctx) => {
    const got = inputResponse(ctx.mcpReq.inputResponses, "sample");
    if (got.kind !== "sampling") {
      return inputRequired({
        inputRequests: {
          sample: inputRequired.createMessage({
            messages: [{ role: "user", content: { type: "text", text: prompt } }],
            maxTokens: 50,
          }),
        },
      });
    }
    const r = got.result;
    const c = Array.isArray(r.content) ? r.content[0] : r.content;
    return text(`sampled[${r.model}/${r.role}]: ${c?.type === "text" ? c.text : JSON.stringify(c)}`);
  });

  server.registerTool("roots", {
    description: "List the client's roots (MRTR).",
    inputSchema: z.object({}),
  }, async (_args, ctx) => {
    const got = inputResponse(ctx.mcpReq.inputResponses, "roots");
    if (got.kind !== "roots") {
      return inputRequired({ inputRequests: { roots: inputRequired.listRoots() } });
    }
    const roots = got.roots.map((r) => ({ name: r.name, uri: r.uri }));
    return text(JSON.stringify(roots));
  });

  server.registerTool("region_echo", {
    description: "Echo text for a region; region travels as the Mcp-Param-Region header too.",
    inputSchema: z.object({
      region: z.string().meta({ "x-mcp-header": "Region" }),
      text: z.string(),
    }),
  }, async ({ region, text: t }, ctx) => {
    const header = ctx.http?.req?.headers?.get("mcp-param-region") ?? null;
    return text(`region ${region} (header ${header}): ${t}`);
  });

  server.registerTool("touch", {
    description: "Publish resources/updated for the uri and tools/list_changed to listen streams.",
    inputSchema: z.object({ uri: z.string() }),
  }, async ({ uri }) => {
    notifier.resourceUpdated(uri);
    notifier.toolsChanged();
    return text(`touched ${uri}`);
  });

  server.registerResource("greeting", "interop://greeting", {
    description: "A fixed greeting.",
    mimeType: "text/plain",
  }, async (uri) => ({ contents: [{ uri: uri.href, mimeType: "text/plain", text: "hello from the interop server" }] }));

  server.registerPrompt("greet", {
    description: "Greet someone.",
    argsSchema: z.object({ name: z.string() }),
  }, async ({ name }) => ({
    messages: [{ role: "user", content: { type: "text", text: `Please greet ${name}.` } }],
  }));

  return server;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const handler = createMcpHandler(() => build(), {
    legacy: args.legacy,
    onerror: (e) => process.stderr.write(`ts2 server error: ${e && e.message}\n`),
  });
  notifier = handler.notify;
  const node = toNodeHandler(handler);
  const srv = http.createServer((rq, rs) => {
    const u = new URL(rq.url, "http://x");
    if (u.pathname !== "/mcp") { rs.writeHead(404).end(); return; }
    // access line: what the server saw (for failure reports)
    process.stderr.write(`${rq.method} ${rq.url} ${rq.headers["mcp-protocol-version"] ?? "-"} ${rq.headers["mcp-method"] ?? "-"}\n`);
    node(rq, rs);
  });
  srv.listen(args.port, "127.0.0.1", () => {
    process.stderr.write(`ts2 interop server listening on 127.0.0.1:${args.port} (legacy: ${args.legacy})\n`);
  });
  if (process.env.INTEROP_PARENT_WATCH !== "0") {
    const parent = process.ppid;
    setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 500).unref();
  }
}

main();
