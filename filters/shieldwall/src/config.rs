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

/// Checks a configuration without a proxy: the module's own fields, then each entry's
/// configuration with its filter's parser (errors under `chain[i].config`). `build` does this
/// and more (a filter's configure may also read the proxy), so what passes here may still be
/// refused at load for a reason that needs the proxy; nothing refused here loads.
pub fn validate(bytes: &[u8]) -> Result<Vec<FilterKind>, ConfigError> {
    let config: Config = parse_json(bytes)?;
    check_list(&config)?;
    for (i, entry) in config.chain.iter().enumerate() {
        let text = entry.config.as_ref().map_or("", |raw| raw.get()).as_bytes();
        let parsed = match entry.filter {
            FilterKind::JwtAuth => jwt_auth::config::Config::parse(text).map(drop),
            FilterKind::ScopeAuthz => scope_authz::config::Config::parse(text).map(drop),
            FilterKind::RateLimit => rate_limit::config::Config::parse(text).map(drop),
        };
        parsed.map_err(|e| e.within(&format!("chain[{i}].config")))?;
    }
    Ok(config.chain.iter().map(|e| e.filter).collect())
}

/// What the list itself must be: not empty, not too long, each filter once.
fn check_list(config: &Config) -> Result<(), ConfigError> {
    if config.chain.is_empty() {
        return Err(ConfigError::new("chain", "lists no filter"));
    }
    if config.chain.len() > MAX_STAGES {
        return Err(ConfigError::new(
            "chain",
            format!("more than {MAX_STAGES} filters"),
        ));
    }
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
    }
    Ok(())
}

/// Parses the configuration and configures each filter in order.
pub fn build(host: &mut dyn Host, bytes: &[u8]) -> Result<Chain, ConfigError> {
    let config: Config = parse_json(bytes)?;
    check_list(&config)?;
    let mut builder = ChainBuilder::new();
    for (i, entry) in config.chain.iter().enumerate() {
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
