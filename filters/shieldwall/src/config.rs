//! The module's configuration: the list of filters to run and each one's own configuration.

use serde::Deserialize;
use serde_json::value::RawValue;
use shieldwall_core::chain::{Chain, ChainBuilder, Stage, MAX_STAGES};
use shieldwall_core::config::parse_json;
use shieldwall_core::{ConfigError, Host, RootFilter};

/// The filters this module can run, by the names the configuration uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilterKind {
    JwtAuth,
    ScopeAuthz,
    RateLimit,
}

impl FilterKind {
    /// The name in the configuration (`jwt-auth`).
    pub fn name(self) -> &'static str {
        match self {
            FilterKind::JwtAuth => "jwt-auth",
            FilterKind::ScopeAuthz => "scope-authz",
            FilterKind::RateLimit => "rate-limit",
        }
    }

    fn configure(self, host: &mut dyn Host, config: &[u8]) -> Result<Box<dyn Stage>, ConfigError> {
        fn boxed<F: RootFilter>(
            host: &mut dyn Host,
            config: &[u8],
        ) -> Result<Box<dyn Stage>, ConfigError> {
            F::configure(host, config).map(|f| Box::new(f) as Box<dyn Stage>)
        }
        match self {
            FilterKind::JwtAuth => boxed::<jwt_auth::filter::JwtAuth>(host, config),
            FilterKind::ScopeAuthz => boxed::<scope_authz::ScopeAuthz>(host, config),
            FilterKind::RateLimit => boxed::<rate_limit::filter::RateLimit>(host, config),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    chain: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    filter: FilterKind,
    /// The filter's own configuration, as written; absent is the filter's empty configuration.
    #[serde(default)]
    config: Option<Box<RawValue>>,
}

/// Parses the configuration and configures each filter in order.
pub fn build(host: &mut dyn Host, bytes: &[u8]) -> Result<Chain, ConfigError> {
    let config: Config = parse_json(bytes)?;
    if config.chain.is_empty() {
        return Err(ConfigError::new("chain", "lists no filter"));
    }
    if config.chain.len() > MAX_STAGES {
        return Err(ConfigError::new(
            "chain",
            format!("more than {MAX_STAGES} filters"),
        ));
    }
    let mut builder = ChainBuilder::new();
    for (i, entry) in config.chain.iter().enumerate() {
        // Two copies of one filter would share its shared-data keys (they are named by filter
        // and plugin), so each filter appears once.
        if let Some(j) = config
            .chain
            .iter()
            .take(i)
            .position(|e| e.filter == entry.filter)
        {
            return Err(ConfigError::new(
                format!("chain[{i}].filter"),
                format!(
                    "{} is already chain[{j}]; a filter appears once in the chain",
                    entry.filter.name()
                ),
            ));
        }
        let text = entry.config.as_ref().map_or("", |raw| raw.get());
        let kind = entry.filter;
        let added = builder.add(host, |h| kind.configure(h, text.as_bytes()));
        match added {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(e.within(&format!("chain[{i}].config"))),
            None => return Err(ConfigError::new("chain", "too many filters")),
        }
    }
    Ok(builder.build())
}
