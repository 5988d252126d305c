#!/usr/bin/env bash
# The local secure gateway: an OpenID Provider, an echo upstream and Envoy with the full shieldwall
# chain (jwt-auth → scope-authz → rate-limit, as one module), and an mTLS listener for services with client
# certificates (mtls-identity), all on 127.0.0.1.
#
#   scripts/gateway.sh up       install what is missing, build, start, wait until all answer; writes
#                               the env file (GATEWAY, IDP, ADMIN, UPSTREAM) the quick start sources
#   scripts/gateway.sh status   what runs, with its pid and port; exits 0 when every part runs,
#                               1 when the gateway is stopped or only partly running
#   scripts/gateway.sh down     stop what `up` started (by the pids it recorded, only those) and
#                               return once each of those processes is gone (exited and reaped)
#
# State, in SHIELDWALL_GATEWAY_DIR (.gateway by default):
#   env                 `source` it: GATEWAY, IDP, ADMIN, UPSTREAM as http://127.0.0.1:PORT, MTLS as
#                       https://127.0.0.1:PORT, PKI the directory of the demo certificates,
#                       AUDIT_LOG the audit records' file, AUDIT_CHAIN_KEY their chain key
#   pki/                a demo CA, Envoy's server certificate and two client certificates with
#                       SPIFFE IDs (openssl, made by `up`, remade when they near their expiry)
#   logs/<step>.log     one log per step (setup, build, render, idp, echo, syslog, envoy); each run appends
#                       to it under a dated header, so an earlier run's output stays
#   access.log          Envoy's access log; envoy.yaml, the rendered config; idp-keys.json; *.pid
#   audit-envoy.log     audit-log's records as Envoy's access logger writes them
#   audit.log           the same records as syslog-ng ships them (the SIEM's view)
#   audit-chain.key     audit-log's chain key (made once; records stay verifiable across runs)
#
# Environment (defaults in brackets):
#   SHIELDWALL_GATEWAY_PORT [8080]   the gateway (Envoy's listener)
#   SHIELDWALL_ADMIN_PORT   [9901]   Envoy's admin API
#   SHIELDWALL_IDP_PORT     [9080]   the OpenID Provider
#   SHIELDWALL_UPSTREAM_PORT [9081]  the echo upstream
#   SHIELDWALL_MTLS_PORT    [8443]   the mTLS listener
#   SHIELDWALL_GATEWAY_DIR  [.gateway at the repository root]  state: pids, logs, config, IdP keys
#   SHIELDWALL_GATEWAY_SKIP_SETUP=1  do not run scripts/setup.sh (everything is installed already)
#   SHIELDWALL_ENVOY                 the Envoy binary to use (see scripts/envoy-path.sh)
#   SHIELDWALL_NODE                  the Node.js binary that runs the IdP (see scripts/node-path.sh)
#   CARGO_TARGET_DIR                 where the modules and the echo are built (scripts/target-dir.sh)
#
# Once installed and built, `up` needs no network.
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

components=(idp echo syslog envoy) # start order; stopped in reverse

# ------------------------------------------------------------------------------------ helpers

say() { printf '%s\n' "$*"; }
step_no=0
step_total=9
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
    echo "export IDP=http://127.0.0.1:$idp_port"
    echo "export ADMIN=http://127.0.0.1:$admin_port"
    echo "export UPSTREAM=http://127.0.0.1:$upstream_port"
    echo "export MTLS=https://127.0.0.1:$mtls_port"
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
load_ports() {
  gateway_port="${SHIELDWALL_GATEWAY_PORT:-8080}"
  admin_port="${SHIELDWALL_ADMIN_PORT:-9901}"
  idp_port="${SHIELDWALL_IDP_PORT:-9080}"
  upstream_port="${SHIELDWALL_UPSTREAM_PORT:-9081}"
  mtls_port="${SHIELDWALL_MTLS_PORT:-8443}"
}
load_recorded_ports() {
  load_ports
  if [ -f "$state/ports" ]; then
    # shellcheck disable=SC1091
    . "$state/ports"
  fi
}

port_of() {
  case "$1" in
    idp) echo "$idp_port" ;;
    echo) echo "$upstream_port" ;;
    syslog) echo "-" ;;
    envoy) echo "$gateway_port" ;;
  esac
}

# What the command line of each component contains, so that a pid reused by another program
# after a crash is never taken for ours.
marker_of() {
  case "$1" in
    idp) echo "$state/idp-keys.json" ;;
    echo) echo "echo --port $upstream_port" ;;
    syslog) echo "$state/syslog-ng.conf" ;;
    envoy) echo "$state/envoy.yaml" ;;
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
is_ours() {
  local name="$1" pid="$2" st args
  st="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
  [ -n "$st" ] || return 1
  case "$st" in Z*) return 1 ;; esac
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
admin_live() {
  [ "$(curl -s --max-time 2 "http://127.0.0.1:$admin_port/ready" 2>/dev/null || true)" = LIVE ]
}

# Waits until `check` succeeds, failing the step when the process dies or time runs out.
wait_for() {
  local name="$1" seconds="$2" log="$3" what="$4"
  shift 4
  local deadline=$((SECONDS + seconds)) pid
  pid="$(pid_of "$name")"
  while :; do
    if "$@"; then return 0; fi
    if ! is_ours "$name" "$pid"; then
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
  printf '%-8s %-8s %-8s %s\n' component state pid port
  for name in "${components[@]}"; do
    if pid="$(running_pid "$name")"; then
      printf '%-8s %-8s %-8s %s\n' "$name" running "$pid" "$(port_of "$name")"
      any=1
    else
      printf '%-8s %-8s %-8s %s\n' "$name" stopped - "$(port_of "$name")"
      all=1
    fi
  done
  if [ "$any" = 1 ] && [ -n "$(running_pid envoy || true)" ]; then
    say "envoy admin on 127.0.0.1:$admin_port, mTLS listener on 127.0.0.1:$mtls_port"
  fi
  if [ "$any" = 1 ] && [ "$all" = 0 ]; then
    say "Gateway: http://127.0.0.1:$gateway_port"
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

cmd_up() {
  load_recorded_ports
  local name pid running=0 stopped=0
  for name in "${components[@]}"; do
    if running_pid "$name" >/dev/null; then running=1; else stopped=1; fi
  done
  if [ "$running" = 1 ] && [ "$stopped" = 0 ]; then
    say "the gateway is already up (scripts/gateway.sh status; scripts/gateway.sh down to stop it)"
    write_env_file
    print_summary
    return 0
  fi
  if [ "$running" = 1 ]; then
    say "the gateway is partly running:" >&2
    cmd_status >&2 || true
    say "run scripts/gateway.sh down first" >&2
    return 1
  fi
  # Nothing of ours runs: forget stale pid files and ports from an earlier run.
  mkdir -p "$state"
  for name in "${components[@]}"; do rm -f "$state/$name.pid"; done
  rm -f "$state/ports" "$env_file"
  load_ports

  started=0
  trap 'fail "interrupted"' INT TERM

  step "ports: gateway $gateway_port, mTLS $mtls_port, admin $admin_port, IdP $idp_port, upstream $upstream_port"
  local p seen=" "
  for p in "$gateway_port" "$mtls_port" "$admin_port" "$idp_port" "$upstream_port"; do
    case "$p" in '' | *[!0-9]*) fail "not a port number: '$p'" ;; esac
    [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || fail "not a port number: $p"
    case "$seen" in *" $p "*) fail "port $p is given twice: each part needs its own" ;; esac
    seen="$seen$p "
  done
  command -v python3 >/dev/null || fail "python3 is needed (scripts/setup.sh uses it too)"
  command -v curl >/dev/null || fail "curl is needed"
  for p in "$gateway_port" "$mtls_port" "$admin_port" "$idp_port" "$upstream_port"; do
    port_free "$p" || fail "port $p on 127.0.0.1 is in use; choose others with SHIELDWALL_GATEWAY_PORT, SHIELDWALL_MTLS_PORT, SHIELDWALL_ADMIN_PORT, SHIELDWALL_IDP_PORT, SHIELDWALL_UPSTREAM_PORT"
  done
  ok "all free"

  step "setup: toolchain, Envoy, the OpenID Provider (scripts/setup.sh)"
  local setup_log build_log render_log idp_log echo_log envoy_log
  setup_log="$(log_of setup)"
  if [ "${SHIELDWALL_GATEWAY_SKIP_SETUP:-0}" = 1 ]; then
    ok "skipped (SHIELDWALL_GATEWAY_SKIP_SETUP=1)"
  else
    bash scripts/setup.sh >>"$setup_log" 2>&1 || fail "scripts/setup.sh failed" "$setup_log"
    ok "$(tail -n 1 "$setup_log" | sed 's/^==> //')"
  fi
  local envoy_bin node_bin
  envoy_bin="$(bash scripts/envoy-path.sh 2>>"$setup_log")" || fail "no Envoy binary: run scripts/setup.sh" "$setup_log"
  node_bin="$(bash scripts/node-path.sh 2>>"$setup_log")" || fail "no Node.js: run scripts/setup.sh" "$setup_log"
  [ -d envoy/idp/node_modules/oidc-provider ] || fail "the OpenID Provider is not installed: run scripts/setup.sh"

  step "build: the wasm modules and the echo upstream (cargo build --release)"
  build_log="$(log_of build)"
  {
    cargo build --release --target wasm32-wasip1 -p shieldwall -p mtls-identity &&
      cargo build --release -p shieldwall-e2e --bin echo
  } >>"$build_log" 2>&1 || fail "cargo build failed" "$build_log"
  local m
  for m in shieldwall mtls_identity; do
    [ -f "$modules/$m.wasm" ] || fail "the build made no $modules/$m.wasm" "$build_log"
  done
  [ -x "$target/release/echo" ] || fail "the build made no $target/release/echo" "$build_log"
  ok "$modules/{shieldwall,mtls_identity}.wasm, $target/release/echo"

  step "certificates: a demo CA, Envoy's server certificate, client certificates with SPIFFE IDs"
  local pki_log
  pki_log="$(log_of pki)"
  make_pki "$state/pki" >>"$pki_log" 2>&1 || fail "making the demo certificates failed" "$pki_log"
  ok "$state/pki/{ca,server,bank-a-gateway,bank-b-partner}.pem"

  step "config: render envoy/gateway.yaml into $state/envoy.yaml"
  render_log="$(log_of render)"
  : >"$state/access.log"
  : >"$state/audit-envoy.log"
  : >"$state/audit.log"
  # audit-log's chain key: made once, kept (records of earlier runs still verify with it).
  if [ ! -s "$state/audit-chain.key" ]; then
    (umask 077 && openssl rand -hex 32 >"$state/audit-chain.key") 2>>"$render_log" ||
      fail "making audit-log's chain key failed" "$render_log"
  fi
  GATEWAY_PORT="$gateway_port" ADMIN_PORT="$admin_port" IDP_PORT="$idp_port" \
    UPSTREAM_PORT="$upstream_port" MTLS_PORT="$mtls_port" MODULE_DIR="$modules" \
    STATE_DIR="$state" PKI_DIR="$state/pki" AUDIT_CHAIN_KEY="$(cat "$state/audit-chain.key")" \
    python3 - envoy/gateway.yaml "$state/envoy.yaml" 2>>"$render_log" <<'PY' || fail "rendering envoy/gateway.yaml failed" "$render_log"
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
names = ["GATEWAY_PORT", "ADMIN_PORT", "IDP_PORT", "UPSTREAM_PORT", "MTLS_PORT", "MODULE_DIR",
         "STATE_DIR", "PKI_DIR", "AUDIT_CHAIN_KEY"]
text = open(src).read()
for name in names:
    text = text.replace("{{" + name + "}}", os.environ[name])
# payload-guard's OpenAPI document, as one JSON string inside the plugin configuration (which is
# itself a YAML block scalar: the string's escapes keep it on one line).
import json
openapi = open(os.path.join(os.path.dirname(src), "openapi", "orders.yaml")).read()
text = text.replace("{{ORDERS_OPENAPI_JSON}}", json.dumps(openapi))
left = re.findall(r"\{\{[A-Z_]+\}\}", text)
if left:
    sys.exit("unknown placeholders: " + ", ".join(sorted(set(left))))
open(dst, "w").write(text)
PY
  {
    echo "gateway_port=$gateway_port"
    echo "admin_port=$admin_port"
    echo "idp_port=$idp_port"
    echo "upstream_port=$upstream_port"
    echo "mtls_port=$mtls_port"
  } >"$state/ports"
  write_env_file
  ok "$state/envoy.yaml, $env_file"

  started=1
  step "start the OpenID Provider on 127.0.0.1:$idp_port"
  idp_log="$(log_of idp)"
  "$node_bin" envoy/idp/idp.js --port "$idp_port" --keys "$state/idp-keys.json" \
    </dev/null >>"$idp_log" 2>&1 &
  echo $! >"$state/idp.pid"
  wait_for idp 30 "$idp_log" "discovery document" \
    status_is 200 "http://127.0.0.1:$idp_port/.well-known/openid-configuration"
  ok "pid $(pid_of idp), issuer http://127.0.0.1:$idp_port, keys in $state/idp-keys.json"

  step "start the echo upstream on 127.0.0.1:$upstream_port"
  echo_log="$(log_of echo)"
  "$target/release/echo" --port "$upstream_port" </dev/null >>"$echo_log" 2>&1 &
  echo $! >"$state/echo.pid"
  wait_for echo 15 "$echo_log" "answer" \
    status_is 200 "http://127.0.0.1:$upstream_port/"
  ok "pid $(pid_of echo)"

  step "start syslog-ng: audit records from Envoy's audit file to $state/audit.log"
  local syslog_log syslog_bin
  syslog_log="$(log_of syslog)"
  syslog_bin="$(command -v syslog-ng || echo /usr/sbin/syslog-ng)"
  [ -x "$syslog_bin" ] || fail "syslog-ng is not installed: run scripts/setup.sh (Debian syslog-ng-core)"
  # Follows Envoy's audit file (one JSON record a line) and writes each record to audit.log as it
  # is, the way a node's log shipper forwards the lines to a SIEM's collector.
  cat >"$state/syslog-ng.conf" <<CONF
@version: 3.35
options { log_msg_size(262144); };
source s_envoy_audit { file("$state/audit-envoy.log" follow-freq(0.2) flags(no-parse) log-msg-size(262144)); };
filter f_records { message("{" type(string) flags(prefix)); };
destination d_audit { file("$state/audit.log" template("\${MSG}\\n")); };
log { source(s_envoy_audit); filter(f_records); destination(d_audit); };
CONF
  "$syslog_bin" --foreground --stderr --no-caps --cfgfile="$state/syslog-ng.conf" \
    --persist-file="$state/syslog-ng.persist" --pidfile="$state/syslog-ng.run.pid" \
    --control="$state/syslog-ng.ctl" </dev/null >>"$syslog_log" 2>&1 &
  echo $! >"$state/syslog.pid"
  wait_for syslog 10 "$syslog_log" "its control socket" test -S "$state/syslog-ng.ctl"
  ok "pid $(pid_of syslog), $state/audit-envoy.log → $state/audit.log"

  step "start Envoy: gateway on 127.0.0.1:$gateway_port, admin on 127.0.0.1:$admin_port"
  # The base id names Envoy's shared memory; derived from the admin port (unique per stack) and
  # kept clear of the small ids other tools pick, so several stacks can run side by side.
  local base_id=$((300000000 + admin_port))
  # Envoy asks the kernel for SIGTERM when its parent process exits (PR_SET_PDEATHSIG), so it
  # cannot be the child of this script: a small shell stays its parent, records Envoy's own pid
  # (the one `down` signals) and waits; it ends when Envoy does.
  rm -f "$state/envoy.pid"
  envoy_log="$(log_of envoy)"
  bash -c 'pidfile="$1"; shift; "$@" & echo $! >"$pidfile"; wait $!' envoy-parent \
    "$state/envoy.pid" "$envoy_bin" -c "$state/envoy.yaml" --base-id "$base_id" --concurrency 2 \
    --log-level info --drain-time-s 1 --parent-shutdown-time-s 2 --file-flush-interval-msec 1000 \
    </dev/null >>"$envoy_log" 2>&1 &
  local i
  for i in $(seq 1 50); do
    [ -s "$state/envoy.pid" ] && break
    sleep 0.1
  done
  pid_of envoy >/dev/null || fail "envoy did not start" "$envoy_log"
  wait_for envoy 60 "$envoy_log" "LIVE on admin /ready" \
    admin_live
  wait_for envoy 15 "$envoy_log" "200 from the gateway's /healthz" \
    status_is 200 "http://127.0.0.1:$gateway_port/healthz"
  # A first token must be accepted: jwt-auth has fetched the IdP's key set through Envoy.
  local token
  token="$(curl -s --max-time 5 -u orders-reader:orders-reader-secret -d grant_type=client_credentials \
    -d scope=orders:read -d resource=urn:shieldwall:orders-api "http://127.0.0.1:$idp_port/token" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')"
  [ -n "$token" ] || fail "the OpenID Provider gave no token to orders-reader" "$idp_log"
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

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    say "usage: scripts/gateway.sh up|down|status" >&2
    exit 2
    ;;
esac
