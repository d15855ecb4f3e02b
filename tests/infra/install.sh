#!/usr/bin/env bash
# Installs the pinned real infrastructure the replica tests run against (issue 16):
#
#   redis-server  the session directory's engine
#   haproxy       a real round-robin load balancer in front of several bridge replicas
#
# Both come from Debian at exact versions. Idempotent: a package already installed at its pin
# is skipped (no apt at all). As root the missing ones are installed with apt-get; otherwise
# the script fails saying what to run. The packages' own system services are never left
# running (tests start their own servers on free ports): a policy-rc.d stops them from being
# started during the install, and any that run anyway are stopped.
#
# Environment:
#   MCP_BRIDGE_REDIS_SERVER, MCP_BRIDGE_HAPROXY  binaries of your own: the matching package
#                                                is then neither checked nor installed
#   INFRA_SKIP=1                                 do nothing (a machine where tests bring their own)
set -euo pipefail

REDIS_PKG=redis-server
REDIS_PIN="5:7.0.15-1~deb12u7"
HAPROXY_PKG=haproxy
HAPROXY_PIN="2.6.12-1+deb12u3"

log() { printf 'infra-deps: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "${INFRA_SKIP:-0}" == 1 ]] && { log "INFRA_SKIP=1: nothing installed"; exit 0; }

installed_version() { # prints nothing when the package is absent
  { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null || true; } \
    | sed -n 's/^install ok installed //p'; }

wanted=()
need() { # package pin override-variable
  local pkg="$1" pin="$2" override="${!3:-}"
  if [[ -n "$override" ]]; then
    [[ -x "$override" ]] || die "$3=$override is not an executable file"
    log "$pkg: using $3=$override"
    return
  fi
  local have
  have="$(installed_version "$pkg")"
  if [[ "$have" == "$pin" ]]; then
    log "$pkg $pin already installed"
  else
    log "$pkg: have '${have:-none}', want $pin"
    wanted+=("$pkg=$pin")
  fi
}
need "$REDIS_PKG" "$REDIS_PIN" MCP_BRIDGE_REDIS_SERVER
need "$HAPROXY_PKG" "$HAPROXY_PIN" MCP_BRIDGE_HAPROXY
[[ ${#wanted[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" != 0 ]]; then
  die "missing ${wanted[*]}. Run once as root: sudo bash tests/infra/install.sh
  (or point MCP_BRIDGE_REDIS_SERVER and MCP_BRIDGE_HAPROXY at redis-server and haproxy
  binaries of your own; see README, 'Tests that need Redis and haproxy')"
fi
command -v apt-get >/dev/null || die "apt-get not found: install ${wanted[*]} yourself, or set \
MCP_BRIDGE_REDIS_SERVER / MCP_BRIDGE_HAPROXY"

# No service may start during the install (exit 101 = "action forbidden" for invoke-rc.d).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { [[ "$own_policy" == 1 ]] && rm -f "$policy"; return 0; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y --no-install-recommends --allow-downgrades "${wanted[@]}" >&2; }
# The pinned version may only be in a list that was never fetched on this machine.
if ! apt_install; then
  log "apt-get install failed; refreshing the package lists once and retrying"
  apt-get update >&2
  apt_install || die "cannot install ${wanted[*]}: is the pin still offered? \
(apt-cache policy ${wanted[*]%%=*}); update the pins at the top of $0"
fi

# Belt and braces: where a service manager started the daemons anyway, stop them.
for svc in redis-server haproxy; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" && systemctl disable "$svc" >/dev/null 2>&1 || true
  fi
  if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done

need_after() { [[ "$(installed_version "$1")" == "$2" ]] || die "$1 is not at $2 after install"; }
[[ -z "${MCP_BRIDGE_REDIS_SERVER:-}" ]] && need_after "$REDIS_PKG" "$REDIS_PIN"
[[ -z "${MCP_BRIDGE_HAPROXY:-}" ]] && need_after "$HAPROXY_PKG" "$HAPROXY_PIN"
log "infrastructure ready"
