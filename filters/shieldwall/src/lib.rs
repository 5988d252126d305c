//! shieldwall: every shieldwall filter in one module. The configuration lists the filters to run,
//! in order, each with its own configuration:
//!
//! ```json
//! {"chain": [{"filter": "jwt-auth", "config": {}},
//!            {"filter": "scope-authz", "config": {}},
//!            {"filter": "rate-limit", "config": {}}]}
//! ```
//!
//! Each `config` is parsed by that filter's own code (same validation, same error paths, under
//! `chain[i].config`); the filters run through core's [`shieldwall_core::chain`], one VM context
//! per request.
//!
//! Each filter is a cargo feature of this crate, named as in `chain[i].filter`; the default build
//! has them all. A build with fewer (`--no-default-features --features jwt-auth,scope-authz`)
//! is a smaller module and refuses, at configuration, a chain entry naming a filter it lacks.

pub mod config;

#[cfg(test)]
mod tests;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;

use shieldwall_core::chain::{Chain, ChainStream};
use shieldwall_core::{CalloutResponse, ConfigError, GrpcResponse, Host, RootFilter};

pub use config::FilterKind;

/// The root filter of the module: a chain of the filters its configuration lists.
pub struct Shieldwall {
    chain: Chain,
}

impl Shieldwall {
    /// The filters' names (`jwt_auth`, …), in the order they run.
    pub fn stages(&self) -> Vec<&'static str> {
        self.chain.names()
    }
}

impl RootFilter for Shieldwall {
    type Stream = ChainStream;
    const NAME: &'static str = "chain";
    // Each stage records its own decision under its own name.
    const RECORDS_DECISIONS: bool = false;

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError> {
        let chain = config::build(host, config)?;
        let h: &dyn Host = host;
        h.info(&format!("shieldwall: chain {}", chain.names().join(" -> ")));
        if FilterKind::compiled_in().len() < FilterKind::ALL.len() {
            let built: Vec<&str> = FilterKind::compiled_in()
                .into_iter()
                .map(FilterKind::name)
                .collect();
            h.info(&format!("shieldwall: this build has {}", built.join(", ")));
        }
        Ok(Shieldwall { chain })
    }

    fn new_stream(&mut self, host: &mut dyn Host, context_id: u32) -> ChainStream {
        self.chain.new_stream(host, context_id)
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        self.chain.on_tick(host)
    }

    fn on_http_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: CalloutResponse,
    ) {
        self.chain.on_http_call_response(host, token, response)
    }

    fn on_grpc_call_response(&mut self, host: &mut dyn Host, token: u32, response: GrpcResponse) {
        self.chain.on_grpc_call_response(host, token, response)
    }
}
