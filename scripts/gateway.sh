#!/usr/bin/env bash
# The local secure gateway, on 127.0.0.1 only.
#
#   scripts/gateway.sh up            the bank reference (docs/bank-reference.md): an OpenID
#                                    Provider; two gateway Envoys running the whole shieldwall chain
#                                    as one module (audit-log, mtls-identity, jwt-auth /
#                                    token-introspection, scope-authz, rate-limit with a global limit
#                                    through rls-redis + Redis, payload-guard, identity-exchange),
#                                    each with a plain-HTTP and an mTLS listener; a mesh-ingress
#                                    Envoy (native jwt_authn + rbac on SPIFFE ID and tenant) in front
#                                    of one echo service per tenant; syslog-ng shipping the audit
#                                    records; Prometheus scraping the three Envoys with shieldwall's
#                                    alert rules
#   scripts/gateway.sh up --minimal  a small stack for a quick look: one Envoy (envoy/gateway.yaml)
#                                    with the chain in front of one echo, the IdP, syslog-ng
#   scripts/gateway.sh status        what runs, with its pid and port; exits 0 when every part runs,
#                                    1 when the gateway is stopped or only partly running
#   scripts/gateway.sh down          stop what `up` started (by the pids it recorded, only those) and
#                                    return once each of those processes is gone (exited and reaped)
#
# `up` installs what is missing, builds, starts each part and waits until all answer, then writes
# the env file the quick start sources. Once installed and built, `up` needs no network.
#
# State, in SHIELDWALL_GATEWAY_DIR (.gateway by default):
#   env                 `source` it: the addresses (GATEWAY, IDP, ADMIN, MTLS, ...; see
#                       write_env_file below), PKI the demo certificates, AUDIT_LOG the audit
#                       records' file, AUDIT_CHAIN_KEY their chain key
#   pki/                a demo CA, the server certificate and client certificates with SPIFFE IDs
#                       (openssl, made by `up`, remade when they near their expiry)
#   logs/<step>.log     one log per step; each run appends to it under a dated header
#   *.yaml              the rendered Envoy configs; idp-keys.json; *.pid; ports (what `up` used)
#   access*.log         Envoy's access logs
#   audit-*.log         audit-log's records as Envoy's access logger writes them
#   audit.log           the same records as syslog-ng ships them (the SIEM's view)
#   audit-chain.key     audit-log's chain key (made once; records stay verifiable across runs)
#   internal-signing-key.pem  the gateways' key for internal tokens (reference; made once)
#
# Ports (environment, defaults in brackets; the minimal stack uses the first five):
#   SHIELDWALL_GATEWAY_PORT [8080]  gateway (1)          SHIELDWALL_MTLS_PORT [8443]   its mTLS listener
#   SHIELDWALL_ADMIN_PORT   [9901]  its admin API        SHIELDWALL_IDP_PORT  [9080]   the OpenID Provider
#   SHIELDWALL_UPSTREAM_PORT [9081] the echo (bank-a's service in the reference)
#   SHIELDWALL_GATEWAY2_PORT [8081], SHIELDWALL_MTLS2_PORT [8444], SHIELDWALL_ADMIN2_PORT [9902]  gateway 2
#   SHIELDWALL_MESH_PORT    [8090]  the mesh ingress     SHIELDWALL_MESH_ADMIN_PORT [9903] its admin API
#   SHIELDWALL_UPSTREAM2_PORT [9082] bank-b's service    SHIELDWALL_REDIS_PORT [6380]  Redis
#   SHIELDWALL_RLS_PORT     [9083]  rls-redis            SHIELDWALL_PROMETHEUS_PORT [9090] Prometheus
# Other environment:
#   SHIELDWALL_GATEWAY_DIR  [.gateway at the repository root]  the state directory
#   SHIELDWALL_GATEWAY_SKIP_SETUP=1  do not run scripts/setup.sh (everything is installed already)
#   SHIELDWALL_ENVOY                 the Envoy binary to use (see scripts/envoy-path.sh)
#   SHIELDWALL_NODE                  the Node.js binary that runs the IdP (see scripts/node-path.sh)
#   CARGO_TARGET_DIR                 where the modules and the binaries are built (scripts/target-dir.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
caller_dir="$PWD"
cd "$root"

state="${SHIELDWALL_GATEWAY_DIR:-$root/.gateway}"
case "$state" in /*) ;; *) state="$root/$state" ;; esac
target="$(bash scripts/target-dir.sh)"
modules="$target/wasm32-wasip1/release"
logs="$state/logs"
env_file="$state/env"

# The parts of each stack, in start order (stopped in reverse). `up` records its profile in
# the state directory, so that `status` and `down` know which parts to look for.
minimal_components=(idp echo syslog envoy)
reference_components=(idp echo-a echo-b redis rls syslog gateway-1 gateway-2 mesh prometheus)
profile=reference
components=("${reference_components[@]}")
set_profile() {
  profile="$1"
  if [ "$profile" = minimal ]; then
    components=("${minimal_components[@]}")
    step_total=9
  else
    components=("${reference_components[@]}")
    step_total=13
  fi
}

# ------------------------------------------------------------------------------------ helpers

say() { printf '%s\n' "$*"; }
step_no=0
step_total=13
step() {
  step_no=$((step_no + 1))
  printf '[%d/%d] %s\n' "$step_no" "$step_total" "$*"
}
ok() { printf '      ok: %s\n' "$*"; }

# The log of one step, logs/<step>.log: opened for this run with a dated header and appended to,
# never truncated, so the logs of earlier runs stay above it. Prints its path.
run_started="$(date '+%Y-%m-%d %H:%M:%S %z')"
log_of() {
  local file="$logs/$1.log"
  mkdir -p "$logs"
  printf '\n===== %s  scripts/gateway.sh up (pid %s): %s =====\n' "$run_started" "$$" "$1" >>"$file"
  printf '%s\n' "$file"
}

# How to name the env file in the printed commands: relative to where the command was started
# when it lies below it, else absolute.
env_file_shown() {
  local path="$env_file"
  case "$path" in "$caller_dir"/*) path="${path#"$caller_dir"/}" ;; esac
  printf '%q' "$path"
}

write_env_file() {
  {
    echo "# The local gateway's addresses, written by scripts/gateway.sh up: source this file."
    echo "export GATEWAY=http://127.0.0.1:$gateway_port"
    echo "export MTLS=https://127.0.0.1:$mtls_port"
    echo "export ADMIN=http://127.0.0.1:$admin_port"
    echo "export IDP=http://127.0.0.1:$idp_port"
    if [ "$profile" = minimal ]; then
      echo "export UPSTREAM=http://127.0.0.1:$upstream_port"
    else
      echo "export GATEWAY2=http://127.0.0.1:$gateway2_port"
      echo "export MTLS2=https://127.0.0.1:$mtls2_port"
      echo "export ADMIN2=http://127.0.0.1:$admin2_port"
      echo "export MESH=http://127.0.0.1:$mesh_port"
      echo "export MESH_ADMIN=http://127.0.0.1:$mesh_admin_port"
      echo "export PROMETHEUS=http://127.0.0.1:$prometheus_port"
    fi
    printf 'export PKI=%q\n' "$state/pki"
    printf 'export AUDIT_LOG=%q\n' "$state/audit.log"
    # audit-log's chain key, for scripts/audit-verify (a demo key made by `up`; in production it
    # would come from a secret store).
    if [ -f "$state/audit-chain.key" ]; then
      printf 'export AUDIT_CHAIN_KEY=%q\n' "$(cat "$state/audit-chain.key")"
    fi
  } >"$env_file"
}

# The ports: recorded by `up` for status and down; otherwise the environment, else the defaults.
port_names=(gateway mtls admin idp upstream gateway2 mtls2 admin2 mesh mesh_admin upstream2 redis rls prometheus)
load_ports() {
  gateway_port="${SHIELDWALL_GATEWAY_PORT:-8080}"
  mtls_port="${SHIELDWALL_MTLS_PORT:-8443}"
  admin_port="${SHIELDWALL_ADMIN_PORT:-9901}"
  idp_port="${SHIELDWALL_IDP_PORT:-9080}"
  upstream_port="${SHIELDWALL_UPSTREAM_PORT:-9081}"
  gateway2_port="${SHIELDWALL_GATEWAY2_PORT:-8081}"
  mtls2_port="${SHIELDWALL_MTLS2_PORT:-8444}"
  admin2_port="${SHIELDWALL_ADMIN2_PORT:-9902}"
  mesh_port="${SHIELDWALL_MESH_PORT:-8090}"
  mesh_admin_port="${SHIELDWALL_MESH_ADMIN_PORT:-9903}"
  upstream2_port="${SHIELDWALL_UPSTREAM2_PORT:-9082}"
  redis_port="${SHIELDWALL_REDIS_PORT:-6380}"
  rls_port="${SHIELDWALL_RLS_PORT:-9083}"
  prometheus_port="${SHIELDWALL_PROMETHEUS_PORT:-9090}"
}
# The ports a profile listens on, as "name port" lines.
profile_ports() {
  local names=(gateway mtls admin idp upstream) name var
  [ "$profile" = minimal ] || names+=(gateway2 mtls2 admin2 mesh mesh_admin upstream2 redis rls prometheus)
  for name in "${names[@]}"; do
    var="${name}_port"
    printf '%s %s\n' "$name" "${!var}"
  done
}
# The recorded profile and ports; without a record, the profile whose pid files are there.
load_recorded_ports() {
  load_ports
  local recorded=""
  if [ -f "$state/ports" ]; then
    # shellcheck disable=SC1091
    . "$state/ports"
    recorded="${profile_recorded:-}"
  fi
  if [ -z "$recorded" ]; then
    recorded=reference
    local name
    for name in echo envoy; do # parts only the minimal stack has
      [ -f "$state/$name.pid" ] && recorded=minimal
    done
  fi
  set_profile "$recorded"
}

port_of() {
  case "$1" in
    idp) echo "$idp_port" ;;
    echo | echo-a) echo "$upstream_port" ;;
    echo-b) echo "$upstream2_port" ;;
    redis) echo "$redis_port" ;;
    rls) echo "$rls_port" ;;
    syslog) echo "-" ;;
    envoy | gateway-1) echo "$gateway_port" ;;
    gateway-2) echo "$gateway2_port" ;;
    mesh) echo "$mesh_port" ;;
    prometheus) echo "$prometheus_port" ;;
  esac
}

# What the command line of each component contains, so that a pid reused by another program
# after a crash is never taken for ours.
marker_of() {
  case "$1" in
    idp) echo "$state/idp-keys.json" ;;
    echo | echo-a) echo "echo --port $upstream_port" ;;
    echo-b) echo "echo --port $upstream2_port" ;;
    redis) echo "$state/redis.conf" ;;
    rls) echo "--listen 127.0.0.1:$rls_port" ;;
    syslog) echo "$state/syslog-ng.conf" ;;
    envoy) echo "$state/envoy.yaml" ;;
    gateway-1 | gateway-2 | mesh) echo "$state/$1.yaml" ;;
    prometheus) echo "$state/prometheus.yml" ;;
  esac
}

pid_of() {
  local f="$state/$1.pid"
  [ -f "$f" ] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$f")"
  [ -n "$pid" ] || return 1
  echo "$pid"
}

# Alive and ours: the process exists, is not a zombie, and its command line has the marker.
# Whether a process exists and is not a zombie.
alive() {
  local st
  st="$(ps -o stat= -p "$1" 2>/dev/null || true)"
  [ -n "$st" ] || return 1
  case "$st" in Z*) return 1 ;; esac
  return 0
}

is_ours() {
  local name="$1" pid="$2" args
  alive "$pid" || return 1
  args="$(ps -o args= -ww -p "$pid" 2>/dev/null || true)"
  case "$args" in *"$(marker_of "$name")"*) return 0 ;; esac
  return 1
}

running_pid() {
  local pid
  pid="$(pid_of "$1")" || return 1
  is_ours "$1" "$pid" || return 1
  echo "$pid"
}

# The start time of a process (field 22 of /proc/PID/stat, clock ticks since boot). With the pid it
# names one process: once ours is reaped, a new process given the same pid is not waited for.
start_time_of() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }" # the fields after the command name, from field 3 (the state) on
  # shellcheck disable=SC2086
  set -- $stat
  echo "${20}"
}

# Gone: no process with this pid and start time any more (it exited and its parent reaped it).
# A zombie (state Z) has exited but still holds its pid until it is reaped.
reaped() {
  local pid="$1" start="$2" now
  kill -0 "$pid" 2>/dev/null || return 0
  now="$(start_time_of "$pid")" || return 0
  [ "$now" != "$start" ]
}

# Stops one component by its recorded pid: SIGTERM, up to 10 s, then SIGKILL; then waits up to
# 10 s until the process is reaped, so that `down` returns when nothing of it is left.
stop_one() {
  local name="$1" pid start i
  if ! pid="$(pid_of "$name")"; then
    return 0
  fi
  if is_ours "$name" "$pid"; then
    start="$(start_time_of "$pid" || true)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      is_ours "$name" "$pid" || break
      sleep 0.1
    done
    if is_ours "$name" "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 1 20); do
        is_ours "$name" "$pid" || break
        sleep 0.1
      done
    fi
    if is_ours "$name" "$pid"; then
      say "  $name (pid $pid) does not stop, even after SIGKILL" >&2
      return 1
    fi
    if [ -n "$start" ]; then
      for i in $(seq 1 100); do
        reaped "$pid" "$start" && break
        sleep 0.1
      done
      if ! reaped "$pid" "$start"; then
        say "  $name (pid $pid) has exited but is still a zombie after 10 s: its parent (pid $(ps -o ppid= -p "$pid" | tr -d ' ')) has not reaped it" >&2
        return 1
      fi
    fi
    say "  stopped $name (pid $pid)"
  fi
  rm -f "$state/$name.pid"
}

stop_all() {
  local status=0 i
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    stop_one "${components[$i]}" || status=1
  done
  return "$status"
}

# A failed step: say which and why, show the end of the log that explains it, stop what this run
# started, exit non-zero.
fail() {
  local why="$1" log="${2:-}"
  trap - INT TERM
  printf '\nFAILED at step %d: %s\n' "$step_no" "$why" >&2
  if [ -n "$log" ] && [ -s "$log" ]; then
    printf -- '--- last lines of %s ---\n' "$log" >&2
    tail -n 25 "$log" >&2
    printf -- '---\n' >&2
  elif [ -n "$log" ]; then
    printf '(%s is empty)\n' "$log" >&2
  fi
  if [ "${started:-0}" = 1 ]; then
    say "stopping what was started" >&2
    stop_all >&2 || true
    rm -f "$state/ports" "$env_file"
  fi
  exit 1
}

# Free when nothing listens on 127.0.0.1:PORT (or on all addresses).
port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# As the servers do: connections of a previous run in TIME_WAIT must not count as "in use".
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

# HTTP status of a GET (000 when nothing answers).
http_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" 2>/dev/null || true
}

# Readiness checks, evaluated anew on every try.
status_is() { # EXPECTED CURL-ARGS...
  local want="$1"
  shift
  [ "$(http_status "$@")" = "$want" ]
}
admin_live() { # [PORT]
  [ "$(curl -s --max-time 2 "http://127.0.0.1:${1:-$admin_port}/ready" 2>/dev/null || true)" = LIVE ]
}

# Waits until `check` succeeds, failing the step when the process dies or time runs out.
wait_for() {
  local name="$1" seconds="$2" log="$3" what="$4"
  shift 4
  local deadline=$((SECONDS + seconds)) pid
  pid="$(pid_of "$name")"
  while :; do
    if "$@"; then return 0; fi
    # Alive is enough here: a process just started with `&` shows this script's command line
    # until its exec, which a loaded machine can delay for seconds.
    if ! alive "$pid"; then
      fail "$name exited before $what" "$log"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail "$name: no $what after ${seconds}s" "$log"
    fi
    sleep 0.2
  done
}

# The demo PKI for the mTLS listener: a CA, Envoy's server certificate (127.0.0.1 and localhost)
# and two client certificates whose one URI SAN is a SPIFFE ID (X.509 SVIDs). P-256 keys, valid 30
# days; kept across runs and made anew when missing or within a day of expiry.
make_pki() {
  local dir="$1" name
  mkdir -p "$dir"
  local fresh=1
  for name in ca server bank-a-gateway bank-b-partner; do
    if [ ! -f "$dir/$name.pem" ] || [ ! -f "$dir/$name-key.pem" ] ||
      ! openssl x509 -checkend 86400 -noout -in "$dir/$name.pem" >/dev/null 2>&1; then
      fresh=0
    fi
  done
  if [ "$fresh" = 1 ]; then
    echo "the demo certificates in $dir are still valid: kept"
    return 0
  fi
  echo "making the demo certificates in $dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/O=shieldwall demo/CN=shieldwall demo CA" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  pki_leaf "$dir" server "/CN=localhost" "DNS:localhost,IP:127.0.0.1" serverAuth
  pki_leaf "$dir" bank-a-gateway "/O=bank-a/CN=payments-gateway" \
    "URI:spiffe://bank-a.example/ns/payments/sa/gateway" clientAuth
  pki_leaf "$dir" bank-b-partner "/O=bank-b/CN=partner-1" \
    "URI:spiffe://bank-b.example/ns/partners/sa/partner-1" clientAuth
  rm -f "$dir"/*.csr "$dir"/*.ext "$dir"/ca.srl
  chmod 600 "$dir"/*-key.pem
}
pki_leaf() {
  local dir="$1" name="$2" subject="$3" san="$4" usage="$5"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" \
    -keyout "$dir/$name-key.pem" -out "$dir/$name.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$usage" "$san" >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -CAcreateserial -days 30 -extfile "$dir/$name.ext" -out "$dir/$name.pem"
}

# The demo token request the printed commands use.
token_command() {
  printf '%s' "TOKEN=\$(curl -s -u orders-reader:orders-reader-secret -d grant_type=client_credentials -d scope=orders:read -d resource=urn:shieldwall:orders-api \$IDP/token | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')"
}

print_summary() {
  say ""
  say "shieldwall gateway is up:"
  say "  OpenID Provider  http://127.0.0.1:$idp_port  (issuer; discovery at /.well-known/openid-configuration, keys at /jwks)"
  say "  Upstream (echo)  http://127.0.0.1:$upstream_port  (answers with what the gateway passed on)"
  say "  Envoy admin      http://127.0.0.1:$admin_port  (stats, config dump)"
  say "  mTLS listener    https://127.0.0.1:$mtls_port  (client certificates of the demo CA in $state/pki)"
  say "  Audit records    $state/audit.log  (audit-log's masked, chained records, shipped by syslog-ng)"
  say "  Logs and config  $state (logs in $logs)"
  say ""
  say "Gateway: http://127.0.0.1:$gateway_port"
  say ""
  say "Try it (copy and paste):"
  say ""
  say "# 0. the addresses above as GATEWAY, IDP, ADMIN, UPSTREAM and MTLS, the certificates as PKI"
  say "source $(env_file_shown)"
  say ""
  say "# 1. get an access token as client orders-reader (scope orders:read, tenant a)"
  say "$(token_command)"
  say ""
  say "# 2. an allowed route: tenant a's order -> 200, the echo shows what the gateway passed on"
  say "curl -i -H \"Authorization: Bearer \$TOKEN\" \$GATEWAY/tenants/a/orders/42"
  say ""
  say "# 3. a refused route: tenant b's order -> 403, the tenant boundary"
  say "curl -i -H \"Authorization: Bearer \$TOKEN\" \$GATEWAY/tenants/b/orders/42"
  say ""
  say "# 4. over mTLS: bank-a's payments gateway may call /internal/ (200), bank-b's partner may not (403)"
  say "curl -i --cacert \$PKI/ca.pem --cert \$PKI/bank-a-gateway.pem --key \$PKI/bank-a-gateway-key.pem \$MTLS/internal/payments"
  say "curl -i --cacert \$PKI/ca.pem --cert \$PKI/bank-b-partner.pem --key \$PKI/bank-b-partner-key.pem \$MTLS/internal/payments"
  say ""
  say "Stop it with: scripts/gateway.sh down"
}

# ------------------------------------------------------------------------------------ commands

cmd_status() {
  load_recorded_ports
  local name pid all=0 any=0
  printf '%-11s %-8s %-8s %s\n' component state pid port
  for name in "${components[@]}"; do
    if pid="$(running_pid "$name")"; then
      printf '%-11s %-8s %-8s %s\n' "$name" running "$pid" "$(port_of "$name")"
      any=1
    else
      printf '%-11s %-8s %-8s %s\n' "$name" stopped - "$(port_of "$name")"
      all=1
    fi
  done
  if [ "$any" = 1 ] && [ "$profile" = minimal ] && [ -n "$(running_pid envoy || true)" ]; then
    say "envoy admin on 127.0.0.1:$admin_port, mTLS listener on 127.0.0.1:$mtls_port"
  fi
  if [ "$any" = 1 ] && [ "$all" = 0 ]; then
    say "Gateway: http://127.0.0.1:$gateway_port"
    [ "$profile" = minimal ] || say "Gateway 2: http://127.0.0.1:$gateway2_port"
    return 0
  fi
  [ "$any" = 0 ] && say "the gateway is not running"
  [ "$any" = 1 ] && say "the gateway is partly running: scripts/gateway.sh down, then up"
  return 1
}

cmd_down() {
  load_recorded_ports
  local name any=0
  for name in "${components[@]}"; do
    [ -f "$state/$name.pid" ] && any=1
  done
  if [ "$any" = 0 ]; then
    say "the gateway is not running (no pid recorded in $state)"
    return 0
  fi
  say "stopping the gateway"
  if stop_all; then
    rm -f "$state/ports" "$env_file"
    say "stopped"
  else
    return 1
  fi
}

# Renders a template: SRC DST NAME=VALUE...; each {{NAME}} becomes VALUE; a NAME ending in _JSON
# names a file whose text is put in as one JSON string. Fails on a placeholder left unreplaced.
render() {
  python3 - "$@" <<'PY'
import json, re, sys
src, dst, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(src).read()
for pair in pairs:
    name, value = pair.split("=", 1)
    if name.endswith("_JSON"):
        value = json.dumps(open(value).read())
    text = text.replace("{{" + name + "}}", value)
left = re.findall(r"\{\{[A-Z0-9_]+\}\}", text)
if left:
    sys.exit(src + ": unknown placeholders: " + ", ".join(sorted(set(left))))
open(dst, "w").write(text)
PY
}

# Starts an Envoy: NAME CONFIG ADMIN_PORT. Envoy asks the kernel for SIGTERM when its parent
# process exits (PR_SET_PDEATHSIG), so it cannot be the child of this script: a small shell stays
# its parent, records Envoy's own pid (the one `down` signals) and waits; it ends when Envoy does.
# The base id names Envoy's shared memory; derived from the admin port (unique per Envoy) and kept
# clear of the small ids other tools pick, so several stacks can run side by side.
start_envoy() {
  local name="$1" config="$2" admin="$3" log i
  log="$(log_of "$name")"
  rm -f "$state/$name.pid"
  bash -c 'pidfile="$1"; shift; "$@" & echo $! >"$pidfile"; wait $!' envoy-parent \
    "$state/$name.pid" "$envoy_bin" -c "$config" --base-id "$((300000000 + admin))" --concurrency 2 \
    --log-level info --drain-time-s 1 --parent-shutdown-time-s 2 --file-flush-interval-msec 1000 \
    </dev/null >>"$log" 2>&1 &
  for i in $(seq 1 50); do
    [ -s "$state/$name.pid" ] && break
    sleep 0.1
  done
  pid_of "$name" >/dev/null || fail "$name did not start" "$log"
  wait_for "$name" 60 "$log" "LIVE on admin /ready" admin_live "$admin"
}

# The first steps of both profiles: ports, setup, build, certificates.
check_ports() {
  local p seen=" " name
  local list
  list="$(profile_ports)"
  step "ports: $(printf '%s' "$list" | tr '\n' ',' | sed 's/,$//; s/,/, /g; s/_/ /g')"
  while read -r name p; do
    case "$p" in '' | *[!0-9]*) fail "not a port number for $name: '$p'" ;; esac
    [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || fail "not a port number: $p"
    case "$seen" in *" $p "*) fail "port $p is given twice: each part needs its own" ;; esac
    seen="$seen$p "
  done <<<"$list"
  command -v python3 >/dev/null || fail "python3 is needed (scripts/setup.sh uses it too)"
  command -v curl >/dev/null || fail "curl is needed"
  while read -r name p; do
    port_free "$p" || fail "port $p on 127.0.0.1 ($name) is in use; choose others with SHIELDWALL_$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')_PORT (scripts/gateway.sh lists them all)"
  done <<<"$list"
  ok "all free"
}

run_setup() {
  step "setup: toolchain, Envoy, the OpenID Provider (scripts/setup.sh)"
  local setup_log
  setup_log="$(log_of setup)"
  if [ "${SHIELDWALL_GATEWAY_SKIP_SETUP:-0}" = 1 ]; then
    ok "skipped (SHIELDWALL_GATEWAY_SKIP_SETUP=1)"
  else
    bash scripts/setup.sh >>"$setup_log" 2>&1 || fail "scripts/setup.sh failed" "$setup_log"
    ok "$(tail -n 1 "$setup_log" | sed 's/^==> //')"
  fi
  envoy_bin="$(bash scripts/envoy-path.sh 2>>"$setup_log")" || fail "no Envoy binary: run scripts/setup.sh" "$setup_log"
  node_bin="$(bash scripts/node-path.sh 2>>"$setup_log")" || fail "no Node.js: run scripts/setup.sh" "$setup_log"
  [ -d envoy/idp/node_modules/oidc-provider ] || fail "the OpenID Provider is not installed: run scripts/setup.sh"
}

run_pki() {
  step "certificates: a demo CA, Envoy's server certificate, client certificates with SPIFFE IDs"
  local pki_log
  pki_log="$(log_of pki)"
  make_pki "$state/pki" >>"$pki_log" 2>&1 || fail "making the demo certificates failed" "$pki_log"
  ok "$state/pki/{ca,server,bank-a-gateway,bank-b-partner}.pem"
}

# audit-log's chain key: made once, kept (records of earlier runs still verify with it).
make_chain_key() {
  if [ ! -s "$state/audit-chain.key" ]; then
    (umask 077 && openssl rand -hex 32 >"$state/audit-chain.key") 2>>"$1" ||
      fail "making audit-log's chain key failed" "$1"
  fi
}

start_idp() {
  step "start the OpenID Provider on 127.0.0.1:$idp_port"
  local idp_log
  idp_log="$(log_of idp)"
  "$node_bin" envoy/idp/idp.js --port "$idp_port" --keys "$state/idp-keys.json" \
    </dev/null >>"$idp_log" 2>&1 &
  echo $! >"$state/idp.pid"
  wait_for idp 30 "$idp_log" "discovery document" \
    status_is 200 "http://127.0.0.1:$idp_port/.well-known/openid-configuration"
  ok "pid $(pid_of idp), issuer http://127.0.0.1:$idp_port, keys in $state/idp-keys.json"
}

start_echo() { # NAME PORT
  local log
  log="$(log_of "$1")"
  "$target/release/echo" --port "$2" </dev/null >>"$log" 2>&1 &
  echo $! >"$state/$1.pid"
  wait_for "$1" 15 "$log" "answer" status_is 200 "http://127.0.0.1:$2/"
}

# syslog-ng follows Envoy's audit files (one JSON record a line) and writes each record to
# audit.log as it is, the way a node's log shipper forwards the lines to a SIEM's collector.
start_syslog() { # AUDIT-FILE...
  step "start syslog-ng: audit records from Envoy's audit files to $state/audit.log"
  local syslog_log syslog_bin file n=0 sources="" refs=""
  syslog_log="$(log_of syslog)"
  syslog_bin="$(command -v syslog-ng || echo /usr/sbin/syslog-ng)"
  [ -x "$syslog_bin" ] || fail "syslog-ng is not installed: run scripts/setup.sh (Debian syslog-ng-core)"
  for file in "$@"; do
    n=$((n + 1))
    sources="${sources}source s_audit_$n { file(\"$file\" follow-freq(0.2) flags(no-parse) log-msg-size(262144)); };"$'\n'
    refs="${refs}source(s_audit_$n); "
  done
  cat >"$state/syslog-ng.conf" <<CONF
@version: 3.35
options { log_msg_size(262144); };
${sources}filter f_records { message("{" type(string) flags(prefix)); };
destination d_audit { file("$state/audit.log" template("\${MSG}\\n")); };
log { ${refs}filter(f_records); destination(d_audit); };
CONF
  "$syslog_bin" --foreground --stderr --no-caps --cfgfile="$state/syslog-ng.conf" \
    --persist-file="$state/syslog-ng.persist" --pidfile="$state/syslog-ng.run.pid" \
    --control="$state/syslog-ng.ctl" </dev/null >>"$syslog_log" 2>&1 &
  echo $! >"$state/syslog.pid"
  wait_for syslog 10 "$syslog_log" "its control socket" test -S "$state/syslog-ng.ctl"
  ok "pid $(pid_of syslog), $(printf '%s ' "$@")→ $state/audit.log"
}

# A token of the IdP by client credentials: CLIENT [CURL-ARGS...].
idp_token() {
  local client="$1"
  shift
  curl -s --max-time 5 -u "$client:$client-secret" -d grant_type=client_credentials "$@" \
    "http://127.0.0.1:$idp_port/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}

# Nothing of ours runs: forget stale pid files and ports from an earlier run.
prepare_state() {
  mkdir -p "$state"
  local name
  for name in "${minimal_components[@]}" "${reference_components[@]}"; do rm -f "$state/$name.pid"; done
  rm -f "$state/ports" "$env_file"
  load_ports
}

record_ports() {
  {
    echo "profile_recorded=$profile"
    local name
    for name in "${port_names[@]}"; do
      local var="${name}_port"
      echo "$var=${!var}"
    done
  } >"$state/ports"
}

up_minimal() {
  check_ports
  run_setup

  step "build: the wasm modules (cargo build --release, then wasm-opt) and the echo upstream"
  local build_log m
  build_log="$(log_of build)"
  {
    cargo build --release --target wasm32-wasip1 -p shieldwall -p mtls-identity &&
      bash "$root/scripts/wasm-opt.sh" "$modules/shieldwall.wasm" "$modules/mtls_identity.wasm" &&
      cargo build --release -p shieldwall-e2e --bin echo
  } >>"$build_log" 2>&1 || fail "cargo build failed" "$build_log"
  for m in shieldwall mtls_identity; do
    [ -f "$modules/$m.wasm" ] || fail "the build made no $modules/$m.wasm" "$build_log"
  done
  [ -x "$target/release/echo" ] || fail "the build made no $target/release/echo" "$build_log"
  ok "$modules/{shieldwall,mtls_identity}.wasm, $target/release/echo"

  run_pki

  step "config: render envoy/gateway.yaml into $state/envoy.yaml"
  local render_log
  render_log="$(log_of render)"
  : >"$state/access.log"
  : >"$state/audit-envoy.log"
  : >"$state/audit.log"
  make_chain_key "$render_log"
  render envoy/gateway.yaml "$state/envoy.yaml" GATEWAY_PORT="$gateway_port" ADMIN_PORT="$admin_port" \
    IDP_PORT="$idp_port" UPSTREAM_PORT="$upstream_port" MTLS_PORT="$mtls_port" MODULE_DIR="$modules" \
    STATE_DIR="$state" PKI_DIR="$state/pki" AUDIT_CHAIN_KEY="$(cat "$state/audit-chain.key")" \
    ORDERS_OPENAPI_JSON=envoy/openapi/orders.yaml 2>>"$render_log" ||
    fail "rendering envoy/gateway.yaml failed" "$render_log"
  record_ports
  write_env_file
  ok "$state/envoy.yaml, $env_file"

  started=1
  start_idp

  step "start the echo upstream on 127.0.0.1:$upstream_port"
  start_echo echo "$upstream_port"
  ok "pid $(pid_of echo)"

  start_syslog "$state/audit-envoy.log"

  step "start Envoy: gateway on 127.0.0.1:$gateway_port, admin on 127.0.0.1:$admin_port"
  local envoy_log
  start_envoy envoy "$state/envoy.yaml" "$admin_port"
  envoy_log="$logs/envoy.log"
  wait_for envoy 15 "$envoy_log" "200 from the gateway's /healthz" \
    status_is 200 "http://127.0.0.1:$gateway_port/healthz"
  # A first token must be accepted: jwt-auth has fetched the IdP's key set through Envoy.
  local token
  token="$(idp_token orders-reader -d scope=orders:read -d resource=urn:shieldwall:orders-api)"
  [ -n "$token" ] || fail "the OpenID Provider gave no token to orders-reader" "$logs/idp.log"
  wait_for envoy 20 "$envoy_log" "acceptance of a first token (the key set from the IdP)" \
    status_is 200 -H "Authorization: Bearer $token" "http://127.0.0.1:$gateway_port/tenants/a/orders/1"
  # And the mTLS listener: bank-a's payments gateway may call /internal/.
  wait_for envoy 15 "$envoy_log" "200 from the mTLS listener for bank-a's gateway certificate" \
    status_is 200 --cacert "$state/pki/ca.pem" --cert "$state/pki/bank-a-gateway.pem" \
    --key "$state/pki/bank-a-gateway-key.pem" "https://127.0.0.1:$mtls_port/internal/payments"
  ok "pid $(pid_of envoy), a first token was accepted, the mTLS listener answers"

  trap - INT TERM
  print_summary
}

up_reference() {
  check_ports
  run_setup

  step "build: shieldwall.wasm (then wasm-opt), the echo services, rls-redis (cargo build --release)"
  local build_log
  build_log="$(log_of build)"
  {
    cargo build --release --target wasm32-wasip1 -p shieldwall &&
      bash "$root/scripts/wasm-opt.sh" "$modules/shieldwall.wasm" &&
      cargo build --release -p shieldwall-e2e --bin echo &&
      cargo build --release -p rls-redis --bin rls-redis
  } >>"$build_log" 2>&1 || fail "cargo build failed" "$build_log"
  [ -f "$modules/shieldwall.wasm" ] || fail "the build made no $modules/shieldwall.wasm" "$build_log"
  [ -x "$target/release/echo" ] || fail "the build made no $target/release/echo" "$build_log"
  [ -x "$target/release/rls-redis" ] || fail "the build made no $target/release/rls-redis" "$build_log"
  command -v redis-server >/dev/null || fail "redis-server is not installed: run scripts/setup.sh"
  command -v prometheus >/dev/null || fail "prometheus is not installed: run scripts/setup.sh (Debian prometheus)"
  ok "$modules/shieldwall.wasm, $target/release/{echo,rls-redis}"

  run_pki

  step "config: render envoy/bank/{gateway,mesh}.yaml and Prometheus' configuration into $state"
  local render_log n
  render_log="$(log_of render)"
  : >"$state/audit.log"
  make_chain_key "$render_log"
  # The gateways' key for internal tokens (ES256, PKCS#8): made once and kept, so that tokens and
  # the mesh's cached key set stay valid across restarts; both gateways sign with it.
  if [ ! -s "$state/internal-signing-key.pem" ]; then
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
      -out "$state/internal-signing-key.pem") 2>>"$render_log" ||
      fail "making the internal signing key failed" "$render_log"
  fi
  for n in 1 2; do
    local gw_port=$gateway_port mt_port=$mtls_port ad_port=$admin_port
    if [ "$n" = 2 ]; then gw_port=$gateway2_port mt_port=$mtls2_port ad_port=$admin2_port; fi
    : >"$state/access-gateway-$n.log"
    : >"$state/audit-gateway-$n.log"
    render envoy/bank/gateway.yaml "$state/gateway-$n.yaml" INSTANCE="$n" GATEWAY_PORT="$gw_port" \
      MTLS_PORT="$mt_port" ADMIN_PORT="$ad_port" IDP_PORT="$idp_port" MESH_PORT="$mesh_port" \
      RLS_PORT="$rls_port" MODULE_DIR="$modules" STATE_DIR="$state" PKI_DIR="$state/pki" \
      AUDIT_CHAIN_KEY="$(cat "$state/audit-chain.key")" \
      SIGNING_KEY_JSON="$state/internal-signing-key.pem" BANK_OPENAPI_JSON=envoy/bank/bank-api.yaml \
      2>>"$render_log" || fail "rendering envoy/bank/gateway.yaml failed" "$render_log"
  done
  : >"$state/access-mesh.log"
  render envoy/bank/mesh.yaml "$state/mesh.yaml" MESH_PORT="$mesh_port" MESH_ADMIN_PORT="$mesh_admin_port" \
    GATEWAY_PORT="$gateway_port" GATEWAY2_PORT="$gateway2_port" UPSTREAM_PORT="$upstream_port" \
    UPSTREAM2_PORT="$upstream2_port" STATE_DIR="$state" 2>>"$render_log" ||
    fail "rendering envoy/bank/mesh.yaml failed" "$render_log"
  render envoy/observability/prometheus.yml "$state/prometheus.yml" ADMIN_PORT="$admin_port" \
    ADMIN2_PORT="$admin2_port" MESH_ADMIN_PORT="$mesh_admin_port" \
    RULES_FILE="$root/envoy/observability/alerts.yml" 2>>"$render_log" ||
    fail "rendering envoy/observability/prometheus.yml failed" "$render_log"
  record_ports
  write_env_file
  ok "$state/{gateway-1,gateway-2,mesh}.yaml, $state/prometheus.yml, $env_file"

  started=1
  start_idp

  step "start the tenants' services (echo): bank-a on 127.0.0.1:$upstream_port, bank-b on 127.0.0.1:$upstream2_port"
  start_echo echo-a "$upstream_port"
  start_echo echo-b "$upstream2_port"
  ok "pids $(pid_of echo-a), $(pid_of echo-b)"

  step "start Redis on 127.0.0.1:$redis_port and rls-redis (the global rate limit) on 127.0.0.1:$rls_port"
  local redis_log rls_log
  redis_log="$(log_of redis)"
  # Redis renames its process to its title; the config file's path stays in it (the marker).
  printf '%s\n' "bind 127.0.0.1" "port $redis_port" 'save ""' "appendonly no" "dir $state" \
    'proc-title-template "{title} {listen-addr} {config-file}"' >"$state/redis.conf"
  redis-server "$state/redis.conf" </dev/null >>"$redis_log" 2>&1 &
  echo $! >"$state/redis.pid"
  wait_for redis 10 "$redis_log" "PONG" redis_pong
  rls_log="$(log_of rls)"
  "$target/release/rls-redis" --listen "127.0.0.1:$rls_port" --redis "redis://127.0.0.1:$redis_port" \
    --config envoy/bank/limits.json --prefix shieldwall_bank </dev/null >>"$rls_log" 2>&1 &
  echo $! >"$state/rls.pid"
  wait_for rls 10 "$rls_log" "its ready line" grep -q "rls-redis: serving" "$rls_log"
  ok "pids $(pid_of redis), $(pid_of rls); limits from envoy/bank/limits.json"

  start_syslog "$state/audit-gateway-1.log" "$state/audit-gateway-2.log"

  step "start gateway 1 on 127.0.0.1:$gateway_port (mTLS $mtls_port, admin $admin_port)"
  start_envoy gateway-1 "$state/gateway-1.yaml" "$admin_port"
  ok "pid $(pid_of gateway-1)"
  step "start gateway 2 on 127.0.0.1:$gateway2_port (mTLS $mtls2_port, admin $admin2_port)"
  start_envoy gateway-2 "$state/gateway-2.yaml" "$admin2_port"
  ok "pid $(pid_of gateway-2)"

  step "start the mesh ingress on 127.0.0.1:$mesh_port (admin $mesh_admin_port): jwt_authn + rbac"
  start_envoy mesh "$state/mesh.yaml" "$mesh_admin_port"
  # The whole path must work before `up` returns: a bank-a teller's token accepted by each
  # gateway (jwt-auth has the IdP's keys), exchanged, and the internal token accepted by the mesh
  # (jwt_authn has the gateways' keys); and a service certificate over each mTLS listener.
  local token
  token="$(idp_token bank-a-teller)"
  [ -n "$token" ] || fail "the OpenID Provider gave no token to bank-a-teller" "$logs/idp.log"
  for n in 1 2; do
    local port=$gateway_port mport=$mtls_port
    [ "$n" = 2 ] && port=$gateway2_port mport=$mtls2_port
    wait_for mesh 30 "$logs/gateway-$n.log" "a first token through gateway $n and the mesh" \
      status_is 200 -H "Authorization: Bearer $token" "http://127.0.0.1:$port/tenants/bank-a/accounts"
    wait_for mesh 15 "$logs/gateway-$n.log" "200 over gateway $n's mTLS listener" \
      status_is 200 --cacert "$state/pki/ca.pem" --cert "$state/pki/bank-a-gateway.pem" \
      --key "$state/pki/bank-a-gateway-key.pem" "https://127.0.0.1:$mport/internal/settlements"
  done
  ok "pid $(pid_of mesh); a first token and a service certificate went through both gateways"

  step "start Prometheus on 127.0.0.1:$prometheus_port: the three Envoys, shieldwall's alert rules"
  local prom_log
  prom_log="$(log_of prometheus)"
  # A fresh time-series store per run: counters of an earlier run would add up in sums.
  rm -rf "$state/prometheus-data"
  mkdir -p "$state/prometheus-data"
  prometheus --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/prometheus-data" \
    --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$prometheus_port" \
    </dev/null >>"$prom_log" 2>&1 &
  echo $! >"$state/prometheus.pid"
  # Generous: on a machine busy with builds, Prometheus has taken over a minute to start.
  wait_for prometheus 120 "$prom_log" "ready" status_is 200 "http://127.0.0.1:$prometheus_port/-/ready"
  ok "pid $(pid_of prometheus), rules from envoy/observability/alerts.yml"

  trap - INT TERM
  print_reference_summary
}

# Redis answers PING.
redis_pong() {
  python3 - "$redis_port" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

print_reference_summary() {
  say ""
  say "shieldwall bank reference is up:"
  say "  OpenID Provider  http://127.0.0.1:$idp_port  (issuer; tellers bank-a-teller and bank-b-teller)"
  say "  Gateway 1        http://127.0.0.1:$gateway_port  mTLS https://127.0.0.1:$mtls_port  admin http://127.0.0.1:$admin_port"
  say "  Gateway 2        http://127.0.0.1:$gateway2_port  mTLS https://127.0.0.1:$mtls2_port  admin http://127.0.0.1:$admin2_port"
  say "  Mesh ingress     http://127.0.0.1:$mesh_port  admin http://127.0.0.1:$mesh_admin_port  (jwt_authn + rbac, then bank-a's and bank-b's services)"
  say "  Rate limits      rls-redis on 127.0.0.1:$rls_port, Redis on 127.0.0.1:$redis_port (the global limit both gateways share)"
  say "  Prometheus       http://127.0.0.1:$prometheus_port  (the three Envoys; shieldwall's alert rules)"
  say "  Audit records    $state/audit.log  (both gateways' records, masked and chained, shipped by syslog-ng)"
  say "  Logs and config  $state (logs in $logs)"
  say ""
  say "Gateway: http://127.0.0.1:$gateway_port"
  say ""
  say "Try it (copy and paste; docs/bank-reference.md walks through all of it):"
  say ""
  say "# 0. the addresses above (GATEWAY, GATEWAY2, MTLS, IDP, ADMIN, PROMETHEUS, ...), the certificates as PKI"
  say "source $(env_file_shown)"
  say ""
  say "# 1. a token for bank-a's teller"
  say "$(bank_token_command A)"
  say ""
  say "# 2. bank-a's teller reads a bank-a account -> 200; bank-a's service shows the internal token's claims and x-spiffe-id"
  say "curl -i -H \"Authorization: Bearer \$TOKEN_A\" \$GATEWAY/tenants/bank-a/accounts/ACC-00000042"
  say ""
  say "# 3. the same teller on bank-b's account -> 403 at the gateway, the tenant boundary"
  say "curl -i -H \"Authorization: Bearer \$TOKEN_A\" \$GATEWAY/tenants/bank-b/accounts/ACC-00000042"
  say ""
  say "Stop it with: scripts/gateway.sh down"
}

bank_token_command() { # A | B
  local tenant
  tenant="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')"
  printf '%s' "TOKEN_$1=\$(curl -s -u bank-$tenant-teller:bank-$tenant-teller-secret -d grant_type=client_credentials \$IDP/token | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')"
}

cmd_up() { # [--minimal]
  local want=reference
  case "${1:-}" in
    "") ;;
    --minimal) want=minimal ;;
    *)
      say "usage: scripts/gateway.sh up [--minimal]" >&2
      exit 2
      ;;
  esac
  load_recorded_ports
  local name running=0 stopped=0
  for name in "${components[@]}"; do
    if running_pid "$name" >/dev/null; then running=1; else stopped=1; fi
  done
  if [ "$running" = 1 ] && [ "$stopped" = 0 ]; then
    if [ "$profile" != "$want" ]; then
      say "the $profile gateway is up; stop it first (scripts/gateway.sh down)" >&2
      return 1
    fi
    say "the gateway is already up (scripts/gateway.sh status; scripts/gateway.sh down to stop it)"
    write_env_file
    if [ "$profile" = minimal ]; then print_summary; else print_reference_summary; fi
    return 0
  fi
  if [ "$running" = 1 ]; then
    say "the gateway is partly running:" >&2
    cmd_status >&2 || true
    say "run scripts/gateway.sh down first" >&2
    return 1
  fi
  set_profile "$want"
  prepare_state

  started=0
  trap 'fail "interrupted"' INT TERM
  if [ "$profile" = minimal ]; then up_minimal; else up_reference; fi
}

case "${1:-}" in
  up) cmd_up "${2:-}" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    say "usage: scripts/gateway.sh up [--minimal]|down|status" >&2
    exit 2
    ;;
esac
