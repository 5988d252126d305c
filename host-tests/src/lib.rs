//! A proxy-wasm host on wasmtime that runs shieldwall's real release `.wasm` modules the way
//! Envoy does. See the crate README for the API, an example, and where it differs from Envoy.

mod abi;
mod envoy;
pub mod jws;
mod model;
pub mod scenarios;
pub mod state;
mod vm;
mod worker;

pub use envoy::Envoy;
pub use model::{Connection, LocalReply, Message, Outcome, Request, Response, Tls};
pub use state::metrics::{Metric, MetricKind};
pub use state::upstreams::{
    CalloutRequest, CalloutResponse, Cluster, GrpcReply, GrpcRequest, Reply, TimeoutBehavior,
};
pub use vm::{target_dir, GuestTrap, LogLevel, LogLine, Plugin, FLUSH_ENV};
pub use worker::{Stream, Worker};

use std::path::PathBuf;

/// The release module of a workspace crate: `<target>/wasm32-wasip1/release/<name>.wasm`.
/// Panics with the build command when it is missing.
pub fn wasm_path(name: &str) -> PathBuf {
    let file = name.replace('-', "_");
    let p = target_dir()
        .join("wasm32-wasip1")
        .join("release")
        .join(format!("{file}.wasm"));
    if !p.exists() {
        panic!(
            "{} is missing: build it first with `cargo build --release --target wasm32-wasip1 -p {name}`",
            p.display()
        );
    }
    p
}
