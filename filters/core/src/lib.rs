//! shieldwall-core: what every shieldwall filter shares.
//!
//! - [`host::Host`]: the proxy as a trait, so filter logic is tested natively;
//! - [`filter`]: the `RootFilter`/`StreamFilter` traits a filter implements;
//! - [`chain`]: several filters run in order as one (one VM context per request);
//! - [`config`]: configuration errors that name the field path;
//! - [`credential`]: token locations, the one credential of a request, its removal upstream;
//! - [`authn`]: what the authenticating filters share beyond the credential;
//! - [`budget`]: the per-client budget of failed verifications;
//! - [`claims`]: the registered claims (`iss`, `aud`, `exp`, `nbf`, `iat`) and their checks;
//! - [`memo`]: a per-worker memo of exact tokens, bounded and expiring;
//! - [`identity`]: the identity context filters pass to each other, and where a deciding filter
//!   takes it from (`identity_from`: ours, or Envoy's `jwt_authn` through [`metadata`]);
//! - [`reply`]: RFC 6750 deny replies with small JSON bodies;
//! - [`decision`]: each filter's decision (allow, deny, shadow deny) recorded for the audit log;
//! - [`route`]: path normalisation and route matching;
//! - [`shared`]: shared-data keys, the bounded CAS loop and the background-work lease;
//! - [`metrics`]: one metric naming scheme;
//! - [`bucket`] and [`slots`]: token buckets (integer arithmetic) kept per key in a bounded
//!   shared-data table, so all workers of an Envoy draw from one bucket per key;
//! - [`client_ip`]: the client address, from the connection or trusted `x-forwarded-for` hops;
//! - [`pool`]: the modules' allocator (small blocks from per-size free lists);
//! - [`hash`]: a cheap hasher for maps whose keys no client chooses (context ids, metric names);
//! - `wasm` (wasm32 only): the single adapter from the proxy-wasm ABI to the traits above.

pub mod authn;
pub mod binding;
pub mod bucket;
pub mod budget;
pub mod chain;
pub mod claims;
pub mod client_ip;
pub mod config;
pub mod credential;
pub mod decision;
pub mod filter;
pub mod hash;
pub mod host;
pub mod identity;
pub mod json_config;
pub mod json_text;
pub mod memo;
pub mod metadata;
pub mod metrics;
#[allow(unsafe_code)]
pub mod pool;
pub mod reply;
pub mod route;
pub mod shared;
pub mod slots;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tick;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
pub mod wasm;
pub mod wire;

pub use config::ConfigError;
pub use decision::Decision;
pub use filter::{Action, RootFilter, StreamFilter};
pub use host::{CalloutResponse, GrpcResponse, Host, HostError, LogLevel, MetricKind};
pub use identity::{Identity, IdentityFrom};
pub use reply::Reply;
pub use route::{PathOptions, RequestLine, RouteMatch, RouteMatchConfig};
