// Preload (`node --require loopback.cjs ...`) that keeps Node peers on the loopback interface.
// server-everything calls `app.listen(PORT)`, which binds every interface; this fills in the host
// 127.0.0.1 whenever a server is asked to listen on a port without a host.
"use strict";
const net = require("node:net");
const HOST = process.env.INTEROP_BIND_HOST || "127.0.0.1";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function patchedListen(...args) {
  const first = args[0];
  const isPort = (v) => typeof v === "number" || (typeof v === "string" && /^\d+$/.test(v));
  if (isPort(first) && typeof args[1] !== "string") {
    args.splice(1, 0, HOST);
  } else if (first && typeof first === "object" && !Array.isArray(first) && first.path === undefined
             && first.host === undefined && (first.port !== undefined)) {
    args[0] = { ...first, host: HOST };
  }
  return listen.apply(this, args);
};

// Orphan guard: the test runner kills its children, but if the runner itself is killed (Ctrl-C,
// SIGKILL) the server would live on. Exit once our parent is gone.
if (process.env.INTEROP_PARENT_WATCH !== "0") {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 500).unref();
}
