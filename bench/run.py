#!/usr/bin/env python3
"""The side-by-side benchmark behind scripts/bench.sh: Envoy's native filters against shieldwall's
modules, in one Envoy, in the same run, on the same machine.

scripts/bench.sh builds the modules and the helper, mints the tokens, then runs this with the
paths it needs in the environment. See bench/README.md for what each figure means.
"""

import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = os.environ
SECONDS = int(ENV.get("BENCH_SECONDS", "10"))
ROUNDS = int(ENV.get("BENCH_ROUNDS", "3"))
WARMUP = int(ENV.get("BENCH_WARMUP", "3"))
CONNECTIONS = int(ENV.get("BENCH_CONNECTIONS", "16"))
MEMORY_SECONDS = int(ENV.get("BENCH_MEMORY_SECONDS", "3"))
ENVOY_CPU = ENV.get("BENCH_ENVOY_CPU", "0")
# Diagnostic rows sample Envoy's CPU with `perf` when it is there (BENCH_PERF=0: never), to split
# what a module adds between its own compiled code and the rest of Envoy's process.
PERF = shutil.which("perf") if ENV.get("BENCH_PERF", "1") != "0" else None
# BENCH_PERF_KEEP=DIR: keep each of those recordings as DIR/<listener>-<n>.data (n counts a
# listener's recordings in the run), for `perf report -i` by symbol or address.
PERF_KEEP = ENV.get("BENCH_PERF_KEEP", "")
LOAD_CPU = ENV.get("BENCH_LOAD_CPU", "1")
ENVOY = ENV.get("BENCH_ENVOY", "envoy")
WASM_DIR = ENV.get("BENCH_WASM_DIR", "")
TOKENS = ENV.get("BENCH_TOKENS_DIR", "")
# BENCH_ONLY: a comma-separated list of rows (e.g. `diag-exchange-cached,diag-one-exchange`) and
# phases (`scale`, `churn`, `memory`, `attack`, `micro`) to run; the no-filter ceiling row always runs, since
# the added costs are measured against it. Such a partial run writes its report to
# bench/RESULTS-only.md (and results-only.json), never over the full report.
ONLY = [x.strip() for x in ENV.get("BENCH_ONLY", "").split(",") if x.strip()]
RESULTS = ENV.get("BENCH_RESULTS", os.path.join(ROOT, "bench", "RESULTS-only.md" if ONLY else "RESULTS.md"))
# The run at 2 Envoy workers (phase `scale`) and the rate limit's key churn (phase `churn`).
SCALE_WORKERS = int(ENV.get("BENCH_SCALE_WORKERS", "2"))
CHURN_CLIENTS = int(ENV.get("BENCH_CHURN_CLIENTS", "1000000"))
CHURN_SECONDS = int(ENV.get("BENCH_CHURN_SECONDS", "60"))
README = os.path.join(ROOT, "bench", "README.md")
MICRO_NATIVE = ENV.get("BENCH_MICRO_NATIVE", "")
# The same paths run natively on the mock host (filters/shieldwall/examples/path_cost.rs).
PATH_COST = ENV.get("BENCH_PATH_COST", "")
MICRO_WASM = ENV.get("BENCH_MICRO_WASM", "")
LUA = os.path.join(ROOT, "bench", "wrk", "bench.lua")

ISSUER = "https://idp.bench.example"
AUDIENCE = "orders-api"
ALGS = ["RS256", "ES256", "EdDSA"]
MODULES = {"jwt-auth": "jwt_auth.wasm", "scope-authz": "scope_authz.wasm", "rate-limit": "rate_limit.wasm",
           "token-introspection": "token_introspection.wasm", "shieldwall": "shieldwall.wasm",
           "audit-log": "audit_log.wasm", "identity-exchange": "identity_exchange.wasm",
           "payload-guard": "payload_guard.wasm", "policy-authz": "policy_authz.wasm",
           "mtls-identity": "mtls_identity.wasm", "hostcalls": "hostcalls.wasm", "ladder": "ladder.wasm",
           # The empty module exporting the response-header and log callbacks too (scripts/bench.sh).
           "noop-exports": "noop-exports.wasm",
           # The one module built with only the filters a row runs (scripts/bench.sh builds them).
           "shieldwall-jwt-only": "shieldwall-jwt-only.wasm",
           "shieldwall-jwt-scope-ratelimit": "shieldwall-jwt-scope-ratelimit.wasm",
           "shieldwall-without-policy-authz": "shieldwall-without-policy-authz.wasm"}
# Not a shieldwall filter: the smallest wasm filter there is, for the floor of any wasm filter.
NOOP_MODULE = "noop.wasm"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ filters


def read(path):
    with open(path) as f:
        return f.read()


# Empty when only re-rendering a report (`--report-from`).
JWKS_TEXT = read(os.path.join(TOKENS, "jwks.json")) if TOKENS else '{"keys": []}'
WARM_TOKEN = read(os.path.join(TOKENS, "warm.txt")).strip() if TOKENS else ""


def native_jwt(cache, payload_in_metadata=False):
    provider = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": JWKS_TEXT},
        "forward": False,
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 1000}
    if payload_in_metadata:
        provider["payload_in_metadata"] = "jwt_payload"
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    }


def native_rbac():
    # The same decision as scope-authz's `require.scopes: ["orders:read"]`: the space-separated
    # `scope` claim that jwt_authn put in dynamic metadata holds the scope as a whole word (RE2,
    # matched against the whole value).
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "ALLOW",
                "policies": {
                    "orders-read": {
                        "permissions": [{"any": True}],
                        "principals": [
                            {
                                "sourced_metadata": {
                                    "metadata_matcher": {
                                        "filter": "envoy.filters.http.jwt_authn",
                                        "path": [{"key": "jwt_payload"}, {"key": "scope"}],
                                        "value": {"string_match": {"safe_regex": {"regex": "(.* )?orders:read( .*)?"}}},
                                    }
                                }
                            }
                        ],
                    }
                },
            },
        },
    }


def native_ratelimit():
    percent = {"numerator": 100, "denominator": "HUNDRED"}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "bench_rl",
            "token_bucket": {"max_tokens": 1000000000, "tokens_per_fill": 1000000000, "fill_interval": "1s"},
            "filter_enabled": {"runtime_key": "bench_rl_enabled", "default_value": percent},
            "filter_enforced": {"runtime_key": "bench_rl_enforced", "default_value": percent},
        },
    }


# The host calls the hostcalls guest measures (host-tests/guests/hostcalls), with what each does.
HOSTCALL_KINDS = [
    ("get_header", "read one request header (`:path`)"),
    ("get_header_pairs", "read the whole request header map"),
    ("replace_header", "set a request header"),
    ("get_property", "read a property (`source.address`)"),
    ("set_property", "write a filter-state property (a 20-byte JSON value, as a decision record), the same key again"),
    ("set_property_new", "write a filter-state property under a key not yet set on the request (a new object, as a "
                         "filter's first write of its identity or decision record)"),
    ("get_property_missing", "read a filter-state property no one set (an earlier filter's identity or decision "
                             "that is not there)"),
    ("audit_reads", "audit-log's eighteen property reads for one record, as one block at the end of the stream"),
    ("memory_copy", "no host call: ten 64-byte `memory.copy` inside the module"),
    ("get_shared", "read a 24-byte shared-data entry"),
    ("set_shared", "write a 24-byte shared-data entry"),
    ("metric", "increment a counter"),
    ("clock", "read the clock"),
    ("compute", "no host call: the guest's `compute` work (24 short strings formatted, sorted, joined, hashed), "
                "Envoy's V8 running a module's own code; bench/engine_compute.sh times the same in other engines"),
]
# Kinds the floors do not use (no host call), so a report without them (one of an older run) still
# prices the rest.
HOSTCALL_OPTIONAL = {"compute"}
HOSTCALLS_PER_REQUEST = int(ENV.get("BENCH_HOSTCALLS_PER_REQUEST", "20"))
# The kinds also measured as the one host call of a request (`KIND 1`): what a call costs made once,
# as paths make most of theirs. Not the block of audit reads (already one block) nor a write of a
# key again (made once, it is a new key).
ALONE_KINDS = ["get_header", "get_header_pairs", "replace_header", "get_property", "set_property_new",
               "get_property_missing", "memory_copy", "get_shared", "set_shared", "metric", "clock"]
# The host calls of a row's path, as the unit tests pin them, as the wasm adapter makes them: the
# header reads of one callback are one read of the header map; a counter's increment is no call
# (counted in the VM, handed to Envoy on the tick); a removed header is priced as a set
# one; a filter-state key written for the first time on a request (the identity, the decision
# record, which comes last) is a new object; a read of an earlier filter's identity that no filter
# wrote finds nothing.
_JWT_WARM_CALLS = ["get_header_pairs", "clock", "get_property_missing", "set_property_new",
                   "replace_header", "set_property_new"]
_RATELIMIT_CALLS = ["get_header_pairs", "clock", "get_property", "get_shared", "set_shared",
                    "set_property_new"]
# scope-authz as its own module (its `an_allowed_request_makes_only_the_calls_it_needs`): the header
# map, the identity jwt-auth wrote and the decision record.
_SCOPE_CALLS = ["get_header_pairs", "get_property", "set_property_new"]
FLOOR_CALLS = {
    "warm": _JWT_WARM_CALLS,
    "ratelimit": _RATELIMIT_CALLS,
    # Three modules: each its own header-map read and decision record.
    "chain": _JWT_WARM_CALLS + _SCOPE_CALLS + _RATELIMIT_CALLS,
    # The one module (shieldwall's `the_chain_makes_only_the_calls_it_needs`): one header-map read
    # and one clock read for the three stages, the identity and the request line from memory.
    "chain-one": ["get_header_pairs", "clock", "get_property_missing", "set_property_new",
                  "replace_header", "set_property_new", "set_property_new", "get_property",
                  "get_shared", "set_shared", "set_property_new"],
    # The full chain in one module (shieldwall's `the_full_chain_makes_only_the_calls_it_needs`), as
    # Envoy runs it: a read that finds nothing (a connection without TLS, an identity or decision no
    # stage wrote) is priced as one, every other property read as `source.address`'s.
    "full-one": ["clock", "get_header_pairs", "get_property", "set_property_new",  # audit-log
                 "get_property", "set_property_new",                                 # mtls-identity
                 "get_property_missing", "set_property_new", "replace_header",       # jwt-auth
                 "set_property_new",
                 "set_property_new",                                                 # scope-authz
                 "get_property", "get_shared", "set_shared", "set_property_new",     # rate-limit
                 "set_property_new",                                                 # payload-guard
                 "replace_header", "replace_header", "set_property_new",             # identity-exchange
                 # audit-log's record at the end of the stream
                 "get_property", "get_property", "get_property", "get_property", "get_property",
                 "get_property_missing", "get_property", "get_property", "get_property",
                 "get_property_missing", "get_property_missing", "set_property_new"],
}
# How many modules a row's path runs through (each pays the empty module's fixed cost).
FLOOR_MODULES = {"chain": 3}
# audit-log's path with the benchmark's configuration (pinned by audit-log's
# `a_record_makes_only_the_calls_it_needs`): a record is built from eighteen of Envoy's properties,
# priced as the block the hostcalls guest reads at the end of the stream (`audit_reads`: eight are
# there on a plaintext request, ten find nothing: connection.tls_version without TLS, the identity
# and eight decisions of filters the row does not run).
AUDIT_FLOOR_CALLS = ["clock", "get_header_pairs", "audit_reads", "set_property_new"]
# identity-exchange as its own module behind jwt-auth, the internal token from its cache (pinned by
# identity-exchange's `the_cached_path_makes_only_the_calls_it_needs`): the request line (`:path`
# and `:method`, one read of the header map), the identity jwt-auth wrote, the clock for the cache
# entry's age, the internal token and the SPIFFE ID set, the decision record.
EXCHANGE_FLOOR_CALLS = ["get_header_pairs", "get_property", "clock", "replace_header", "replace_header",
                        "set_property_new"]
# Each path's calls as the modules on it make them (one list per module). The hostcalls guest makes
# a list once per request, in order (`seq`), one module per list: what the path's calls cost
# together, measured rather than priced.
FLOOR_PARTS = {"chain": [_JWT_WARM_CALLS, _SCOPE_CALLS, _RATELIMIT_CALLS]}
SEQ_PATHS = {**{k: FLOOR_PARTS.get(k, [calls]) for k, calls in FLOOR_CALLS.items()}, "audit": [AUDIT_FLOOR_CALLS],
             "exchange": [EXCHANGE_FLOOR_CALLS]}
assert all(sum(parts, []) == FLOOR_CALLS[k] for k, parts in SEQ_PATHS.items() if k in FLOOR_CALLS)


# The rungs of the ladder guest (host-tests/guests/ladder), each doing what the one before does and
# one thing more; between the empty module below and jwt-auth on a public route above.
LADDER_RUNGS = [
    ("adapter", "shieldwall-core's adapter, a filter that does nothing (a stream object per context)"),
    ("line", "+ the request line (one read of the request header map, the path normalised)"),
    ("route", "+ the line matched against one rule (`prefix: /`)"),
    ("record", "+ the decision record (one property write)"),
    ("metric", "+ one counter incremented (jwt-auth's `allowed.public`; counted in the VM, flushed on the tick)"),
]


def wasm(module, plugin, config):
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": plugin,
                "root_id": "",
                "vm_config": {
                    "vm_id": plugin,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": os.path.join(WASM_DIR, MODULES.get(module, NOOP_MODULE))}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": json.dumps(config),
                },
            },
        },
    }


def ours_jwt(plugin, budget=None):
    config = {
        "providers": {"bench": {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": json.loads(JWKS_TEXT)}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "bench"}}],
    }
    if budget:
        config["failed_verification_budget"] = budget
    return wasm("jwt-auth", plugin, config)


def ours_jwt_public(plugin):
    return wasm(
        "jwt-auth",
        plugin,
        {
            "providers": {
                "bench": {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": json.loads(JWKS_TEXT)}
            },
            "rules": [{"match": {"prefix": "/"}}],
        },
    )


def ours_scope(plugin):
    return wasm("scope-authz", plugin, {"rules": [{"match": {"prefix": "/"}, "require": {"scopes": ["orders:read"]}}]})


def ours_ratelimit(plugin, prefix="/", lease_tokens=1):
    # Draft RateLimit headers off, as native local_ratelimit sends none by default.
    rule = {
        "name": "per-ip",
        "match": {"prefix": prefix},
        "key": {"source": "client_ip"},
        "limit": {"requests": 1000000000, "per": "second"},
    }
    if lease_tokens > 1:
        rule["lease_tokens"] = lease_tokens
    return wasm("rate-limit", plugin, {"rules": [rule], "headers": "none"})


def chain_stages():
    """jwt-auth + scope-authz + rate-limit as the one module's chain entries (the same configurations
    as the three separate modules of the chain row)."""
    return [{"filter": f, "config": json.loads(m["typed_config"]["config"]["configuration"]["value"])}
            for f, m in (("jwt-auth", ours_jwt("x")), ("scope-authz", ours_scope("x")), ("rate-limit", ours_ratelimit("x")))]


# The IdP that token-introspection asks: a listener of the same Envoy answering every request with
# an active token's introspection (a direct response), reached through the cluster `fake-idp`.
FAKE_IDP_ANSWER = json.dumps({"active": True, "client_id": "bench", "sub": "bench", "scope": "orders:read",
                              "aud": AUDIENCE, "exp": 4102444800})


def ours_introspection(plugin, max_ttl_s):
    return wasm(
        "token-introspection",
        plugin,
        {
            "providers": {"bench": {
                "introspection": {"cluster": "fake-idp", "uri": "http://fake-idp/introspect", "timeout_ms": 2000,
                                  "client_id": "gateway", "client_secret": "gateway-secret"},
                "cache": {"max_entries": 10000, "max_ttl_s": max_ttl_s, "negative_ttl_s": 5},
            }},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "bench"}}],
        },
    )


def exchange_key():
    """A P-256 signing key for identity-exchange, made for this run (openssl, PKCS#8 PEM)."""
    try:
        return subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                              check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


EXCHANGE_KEY = exchange_key()


def exchange_ed25519_key():
    """An Ed25519 signing key for identity-exchange's EdDSA mint row (openssl, PKCS#8 PEM)."""
    try:
        return subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519"],
                              check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


EXCHANGE_ED25519_KEY = exchange_ed25519_key()


def exchange_config(alg="ES256", cache_entries=None):
    # The key inline (`private_key`): a benchmark's throwaway key; deployments read it from the
    # VM's environment. Minted tokens are reused until half their lifetime (the default);
    # `cache_entries` 0 turns the cache off, so every request mints.
    key = EXCHANGE_KEY if alg == "ES256" else EXCHANGE_ED25519_KEY
    config = {
        "spiffe_id": "spiffe://bench.example/user/{sub}",
        "token": {"issuer": "https://gateway.bench.example", "audience": "mesh", "ttl_s": 300, "alg": alg,
                  "keys": [{"kid": "bench", "private_key": key}]},
        "rules": [{"match": {"prefix": "/"}}],
    }
    if cache_entries is not None:
        config["cache"] = {"max_entries": cache_entries}
    return config


def ours_exchange(plugin, alg="ES256", cache_entries=None):
    return wasm("identity-exchange", plugin, exchange_config(alg, cache_entries))


def jwt_config():
    return json.loads(ours_jwt("x")["typed_config"]["config"]["configuration"]["value"])


def ours_one_module(plugin, stages):
    """The one module `shieldwall.wasm` with the chain `stages` ([(filter, config)])."""
    return wasm("shieldwall", plugin, {"chain": [{"filter": f, "config": c} for f, c in stages]})


def native_ratelimit_per_client():
    """local_ratelimit with a bucket per client address: a descriptor whose `remote_address` entry
    has no value makes a bucket per address it sees (at most `max_dynamic_descriptors`); the
    filter's own `rate_limits` action produces the descriptor."""
    percent = {"numerator": 100, "denominator": "HUNDRED"}
    bucket = {"max_tokens": 1000000000, "tokens_per_fill": 1000000000, "fill_interval": "1s"}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "bench_rl_churn",
            "token_bucket": bucket,
            "filter_enabled": {"runtime_key": "bench_rl_churn_enabled", "default_value": percent},
            "filter_enforced": {"runtime_key": "bench_rl_churn_enforced", "default_value": percent},
            "descriptors": [{"entries": [{"key": "remote_address"}], "token_bucket": bucket}],
            "rate_limits": [{"actions": [{"remote_address": {}}]}],
            "max_dynamic_descriptors": CHURN_CLIENTS,
        },
    }


def full_chain_stages():
    """The one module's chain for the full-chain row: audit-log, mtls-identity (a certificate
    optional: the benchmark's client has none), jwt-auth, scope-authz, rate-limit, payload-guard
    (the GET of the benchmark's OpenAPI document) and identity-exchange (its token cached)."""
    audit = {"sinks": {"access_log": True}, "include": {"request_headers": ["user-agent"]}}
    mtls = {"rules": [{"match": {"prefix": "/"}, "requires": "optional"}]}
    stages = [("audit-log", audit), ("mtls-identity", mtls)] + [(e["filter"], e["config"]) for e in chain_stages()]
    stages += [("payload-guard", {"openapi": BENCH_OPENAPI}), ("identity-exchange", exchange_config())]
    return [{"filter": f, "config": c} for f, c in stages]


# payload-guard: an orders API with GET and POST /orders; the POST body (1 KB of valid JSON, free
# text in `comment` for the injection checks) is written to a file for wrk.
BENCH_OPENAPI = {
    "openapi": "3.1.0", "info": {"title": "bench", "version": "1"},
    "paths": {"/orders": {
        "get": {"responses": {"200": {"description": "ok"}}},
        "post": {"requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["customer", "items"],
            "properties": {
                "customer": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "maxLength": 100}, "email": {"type": "string", "format": "email"},
                    "street": {"type": "string", "maxLength": 200}, "city": {"type": "string", "maxLength": 100}}},
                "items": {"type": "array", "maxItems": 50, "items": {"type": "object", "required": ["sku", "qty"],
                          "properties": {"sku": {"type": "string", "pattern": "^[A-Z0-9-]{3,20}$"},
                                         "qty": {"type": "integer", "minimum": 1, "maximum": 100}}}},
                "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
                "comment": {"type": "string", "maxLength": 500}}}}}},
                 "responses": {"200": {"description": "ok"}}}}},
}
BENCH_BODY = json.dumps({
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "street": "12 St James's Square",
                 "city": "London"},
    "items": [{"sku": f"BOOK-{i:02d}", "qty": 1 + i % 3} for i in range(24)],
    "currency": "EUR",
    "comment": "Please leave the parcel with the neighbour at number 14 if nobody answers the door; "
               "the side gate is open until six in the evening. Thank you!",
})


# Written where the run's tokens are (a directory scripts/bench.sh makes and removes).
BODY_FILE = os.path.join(TOKENS, "body.json") if TOKENS else ""
if BODY_FILE:
    with open(BODY_FILE, "w") as _f:
        _f.write(BENCH_BODY)


def ours_payload(plugin):
    return wasm("payload-guard", plugin, {"openapi": BENCH_OPENAPI})


# policy-authz: a five-rule policy (scope, method, path, tenant, a limit from data) over the
# identity jwt-auth wrote.
BENCH_POLICY = """package gw

default allow := false

limits := {"a": 1000}

allow if {
\t"orders:read" in input.identity.scopes
\tinput.request.method in {"GET", "POST"}
\tstartswith(input.request.path, "/orders")
\tinput.identity.tenant == "a"
\tlimits[input.identity.tenant] > 0
}
"""


def ours_policy(plugin):
    return wasm("policy-authz", plugin, {"policies": {"gw.rego": BENCH_POLICY},
                                        "rules": [{"match": {"prefix": "/"}, "query": "data.gw.allow"}]})


# One listener per configuration; the runs below name a listener and a token source.
LISTENERS = {
    "ceiling": [],
    "native-jwt-cached": [native_jwt(cache=True)],
    "ours-jwt-warm": [ours_jwt("jwt-warm")],
    "native-jwt-nocache": [native_jwt(cache=False)],
    "ours-jwt-cold": [ours_jwt("jwt-cold")],
    "native-ratelimit": [native_ratelimit()],
    "ours-ratelimit": [ours_ratelimit("rl")],
    "native-chain": [native_jwt(cache=True, payload_in_metadata=True), native_rbac(), native_ratelimit()],
    # The full chain: native's three filters plus a file access log (HCM_EXTRA) against the one
    # module with every shield of the bank reference (full_chain_stages), its audit record printed.
    "native-full": [native_jwt(cache=True, payload_in_metadata=True), native_rbac(), native_ratelimit()],
    "ours-full-one": [wasm("shieldwall", "full-one", {"chain": full_chain_stages()})],
    "ours-chain": [ours_jwt("chain-jwt"), ours_scope("chain-scope"), ours_ratelimit("chain-rl")],
    "ours-chain-one": [wasm("shieldwall", "chain-one", {"chain": chain_stages()})],
    # token-introspection: every request from the shared cache (max_ttl_s 30: one introspection per
    # 30 s), and every request introspected (max_ttl_s 0), against the fake IdP below.
    "ours-introspection-cached": [ours_introspection("introspection-cached", 30)],
    "ours-introspection-miss": [ours_introspection("introspection-miss", 0)],
    "fake-idp": [],
    "ours-payload": [ours_payload("payload")],
    "ours-jwt-policy": [ours_jwt("policy-jwt"), ours_policy("policy")],
    # jwt-auth + identity-exchange: the internal token minted once, then taken from the cache.
    "ours-exchange-cached": [ours_jwt("exchange-jwt"), ours_exchange("exchange")],
    # The same with the cache off: every request mints (and signs) a token.
    "ours-exchange-mint-ES256": [ours_jwt("mint-es-jwt"), ours_exchange("mint-es", "ES256", 0)],
    "ours-exchange-mint-EdDSA": [ours_jwt("mint-ed-jwt"), ours_exchange("mint-ed", "EdDSA", 0)],
    # The one module: jwt-auth alone, and jwt-auth + identity-exchange (cached) as its stages.
    "ours-one-jwt": [ours_one_module("one-jwt", [("jwt-auth", jwt_config())])],
    # The same configurations in the one module built with only the filters they list.
    "ours-one-jwt-slim": [wasm("shieldwall-jwt-only", "one-jwt-slim",
                               {"chain": [{"filter": "jwt-auth", "config": jwt_config()}]})],
    "ours-chain-one-slim": [wasm("shieldwall-jwt-scope-ratelimit", "chain-one-slim", {"chain": chain_stages()})],
    # The same chain in the one module built with every filter but policy-authz (Envoy's memory only).
    "ours-chain-one-norego": [wasm("shieldwall-without-policy-authz", "chain-one-norego", {"chain": chain_stages()})],
    "ours-one-exchange": [ours_one_module("one-exchange", [("jwt-auth", jwt_config()),
                                                            ("identity-exchange", exchange_config())])],
    # Key churn: every request from another client address (x-forwarded-for, trusted by the
    # connection manager: see HCM_EXTRA), one bucket per address on both sides.
    "native-ratelimit-churn": [native_ratelimit_per_client()],
    "ours-ratelimit-churn": [ours_ratelimit("rl-churn")],
    # audit-log with the access-log sink: its record in filter state, printed by a file access
    # logger (to /dev/null: the write is Envoy's own cost either way), masking on, no chain key.
    "ours-audit": [wasm("audit-log", "audit", {"sinks": {"access_log": True},
                                                "include": {"request_headers": ["user-agent"]}})],
    # audit-log with the HTTP sink only: records batched to `fake-siem` (a direct response in the
    # same Envoy, so the SIEM's side is counted in Envoy's CPU too). The buffer holds more than a
    # run brings, so a sink that falls behind shows as a backlog, not as drops.
    "ours-audit-http": [wasm("audit-log", "audit-http", {
        "sinks": {"access_log": False, "http": {"cluster": "fake-siem", "uri": "http://fake-siem/ingest",
                                                "batch_max_records": 500, "flush_interval_ms": 100,
                                                "buffer_max_records": 1000000, "timeout_ms": 2000}},
        "include": {"request_headers": ["user-agent"]}})],
    "fake-siem": [],
    # Diagnostics: what a module costs when it has almost nothing to do.
    "ours-jwt-public": [ours_jwt_public("jwt-public")],
    "ours-ratelimit-nomatch": [ours_ratelimit("rl-nomatch", prefix="/never/")],
    "ours-ratelimit-lease": [ours_ratelimit("rl-lease", lease_tokens=64)],
    "wasm-noop": [wasm("noop", "noop", {})],
    "wasm-noop-exports": [wasm("noop-exports", "noop-exports", {})],
    # The ladder from the empty module to jwt-auth on a public route: shieldwall-core's adapter
    # doing one more piece of a filter's per-request work per rung (host-tests/guests/ladder).
    **{f"wasm-ladder-{rung}": [wasm("ladder", f"ladder-{rung}", rung)] for rung, _ in LADDER_RUNGS},
    # A path's host calls and nothing else: the hostcalls guest makes them once each, in order, one
    # module per module of the path.
    **{f"wasm-seq-{k}": [wasm("hostcalls", f"seq-{k}-{i}", f"seq/{i} " + " ".join(part))
                         for i, part in enumerate(parts)] for k, parts in SEQ_PATHS.items()},
    # The three-module chain with its modules swapped in one at a time, in the chain's order: each
    # module not yet swapped in is a hostcalls guest making just that module's calls.
    **{f"wasm-swap-{n}": [m if i < n else wasm("hostcalls", f"swap{n}-seq-{i}", f"seq/{i} " + " ".join(part))
                          for i, (m, part) in enumerate(zip(
                              [ours_jwt(f"swap{n}-jwt"), ours_scope(f"swap{n}-scope"), ours_ratelimit(f"swap{n}-rl")],
                              FLOOR_PARTS["chain"]))]
       for n in range(len(FLOOR_PARTS["chain"]) + 1)},
    # What one host call of each kind costs: the hostcalls guest makes HOSTCALLS_PER_REQUEST of one
    # kind on every request.
    **{f"wasm-hc-{kind}": [wasm("hostcalls", f"hc-{kind}", f"{kind} {HOSTCALLS_PER_REQUEST}")]
       for kind, _ in HOSTCALL_KINDS},
    # The same kinds as the one host call of a request.
    **{f"wasm-hc1-{kind}": [wasm("hostcalls", f"hc1-{kind}", f"{kind} 1")] for kind in ALONE_KINDS},
    # Under attack (a separate phase): jwt-auth with a budget of failed verifications per client.
    "ours-jwt-budget": [ours_jwt("jwt-budget", budget={"failures": 10, "per": "minute"})],
}

def devnull_log(log_format):
    """A file access logger writing to /dev/null: the formatting is Envoy's cost either way."""
    return {"name": "envoy.access_loggers.file",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                             "path": "/dev/null", "log_format": log_format}}


# audit-log's record as the access log prints it.
AUDIT_RECORD_FORMAT = {"text_format_source": {"inline_string": "%FILTER_STATE(wasm.shieldwall.audit:PLAIN)%\n"}}

# Connection-manager settings beyond the common ones. The budget listener stands behind one
# trusted proxy, so each wrk can present its own client address in x-forwarded-for.
HCM_EXTRA = {"ours-jwt-budget": {"xff_num_trusted_hops": 1},
             "native-ratelimit-churn": {"xff_num_trusted_hops": 1},
             "ours-ratelimit-churn": {"xff_num_trusted_hops": 1},
             "native-full": {"access_log": [devnull_log({"json_format": {
                 "@timestamp": "%START_TIME%", "client.ip": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                 "http.request.method": "%REQ(:METHOD)%", "url.path": "%REQ(:PATH)%",
                 "http.response.status_code": "%RESPONSE_CODE%", "event.duration": "%DURATION%",
                 "user_agent": "%REQ(USER-AGENT)%", "event.id": "%REQ(X-REQUEST-ID)%",
                 "user.id": "%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:jwt_payload:sub)%"}})]},
             "ours-full-one": {"access_log": [devnull_log(AUDIT_RECORD_FORMAT)]},
             "ours-audit": {"access_log": [devnull_log(AUDIT_RECORD_FORMAT)]}}

# (row, label, [(side, listener, token source)]). Token source: "warm" (the same token on every
# request) or an algorithm (a different token on every request, from cold-<alg>.txt).
ROWS = [("ceiling", "no filter (direct response)", [("only", "ceiling", "warm")])]
ROWS.append(("warm", "JWT warm (same token)", [("native", "native-jwt-cached", "warm"), ("ours", "ours-jwt-warm", "warm")]))
for _alg in ALGS:
    ROWS.append(
        (f"cold-{_alg}", f"JWT cold {_alg} (new token each request)",
         [("native", "native-jwt-nocache", _alg), ("ours", "ours-jwt-cold", _alg)])
    )
ROWS.append(("ratelimit", "rate limit, under the limit", [("native", "native-ratelimit", "warm"), ("ours", "ours-ratelimit", "warm")]))
ROWS.append(("chain", "chain: JWT + authz + rate limit, three modules", [("native", "native-chain", "warm"), ("ours", "ours-chain", "warm")]))
ROWS.append(("chain-one", "chain: JWT + authz + rate limit, one module", [("native", "native-chain", "warm"), ("ours", "ours-chain-one", "warm")]))
ROWS.append(("full-one", "full chain, one module: audit-log, mtls-identity, jwt-auth, scope-authz, rate-limit, payload-guard (GET), "
             "identity-exchange (cached token); native: jwt_authn + rbac + local_ratelimit + a file access log",
             [("native", "native-full", "warm"), ("ours", "ours-full-one", "warm")]))

DIAGNOSTICS = [
    ("diag-noop", "an empty wasm module (no host call; the floor of any wasm filter)", [("only", "wasm-noop", "warm")]),
    ("diag-noop-exports", "the empty module also exporting the response-header and log callbacks (Envoy calls both on "
     "every request; they return at once)", [("only", "wasm-noop-exports", "warm")]),
    ("diag-jwt-public", "jwt-auth, a public route (no token checked)", [("only", "ours-jwt-public", "warm")]),
    ("diag-rl-nomatch", "rate-limit, no rule matches the path", [("only", "ours-ratelimit-nomatch", "warm")]),
    ("diag-rl-lease", "rate-limit as in the rate-limit row, with leases of 64 tokens (`lease_tokens`: no shared-data "
     "call on most requests)", [("only", "ours-ratelimit-lease", "warm")]),
    ("diag-introspection-cached", "token-introspection, the answer from the shared cache",
     [("only", "ours-introspection-cached", "warm")]),
    ("diag-introspection-miss", "token-introspection, every request introspected (max_ttl_s 0; the fake IdP's "
     "direct response runs in the same Envoy and is counted too)", [("only", "ours-introspection-miss", "warm")]),
    ("diag-audit", "audit-log, one masked record per request into the access log (no chain key)",
     [("only", "ours-audit", "warm")]),
    ("diag-audit-http", "audit-log, the HTTP sink: records batched to a loopback SIEM (a direct response in the "
     "same Envoy, counted too)", [("only", "ours-audit-http", "warm")]),
    ("diag-exchange-cached", "jwt-auth (warm) + identity-exchange, the internal token from its cache",
     [("only", "ours-exchange-cached", "warm")]),
    ("diag-exchange-mint-ES256", "jwt-auth (warm) + identity-exchange, cache off: an ES256 token minted per request",
     [("only", "ours-exchange-mint-ES256", "warm")]),
    ("diag-exchange-mint-EdDSA", "jwt-auth (warm) + identity-exchange, cache off: an EdDSA token minted per request",
     [("only", "ours-exchange-mint-EdDSA", "warm")]),
    ("diag-one-jwt", "the one module with jwt-auth (warm) as its only stage", [("only", "ours-one-jwt", "warm")]),
    ("diag-one-jwt-slim", "the same, the one module built with only jwt-auth",
     [("only", "ours-one-jwt-slim", "warm")]),
    ("diag-chain-one", "the chain row's one module (jwt-auth + scope-authz + rate-limit; every filter built in)",
     [("only", "ours-chain-one", "warm")]),
    ("diag-chain-one-slim", "the same chain, the one module built with only those three filters",
     [("only", "ours-chain-one-slim", "warm")]),
    ("diag-one-exchange", "the one module: jwt-auth (warm) + identity-exchange (cached token) as its stages",
     [("only", "ours-one-exchange", "warm")]),
    ("diag-policy", "jwt-auth (warm) + policy-authz, a five-rule Rego policy", [("only", "ours-jwt-policy", "warm")]),
    ("diag-ceiling-body", "no filter, POST with the 1 KB JSON body", [("only", "ceiling", "body")]),
    ("diag-payload", "payload-guard, POST with the 1 KB JSON body (schema and injection checks)",
     [("only", "ours-payload", "body")]),
]
ROWS.extend(DIAGNOSTICS)
# Not in the diagnostics table: the ladder, between the empty module and jwt-auth on a public
# route; each path's host calls, in the floor table; each host call, per call in its own table.
LADDER_ROWS = [(f"diag-ladder-{rung}", what, [("only", f"wasm-ladder-{rung}", "warm")]) for rung, what in LADDER_RUNGS]
ROWS.extend(LADDER_ROWS)
SEQ_ROWS = [(f"diag-seq-{k}", f"the host calls of the {k} path, made once each by the hostcalls guest",
             [("only", f"wasm-seq-{k}", "warm")]) for k in SEQ_PATHS]
ROWS.extend(SEQ_ROWS)
# The chain of three modules, one module at a time: its rows in SWAP_ROWS' order, each with one
# more of the chain's modules in place of a module making just its host calls (all four rows
# sampled by perf, unlike the floor rows, so each step also splits into the module's code and the
# rest).
SWAP_MODULES = ["jwt-auth", "scope-authz", "rate-limit"]
SWAP_ROWS = [(f"diag-swap-{n}", "the chain of three modules, " + (
                 "each module replaced by one making just its host calls" if n == 0 else
                 ", ".join(SWAP_MODULES[:n]) + " in place of " + ("its" if n == 1 else "their") + " host calls"),
              [("only", f"wasm-swap-{n}", "warm")]) for n in range(len(SWAP_MODULES) + 1)]
ROWS.extend(SWAP_ROWS)
HOSTCALL_ROWS = [(f"diag-hc-{kind}", what, [("only", f"wasm-hc-{kind}", "warm")]) for kind, what in HOSTCALL_KINDS]
ROWS.extend(HOSTCALL_ROWS)
ALONE_ROWS = [(f"diag-hc1-{kind}", f"one {kind} call, the only host call of the request",
               [("only", f"wasm-hc1-{kind}", "warm")]) for kind in ALONE_KINDS]
ROWS.extend(ALONE_ROWS)

TARGETS = {"warm": 0.90, "cold-RS256": 0.50, "cold-ES256": 0.75, "cold-EdDSA": 0.70, "ratelimit": 0.90, "chain": 0.60,
           "chain-one": 0.85, "full-one": 0.70}


def free_ports(n):
    """`n` distinct free ports: every socket stays bound until all are chosen (one at a time, the
    system may hand out a port it just gave, and two listeners on one port stop Envoy)."""
    held = []
    try:
        for _ in range(n):
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def fake_idp_route():
    return [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": FAKE_IDP_ANSWER}},
             "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}]}]


def bootstrap(listeners, admin_port):
    out = []
    clusters = []
    # Listeners that stand for a remote service, reached by the modules through a cluster.
    for fake in ("fake-idp", "fake-siem"):
        if fake in listeners:
            clusters.append({
                "name": fake, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": fake, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                    "socket_address": {"address": "127.0.0.1", "port_value": listeners[fake][0]}}}}]}]},
            })
    for name, (port, filters) in listeners.items():
        hcm = {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "codec_type": "AUTO",
            "use_remote_address": True,
            **HCM_EXTRA.get(name, {}),
            "http_filters": filters
            + [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            "route_config": {
                "name": "local",
                "virtual_hosts": [
                    {
                        "name": "all",
                        "domains": ["*"],
                        "routes": fake_idp_route() if name == "fake-idp" else
                        [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}],
                    }
                ],
            },
        }
        out.append(
            {
                "name": name,
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
            }
        )
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": out, "clusters": clusters},
    }


# ------------------------------------------------------------------ processes


class Envoy:
    def __init__(self, names, concurrency, cpu, workdir, tag, extra=None):
        *ports, self.admin = free_ports(len(names) + 1)
        self.ports = dict(zip(names, ports))
        cfg = bootstrap({n: (self.ports[n], LISTENERS[n]) for n in names}, self.admin)
        cfg.update(extra or {})
        path = os.path.join(workdir, f"envoy-{tag}.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        self.log_path = os.path.join(workdir, f"envoy-{tag}.log")
        cmd = [ENVOY, "-c", path, "--concurrency", str(concurrency), "--disable-hot-restart", "-l", "warning", "--log-path", self.log_path]
        if cpu is not None:
            cmd = ["taskset", "-c", cpu] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"envoy exited ({self.proc.returncode}); its log:\n{read(self.log_path)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                    if r.read().strip() == b"LIVE":
                        break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit(f"envoy did not become ready; its log:\n{read(self.log_path)}")

    def check(self, name, token):
        req = urllib.request.Request(f"http://127.0.0.1:{self.ports[name]}/orders", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        if status != 200:
            raise SystemExit(f"listener {name}: a valid request got {status}; Envoy's log:\n{read(self.log_path)[-4000:]}")

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def allocator(self):
        """Envoy's allocator (tcmalloc) from admin `/memory`, in KiB: what is in use, and what was
        freed and is kept (the page heap's free pages and the threads' caches); {} where the
        build reports none."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/memory", timeout=5) as r:
                m = json.loads(r.read())
            return {"in_use_kib": int(m["allocated"]) // 1024,
                    "kept_kib": (int(m["pageheap_free"]) + int(m["total_thread_cache"])) // 1024}
        except (OSError, KeyError, ValueError):
            return {}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wrk(port, source, seconds, offsets, cpu=LOAD_CPU, threads=1):
    env = dict(os.environ)
    env.pop("BENCH_TOKEN", None)
    env.pop("BENCH_TOKENS_FILE", None)
    env.pop("BENCH_BODY_FILE", None)
    env.pop("BENCH_CHURN", None)
    if source == "churn":
        env["BENCH_CHURN"] = str(CHURN_CLIENTS)
    elif source == "warm":
        env["BENCH_TOKEN"] = WARM_TOKEN
    elif source == "body":
        env["BENCH_TOKEN"] = WARM_TOKEN
        env["BENCH_BODY_FILE"] = BODY_FILE
    else:
        env["BENCH_TOKENS_FILE"] = os.path.join(TOKENS, f"cold-{source}.txt")
        env["BENCH_TOKEN_OFFSET"] = str(offsets.get(source, 1))
    cmd = ["wrk", f"-t{threads}", f"-c{max(CONNECTIONS, threads)}", f"-d{seconds}s", "-s", LUA,
           f"http://127.0.0.1:{port}/orders"]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = proc.communicate()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"^BENCH (\{.*\})$", out, re.M)
    if proc.returncode != 0 or not m:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out}\n{err}")
    res = json.loads(m.group(1))
    if source not in ("warm", "body", "churn"):
        offsets[source] = res["next_token"]
    return res, usage


def perf_start(seconds):
    """Samples Envoy's core for the middle of a run (None without perf or when it cannot record)."""
    if not PERF or seconds < 3:
        return None
    out = tempfile.NamedTemporaryFile(prefix="shieldwall-perf-", suffix=".data", delete=False).name
    # From 1 s into the run to 1 s before its end.
    cmd = [PERF, "record", "-q", "-C", ENVOY_CPU, "-F", "999", "-D", "1000", "-o", out, "--", "sleep",
           str(seconds - 1)]
    # perf's own process beside the load generator, off Envoy's core.
    cmd = ["taskset", "-c", LOAD_CPU] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, out


_perf_kept = {}


def perf_keep(out, name):
    """Moves a recording to BENCH_PERF_KEEP (see there); True when it was kept."""
    if not PERF_KEEP:
        return False
    os.makedirs(PERF_KEEP, exist_ok=True)
    _perf_kept[name] = _perf_kept.get(name, 0) + 1
    shutil.move(out, os.path.join(PERF_KEEP, f"{name}-{_perf_kept[name]}.data"))
    return True


def perf_module_share(started, name):
    """The share of Envoy's core's time spent in code V8 generated (the modules' own code), from a
    recording `perf_start` began; None when there is none."""
    if started is None:
        return None
    proc, out = started
    try:
        if proc.wait(timeout=60) != 0:
            return None
        report = subprocess.run([PERF, "report", "-i", out, "--stdio", "--sort", "dso", "--show-nr-samples"],
                                capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        try:
            if not perf_keep(out, name):
                os.unlink(out)
        except OSError:
            pass
    total = jit = 0
    for line in report.splitlines():
        m = re.match(r"^\s*[0-9.]+%\s+(\d+)\s+(.*)$", line)
        if m:
            total += int(m.group(1))
            if m.group(2).strip().startswith("[JIT]"):
                jit += int(m.group(1))
    return jit / total if total else None


def measure(envoy, name, source, seconds, offsets, cpu=LOAD_CPU, threads=1, profile=False):
    """One wrk run; also what else the machine did meanwhile (cores busy outside Envoy and wrk).
    With `profile`, also the µs per request Envoy's core spent in the modules' compiled code."""
    load0 = loadavg()
    busy0, envoy0 = busy_ticks(), envoy.cpu_ticks()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    sampling = perf_start(seconds) if profile else None
    res, after = wrk(envoy.ports[name], source, seconds, offsets, cpu=cpu, threads=threads)
    elapsed = time.time() - t0
    share = perf_module_share(sampling, name)
    busy1, envoy1 = busy_ticks(), envoy.cpu_ticks()
    wrk_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    envoy_s = (envoy1 - envoy0) / CLK_TCK
    other = max(0.0, (busy1 - busy0) / CLK_TCK - envoy_s - wrk_s) / elapsed
    errors = res["non2xx"] + res["connect"] + res["read"] + res["write"] + res["timeout"]
    if errors:
        raise SystemExit(f"{name} ({source}): {errors} failed or non-2xx responses of {res['requests']}: {res}")
    rps = res["requests"] / (res["duration_us"] / 1e6)
    return {
        "rps": rps,
        "p50": res["p50_us"],
        "p99": res["p99_us"],
        "envoy_cpu": envoy_s / elapsed,
        "cpu_us": envoy_s * 1e6 / max(1, res["requests"]),
        "wrk_cpu": wrk_s / elapsed,
        "other_cores": other,
        "load": (load0 + loadavg()) / 2,
        "requests": res["requests"],
        # The core's clock is sampled busy or idle: the share is of its time, and a second of it
        # serves `rps` requests.
        "module_us": share * 1e6 / rps if share is not None else None,
    }


# ------------------------------------------------------------------ phases


def selected_rows():
    """The rows this run measures: all, or those BENCH_ONLY names (and the ceiling)."""
    if not ONLY:
        return ROWS
    return [r for r in ROWS if r[0] == "ceiling" or r[0] in ONLY]


# What audit-log's HTTP sink shipped in the throughput phase (filled by `throughput`).
SINK = {}


def envoy_stat(envoy, name):
    """One counter from Envoy's admin API (0 when absent)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{envoy.admin}/stats?filter=^{re.escape(name)}$", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0
    m = re.search(r": (\d+)$", text.strip(), re.M)
    return int(m.group(1)) if m else 0


def sink_account(envoy, sent, busy_s):
    """Waits until the sink's shipped count stops moving (its last batches), then records what it
    shipped and dropped against the requests sent to its listener."""
    last, still = -1, 0
    deadline = time.time() + 30
    while time.time() < deadline and still < 3:
        shipped = envoy_stat(envoy, "wasmcustom.shieldwall.audit_log.shipped")
        still = still + 1 if shipped == last else 0
        last = shipped
        time.sleep(1)
    SINK.update({"sent": sent, "busy_s": busy_s, "shipped": last,
                 "dropped": envoy_stat(envoy, "wasmcustom.shieldwall.audit_log.dropped"),
                 "batches": envoy_stat(envoy, "wasmcustom.shieldwall.audit_log.batches")})


def throughput(workdir):
    rows = selected_rows()
    # With the listeners that stand for remote services, which the rows' modules call.
    fakes = {n for n in LISTENERS if n.startswith("fake-")}
    names = sorted({listener for _, _, sides in rows for _, listener, _ in sides} | fakes)
    envoy = Envoy(names, 1, ENVOY_CPU, workdir, "throughput")
    offsets = {}
    samples = {}  # (row, side) -> [measurement per round]
    try:
        for n in names:
            envoy.check(n, WARM_TOKEN)
        say(f"Envoy up (1 worker on CPU {ENVOY_CPU}); warm-up {WARMUP} s per run")
        sink_sent, sink_s = 0, 0.0
        for row, _, sides in rows:
            for side, listener, source in sides:
                m = measure(envoy, listener, source, WARMUP, offsets)
                if listener == "ours-audit-http":
                    sink_sent += m["requests"]
                    sink_s += m["requests"] / m["rps"]
        for r in range(ROUNDS):
            order_rows = rows if r % 2 == 0 else list(reversed(rows))
            for row, label, sides in order_rows:
                order = sides if r % 2 == 0 else list(reversed(sides))
                for side, listener, source in order:
                    # perf samples the modules' compiled code, which the host-call guests have next to none of.
                    profile = row.startswith("diag-") and not row.startswith(("diag-hc-", "diag-hc1-", "diag-seq-"))
                    m = measure(envoy, listener, source, SECONDS, offsets, profile=profile)
                    samples.setdefault((row, side), []).append(m)
                    if listener == "ours-audit-http":
                        sink_sent += m["requests"]
                        sink_s += m["requests"] / m["rps"]
                    say(f"round {r + 1}/{ROUNDS} {row:<15} {side:<6} {m['rps']:>9.0f} req/s  p50 {m['p50']:>6} µs  p99 {m['p99']:>6} µs  "
                        f"{m['cpu_us']:6.1f} CPU µs/req  "
                        f"envoy {m['envoy_cpu']:.2f} wrk {m['wrk_cpu']:.2f} other {m['other_cores']:.2f} cores")
        if sink_sent:
            sink_account(envoy, sink_sent, sink_s)
    finally:
        envoy.stop()
    return samples


# The run at SCALE_WORKERS Envoy workers: (row, label, native listener, ours listener).
SCALE_ROWS = [
    ("warm", "JWT warm (same token)", "native-jwt-cached", "ours-jwt-warm"),
    ("ratelimit", "rate limit, under the limit", "native-ratelimit", "ours-ratelimit"),
    ("chain-one", "chain: JWT + authz + rate limit, one module", "native-chain", "ours-chain-one"),
]


def scale(workdir):
    """Envoy with SCALE_WORKERS workers on every core and wrk beside it on the same cores (one
    thread per worker), ours and native back to back as in the main run: the shared-data paths
    (rate-limit buckets, key sets) under contention between workers."""
    names = sorted({n for _, _, a, b in SCALE_ROWS for n in (a, b)})
    envoy = Envoy(names, SCALE_WORKERS, None, workdir, "scale")
    samples = {}
    try:
        for n in names:
            envoy.check(n, WARM_TOKEN)
        say(f"scale: Envoy with {SCALE_WORKERS} workers, wrk with {SCALE_WORKERS} threads, no pinning")
        for _, _, a, b in SCALE_ROWS:
            for listener in (a, b):
                measure(envoy, listener, "warm", WARMUP, {}, cpu=None, threads=SCALE_WORKERS)
        for r in range(ROUNDS):
            for row, _, a, b in SCALE_ROWS:
                pairs = [("native", a), ("ours", b)]
                for side, listener in pairs if r % 2 == 0 else list(reversed(pairs)):
                    m = measure(envoy, listener, "warm", SECONDS, {}, cpu=None, threads=SCALE_WORKERS)
                    samples.setdefault(f"{row}|{side}", []).append(m)
                    say(f"scale round {r + 1}/{ROUNDS} {row:<10} {side:<6} {m['rps']:>9.0f} req/s  "
                        f"{m['cpu_us']:6.1f} CPU µs/req  envoy {m['envoy_cpu']:.2f} wrk {m['wrk_cpu']:.2f} cores")
    finally:
        envoy.stop()
    return samples


CHURN_RUNS = [("native", "native-ratelimit-churn"), ("ours", "ours-ratelimit-churn")]


def churn(workdir):
    """The rate limit under key churn: every request from another client address (CHURN_CLIENTS
    of them, cycling, through a trusted x-forwarded-for), one bucket per address; one Envoy per
    side with SCALE_WORKERS workers, VmRSS before and after CHURN_SECONDS of load."""
    out = {}
    for side, name in CHURN_RUNS:
        envoy = Envoy([name], SCALE_WORKERS, None, workdir, f"churn-{name}")
        try:
            envoy.check(name, WARM_TOKEN)
            idle = envoy.rss_kib()
            m = measure(envoy, name, "churn", CHURN_SECONDS, {}, cpu=None, threads=1)
            time.sleep(0.5)
            m.update({"idle_kib": idle, "loaded_kib": envoy.rss_kib(), "seconds": CHURN_SECONDS,
                      "distinct": min(m["requests"], CHURN_CLIENTS)})
            out[side] = m
            say(f"churn {side:<6} {m['rps']:>9.0f} req/s, {m['distinct']:,} distinct clients, "
                f"VmRSS {idle / 1024:.1f} -> {m['loaded_kib'] / 1024:.1f} MiB")
        finally:
            envoy.stop()
    return out


# Envoy's bootstrap setting that hands freed memory back to the system (tcmalloc's page heap, up to
# this many bytes every interval): a memory run with it shows how much of a configuration's VmRSS is
# memory that was freed and stays with the allocator.
MEMORY_RELEASE = {"memory_allocator_manager": {"bytes_to_release": 100 * 2**20, "memory_release_interval": "0.1s"}}


def memory(workdir):
    """Envoy's VmRSS with 2 workers and one configuration, after MEMORY_SECONDS of load; and what
    its allocator holds in use and kept free. A name ending in `+release` is the configuration
    with MEMORY_RELEASE in its bootstrap."""
    out = {}
    runs = [("ceiling", "warm"), ("native-jwt-cached", "warm"), ("ours-jwt-warm", "warm"), ("native-ratelimit", "warm"),
            ("ours-ratelimit", "warm"), ("native-chain", "warm"), ("ours-chain", "warm"), ("ours-chain-one", "warm"),
            ("ours-chain-one-slim", "warm"), ("ours-chain-one-norego", "warm"), ("wasm-noop", "warm"),
            ("native-chain+release", "warm"), ("ours-chain-one+release", "warm")]
    for key, source in runs:
        name, release = key.removesuffix("+release"), key.endswith("+release")
        envoy = Envoy([name], 2, None, workdir, f"memory-{key}", MEMORY_RELEASE if release else None)
        try:
            envoy.check(name, WARM_TOKEN)
            idle = envoy.rss_kib()
            wrk(envoy.ports[name], source, MEMORY_SECONDS, {}, cpu=None)
            # Long enough for the release interval to pass several times.
            time.sleep(0.5)
            out[key] = {"idle_kib": idle, "loaded_kib": envoy.rss_kib(), **envoy.allocator()}
            say(f"memory {key:<20} VmRSS {out[key]['loaded_kib'] / 1024:.1f} MiB after load ({idle / 1024:.1f} MiB before)")
        finally:
            envoy.stop()
    return out


# ------------------------------------------------------------------ under attack

GOOD_CLIENT = "198.51.100.7"
ATTACKER = "203.0.113.66"
# (key, label, listener, attacker on?, the run without attacker it is compared with)
ATTACK_RUNS = [
    ("alone", "ours: good client alone", "ours-jwt-budget", False, "alone"),
    ("no-budget", "ours: good client + attacker, no budget", "ours-jwt-cold", True, "alone"),
    ("budget", "ours: good client + attacker, budget on", "ours-jwt-budget", True, "alone"),
    ("native-alone", "native jwt_authn (no cache): good client alone", "native-jwt-nocache", False, "native-alone"),
    ("native", "native jwt_authn (no cache): good client + attacker", "native-jwt-nocache", True, "native-alone"),
]
ATTACK_ALG = "RS256"


def bad_tokens(workdir):
    """The cold RS256 tokens with one signature character changed: each fails only at the signature."""
    path = os.path.join(workdir, f"bad-{ATTACK_ALG}.txt")
    with open(os.path.join(TOKENS, f"cold-{ATTACK_ALG}.txt")) as src, open(path, "w") as out:
        for line in src:
            t = line.strip()
            if not t:
                continue
            cut = t.rfind(".") + 1
            at = cut + (len(t) - cut) // 2
            out.write(t[:at] + ("B" if t[at] == "A" else "A") + t[at + 1:] + "\n")
    return path


def start_wrk(port, tokens_file, offset, xff, connections, seconds, count_429=False):
    env = dict(os.environ)
    env.pop("BENCH_TOKEN", None)
    env.update({"BENCH_TOKENS_FILE": tokens_file, "BENCH_TOKEN_OFFSET": str(offset), "BENCH_XFF": xff,
                "BENCH_COUNT_429": "1" if count_429 else "0"})
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", LUA,
           f"http://127.0.0.1:{port}/orders"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def finish_wrk(proc):
    out, err = proc.communicate()
    m = re.search(r"^BENCH (\{.*\})$", out, re.M)
    if proc.returncode != 0 or not m:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out}\n{err}")
    return json.loads(m.group(1))


def attack(workdir):
    """A good client (a new valid RS256 token on every request) shares Envoy with an attacker
    sending tokens with bad signatures as fast as it can, each from its own address."""
    names = sorted({run[2] for run in ATTACK_RUNS})
    envoy = Envoy(names, 1, ENVOY_CPU, workdir, "attack")
    bad = bad_tokens(workdir)
    good = os.path.join(TOKENS, f"cold-{ATTACK_ALG}.txt")
    half = max(1, CONNECTIONS // 2)
    offset = {"good": 3001, "bad": 1}
    out = {}
    try:
        for n in names:
            envoy.check(n, WARM_TOKEN)
        say(f"under attack: good client {half} connections, attacker {half} connections, {SECONDS} s per run")
        for r in range(ROUNDS):
            for key, _, listener, attacked, _ in ATTACK_RUNS:
                port = envoy.ports[listener]
                g = start_wrk(port, good, offset["good"], GOOD_CLIENT, half, SECONDS)
                a = start_wrk(port, bad, offset["bad"], ATTACKER, half, SECONDS, count_429=True) if attacked else None
                gr = finish_wrk(g)
                ar = finish_wrk(a) if a else None
                offset["good"] = gr["next_token"]
                if ar:
                    offset["bad"] = ar["next_token"]
                good_errors = gr["non2xx"] + gr["connect"] + gr["read"] + gr["write"] + gr["timeout"]
                if good_errors:
                    raise SystemExit(f"attack {key}: the good client got {good_errors} failures: {gr}")
                m = {
                    "good_rps": gr["requests"] / (gr["duration_us"] / 1e6),
                    "good_p50": gr["p50_us"],
                    "good_p99": gr["p99_us"],
                    "bad_rps": ar["requests"] / (ar["duration_us"] / 1e6) if ar else 0.0,
                    "bad_non2xx": ar["non2xx"] if ar else 0,
                    "bad_requests": ar["requests"] if ar else 0,
                    "bad_429": ar.get("status_429", 0) if ar else 0,
                }
                if ar and ar["non2xx"] != ar["requests"]:
                    raise SystemExit(f"attack {key}: some bad tokens were let through: {ar}")
                out.setdefault(key, []).append(m)
                say(f"attack round {r + 1}/{ROUNDS} {key:<10} good {m['good_rps']:>7.0f} req/s p99 {m['good_p99']:>6} µs  "
                    f"attacker {m['bad_rps']:>7.0f} req/s ({m['bad_429']} of {m['bad_requests']} got 429)")
    finally:
        envoy.stop()
    return out


def micro():
    out = {"native": {}, "wasm": {}, "openssl": {}}
    for path, key in ((MICRO_NATIVE, "native"), (MICRO_WASM, "wasm")):
        if path and os.path.exists(path):
            for line in read(path).splitlines():
                if line.startswith("{"):
                    d = json.loads(line)
                    out[key][d["alg"]] = d
    if PATH_COST and os.path.exists(PATH_COST):
        # Lines like `warm: 1.53 µs per request (median of 7 rounds of 20000)`.
        out["path_native"] = {m.group(1): float(m.group(2))
                              for m in re.finditer(r"^([\w-]+): ([0-9.]+) µs per request", read(PATH_COST), re.M)}
        # `cold-ES256: 55.20 µs per request, of which 46.54 the signature check (…)`.
        cold = re.search(r"^cold-ES256: ([0-9.]+) µs per request, of which ([0-9.]+)", read(PATH_COST), re.M)
        if cold:
            out["path_cold"] = (float(cold.group(1)), float(cold.group(2)))
    # OpenSSL's own verify speed: a reference for the C implementation class Envoy uses (BoringSSL).
    try:
        text = subprocess.run(["taskset", "-c", LOAD_CPU, "openssl", "speed", "-seconds", "2", "rsa2048", "ecdsap256", "ed25519"],
                              capture_output=True, text=True, timeout=120).stdout
        # The last column is verifications per second (the time columns are rounded to 0.1 ms).
        for alg, pattern in (("RS256", r"^rsa\s+2048 bits\s.*\s(\S+)$"),
                             ("ES256", r"^\s*256 bits ecdsa \(nistp256\)\s.*\s(\S+)$"),
                             ("EdDSA", r"^\s*253 bits EdDSA \(Ed25519\)\s.*\s(\S+)$")):
            m = re.search(pattern, text, re.M)
            if m:
                out["openssl"][alg] = 1e6 / float(m.group(1))
        out["openssl_version"] = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return out


# ------------------------------------------------------------------ report


def cpu_model():
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def med(samples, key):
    return statistics.median(s[key] for s in samples)


def fmt_rps(x):
    return f"{x:,.0f}"


def hostcall_prices(samples, ceiling_us, noop_us):
    """µs per host call of each kind (the host-call rows against the empty module), or None when the
    run has not measured them all."""
    if noop_us is None or noop_us != noop_us:
        return None
    if not all((f"diag-hc-{kind}", "only") in samples for kind, _ in HOSTCALL_KINDS if kind not in HOSTCALL_OPTIONAL):
        return None
    return {kind: (med(samples[(f"diag-hc-{kind}", "only")], "cpu_us") - ceiling_us - noop_us) / HOSTCALLS_PER_REQUEST
            for kind, _ in HOSTCALL_KINDS if (f"diag-hc-{kind}", "only") in samples}


def table_head(w, columns, optional=None):
    """A table's header and alignment rows: the first column left-aligned, the others (and the
    optional last one, when given) right-aligned figures."""
    columns = columns + ([optional] if optional else [])
    w("| " + " | ".join(columns) + " |")
    w("| --- |" + " ---: |" * (len(columns) - 1))


def paired_diff(runs, base):
    """Median over rounds of (a row's CPU per request − another row's in the same round): rows run
    in the same order every round, so this cancels what drifts between rounds. Rows with different
    round counts (a partial run) fall back to the difference of their medians."""
    if len(runs) == len(base):
        return statistics.median(a["cpu_us"] - b["cpu_us"] for a, b in zip(runs, base))
    return med(runs, "cpu_us") - med(base, "cpu_us")


def hostcall_alone(samples):
    """µs per request that one host call of each kind adds as the only call of a request: the
    median over rounds of (its row − the empty module's row in the same round), or {} when the
    run has not measured it."""
    noop = samples.get(("diag-noop", "only"))
    out = {}
    for kind in ALONE_KINDS:
        runs = samples.get((f"diag-hc1-{kind}", "only"))
        if runs and noop:
            out[kind] = paired_diff(runs, noop)
    return out


def call_counts(calls):
    """A path's host calls as the report names them: `1× clock, 2× replace_header`, in first-call order."""
    return ", ".join(f"{calls.count(c)}× {c}" for c in dict.fromkeys(calls))


def measured_floor(samples, ceiling_us, k):
    """µs per request that a path's host calls add when a module makes just them (diag-seq-<k>,
    with the fixed cost of each module on the path), or None when the run has not measured it."""
    runs = samples.get((f"diag-seq-{k}", "only"))
    return med(runs, "cpu_us") - ceiling_us if runs else None


def swap_steps(samples):
    """Per module of the three-module chain, swapped in one at a time (SWAP_ROWS): (module, what it
    adds beyond its host calls, what its compiled code adds or None where perf did not sample),
    each a median of differences paired within rounds; None when the run has not measured them."""
    if not all((row, "only") in samples for row, _, _ in SWAP_ROWS):
        return None
    steps = []
    for module, (before, _, _), (row, _, _) in zip(SWAP_MODULES, SWAP_ROWS, SWAP_ROWS[1:]):
        a, b = samples[(row, "only")], samples[(before, "only")]
        mods = [m.get("module_us") for m in a]
        prev = [m.get("module_us") for m in b]
        code = (statistics.median(x - y for x, y in zip(mods, prev))
                if None not in mods + prev and len(mods) == len(prev) else None)
        steps.append((module, paired_diff(a, b), code))
    return steps


def swap_table(w, samples, ceiling_us, profiled):
    """The chain of three modules with its modules swapped in one at a time (SWAP_ROWS): what each
    module costs in the chain above the host calls it makes, beside the same module alone above its
    own floor (its row minus its path's seq row, where the run has both)."""
    w("The chain of three modules, one module at a time: the chain's modules in its order, each row with one "
      "more of them in place of a hostcalls guest making just that module's calls (the floor table's `seq`). A "
      "row's *step* is what that module costs in the chain beyond its host calls: its own code, and Envoy's "
      "side of running it beyond the calls themselves.")
    w("")
    table_head(w, ["modules", "Envoy CPU µs/request added", "step"],
               None if not profiled else "of it in the modules' code (step)")
    steps = [None] + swap_steps(samples)
    for (row, what, _), step in zip(SWAP_ROWS, steps):
        s_ = samples[(row, "only")]
        u = med(s_, "cpu_us") - ceiling_us
        shown = f"{step[1]:+.1f}" if step else ""
        code = ""
        if profiled:
            mods = [m.get("module_us") for m in s_]
            if None in mods:
                code = " — |"
            else:
                code = f" {statistics.median(mods):.1f}" + (f" ({step[2]:+.1f})" if step and step[2] is not None else "") + " |"
        w(f"| {what} | {u:.1f} | {shown} |{code}")
    w("")
    alone = []
    for module, row, seq in (("jwt-auth", "warm", "warm"), ("rate-limit", "ratelimit", "ratelimit")):
        ours, floor = samples.get((row, "ours")), samples.get((f"diag-seq-{seq}", "only"))
        if ours and floor:
            alone.append(f"{module} {paired_diff(ours, floor):.1f} µs")
    w("*step* is the median over rounds of the row's CPU per request minus the row above's in the same round. "
      "The same modules alone, above their own measured floors (their row minus the floor row, paired the same "
      "way): " + ("; ".join(alone) if alone else "not measured in this run") + ".")
    w("")


def report(samples, mem, mic, meta, atk):
    lines = []
    w = lines.append
    w("# shieldwall benchmark results")
    w("")
    w("Written by `scripts/bench.sh`; every figure below was measured in the run described here.")
    w("")
    w(f"- date: {meta['date']}")
    w(f"- machine: {meta['nproc']} CPUs, {meta['cpu']}, {meta['mem_gib']:.0f} GiB, {meta['kernel']}")
    w(f"- Envoy: {meta['envoy_version']} (V8 wasm runtime)")
    w(f"- wrk {meta['wrk_version']}: 1 thread, {meta['connections']} connections, HTTP/1.1 keep-alive, `GET /orders`")
    w(f"- runs: warm-up {meta['warmup']} s per variant, then {meta['rounds']} round(s) × {meta['seconds']} s per variant, interleaved "
      "(pairs back to back, order reversed every other round); medians across rounds")
    w(f"- load average (1 min) before the run: {meta['load_before']:.2f}; during the runs: "
      f"{meta['load_min']:.2f} … {meta['load_max']:.2f} (this includes Envoy and wrk themselves)")
    w(f"- cores busy with other work during the runs (total CPU time minus Envoy's and wrk's): "
      f"median {meta['other_median']:.2f}, max {meta['other_max']:.2f} of {meta['nproc']}")
    if meta["other_median"] > 0.25:
        w("")
        w("**Measured while other work ran on the machine** (see the line above): Envoy and wrk shared their cores "
          "with it, so absolute figures are low and noisy. Each ratio compares two variants measured back to back "
          "in the same round, which cancels part of that noise but not all.")
    elif meta["other_max"] > 0.25:
        w("")
        w(f"Most runs had the machine to themselves; some saw other work (up to {meta['other_max']:.2f} cores). "
          "Medians over rounds damp that, and the Envoy-CPU ratio below depends on it much less.")
    w("")
    w("## Throughput and latency")
    w("")
    w(f"Envoy: one worker (`--concurrency 1`) pinned to CPU {meta['envoy_cpu']}; wrk pinned to CPU {meta['load_cpu']}. Upstream: a "
      "`direct_response` route in the same Envoy, so the upstream costs nothing and is identical for every variant. "
      "Every response was checked to be a 200 (a run with any other status or a socket error aborts the benchmark).")
    w("")
    table = []
    table.append("| variant | native req/s | native p50 / p99 | ours req/s | ours p50 / p99 | ours/native | target | | ours/native by Envoy CPU |")
    table.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    verdicts = {}
    cpu_ratios = {}
    for row, label, sides in ROWS:
        if row.startswith("diag-"):
            continue
        if row == "ceiling":
            s = samples[(row, "only")]
            table.append(f"| {label} | {fmt_rps(med(s, 'rps'))} | {med(s, 'p50'):.0f} / {med(s, 'p99'):.0f} µs | | | | | ceiling | |")
            continue
        if (row, "native") not in samples or (row, "ours") not in samples:
            continue  # not measured in this (partial) run
        n, o = samples[(row, "native")], samples[(row, "ours")]
        ratios = [b["rps"] / a["rps"] for a, b in zip(n, o)]
        ratio = statistics.median(ratios)
        cpu_ratio = statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in zip(n, o))
        cpu_ratios[row] = cpu_ratio
        target = TARGETS[row]
        ok = ratio >= target
        verdicts[row] = (ratio, target, ok)
        table.append(
            f"| {label} | {fmt_rps(med(n, 'rps'))} | {med(n, 'p50'):.0f} / {med(n, 'p99'):.0f} µs | {fmt_rps(med(o, 'rps'))} | "
            f"{med(o, 'p50'):.0f} / {med(o, 'p99'):.0f} µs | **{ratio:.2f}** | ≥ {target:.2f} | {'met' if ok else 'NOT met'} | {cpu_ratio:.2f} |"
        )
    lines.extend(table)
    w("")
    w("ours/native is the median over rounds of (ours req/s ÷ native req/s), each pair measured back to back; the "
      "targets are judged on it. Latency is wrk's per-request latency (µs) at saturation, so it mostly mirrors "
      "throughput. *ours/native by Envoy CPU* is the same ratio computed from the CPU time Envoy spent per request "
      "(utime + stime from `/proc/<pid>/stat` over the run ÷ requests): it depends much less on how much of its core "
      "Envoy got, so it is the steadier figure when other work shares the machine.")
    w("")
    w("What each variant is:")
    w("")
    w("- native JWT: `envoy.filters.http.jwt_authn`, the keys inline (`local_jwks.inline_string`); warm with "
      "`jwt_cache_config` (1000 entries), cold without it. Ours: `jwt-auth` with the same JWKS as `local_jwks` "
      "(no JWKS fetch on either side, for a fair comparison) and its default token cache (4096 entries).")
    w("- cold: every request carries a different valid token (pre-minted, cycled by the wrk script). Ours keeps its "
      "cache on, as deployed; the token list is longer than the cache and the cycle continues across runs, so every "
      "request misses it and verifies, and pays the cache insertion too.")
    w("- rate limit: native `local_ratelimit` (one bucket, 10⁹ tokens per second) vs `rate-limit` keyed by client "
      "address (one client here, so one bucket), limit 10⁹/s, RateLimit headers off on both sides.")
    w("- chain: native `jwt_authn` (cached, payload in metadata) + `rbac` (the `scope` claim holds `orders:read`) + "
      "`local_ratelimit` vs `jwt-auth` + `scope-authz` (`require.scopes: [orders:read]`) + `rate-limit`, as three modules "
      "and as the one module `shieldwall.wasm` whose chain lists the same three configurations.")
    w("")
    w("Envoy CPU time per request (utime + stime of the Envoy process over the run ÷ requests; medians over rounds); "
      "the difference to the no-filter run is what the filters cost:")
    w("")
    ceiling_us = med(samples[("ceiling", "only")], "cpu_us")
    w("| variant | native µs/request (added) | ours µs/request (added) |")
    w("| --- | ---: | ---: |")
    w(f"| no filter | {ceiling_us:.1f} | |")
    added = {}
    for row, label, sides in ROWS:
        if row == "ceiling" or row.startswith("diag-") or (row, "ours") not in samples:
            continue
        nu = med(samples[(row, "native")], "cpu_us")
        ou = med(samples[(row, "ours")], "cpu_us")
        added[row] = (nu - ceiling_us, ou - ceiling_us)
        w(f"| {label} | {nu:.1f} ({nu - ceiling_us:+.1f}) | {ou:.1f} ({ou - ceiling_us:+.1f}) |")
    w("")
    w("Diagnostics (ours only): a module with almost nothing to do, i.e. the fixed cost of a wasm filter in the "
      "chain (the V8 call-ins per stream, the host calls every filter makes to read the request line) as opposed "
      "to the work of its rules.")
    w("")
    profiled = any(m.get("module_us") is not None for (row, _), ms in samples.items() if row.startswith("diag-")
                   for m in ms)
    table_head(w, ["variant", "req/s", "p50 / p99", "Envoy CPU µs/request (added)"], "of it in the module's code" if profiled else None)
    for row, label, sides in DIAGNOSTICS:
        if (row, "only") not in samples:
            continue
        s = samples[(row, "only")]
        u = med(s, "cpu_us")
        added[row] = (0.0, u - ceiling_us)
        mods = [m["module_us"] for m in s if m.get("module_us") is not None]
        module = (f" {statistics.median(mods):.1f} |" if mods else " — |") if profiled else ""
        w(f"| {label} | {fmt_rps(med(s, 'rps'))} | {med(s, 'p50'):.0f} / {med(s, 'p99'):.0f} µs | {u:.1f} ({u - ceiling_us:+.1f}) |{module}")
    w("")
    if profiled:
        w("*of it in the module's code*: `perf record` on Envoy's core during each diagnostic run (999 samples a "
          "second, from 1 s into the run to 1 s before its end), the share of the core's time in code V8 "
          "generated for the modules (perf's `[JIT]`) ÷ requests a second; medians over rounds. The rest of what a module adds is spent "
          "in Envoy's own binary (the host calls' work, the crossings between V8 and Envoy, V8's runtime) and the "
          "kernel. The sampling interrupts Envoy's core a thousand times a second, which lengthens these rows' tail "
          "latency (their p99 above); their CPU per request, Envoy's own time, moves within the noise.")
        w("")
    if "diag-noop" in added and "diag-jwt-public" in added and all((r, "only") in samples for r, _, _ in LADDER_ROWS):
        w("From the empty module to jwt-auth on a public route, one piece of work at a time: the ladder guest "
          "(host-tests/guests/ladder) runs on shieldwall-core's adapter, as every filter does, and each rung does "
          "the work of the rung above it in the table and one thing more; a rung's *step* is what that one piece "
          "of work costs in Envoy.")
        w("")
        table_head(w, ["rung", "Envoy CPU µs/request added", "step"], "of it in the module's code" if profiled else None)
        ladder = ([("diag-noop", "the empty module (no adapter)")]
                  + [(row, what) for row, what, _ in LADDER_ROWS]
                  + [("diag-jwt-public", "jwt-auth on a public route (all of the above and its own work)")])
        before = None
        for row, what in ladder:
            s_ = samples[(row, "only")]
            u = med(s_, "cpu_us") - ceiling_us
            added[row] = (0.0, u)
            mods = [m["module_us"] for m in s_ if m.get("module_us") is not None]
            module = (f" {statistics.median(mods):.1f} |" if mods else " — |") if profiled else ""
            step = f"{paired_diff(s_, before):+.1f}" if before is not None else ""
            w(f"| {what} | {u:.1f} | {step} |{module}")
            before = s_
        w("")
        w("*step* is the median over rounds of the rung's CPU per request minus the rung above's in the same round "
          "(the rungs run one after the other in every round), which cancels what drifts between rounds; the "
          "first column is each row's own median. A step within a few µs of zero is below this run's noise.")
        w("")
    prices = hostcall_prices(samples, ceiling_us, added.get("diag-noop", (0, None))[1])
    if prices:
        w(f"What one host call costs in this Envoy: a module that makes {HOSTCALLS_PER_REQUEST} calls of one kind on "
          "every request (host-tests/guests/hostcalls), against the empty module; (its Envoy CPU per request − the "
          f"empty module's) ÷ {HOSTCALLS_PER_REQUEST}. The call's work on Envoy's side and the crossing between V8 "
          "and Envoy are both in it; a call that returns data also calls back into the module to allocate.")
        w("")
        alone = hostcall_alone(samples)
        if alone:
            w("*made once*: the same call as the only host call of a request (`KIND 1`): the median over rounds "
              "of its Envoy CPU per request minus the empty module's in the same round. A path makes most of its "
              "calls once; this is what such a call costs, and the difference to the column before is paid once "
              "per request, not per call.")
            w("")
        table_head(w, ["host call", "µs per call"], "made once (µs)" if alone else None)
        for kind, what in HOSTCALL_KINDS:
            if kind not in prices:
                continue
            added[f"diag-hc-{kind}"] = (0.0, prices[kind])
            once = (f" {alone[kind]:.1f} |" if kind in alone else " — |") if alone else ""
            w(f"| {what} | {prices[kind]:.2f} |{once}")
        w("")
    if prices:
        noop_us = added["diag-noop"][1]
        w("The floor under each path: the host calls it makes (pinned call by call by unit tests: "
          "jwt-auth's `a_cached_token_makes_only_the_calls_it_needs`, rate-limit's "
          "`a_request_under_the_limit_makes_only_the_calls_it_needs`, scope-authz's "
          "`an_allowed_request_makes_only_the_calls_it_needs`, plus the adapter's decision record per module; for "
          "the one module shieldwall's `the_chain_makes_only_the_calls_it_needs`; the full chain's list is "
          "shieldwall's `the_full_chain_makes_only_the_calls_it_needs`). *priced* adds up the prices above and the "
          "empty module once per module on the path. *measured* is a module making exactly those calls, once each "
          "and in order, and nothing else (the hostcalls guest's `seq`; for the three-module chain, three such "
          "modules, each with its module's calls): no implementation of the path in wasm modules can cost less. "
          "*best ratio* is native's CPU per request over ours at the measured floor (at the priced one where the "
          "run has no measured one). The control row of the host-call table (ten memory copies inside the module, "
          f"no host call) prices at {prices['memory_copy']:.2f} µs: about the noise in each price of this run.")
        w("")
        native_path = mic.get("path_native", {})
        w("| row | host calls on the path | priced (µs) | measured (µs) | ours added (µs) | above the measured floor (µs) | the same path natively (µs) | best ratio by CPU | target |")
        w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        ratios = []
        for k, calls in FLOOR_CALLS.items():
            if k not in added:
                continue
            priced = FLOOR_MODULES.get(k, 1) * noop_us + sum(prices[c] for c in calls)
            measured = measured_floor(samples, ceiling_us, k)
            floor = measured if measured is not None else priced
            if measured is not None:
                ratios.append(measured / priced)
            nu, ou = added[k]
            best = (ceiling_us + nu) / (ceiling_us + floor)
            names = call_counts(calls)
            # path_cost's `chain` is the three stages in one module; the same work as the three modules.
            nat_key = "chain" if k in ("chain", "chain-one") else k
            nat = f"{native_path[nat_key]:.2f}" if nat_key in native_path else "—"
            shown = f"{measured:.1f}" if measured is not None else "—"
            w(f"| {k} | {names} | {priced:.1f} | {shown} | {ou:.1f} | {ou - floor:.1f} | {nat} | {best:.2f} | ≥ {TARGETS[k]:.2f} |")
        w("")
        if ratios and statistics.median(ratios) > 1.0:
            w(f"The measured floors are {min(ratios):.1f}–{max(ratios):.1f} times the priced ones: a host call made "
              "once among other calls costs more than the same call repeated twenty times in a row, which is how "
              "each price is measured. The difference lies on Envoy's and V8's side of the calls (the guest does "
              "nothing else); a module can only make fewer calls.")
            w("")
        elif ratios:
            w(f"The measured floors are {min(ratios):.1f}–{max(ratios):.1f} times the priced ones: in this run, "
              "the calls cost about what their prices add up to.")
            w("")
        if native_path:
            call_ins = noop_call_ins(added)
            w("*the same path natively*: the filter's own code on the same request, compiled for this machine and run "
              "on the mock host of the unit tests (`cargo run --release -p shieldwall --example path_cost`, pinned to "
              "the load generator's core before the run, median of 7 rounds of 20,000). Where *above the floor* is "
              "several times that, most of it is not the filter's computation: the module's compiled code is a "
              "small part (sampled below), the rest is Envoy's side of running a wasm filter beyond the priced "
              "calls (the larger values the real path hands over, a 300-byte identity, a header map with a token)."
              + (f" Not the calls into the module for its callbacks: an empty module that also exports the "
                 f"response-header and log callbacks adds {call_ins:+.1f} µs per request over one that does not "
                 "(diag-noop-exports)." if call_ins is not None else ""))
            public = [m["module_us"] for m in samples.get(("diag-jwt-public", "only"), [])
                      if m.get("module_us") is not None]
            if public and "diag-jwt-public" in added and "diag-noop" in added:
                code = statistics.median(public)
                rest = added["diag-jwt-public"][1] - added["diag-noop"][1] - code
                w("")
                w(f"Where the rest goes, sampled (the diagnostics' last column): jwt-auth on a public route adds "
                  f"{added['diag-jwt-public'][1]:.1f} µs, of which {code:.1f} µs is the module's own compiled code "
                  f"and {rest:.1f} µs beyond the empty module lies in Envoy's binary and the kernel: its "
                  "host calls, and what the prices above do not capture, the crossings between V8 and Envoy and "
                  "V8's runtime. Faster code inside the module cannot move that part; "
                  "fewer crossings can.")
            if "chain" in native_path and "chain-one" in added:
                w("")
                w(f"The chain of three in one module runs natively in {native_path['chain']:.2f} µs per request; in "
                  f"Envoy it adds {added['chain-one'][1]:.1f} µs.")
            if "path_cold" in mic and "cold-ES256" in added:
                whole, check = mic["path_cold"]
                w("")
                w(f"A cold ES256 request (a new token) runs natively in {whole:.2f} µs, of which {check:.2f} µs is "
                  f"the signature check and {whole - check:.2f} µs the rest (parsing, claims, the identity and its "
                  f"JSON, the cache insertion); in Envoy it adds {added['cold-ES256'][1]:.1f} µs.")
            w("")
        if "diag-audit" in added:
            priced = noop_us + sum(prices[c] for c in AUDIT_FLOOR_CALLS)
            measured = measured_floor(samples, ceiling_us, "audit")
            floor = measured if measured is not None else priced
            names = call_counts(AUDIT_FLOOR_CALLS)
            w(f"audit-log's floor, the same way: its record of one request makes {names} (audit-log's "
              f"`a_record_makes_only_the_calls_it_needs`), {priced:.1f} µs priced with the empty module"
              + (f", {measured:.1f} µs measured (a module making just those calls)" if measured is not None else "")
              + f", against {added['diag-audit'][1]:.1f} µs for audit-log and a target of 10 µs"
              + (": a record read from Envoy's properties one host call each cannot meet that target in this Envoy"
                 + (f" (an empty module alone adds {noop_us:.1f} µs, above the target before any call)."
                    if noop_us >= 10 else ".")
                 if floor >= 10 else
                 ": the calls leave room under the target; the rest is the module's own work in V8.")
              + (f" The same record natively on the mock host: {mic['path_native']['audit']:.2f} µs."
                 if "audit" in mic.get("path_native", {}) else ""))
            w("")
    if all((row, "only") in samples for row, _, _ in SWAP_ROWS):
        swap_table(w, samples, ceiling_us, profiled)
    if "diag-one-jwt-slim" in added and "diag-one-jwt" in added:
        full, slim = added["diag-one-jwt"][1], added["diag-one-jwt-slim"][1]
        w(f"The one module built with only the filters it runs: jwt-auth as its only stage adds {slim:.1f} µs built "
          f"with jwt-auth alone against {full:.1f} µs with every filter built in (the same configuration).")
        if "diag-chain-one-slim" in added and "diag-chain-one" in added:
            cf, cs = added["diag-chain-one"][1], added["diag-chain-one-slim"][1]
            w(f"The chain row's three stages add {cs:.1f} µs built with only those three filters against {cf:.1f} µs "
              "with every filter built in.")
        w("")
    sink = meta.get("sink") or {}
    if sink.get("sent"):
        rate = sink["sent"] / sink["busy_s"] if sink["busy_s"] else 0
        kept = sink["shipped"] + sink["dropped"] >= sink["sent"] and sink["dropped"] == 0
        w(f"audit-log's HTTP sink in this run: {sink['sent']:,} requests through its listener in the warm-up and the rounds (plus the start-up check and the requests in flight when each run ended, which wrk does not count; "
          f"{rate:,.0f} a second on average while loaded), {sink['shipped']:,} records shipped in "
          f"{sink['batches']:,} batches, {sink['dropped']:,} dropped (Envoy's counters "
          "`shieldwall.audit_log.shipped`/`dropped`/`batches`, read once they stopped moving after the run). "
          + ("It kept up with every request the worker served; a higher rate than the worker serves could not be "
             "offered here." if kept else "It did not keep up: see the counts."))
        w("")
    if "diag-policy" in added and "warm" in added:
        pol = added["diag-policy"][1] - added["warm"][1]
        w(f"policy-authz with a five-rule policy adds {pol:.1f} µs of Envoy CPU per request (jwt-auth + policy-authz "
          "minus jwt-auth alone, both warm).")
        w("")
    if "diag-payload" in added and "diag-ceiling-body" in added:
        pg = added["diag-payload"][1] - added["diag-ceiling-body"][1]
        verdicts["payload-guard"] = (pg, 25.0, pg <= 25.0)
        w(f"payload-guard adds {pg:.1f} µs of Envoy CPU per request for a {len(BENCH_BODY):,}-byte valid JSON body "
          f"(against the same POST with no filter; target under 25 µs: {'met' if pg <= 25.0 else 'NOT met'}).")
        w("")
    if "diag-exchange-cached" in added and "warm" in added:
        exch = paired_diff(samples[("diag-exchange-cached", "only")], samples[("warm", "ours")])
        verdicts["exchange-cached"] = (exch, 10.0, exch <= 10.0)
        w(f"identity-exchange with a cached internal token adds {exch:.1f} µs of Envoy CPU per request (jwt-auth + "
          f"identity-exchange minus jwt-auth alone in the same round, both warm, median over rounds; target under 10 µs: {'met' if exch <= 10.0 else 'NOT met'}).")
        w("")
    if "diag-rl-lease" in added and "ratelimit" in added:
        leased, exact = added["diag-rl-lease"][1], added["ratelimit"][1]
        w(f"rate-limit with leases of 64 tokens adds {leased:.1f} µs of Envoy CPU per request against {exact:.1f} µs "
          "exact (the rate-limit row's configuration, every request one shared-data read and write).")
        w("")
    if "diag-introspection-cached" in added and "warm" in added:
        cached, warm = added["diag-introspection-cached"][1], added["warm"][1]
        verdicts["introspection-cached"] = (cached / warm, 1.10, cached <= 1.10 * warm)
        w(f"token-introspection with the answer cached adds {cached:.1f} µs of Envoy CPU per request; jwt-auth's warm "
          f"path (same token) adds {warm:.1f} µs: **{cached / warm:.2f}×** (target ≤ 1.10×: "
          f"{'met' if cached <= 1.10 * warm else 'NOT met'}).")
        if "diag-introspection-miss" in added:
            w(f"Every request introspected adds {added['diag-introspection-miss'][1]:.1f} µs, which includes the "
              "callout and the fake IdP's own direct response in the same Envoy (a listener of it stands for the "
              "IdP on loopback).")
        w("")

    if "diag-one-exchange" in added and "diag-one-jwt" in added:
        one = paired_diff(samples[("diag-one-exchange", "only")], samples[("diag-one-jwt", "only")])
        verdicts["exchange-cached-one"] = (one, 10.0, one <= 10.0)
        w(f"identity-exchange as a stage of the one module, with a cached internal token, adds {one:.1f} µs of Envoy "
          f"CPU per request (the one module with jwt-auth + identity-exchange minus the one module with jwt-auth "
          f"alone in the same round, median over rounds; target under 10 µs: {'met' if one <= 10.0 else 'NOT met'}).")
        w("")
    for alg in ("ES256", "EdDSA"):
        row = f"diag-exchange-mint-{alg}"
        if row in added and "diag-exchange-cached" in added:
            mint = paired_diff(samples[(row, "only")], samples[("diag-exchange-cached", "only")])
            w(f"Minting an {alg} internal token costs {mint:.1f} µs of Envoy CPU per token (identity-exchange with "
              f"its cache off, every request signed, minus the same with the token cached in the same round; both behind "
              "warm jwt-auth).")
            w("")

    if meta.get("scale"):
        scale_section(w, meta["scale"], meta)
    if meta.get("churn"):
        churn_section(w, meta["churn"])
    if atk:
        attack_section(w, atk)

    w("## Signature verification, per call")
    w("")
    w("- native: jwt-auth's own `Jwk::verify` (release build: RS256, ES256 and EdDSA with the crate's own "
      "arithmetic) on this machine, over the run's tokens "
      "(`bench-mint verify`).")
    w("- wasm: requests through the real `jwt_auth.wasm` on the test host (`host-tests`, **wasmtime, not V8**: "
      "indicative only), token cache off (every request verifies) minus the same with a cached token; the difference "
      "is parse + claims + signature inside the module (`examples/wasm_verify.rs`).")
    if mic.get("openssl"):
        w(f"- OpenSSL: `openssl speed` verify time ({mic.get('openssl_version', '')}), the C library class Envoy's "
          "jwt_authn uses (Envoy links BoringSSL; this is OpenSSL, a reference, not Envoy's exact code).")
    w("")
    w("| alg | native µs | wasm (wasmtime) µs | wasm ÷ native | OpenSSL µs |")
    w("| --- | ---: | ---: | ---: | ---: |")
    for alg in ALGS:
        nat = mic["native"].get(alg, {}).get("us_per_verify")
        was = mic["wasm"].get(alg, {}).get("us_verify_estimate")
        ssl = mic["openssl"].get(alg)
        w(f"| {alg} | {f'{nat:.1f}' if nat else '—'} | {f'{was:.1f}' if was else '—'} | "
          f"{f'{was / nat:.1f}×' if nat and was else '—'} | {f'{ssl:.1f}' if ssl else '—'} |")
    w("")

    w("## Module sizes")
    w("")
    w("The files Envoy loaded in this run (`target/wasm32-wasip1/release/`, release profile: `opt-level = \"s\"`, fat LTO, stripped; then Binaryen's `wasm-opt -O3`, scripts/wasm-opt.sh).")
    w("")
    w("| module | bytes | target | |")
    w("| --- | ---: | ---: | --- |")
    for name, f in MODULES.items():
        if name not in meta["sizes"] or name in ("hostcalls", "ladder", "noop-exports"):
            continue  # a run from before this module was benchmarked; the measuring guests
        size = meta["sizes"][name]
        # The one module (any build of it) has a target of 2 MB; payload-guard (its validator)
        # 1.5 MB; any other filter's module 400 KB.
        limit = (2 * 1024 * 1024 if name.startswith("shieldwall")
                 else 1536 * 1024 if name == "payload-guard" else 409600)
        verdicts[f"size-{name}"] = (size, limit, size <= limit)
        w(f"| {f} | {size:,} | ≤ {limit // 1024:,} KB | {'met' if size <= limit else 'NOT met'} |")
    w("")

    w("## Envoy memory, 2 workers")
    w("")
    w(f"VmRSS from `/proc/<pid>/status`, one Envoy per configuration with `--concurrency 2`, read after "
      f"{meta['memory_seconds']} s of load (wrk, {meta['connections']} connections); the figure before the load is after start-up.")
    w("")
    kib = lambda m, k: f"{m[k] / 1024:.1f} MiB" if k in m else "—"
    w("| configuration | VmRSS after start | VmRSS after load | allocator: in use | allocator: freed, kept |")
    w("| --- | ---: | ---: | ---: | ---: |")
    for name, m in mem.items():
        label = (f"{name.removesuffix('+release')}, freed memory released (`memory_allocator_manager`)"
                 if name.endswith("+release") else name)
        w(f"| {label} | {m['idle_kib'] / 1024:.1f} MiB | {m['loaded_kib'] / 1024:.1f} MiB | {kib(m, 'in_use_kib')} | "
          f"{kib(m, 'kept_kib')} |")
    w("")
    w("*allocator*: Envoy's admin `/memory` after the load (Envoy allocates through tcmalloc; V8's own code space "
      "and the modules' linear memories are mapped apart and are in VmRSS only): *in use* is what is allocated, "
      "*freed, kept* what was freed and is held for reuse (the page heap's free pages and the threads' caches), "
      "resident until the allocator releases it. The `+release` runs add to the bootstrap "
      f"`memory_allocator_manager` (`bytes_to_release` {MEMORY_RELEASE['memory_allocator_manager']['bytes_to_release']:,}"
      f", every {MEMORY_RELEASE['memory_allocator_manager']['memory_release_interval']}), which hands the page heap's "
      "free pages back to the system.")
    if "ours-chain" in mem and "native-chain" in mem:
        r = mem["ours-chain"]["loaded_kib"] / mem["native-chain"]["loaded_kib"]
        verdicts["memory"] = (r, 2.0, r <= 2.0)
        w("")
        w(f"Our chain ÷ the native chain: **{r:.2f}×** (target ≤ 2×: {'met' if r <= 2.0 else 'NOT met'}).")
    if "ours-chain-one" in mem and "native-chain" in mem:
        r = mem["ours-chain-one"]["loaded_kib"] / mem["native-chain"]["loaded_kib"]
        verdicts["memory-one"] = (r, 1.5, r <= 1.5)
        w("")
        w(f"The one module (every filter built in) ÷ the native chain: **{r:.2f}×** (target ≤ 1.5×: "
          f"{'met' if r <= 1.5 else 'NOT met'}).")
        base = mem["native-chain"]["loaded_kib"]
        if "ours-chain-one-slim" in mem:
            slim = mem["ours-chain-one-slim"]["loaded_kib"]
            w("")
            w(f"The same chain in the one module built with only its three filters: {slim / 1024:.1f} MiB, "
              f"**{slim / base:.2f}×** the native chain.")
        if "ours-chain-one-norego" in mem:
            norego = mem["ours-chain-one-norego"]["loaded_kib"]
            w("")
            w(f"The same chain in the one module built with every filter but policy-authz: {norego / 1024:.1f} MiB, "
              f"**{norego / base:.2f}×** the native chain.")
        if "wasm-noop" in mem and "ceiling" in mem:
            noop, ceil = mem["wasm-noop"]["loaded_kib"], mem["ceiling"]["loaded_kib"]
            w("")
            w(f"An empty wasm module (the floor of any module): {noop / 1024:.1f} MiB, {noop / base:.2f}× the native "
              f"chain; {(noop - ceil) / 1024:.1f} MiB over no filter for its three V8 instances (one per worker, one "
              "on the main thread), before any filter's code or data.")
        rel, nrel = mem.get("ours-chain-one+release"), mem.get("native-chain+release")
        if rel and nrel:
            one = mem["ours-chain-one"]
            kept = (f" Without the setting the allocator held {one['kept_kib'] / 1024:.1f} MiB freed and kept "
                    f"(in use: {one['in_use_kib'] / 1024:.1f} MiB, against {mem['native-chain']['in_use_kib'] / 1024:.1f} "
                    "MiB for the native chain)." if "kept_kib" in one and "in_use_kib" in mem["native-chain"] else "")
            w("")
            w(f"With freed memory handed back to the system on both sides (`memory_allocator_manager`), the one module "
              f"is {rel['loaded_kib'] / 1024:.1f} MiB against {nrel['loaded_kib'] / 1024:.1f} MiB: "
              f"**{rel['loaded_kib'] / nrel['loaded_kib']:.2f}×** the native chain.{kept} The target above is judged "
              "without the setting, as Envoy runs by default.")
    w("")

    w("## Targets")
    w("")
    w("| target | measured | |")
    w("| --- | --- | --- |")
    for row, (ratio, target, ok) in verdicts.items():
        if row.startswith("size-"):
            w(f"| {row[5:]} module ≤ {target // 1024:,} KB | {ratio:,} bytes | {'met' if ok else 'NOT met'} |")
        elif row == "payload-guard":
            w(f"| payload-guard, 1 KB body < 25 µs of Envoy CPU per request | {ratio:.1f} µs | {'met' if ok else 'NOT met'} |")
        elif row == "exchange-cached":
            w(f"| identity-exchange cached < 10 µs of Envoy CPU per request | {ratio:.1f} µs | {'met' if ok else 'NOT met'} |")
        elif row == "exchange-cached-one":
            w(f"| identity-exchange cached, as a stage of the one module, < 10 µs of Envoy CPU per request | "
              f"{ratio:.1f} µs | {'met' if ok else 'NOT met'} |")
        elif row == "introspection-cached":
            w(f"| token-introspection cached ≤ 1.10× jwt-auth warm (Envoy CPU added) | {ratio:.2f}× | {'met' if ok else 'NOT met'} |")
        elif row == "memory":
            w(f"| memory, our chain ≤ 2× native chain | {ratio:.2f}× | {'met' if ok else 'NOT met'} |")
        elif row == "memory-one":
            w(f"| memory, the one module ≤ 1.5× native chain | {ratio:.2f}× | {'met' if ok else 'NOT met'} |")
        else:
            w(f"| {row} ≥ {target:.2f} | {ratio:.2f} (by Envoy CPU: {cpu_ratios[row]:.2f}) | {'met' if ok else 'NOT met'} |")
    w("")
    w("## Gaps: the measured reason, and what would close them")
    w("")
    gaps = [k for k, v in verdicts.items() if not v[2]]
    if not gaps:
        w("Every target is met in this run.")
    for k in gaps:
        if k.startswith("cold-"):
            alg = k[5:]
            nat = mic["native"].get(alg, {}).get("us_per_verify")
            was = mic["wasm"].get(alg, {}).get("us_verify_estimate")
            ssl = mic["openssl"].get(alg)
            nu, ou = added.get(k, (0, 0))
            w(f"- **{k}** ({verdicts[k][0]:.2f} < {verdicts[k][1]:.2f}). In Envoy a cold request costs "
              f"{ou:.0f} µs of Envoy CPU more than no filter with ours, {nu:.0f} µs with native jwt_authn. The signature "
              "check dominates it: " + (f"jwt-auth's verification takes {nat:.0f} µs natively and ~{was:.0f} µs inside "
                                        f"the module on wasmtime ({was / nat:.1f}×)" if nat and was else "")
              + (f"; OpenSSL verifies in {ssl:.0f} µs" if ssl else "") + ". " + CLOSE[alg])
        elif k.startswith("size-"):
            if k == "size-shieldwall":
                w(f"- **shieldwall module** is {verdicts[k][0]:,} bytes (> {verdicts[k][1]:,}): policy-authz's Rego "
                  "interpreter (regorus) and payload-guard (its validator, pattern engine and injection checks, about "
                  "1 MB built for speed) are most of it; built without policy-authz alone (`--no-default-features --features …`; "
                  "bench/module-sizes.sh measures it, filters/shieldwall/README.md gives the figures) the module is "
                  "within 2 MB. Done: payload-guard's validator is the "
                  "project's own, with an ECMA-262 pattern engine without Unicode tables (the module was 3,982,833 "
                  "bytes with boon and the regex crate). What would close it for the default build: a smaller Rego "
                  "evaluator, or policies compiled ahead of time.")
            elif k == "size-policy-authz":
                scope = meta["sizes"].get("scope-authz")
                w(f"- **policy-authz module** is {verdicts[k][0]:,} bytes (> {verdicts[k][1]:,}): most of it is the "
                  "Rego interpreter (regorus), already built with only OPA's core built-ins "
                  "(filters/policy-authz/README.md)"
                  + (f"; scope-authz, a filter of the same shape without it, is {scope:,} bytes" if scope else "")
                  + ". What would close it: a smaller Rego evaluator, or policies compiled ahead of time into a "
                  "form the module runs without an interpreter.")
            elif k == "size-payload-guard":
                w(f"- **payload-guard module** is {verdicts[k][0]:,} bytes (> {verdicts[k][1]:,}): it is built for speed "
                  "(`opt-level = 3`) and carries the project's JSON Schema validator, its ECMA-262 pattern engine and "
                  "libinjectionrs (filters/payload-guard/README.md, Size and cost). What would close it: building the "
                  "module at `s`.")
            else:
                w(f"- **{k[5:]} module** is {verdicts[k][0]:,} bytes (> {verdicts[k][1]:,}). " + CLOSE["size"])
        elif k == "memory":
            w(f"- **memory** ({verdicts[k][0]:.2f}× > 2×). " + CLOSE["memory"])
        elif k == "memory-one":
            extra = ""
            if all(n in mem for n in ("wasm-noop", "ours-chain-one-slim", "native-chain")):
                base = mem["native-chain"]["loaded_kib"]
                extra = (f" Measured beside it: an empty module alone is {mem['wasm-noop']['loaded_kib'] / base:.2f}× "
                         "the native chain (the V8 instances themselves), and the one module built with only the "
                         f"chain's three filters {mem['ours-chain-one-slim']['loaded_kib'] / base:.2f}×.")
                big, small = meta["sizes"].get("shieldwall"), meta["sizes"].get("shieldwall-jwt-scope-ratelimit")
                if big and small and big > small:
                    d_mib = (mem["ours-chain-one"]["loaded_kib"] - mem["ours-chain-one-slim"]["loaded_kib"]) / 1024
                    extra += (f" Those two run the same configuration; the default build ({big:,} bytes) holds "
                              f"{d_mib:.1f} MiB more than the three-filter build ({small:,} bytes): "
                              f"{d_mib / ((big - small) / 1e6):.1f} MiB per MB of wasm across the instances, so what "
                              "this row measures grows with the module's size rather than with the chain's work.")
                if "ours-chain-one-norego" in mem:
                    extra += (" Built with every filter but policy-authz, the same chain's module is "
                              f"{mem['ours-chain-one-norego']['loaded_kib'] / base:.2f}× the native chain.")
                one, slim = mem["ours-chain-one"], mem["ours-chain-one-slim"]
                if all(k in m for m in (one, slim) for k in ("in_use_kib", "kept_kib")):
                    d_use = (one["in_use_kib"] - slim["in_use_kib"]) / 1024
                    d_kept = (one["kept_kib"] - slim["kept_kib"]) / 1024
                    d_rest = (one["loaded_kib"] - slim["loaded_kib"]) / 1024 - d_use - d_kept
                    extra += (f" Of what the default build holds more than the three-filter build, {d_use:.1f} MiB is "
                              f"in use in Envoy's allocator (V8's data for the module it compiled), {d_kept:.1f} MiB "
                              f"freed and kept by the allocator (memory V8 used and gave back, as while compiling: "
                              "Envoy's V8 compiles every function of a module with its optimising tier when it "
                              f"loads it), and {d_rest:.1f} MiB mapped by V8 itself (compiled "
                              "code, the instances' linear memories).")
                rel, nrel = mem.get("ours-chain-one+release"), mem.get("native-chain+release")
                if rel and nrel:
                    extra += (" With the allocator handing freed memory back (`memory_allocator_manager` in Envoy's "
                              f"bootstrap, on both sides), the one module is {rel['loaded_kib'] / nrel['loaded_kib']:.2f}× "
                              "the native chain.")
            big = meta["sizes"].get("shieldwall")
            of_wasm = f"{big / 1e6:.1f} MB of wasm, " if big else ""
            w(f"- **memory, the one module** ({verdicts[k][0]:.2f}× > 1.5×): every worker holds its own V8 instance of "
              f"the module, and the default build carries every filter ({of_wasm}most of it policy-authz's "
              f"Rego interpreter and payload-guard).{extra} What would close it: a build with only the "
              "filters you run (see the module sizes), smaller validators, freed memory handed back by Envoy's allocator "
              "(`memory_allocator_manager`), and less of each instance's own memory (its caches and heap) resident.")
        elif k == "payload-guard":
            w(f"- **payload-guard** ({verdicts[k][0]:.1f} µs > 25 µs): the strict parse of the body, the schema "
              "validation and libinjection's SQL check of every free-text string run inside the module; counted natively "
              "on this row's own document and body (filters/payload-guard/README.md, Size and cost) the SQL check is a "
              "third, the validation a quarter (24 items, each `sku` against its `pattern`), the parse a fifth and "
              "freeing the parsed tree a seventh. Done: the module is built at `opt-level = 3` with its validator and "
              "injection detector, and allocates small blocks from free lists (together 28 % fewer wasm instructions "
              "per request on the test host). What would close it: a faster SQL tokenizer than libinjectionrs's (its "
              "keyword lookup allocates and binary-searches per word), and a parse that validates without building "
              "the tree.")
        elif k == "exchange-cached":
            noop = added.get("diag-noop", (0, None))[1]
            floor = measured_floor(samples, ceiling_us, "exchange")
            names = call_counts(EXCHANGE_FLOOR_CALLS)
            w(f"- **identity-exchange cached** ({verdicts[k][0]:.1f} µs > 10 µs): a second module on the request pays the "
              "fixed cost of a wasm filter"
              + (f" (an empty module adds {noop:.1f} µs in this run)" if noop is not None else " (see diag-noop)")
              + " on top of its cache lookup, the header rewrite and the decision record."
              + (f" Its host calls on a cache hit ({names}; identity-exchange's "
                 "`the_cached_path_makes_only_the_calls_it_needs`), made by a module that does nothing else, add "
                 f"{floor:.1f} µs measured (diag-seq-exchange): "
                 + ("the measured floor stops this target for a module of its own; what moves it is fewer calls, "
                    "not faster code." if floor >= 10 else
                    f"{10 - floor:.1f} µs under the target, so the floor leaves it reachable; the "
                    f"{verdicts[k][0] - floor:.1f} µs above the floor are the module's own work in V8 and Envoy's side "
                    "of the values it hands over (a 300-byte identity read, a 400-byte token written).")
                 if floor is not None else "")
              + " What would close it: running it as a stage of the one module, where the fixed cost and the "
              "request line are paid once for the whole chain.")
        elif k == "exchange-cached-one":
            w(f"- **identity-exchange cached, one module** ({verdicts[k][0]:.1f} µs > 10 µs): what remains on a cache "
              "hit is the clock, the cache lookup keyed by the identity's bytes, the two header replacements (token "
              "and SPIFFE ID), a counted metric and the decision record; the request line and the identity come from the "
              "chain's memory. What would close it: one header write for both values where the proxy allows it.")
        elif k == "introspection-cached":
            w(f"- **token-introspection cached** ({verdicts[k][0]:.2f}× jwt-auth warm > 1.10×): both paths make the "
              "same host calls (each filter's test `a_cached_token_makes_only_the_calls_it_needs`) and both answer "
              "from a per-worker memo of exact tokens, so what is left is work inside the module: the claims "
              "checked again and the identity written from the remembered answer. The row is a ratio of two rows, "
              "each with its own spread from run to run, and only the introspection row is a diagnostic run that "
              "perf samples (see the diagnostics).")
        else:
            nu, ou = added.get(k, (0, 0))
            floor = added.get("diag-noop", (0, float("nan")))[1]
            modules = 3 if k == "chain" else 1
            ceiling_us = med(samples[("ceiling", "only")], "cpu_us")
            best = (ceiling_us + nu) / (ceiling_us + modules * floor) if floor == floor else float("nan")
            bound = (f"An empty wasm module (no host call at all) adds {floor:.1f} µs per request: the fixed cost of a "
                     f"wasm filter in this Envoy (its context for the stream, the calls into V8). With "
                     f"{modules} module{'s' if modules > 1 else ''} paying only that, the ratio by Envoy CPU could reach "
                     f"at most {best:.2f}. ")
            jwt_floor = added.get("diag-jwt-public", (0, float("nan")))[1]
            rl_floor = added.get("diag-rl-nomatch", (0, float("nan")))[1]
            def rest(part, what):
                r = ou - part
                if r < 2.0:
                    return (f"{what} itself adds less than this run tells apart from its noise (the two rows differ "
                            f"by {r:+.1f} µs). ")
                return f"the rest, {r:.1f} µs, {what}. "
            if k == "warm":
                fixed = (f"of that, {jwt_floor:.1f} µs is jwt-auth on a public route (no token looked at); "
                         + rest(jwt_floor, "the cache hit"))
            elif k == "ratelimit":
                fixed = (f"of that, {rl_floor:.1f} µs is rate-limit when no rule matches; "
                         + rest(rl_floor, "the rule's work"))
            else:
                fixed = (f"jwt-auth on a public route alone adds {jwt_floor:.1f} µs and rate-limit without a matching rule "
                         f"{rl_floor:.1f} µs. ")
            calls = FLOOR_CALLS.get(k)
            prices = hostcall_prices(samples, ceiling_us, floor)
            measured = measured_floor(samples, ceiling_us, k)
            if calls and prices:
                if measured is not None:
                    at_floor = measured
                    # The floor's uncertainty: one row's against another's, as the control row of the
                    # host-call table shows it (its price is that difference ÷ the calls per row).
                    spread = HOSTCALLS_PER_REQUEST * abs(prices["memory_copy"])
                    how = "measured, a module making just those calls"
                else:
                    at_floor = modules * floor + sum(prices[c] for c in calls)
                    # The floor's uncertainty: the control row's price (no host call) once per call.
                    spread = len(calls) * abs(prices["memory_copy"])
                    how = f"priced, with the empty module{'s' if modules > 1 else ''}"
                best_calls = (ceiling_us + nu) / (ceiling_us + at_floor)
                low = (ceiling_us + nu) / (ceiling_us + at_floor + spread)
                high = (ceiling_us + nu) / (ceiling_us + max(0.0, at_floor - spread))
                target = verdicts[k][1]
                if high < target:
                    verdict = "the measured floor stops this target. "
                elif low >= target:
                    verdict = "the floor leaves the target reachable; what stands between is above the floor. "
                else:
                    verdict = (f"within this run's noise of the target ({low:.2f} … {high:.2f} with the control row's "
                               "noise), so this run cannot say whether the floor stops it. ")
                bound += (f"With the host calls the path makes (the floor table: {len(calls)} calls, {at_floor:.1f} µs "
                          f"{how}), at most {best_calls:.2f}: " + verdict)
            extra = ""
            if k == "chain" and (steps := swap_steps(samples)):
                extra = " " + chain_by_module(steps, ceiling_us, nu, ou, verdicts[k][1], noop_call_ins(added))
            w(f"- **{k}** ({verdicts[k][0]:.2f} < {verdicts[k][1]:.2f}): ours adds {ou:.1f} µs of Envoy CPU per request "
              f"(native: {nu:.1f} µs); " + fixed + bound + CLOSE[k] + extra)
    w("")
    return "\n".join(lines) + "\n", "\n".join(table)


def noop_call_ins(added):
    """What exporting the response-header and log callbacks adds to the empty module (µs of Envoy CPU
    per request), or None when the run lacks either row."""
    if "diag-noop-exports" in added and "diag-noop" in added:
        return added["diag-noop-exports"][1] - added["diag-noop"][1]
    return None


def chain_by_module(steps, ceiling_us, nu, ou, target, call_ins=None):
    """The three-module chain's cost above its floor, module by module (the swap rows), and what
    the ratio would be if the modules' compiled code cost nothing. `call_ins`: what two more
    exported callbacks add to an empty module (noop_call_ins)."""
    parts = ", ".join(f"{m} {step:+.1f} µs" + (f" ({code:.1f} of it its compiled code)" if code is not None else "")
                      for m, step, code in steps)
    text = (f"Module by module (the chain one module at a time, above): beyond the host calls each makes, {parts}.")
    codes = [code for _, _, code in steps]
    if None not in codes:
        without = ou - sum(codes)
        best = (ceiling_us + nu) / (ceiling_us + without)
        text += (f" With no compiled code of their own at all, the three modules would still add {without:.1f} µs, a "
                 f"ratio of at most {best:.2f}: "
                 + ("below the target: the host calls and Envoy's side of running the three modules beyond them "
                    "(the larger values the real calls carry"
                    + (f"; not the calls into each module for the callbacks it exports: exporting the response-header "
                       f"and log callbacks adds {call_ins:+.1f} µs per request to an empty module, diag-noop-exports"
                       if call_ins is not None else "")
                    + ") stop it in this run. Faster code inside the modules cannot move that part; fewer crossings "
                    "can, as the one module shows." if best < target else
                    "faster code inside the modules could reach the target."))
    return text


CLOSE = {
    "RS256": "How it is verified now: the modulus' Montgomery parameters (-n⁻¹ mod 2³², R² mod n) are computed once at "
    "JWKS import, and a signature costs 18 Montgomery products of 64 32-bit limbs (e = 65537) plus a comparison with the "
    "whole expected PKCS#1 block; ring 0.17 rebuilt the modulus and R² on every call, in portable 32-bit code, about 3× "
    "slower in wasm. The rest of the gap: BoringSSL runs the same products in x86-64 assembly with 64-bit limbs and "
    "mulx/adx; wasm has no 64×64→128 multiply, so 32-bit limbs are the fastest scalar form. Measured and not adopted "
    "(2026-12-01): wasm SIMD in the shape it allows, 28-bit digits with the carries delayed to each column of the "
    "product and every column computed as dot products of `i64x2.extmul` steps (two 32×32→64-bit products per "
    "instruction), verified in 112 µs in V8 (Node 22) against 106 µs for the 32-bit code in the same build: the "
    "narrower digits need a third more products, and the SIMD multiply gains little more than that back. Nor "
    "(2026-12-05) product scanning with the low and high halves of the products summed apart per column (no product "
    "waits for the carry of the one before): 18 products of 64 limbs took 135 µs in V8 (Node 22, --no-liftoff), 101 µs "
    "with squarings that compute each cross product once, against 97 µs for the interleaved rows used now. What would "
    "close it: a 64×64→128-bit multiply in wasm (the wide-arithmetic proposal's `i64.mul_wide_u`; Envoy 1.40's V8 "
    "names neither the opcode nor a flag for it), and caching a verification per token (the warm path).",
    "ES256": "How it is verified now: a variable-time P-256 implementation (every input of a verification is public): "
    "Solinas reduction on 32-bit limbs, u1·G + u2·Q with both scalars cut into sixteen 16-bit pieces sharing one chain "
    "of 17 doublings, a fixed-base table for G built once per VM and a table for each key built at JWKS import, and "
    "s inverted by Bernstein and Yang's divsteps on 30-bit limbs. ring 0.17 on wasm32 used two constant-time scalar "
    "multiplications meant for private keys, about 5-10× slower. The rest of the gap is the field arithmetic without "
    "64-bit multiplies or assembly. What would close it: wasm SIMD for the field products, larger precomputed tables "
    "(at a memory cost per key).",
    "EdDSA": "How it is verified now: the crate's own variable-time edwards25519 arithmetic (ten 25/26-bit limbs "
    "with 64-bit products), the key decoded and a table for it built at JWKS import, a fixed-base table for B built "
    "once per VM, S and k cut into eight 32-bit pieces sharing one chain of 32 doublings, then one inversion to "
    "encode the sum and compare it with R (ring decoded the key on every call and doubled 253 times). What would "
    "close more: wasm SIMD for the field products, a check of R without the inversion.",
    "size": "What a single-filter module is made of, measured by function for jwt_auth.wasm (a build with a name "
    "section, grouped by crate, before wasm-opt): 478 KB of code before, 399 KB after the changes below "
    "(2026-12-01), of which shieldwall's core 22 %, the signature crate 16 %, serde_json 8 % (the JSON reader and "
    "writer every module needs), the rest mostly Rust's core and alloc. Done: the signature crate verifies every algorithm and hashes with its own code, so no module "
    "links ring through it (-22 KB in jwt_auth.wasm); jwt-auth and identity-exchange read their configuration by "
    "hand from a parsed JSON value (shieldwall_core::json_config) instead of serde's derived code, one "
    "`deserialize_struct` per configuration type, and with it went the float printing of serde's error messages "
    "(-57 KB in jwt_auth.wasm); identity-exchange reads PKCS#8 keys with its own DER reader (-24 KB); before that, "
    "error paths without a wrapper per serde visitor (-54 KB), EC keys checked at import by the signature crate "
    "(-46 KB), Binaryen's wasm-opt on every module (scripts/wasm-opt.sh, -14 %). What would close it for another "
    "module: the same hand-written configuration reading.",
    "memory": "What would close it: each wasm VM (one per module and worker) holds its own linear memory; a smaller "
    "initial memory and fewer retained allocations per VM.",
    "warm": "Done: the module exports only the callbacks it uses (no response, log or delete call-ins), "
    "the cache finds a token by a keyed 64-bit hash instead of SHA-256, the identity of a cached token is written as "
    "serialised once, the adapter reads the request header map once per callback (one crossing for the request "
    "line and the credential instead of three), and counters are counted in the VM and handed to Envoy on the tick "
    "(the path's two increments were two crossings; the ladder's metric rung shows what one costs now). What remains, measured: between the empty module and jwt-auth on a "
    "public route lies the per-stream work of shieldwall's adapter, rung by rung in the ladder table (a stream object "
    "per context, the request line from one read of the header map, also a call back into the VM to allocate, route "
    "matching, the decision record, a counted metric); the cache hit adds the host calls every token needs (the clock, any "
    "earlier identity, writing the identity, removing the credential), priced and measured in the floor table above. "
    "Above the floor, what the row costs is several times what the same path costs natively "
    "(the floor table's native column), and sampling Envoy's core shows little of it in the module's compiled code "
    "(the diagnostics' last column): the rest is Envoy's side of the calls into the module and the values the real "
    "calls carry. What would move it: fewer crossings per request (the one module pays them once for a chain).",
    "ratelimit": "The rule's work is the client address, the bucket's shared-data read and its CAS write (each a host "
    "call, the read also a call back into the VM for memory), priced in the floor table above. Done: the request line is one header-map read, "
    "and a rule may lease tokens (`lease_tokens`: a worker takes several per compare-and-swap and spends them "
    "locally, one shared-data read and write per lease instead of per request, at the cost of exactness across "
    "workers; the row diag-rl-lease measures it). The row itself keeps the exact default, as native "
    "local_ratelimit is exact across workers.",
    "chain": "Three modules pay the per-stream cost of the adapter three times (see warm), and scope-authz reads the "
    "identity jwt-auth wrote (rate-limit keyed by client address does not read it). Done: scope-authz reads the identity "
    "in one pass into its fields and leaves the token's claims unparsed unless a rule needs them (half of its compiled "
    "code per request before; bench/guest_profile.py samples it). What would close it: the one module (chain-one), "
    "which pays the per-stream cost once.",
    "chain-one": "One module pays the per-stream cost of a wasm filter once instead of three times, but still runs the "
    "three filters' own work: jwt-auth's cache hit, scope-authz's rule, rate-limit's shared-data bucket, and each "
    "stage's decision record (a property write). Done: the request headers are read once for all stages, the request line "
    "is parsed once for them, the identity and the decisions pass between stages in memory, the clock is read once per callback for all stages, and a "
    "stage's debug message (scope-authz's on every allowed request) crosses to Envoy only at a level it prints. Natively the three stages take a few µs (the floor section); the "
    "rest is running them in V8. What would close more where exactness across workers may give: rate-limit's "
    "`lease_tokens` (no shared-data read and write on most requests; see diag-rl-lease), which the row does not "
    "use.",
    "full-one": "Seven stages in one module: audit-log's record alone reads some twenty properties (its floor above), "
    "payload-guard looks up the operation, identity-exchange replaces the token and sets the SPIFFE ID, each stage "
    "records its decision; native's side is three filters and an access log. What would close it: audit-log taking "
    "Envoy's own fields from the access-log format instead of property reads, and the items of chain-one.",
}


def scale_section(w, sc, meta):
    w(f"## {SCALE_WORKERS} Envoy workers")
    w("")
    w(f"One Envoy with `--concurrency {SCALE_WORKERS}` and wrk with {SCALE_WORKERS} threads ({meta['connections']} "
      "connections), none pinned: Envoy's workers and the load generator share every core, so the shared-data "
      "paths (rate-limit buckets, key sets) see contention between workers. Ours and native back to back in each "
      "round, order reversed every other round; medians over rounds.")
    w("")
    w("| variant | native req/s | ours req/s | ours/native | native CPU µs/req | ours CPU µs/req | ours/native by Envoy CPU |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row, label, _, _ in SCALE_ROWS:
        n, o = sc.get(f"{row}|native"), sc.get(f"{row}|ours")
        if not n or not o:
            continue
        ratio = statistics.median(b["rps"] / a["rps"] for a, b in zip(n, o))
        cpu_ratio = statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in zip(n, o))
        w(f"| {label} | {fmt_rps(med(n, 'rps'))} | {fmt_rps(med(o, 'rps'))} | **{ratio:.2f}** | "
          f"{med(n, 'cpu_us'):.1f} | {med(o, 'cpu_us'):.1f} | {cpu_ratio:.2f} |")
    w("")


def churn_section(w, ch):
    w("## Rate limit under key churn")
    w("")
    w(f"Every request from another client address: `x-forwarded-for: 10.x.y.z`, {CHURN_CLIENTS:,} addresses cycling, "
      "trusted by the connection manager (`xff_num_trusted_hops: 1`), one bucket per address, a limit no client "
      f"reaches. One Envoy per side with `--concurrency {SCALE_WORKERS}`, wrk (1 thread) unpinned, "
      f"{ch.get('ours', ch.get('native', {})).get('seconds', CHURN_SECONDS)} s. Native: `local_ratelimit` with a "
      "descriptor on `remote_address` without a value (a bucket per address, `max_dynamic_descriptors` = the number "
      "of addresses). Ours: `rate-limit` keyed by `client_ip`.")
    w("")
    w("| side | req/s | distinct clients sent | Envoy CPU µs/req | VmRSS after start | VmRSS after the run |")
    w("| --- | ---: | ---: | ---: | ---: | ---: |")
    for side in ("native", "ours"):
        m = ch.get(side)
        if not m:
            continue
        w(f"| {side} | {fmt_rps(m['rps'])} | {m['distinct']:,} | {m['cpu_us']:.1f} | {m['idle_kib'] / 1024:.1f} MiB | "
          f"{m['loaded_kib'] / 1024:.1f} MiB |")
    if "native" in ch and "ours" in ch:
        w("")
        w(f"Ours ÷ native: throughput {ch['ours']['rps'] / ch['native']['rps']:.2f}, VmRSS after the run "
          f"{ch['ours']['loaded_kib'] / ch['native']['loaded_kib']:.2f}×.")
    w("")


def attack_section(w, atk):
    w("## Under attack: a flood of bad signatures")
    w("")
    w(f"Two wrk processes share CPU {LOAD_CPU}, {max(1, CONNECTIONS // 2)} connections each, against the one Envoy worker: a "
      f"good client sending a new valid {ATTACK_ALG} token on every request (`x-forwarded-for: {GOOD_CLIENT}`), and an "
      f"attacker sending the same tokens with one signature character changed, as fast as it can (`x-forwarded-for: {ATTACKER}`). The listeners stand behind one "
      "trusted proxy (`xff_num_trusted_hops: 1`) where the budget is on, so each is its own client. The budget: "
      "`failed_verification_budget: {failures: 10, per: minute}`. Medians over rounds.")
    w("")
    w("| run | good client req/s | good p50 / p99 | good ÷ alone | attacker req/s | attacker refused with 429 |")
    w("| --- | ---: | ---: | ---: | ---: | ---: |")
    for key, label, _, attacked, base in ATTACK_RUNS:
        runs = atk.get(key)
        if not runs or not atk.get(base):
            continue
        g = med(runs, "good_rps")
        alone = med(atk[base], "good_rps")
        share = "—"
        if attacked:
            n = sum(r["bad_requests"] for r in runs)
            share = f"{100 * sum(r['bad_429'] for r in runs) / max(1, n):.1f} %"
        w(f"| {label} | {fmt_rps(g)} | {med(runs, 'good_p50'):.0f} / {med(runs, 'good_p99'):.0f} µs | "
          f"{g / alone:.2f} | {fmt_rps(med(runs, 'bad_rps')) if attacked else '—'} | {share} |")
    w("")
    w("*good ÷ alone* is the good client's throughput with the attacker beside it as a fraction of its throughput "
      "alone on the same side (ours: the budget listener; without an attacker the budget is never touched). Without a budget every bad token costs a full signature check. With the budget, once the attacker's "
      "first 10 failures are spent, each of its requests that would need a signature check is refused after one "
      "shared-data read. Native `jwt_authn` has no such budget; its row shows the same flood against it.")
    w("")


def write_outputs(samples, mem, mic, meta, atk):
    text, table = report(samples, mem, mic, meta, atk)
    with open(RESULTS, "w") as f:
        f.write(text)
    if os.path.exists(README) and not meta.get("only"):
        readme = read(README)
        new = re.sub(r"(<!-- bench:table -->\n).*?(\n<!-- /bench:table -->)",
                     lambda mm: f"{mm.group(1)}Measured {meta['date']}, Envoy {meta['envoy_version']}, "
                     f"{meta['nproc']} CPUs ({meta['cpu']}); load average during the runs "
                     f"{meta['load_min']:.2f} … {meta['load_max']:.2f}.\n\n{table}{mm.group(2)}",
                     readme, flags=re.S)
        with open(README, "w") as f:
            f.write(new)
    print(text)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--write-payload":
        # The payload-guard row's document and body, for counting its work natively
        # (filters/payload-guard/examples/request_cost.rs).
        os.makedirs(sys.argv[2], exist_ok=True)
        with open(os.path.join(sys.argv[2], "openapi.json"), "w") as f:
            json.dump(BENCH_OPENAPI, f)
        with open(os.path.join(sys.argv[2], "body.json"), "w") as f:
            f.write(BENCH_BODY)
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--report-from":
        # Render RESULTS.md again from a run's raw figures (bench/results.json), without measuring.
        raw = json.loads(read(sys.argv[2]))
        samples = {tuple(k.split("|")): v for k, v in raw["samples"].items()}
        write_outputs(samples, raw["memory"], raw["micro"], raw["meta"], raw.get("attack", {}))
        return
    workdir = tempfile.mkdtemp(prefix="shieldwall-bench-")
    load_before = loadavg()
    sizes = {name: os.path.getsize(os.path.join(WASM_DIR, f)) for name, f in MODULES.items()}
    say(f"load average before the run: {load_before:.2f}; work files in {workdir}")
    def phase(name, skip_var=None):
        if ONLY:
            return name in ONLY
        return not (skip_var and ENV.get(skip_var) == "1")

    mem = {}
    samples = throughput(workdir)
    if phase("memory", "BENCH_SKIP_MEMORY"):
        mem = memory(workdir)
    sc = scale(workdir) if phase("scale", "BENCH_SKIP_SCALE") else {}
    ch = churn(workdir) if phase("churn", "BENCH_SKIP_CHURN") else {}
    atk = {}
    if phase("attack", "BENCH_SKIP_ATTACK"):
        atk = attack(workdir)
    mic = micro() if phase("micro") else {"native": {}, "wasm": {}, "openssl": {}}
    all_runs = [m for runs in samples.values() for m in runs]
    version = subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version: (\S+)", version)
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wm = re.search(r"wrk (\S+)", wrk_version.stdout + wrk_version.stderr)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "mem_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "kernel": f"Linux {platform.release()}",
        "envoy_version": m.group(1) if m else version.strip(),
        "wrk_version": wm.group(1) if wm else "?",
        "load_before": load_before,
        "sizes": sizes,
        "seconds": SECONDS,
        "rounds": ROUNDS,
        "warmup": WARMUP,
        "connections": CONNECTIONS,
        "memory_seconds": MEMORY_SECONDS,
        "envoy_cpu": ENVOY_CPU,
        "load_cpu": LOAD_CPU,
        "load_min": min(r["load"] for r in all_runs),
        "load_max": max(r["load"] for r in all_runs),
        "other_median": statistics.median(r["other_cores"] for r in all_runs),
        "other_max": max(r["other_cores"] for r in all_runs),
        "only": ONLY,
        "scale": sc,
        "churn": ch,
        "scale_workers": SCALE_WORKERS,
        "churn_clients": CHURN_CLIENTS,
        "sink": SINK,
    }
    raw_name = "results-only.json" if ONLY else "results.json"
    with open(os.path.join(os.path.dirname(RESULTS), raw_name), "w") as f:
        json.dump({"samples": {f"{k[0]}|{k[1]}": v for k, v in samples.items()}, "memory": mem, "micro": mic,
                   "meta": meta, "attack": atk}, f, indent=1)
    write_outputs(samples, mem, mic, meta, atk)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
