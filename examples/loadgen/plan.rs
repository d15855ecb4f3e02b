//! What the suite runs: the client × upstream pairs, the load scenarios and the call each
//! makes against each server, the targets of a scenario, and the idle-session cycles.

use super::SuiteArgs;
use crate::client::ClientKind;
use crate::load::CallSpec;

pub(super) const PAIRS_CLIENTS: [ClientKind; 2] = [ClientKind::Legacy, ClientKind::Streamable];
pub(super) const UPSTREAMS: [ClientKind; 2] = [ClientKind::Legacy, ClientKind::Streamable];

/// Index of a transport in `UPSTREAMS` (and in the upstream and bridge lists).
pub(super) fn idx(k: ClientKind) -> usize {
    match k {
        ClientKind::Legacy => 0,
        ClientKind::Streamable => 1,
        // Not in `UPSTREAMS`: the modern scenario has its own upstream and bridge.
        ClientKind::Modern => 2,
    }
}

pub(super) fn direct_key(client: ClientKind) -> String {
    format!("direct {}", client.as_str())
}

pub(super) fn bridge_key(client: ClientKind, up: ClientKind) -> String {
    format!("bridge {}->{}", client.as_str(), up.as_str())
}

pub(super) fn pair_name(client: ClientKind, up: ClientKind) -> String {
    format!("{} → {}", client.as_str(), up.as_str())
}

/// The tool a scenario calls.
#[derive(Clone, Copy, Debug)]
pub(super) enum Call {
    Echo,
    Progress,
    Big,
}

pub(super) struct Scenario {
    pub key: &'static str,
    pub title: String,
    pub sessions: usize,
    pub threads: usize,
    pub warmup: f64,
    pub seconds: f64,
    pub max_calls: u64,
    pub call: Call,
}

/// The load scenarios (a), (b), (c), (e), in the order they run.
pub(super) fn scenarios(args: &SuiteArgs) -> Vec<Scenario> {
    let sec = args.seconds;
    let one = |key, title: String, warmup, seconds, max_calls, call| Scenario {
        key,
        title,
        sessions: 1,
        threads: 1,
        warmup,
        seconds,
        max_calls,
        call,
    };
    vec![
        one(
            "a",
            "(a) 1 session, sequential echo".into(),
            0.5,
            sec,
            1_000_000,
            Call::Echo,
        ),
        Scenario {
            sessions: args.sessions,
            threads: args.threads,
            ..one(
                "b",
                format!("(b) {} sessions, echo", args.sessions),
                0.5,
                sec,
                5_000_000,
                Call::Echo,
            )
        },
        Scenario {
            sessions: args.notify_sessions,
            threads: args.threads,
            ..one(
                "c",
                format!(
                    "(c) {} sessions, progress tool ({} notifications/call)",
                    args.notify_sessions,
                    2 * args.steps
                ),
                0.5,
                sec,
                1_000_000,
                Call::Progress,
            )
        },
        one(
            "e",
            "(e) 1 session, 1 MiB tool result".into(),
            0.3,
            sec * 0.8,
            5_000,
            Call::Big,
        ),
    ]
}

/// (n) and (o): issue 15's figures — 2026-07-28 clients through the bridge to the legacy and
/// Streamable fast upstreams (each request carried by a kept upstream session), against the
/// same load by 2025-era Streamable clients through the same bridge: latency of one
/// sequential session (n), throughput of many (o).
pub(super) fn era_scenarios(args: &SuiteArgs) -> Vec<Scenario> {
    vec![
        Scenario {
            key: "n",
            title: "(n) 1 session, sequential echo, 2026-07-28 client vs 2025 client".into(),
            sessions: 1,
            threads: 1,
            warmup: 0.5,
            seconds: args.seconds,
            max_calls: 1_000_000,
            call: Call::Echo,
        },
        Scenario {
            key: "o",
            title: format!(
                "(o) {} sessions, echo, 2026-07-28 clients vs 2025 clients",
                args.sessions
            ),
            sessions: args.sessions,
            threads: args.threads,
            warmup: 0.5,
            seconds: args.seconds,
            max_calls: 5_000_000,
            call: Call::Echo,
        },
    ]
}

/// The targets of (n) and (o): for each upstream, a 2025-era Streamable client and a
/// 2026-07-28 client, both through the bridge in front of it.
pub(super) fn era_targets(bridges: &[&str]) -> Vec<Target> {
    let mut targets = Vec::new();
    for up in UPSTREAMS {
        for client in [ClientKind::Streamable, ClientKind::Modern] {
            targets.push(Target {
                key: bridge_key(client, up),
                url: format!("{}{}", bridges[idx(up)], client.bridge_path()),
                client,
                upstream: up,
            });
        }
    }
    targets
}

/// (m): issue 14's figure — a Streamable client's echo through the bridge to a 2026-07-28
/// upstream (initialize answered from discover, every call stamped), against the same call
/// made directly by a raw 2026-07-28 client.
pub(super) fn modern_scenario(args: &SuiteArgs) -> Scenario {
    Scenario {
        key: "m",
        title: "(m) 1 session, sequential echo, 2026-07-28 upstream".into(),
        sessions: 1,
        threads: 1,
        warmup: 0.5,
        seconds: args.seconds,
        max_calls: 1_000_000,
        call: Call::Echo,
    }
}

/// The two targets of (m): the raw modern client direct, a Streamable client via the bridge.
pub(super) fn modern_targets(upstream: &str, bridge: &str) -> Vec<Target> {
    vec![
        Target {
            key: direct_key(ClientKind::Modern),
            url: upstream.to_string(),
            client: ClientKind::Modern,
            upstream: ClientKind::Modern,
        },
        Target {
            key: bridge_key(ClientKind::Streamable, ClientKind::Modern),
            url: format!("{bridge}{}", ClientKind::Streamable.bridge_path()),
            client: ClientKind::Streamable,
            upstream: ClientKind::Modern,
        },
    ]
}

/// Runs of each target: (a) and (b) are repeated and their median reported.
pub(super) fn repeats(sc: &Scenario, args: &SuiteArgs) -> usize {
    if matches!(sc.key, "a" | "b" | "m" | "n" | "o") {
        args.repeat.max(1)
    } else {
        1
    }
}

/// The call a scenario makes against an upstream of this transport: the fake upstream's own
/// tool, or the params given for an external server (None: skip the scenario there).
pub(super) fn call_for(call: Call, kind: ClientKind, args: &SuiteArgs) -> Option<CallSpec> {
    let external = args.upstream_url.is_some() && args.upstream_transport == Some(kind);
    let given = |params: &Option<String>, progress| {
        params.as_ref().map(|p| CallSpec {
            params: p.clone(),
            progress,
            expect_notes: None,
            min_result_bytes: 0,
        })
    };
    match (call, external) {
        (Call::Echo, false) => Some(CallSpec::echo()),
        (Call::Echo, true) => Some(CallSpec {
            params: args.echo_params.clone(),
            expect_notes: None,
            ..CallSpec::echo()
        }),
        (Call::Progress, false) => Some(CallSpec::progress(args.steps)),
        (Call::Progress, true) => given(&args.progress_params, true),
        (Call::Big, false) => Some(CallSpec::big(1 << 20)),
        (Call::Big, true) => given(&args.big_params, false),
    }
}

/// One place a scenario runs: a client straight to an upstream, or through a bridge.
pub(super) struct Target {
    pub key: String,
    pub url: String,
    pub client: ClientKind,
    /// The transport of the server at the far end.
    pub upstream: ClientKind,
}

/// For each client: direct to the upstream of its own transport, then through the bridge in
/// front of each upstream. `upstreams` and `bridges` are indexed by `idx`.
pub(super) fn targets(upstreams: &[&str], bridges: &[&str]) -> Vec<Target> {
    let mut targets = Vec::new();
    for client in PAIRS_CLIENTS {
        targets.push(Target {
            key: direct_key(client),
            url: upstreams[idx(client)].to_string(),
            client,
            upstream: client,
        });
        for up in UPSTREAMS {
            targets.push(Target {
                key: bridge_key(client, up),
                url: format!("{}{}", bridges[idx(up)], client.bridge_path()),
                client,
                upstream: up,
            });
        }
    }
    targets
}

/// The idle-session cycles of one client transport.
pub(super) struct IdlePlan {
    /// (sessions, Streamable clients also hold their standalone GET stream).
    pub cycles: Vec<(usize, bool)>,
    /// The largest size that fits.
    pub largest: usize,
    /// Sizes cut down to the open-files limit, said so.
    pub notes: Vec<String>,
}

/// The asked sizes, capped to what the open-files `limit` lets the bridge hold.
pub(super) fn idle_plan(client: ClientKind, args: &SuiteArgs, limit: usize) -> IdlePlan {
    // A legacy session holds two sockets in the bridge (client SSE + upstream stream);
    // a Streamable one holds one (its upstream stream) when the client does not listen.
    let per_session = match client {
        ClientKind::Legacy => 2,
        ClientKind::Streamable | ClientKind::Modern => 1,
    };
    let cap = limit.saturating_sub(400) / per_session;
    let sizes: Vec<usize> = args.idle.iter().map(|&n| n.min(cap)).collect();
    // The listening variant (as the SDK clients do) costs a second socket per session, so
    // it runs at the smallest size only.
    let mut cycles: Vec<(usize, bool)> = sizes.iter().map(|&n| (n, false)).collect();
    if client == ClientKind::Streamable && args.idle_listen {
        if let Some(&n) = sizes.iter().min() {
            cycles.push((n, true));
        }
    }
    let notes = args
        .idle
        .iter()
        .zip(&sizes)
        .filter(|(&asked, &n)| n < asked)
        .map(|(&asked, &n)| {
            format!(
                "{} clients: {asked} idle sessions need {} sockets in the bridge; the open-files limit here is {limit} (the hard limit; raising it needs privileges), so {n} were opened",
                client.as_str(),
                asked * per_session
            )
        })
        .collect();
    IdlePlan {
        cycles,
        largest: sizes.iter().copied().max().unwrap_or(0),
        notes,
    }
}
