//! deploy/Dockerfile and deploy/kubernetes.yaml, read as text: every flag and MCP_BRIDGE_*
//! variable they name exists in the real command line, the configuration they give together
//! is one the bridge accepts, the image runs as a non-root user, and the manifest runs three
//! replicas with readiness on /readyz of the admin port.

use std::collections::BTreeMap;
use std::ffi::OsStr;

use clap::CommandFactory;
use mcp_bridge::config::{Cli, Config};

const DOCKERFILE: &str = include_str!("../deploy/Dockerfile");
const MANIFEST: &str = include_str!("../deploy/kubernetes.yaml");

/// Stand-ins for the values the downward API fills in at run time.
const DOWNWARD: &[(&str, &str)] = &[("POD_IP", "10.1.2.3")];

// ---- the real command line ----

/// Every argument of the bridge's real command line (flattened groups included).
fn cli_args() -> Vec<clap::Arg> {
    Cli::command().get_arguments().cloned().collect()
}

fn arg_for_env(name: &str) -> Option<clap::Arg> {
    cli_args()
        .into_iter()
        .find(|a| a.get_env() == Some(OsStr::new(name)))
}

fn is_flag(long: &str) -> bool {
    cli_args().iter().any(|a| a.get_long() == Some(long))
}

// ---- the Dockerfile ----

/// Instructions with their continuation lines joined, comments dropped: (KEYWORD, rest).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                let (kw, rest) = pending.split_once(' ').unwrap_or((&pending, ""));
                out.push((kw.to_ascii_uppercase(), rest.trim().to_owned()));
                pending.clear();
            }
        }
    }
    out
}

/// The instructions of the last stage: what the image runs with.
fn runtime_stage() -> Vec<(String, String)> {
    let all = instructions(DOCKERFILE);
    let last_from = all
        .iter()
        .rposition(|(kw, _)| kw == "FROM")
        .expect("a FROM");
    all[last_from..].to_vec()
}

fn dockerfile_env() -> Vec<(String, String)> {
    runtime_stage()
        .iter()
        .filter(|(kw, _)| kw == "ENV")
        .flat_map(|(_, rest)| {
            rest.split_whitespace()
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

// ---- the manifest (YAML read line by line) ----

fn documents() -> Vec<Vec<&'static str>> {
    MANIFEST
        .split("\n---")
        .map(|d| d.lines().collect())
        .collect()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '-']).len()
}

/// `key: value` of a line (list dash, quotes and trailing comment removed).
fn key_value(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.trim().trim_start_matches("- ").split_once(':')?;
    let v = v.split(" #").next().unwrap_or_default().trim();
    Some((k.trim(), v.trim_matches('"')))
}

fn value_of<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| key_value(l).filter(|(k, _)| *k == key).map(|(_, v)| v))
}

/// The lines nested under the first `key:` line.
fn block<'a>(lines: &[&'a str], key: &str) -> Vec<&'a str> {
    let Some(at) = lines
        .iter()
        .position(|l| key_value(l).is_some_and(|(k, _)| k == key))
    else {
        return Vec::new();
    };
    let depth = indent(lines[at]);
    lines[at + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > depth)
        .copied()
        .collect()
}

/// The bridge's Deployment.
fn bridge_deployment() -> Vec<&'static str> {
    documents()
        .into_iter()
        .find(|d| {
            value_of(d, "kind") == Some("Deployment") && value_of(d, "name") == Some("mcp-bridge")
        })
        .expect("a Deployment named mcp-bridge")
}

/// One `env:` entry: its literal value, or `None` for `valueFrom`.
struct EnvVar {
    name: String,
    value: Option<String>,
}

fn manifest_env(deployment: &[&str]) -> Vec<EnvVar> {
    let mut out: Vec<EnvVar> = Vec::new();
    for line in block(deployment, "env") {
        match key_value(line) {
            Some(("name", n)) if line.trim_start().starts_with("- ") => out.push(EnvVar {
                name: n.to_owned(),
                value: None,
            }),
            Some(("value", v)) => out.last_mut().expect("value after name").value = Some(v.into()),
            _ => {}
        }
    }
    out
}

/// Named container ports → numbers.
fn container_ports(deployment: &[&str]) -> BTreeMap<String, String> {
    let ports = block(deployment, "ports");
    let mut out = BTreeMap::new();
    let mut name = None;
    for line in ports {
        match key_value(line) {
            Some(("name", n)) => name = Some(n.to_owned()),
            Some(("containerPort", p)) => {
                out.insert(name.take().expect("named ports"), p.to_owned());
            }
            _ => {}
        }
    }
    out
}

/// A probe's (path, port number).
fn http_probe(deployment: &[&str], probe: &str) -> (String, String) {
    let lines = block(deployment, probe);
    let path = value_of(&lines, "path").unwrap_or_else(|| panic!("{probe} has no path"));
    let port = value_of(&lines, "port").unwrap_or_else(|| panic!("{probe} has no port"));
    let number = container_ports(deployment)
        .get(port)
        .cloned()
        .unwrap_or_else(|| port.to_owned());
    (path.to_owned(), number)
}

// ---- what the files name ----

/// `--flag` words in `text` (a lone `--` and `--flag=value` handled).
fn flags_in(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '='))
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.split('=').next().unwrap_or_default().to_owned())
        .filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase()))
        .collect()
}

/// `MCP_BRIDGE_NAME` words in `text` (prose like `MCP_BRIDGE_*` is skipped).
fn env_names_in(text: &str) -> Vec<String> {
    const PREFIX: &str = "MCP_BRIDGE_";
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.len() > PREFIX.len() && w.starts_with(PREFIX))
        .map(str::to_owned)
        .collect()
}

/// Flags passed to the bridge: its ENTRYPOINT and CMD, and anything in its Deployment
/// (args, command, and comments that name a flag).
fn flags_used() -> Vec<String> {
    let docker = runtime_stage()
        .into_iter()
        .filter(|(kw, _)| kw == "ENTRYPOINT" || kw == "CMD")
        .flat_map(|(_, rest)| flags_in(&rest));
    docker
        .chain(flags_in(&bridge_deployment().join("\n")))
        .collect()
}

#[test]
fn every_flag_and_variable_named_exists() {
    let flags = flags_used();
    let unknown: Vec<_> = flags.iter().filter(|f| !is_flag(f)).collect();
    assert!(unknown.is_empty(), "not flags of mcp-bridge: {unknown:?}");

    let names: Vec<String> = env_names_in(DOCKERFILE)
        .into_iter()
        .chain(env_names_in(MANIFEST))
        .collect();
    assert!(
        names.len() >= 10,
        "the files were read: {names:?} (and flags {flags:?})"
    );
    let unknown: Vec<_> = names.iter().filter(|n| arg_for_env(n).is_none()).collect();
    assert!(
        unknown.is_empty(),
        "not environment variables of mcp-bridge: {unknown:?}"
    );
}

/// A variable's value with `$(NAME)` references expanded from variables defined above it,
/// as the kubelet does (it leaves a reference to a later or unknown one as it is).
fn expand(value: &str, earlier: &BTreeMap<String, String>) -> String {
    let mut out = value.to_owned();
    while let Some(start) = out.find("$(") {
        let end = start + out[start..].find(')').expect("closed $(");
        let name = &out[start + 2..end];
        let v = earlier
            .get(name)
            .unwrap_or_else(|| panic!("$({name}) is not defined above its use"));
        out.replace_range(start..=end, v);
    }
    out
}

#[test]
fn the_image_and_manifest_configuration_is_accepted() {
    // The image's defaults, then the Deployment's variables on top, as the container sees them.
    let mut effective: BTreeMap<String, String> = dockerfile_env().into_iter().collect();
    let mut earlier = BTreeMap::new();
    for v in manifest_env(&bridge_deployment()) {
        let value = match v.value {
            Some(raw) => expand(&raw, &earlier),
            None if v.name.starts_with("MCP_BRIDGE_") && v.name.ends_with("_FILE") => {
                panic!(
                    "{}: give the path of a mounted file, not its content",
                    v.name
                )
            }
            None => DOWNWARD
                .iter()
                .find(|(n, _)| *n == v.name)
                .map_or_else(|| format!("<{}>", v.name), |(_, s)| s.to_string()),
        };
        earlier.insert(v.name.clone(), value.clone());
        if v.name.starts_with("MCP_BRIDGE_") {
            effective.insert(v.name, value);
        }
    }
    // Passed as flags (explicit flags win over this process's environment).
    let mut args = vec!["mcp-bridge".to_owned()];
    for (name, value) in &effective {
        let arg = arg_for_env(name).unwrap_or_else(|| panic!("{name} is not a variable"));
        let long = arg.get_long().expect("a long flag");
        if arg.get_action().takes_values() {
            args.push(format!("--{long}={value}"));
        } else if value == "true" {
            args.push(format!("--{long}"));
        }
    }
    let cfg = Config::from_args(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));

    let replicas = cfg.replicas.expect("the manifest runs replicas (--redis)");
    assert_eq!(replicas.address.port(), Some(cfg.listen.port()), "{args:?}");
    let admin = cfg.admin_listen.expect("an admin listener for the probes");
    assert!(cfg.listen.ip().is_unspecified() && admin.ip().is_unspecified());

    // The ports the image publishes and the Deployment probes are the ones listened on.
    let exposed: Vec<String> = runtime_stage()
        .into_iter()
        .filter(|(kw, _)| kw == "EXPOSE")
        .flat_map(|(_, rest)| {
            rest.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let image_listen = |name: &str| dockerfile_env().into_iter().find(|(k, _)| k == name);
    for name in ["MCP_BRIDGE_LISTEN", "MCP_BRIDGE_ADMIN_LISTEN"] {
        let (_, addr) = image_listen(name).unwrap_or_else(|| panic!("the image sets {name}"));
        let port = addr.rsplit(':').next().unwrap().to_owned();
        assert!(
            exposed.contains(&port),
            "EXPOSE {exposed:?} lacks {name}'s {port}"
        );
    }
    let deployment = bridge_deployment();
    let ports = container_ports(&deployment);
    assert!(
        ports.values().any(|p| *p == cfg.listen.port().to_string()),
        "containerPorts {ports:?} lack the listen port"
    );
    let admin_port = admin.port().to_string();
    assert_eq!(
        http_probe(&deployment, "readinessProbe"),
        ("/readyz".to_owned(), admin_port.clone())
    );
    assert_eq!(
        http_probe(&deployment, "livenessProbe"),
        ("/healthz".to_owned(), admin_port)
    );
}

#[test]
fn the_image_runs_as_a_numeric_non_root_user_and_the_manifest_as_the_same() {
    let stage = runtime_stage();
    let user = stage
        .iter()
        .rev()
        .find(|(kw, _)| kw == "USER")
        .map(|(_, u)| u.clone())
        .expect("the runtime stage sets USER");
    // Numeric: Kubernetes' runAsNonRoot cannot check a name.
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user:?}: give a numeric uid"));
    assert_ne!(uid, 0, "USER {user:?} is root");
    let (_, entry) = stage
        .iter()
        .find(|(kw, _)| kw == "ENTRYPOINT")
        .expect("an ENTRYPOINT");
    assert!(entry.contains("mcp-bridge\""), "ENTRYPOINT {entry}");

    let deployment = bridge_deployment();
    assert_eq!(value_of(&deployment, "runAsNonRoot"), Some("true"));
    assert_eq!(
        value_of(&deployment, "runAsUser"),
        Some(uid.to_string().as_str())
    );
    assert_eq!(
        value_of(&deployment, "readOnlyRootFilesystem"),
        Some("true")
    );
}

#[test]
fn the_manifest_runs_three_replicas_behind_a_service_with_redis() {
    let deployment = bridge_deployment();
    assert_eq!(value_of(&deployment, "replicas"), Some("3"));
    let docs = documents();
    let named = |kind: &str, name: &str| {
        docs.iter()
            .any(|d| value_of(d, "kind") == Some(kind) && value_of(d, "name") == Some(name))
    };
    assert!(named("Service", "mcp-bridge"), "a Service in front");
    assert!(named("Deployment", "mcp-bridge-redis") && named("Service", "mcp-bridge-redis"));
    let redis_image = docs
        .iter()
        .filter_map(|d| value_of(d, "image"))
        .find(|i| i.starts_with("redis:"))
        .expect("a redis image");
    assert!(redis_image.starts_with("redis:7.0"), "{redis_image}");
}

/// The scanners themselves: a misspelt name is caught.
#[test]
fn a_misspelt_name_is_caught() {
    assert_eq!(
        flags_in(r#"["mcp-bridge", "--lissten=x", "--redis", "-v", "--"]"#),
        ["lissten", "redis"]
    );
    assert!(!is_flag("lissten") && is_flag("redis"));
    assert_eq!(
        env_names_in("- name: MCP_BRIDGE_REDDIS\n  value: x"),
        ["MCP_BRIDGE_REDDIS"]
    );
    assert!(arg_for_env("MCP_BRIDGE_REDDIS").is_none());
    assert!(arg_for_env("MCP_BRIDGE_REDIS").is_some());
}
