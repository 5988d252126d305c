//! The module's configuration: the list of filters to run and each one's own configuration.

use serde::de::IgnoredAny;
use serde::Deserialize;
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
    MtlsIdentity,
    TokenIntrospection,
    AuditLog,
    IdentityExchange,
    PayloadGuard,
    PolicyAuthz,
}

impl FilterKind {
    /// Every filter the module knows by name, compiled in or not.
    pub const ALL: [FilterKind; 9] = [
        FilterKind::AuditLog,
        FilterKind::MtlsIdentity,
        FilterKind::JwtAuth,
        FilterKind::TokenIntrospection,
        FilterKind::ScopeAuthz,
        FilterKind::RateLimit,
        FilterKind::PayloadGuard,
        FilterKind::PolicyAuthz,
        FilterKind::IdentityExchange,
    ];

    /// The name in the configuration (`jwt-auth`), which is also the name of its cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            FilterKind::JwtAuth => "jwt-auth",
            FilterKind::ScopeAuthz => "scope-authz",
            FilterKind::RateLimit => "rate-limit",
            FilterKind::MtlsIdentity => "mtls-identity",
            FilterKind::TokenIntrospection => "token-introspection",
            FilterKind::AuditLog => "audit-log",
            FilterKind::IdentityExchange => "identity-exchange",
            FilterKind::PayloadGuard => "payload-guard",
            FilterKind::PolicyAuthz => "policy-authz",
        }
    }

    /// Whether this build of the module contains the filter (its cargo feature was on).
    pub fn compiled(self) -> bool {
        match self {
            FilterKind::JwtAuth => cfg!(feature = "jwt-auth"),
            FilterKind::ScopeAuthz => cfg!(feature = "scope-authz"),
            FilterKind::RateLimit => cfg!(feature = "rate-limit"),
            FilterKind::MtlsIdentity => cfg!(feature = "mtls-identity"),
            FilterKind::TokenIntrospection => cfg!(feature = "token-introspection"),
            FilterKind::AuditLog => cfg!(feature = "audit-log"),
            FilterKind::IdentityExchange => cfg!(feature = "identity-exchange"),
            FilterKind::PayloadGuard => cfg!(feature = "payload-guard"),
            FilterKind::PolicyAuthz => cfg!(feature = "policy-authz"),
        }
    }

    /// The filters this build contains, in the order of [`FilterKind::ALL`].
    pub fn compiled_in() -> Vec<FilterKind> {
        FilterKind::ALL
            .into_iter()
            .filter(|k| k.compiled())
            .collect()
    }

    /// The error for a chain entry naming a filter this build does not contain.
    fn not_in_build(self, index: usize) -> ConfigError {
        let built: Vec<&str> = FilterKind::compiled_in()
            .into_iter()
            .map(FilterKind::name)
            .collect();
        ConfigError::new(
            format!("chain[{index}].filter"),
            format!(
                "{name} is not in this build (it has {built}); rebuild with feature `{name}` \
                 (cargo build --release --target wasm32-wasip1 -p shieldwall --features {name}), \
                 or use the default build, which has every filter",
                name = self.name(),
                built = if built.is_empty() {
                    "none".to_string()
                } else {
                    built.join(", ")
                },
            ),
        )
    }

    fn configure(
        self,
        host: &mut dyn Host,
        config: &[u8],
        index: usize,
    ) -> Result<Box<dyn Stage>, ConfigError> {
        #[allow(dead_code)]
        fn boxed<F: RootFilter>(
            host: &mut dyn Host,
            config: &[u8],
        ) -> Result<Box<dyn Stage>, ConfigError> {
            F::configure(host, config).map(|f| Box::new(f) as Box<dyn Stage>)
        }
        let _ = (&host, config);
        match self {
            #[cfg(feature = "jwt-auth")]
            FilterKind::JwtAuth => boxed::<jwt_auth::filter::JwtAuth>(host, config),
            #[cfg(feature = "scope-authz")]
            FilterKind::ScopeAuthz => boxed::<scope_authz::ScopeAuthz>(host, config),
            #[cfg(feature = "rate-limit")]
            FilterKind::RateLimit => boxed::<rate_limit::filter::RateLimit>(host, config),
            #[cfg(feature = "mtls-identity")]
            FilterKind::MtlsIdentity => boxed::<mtls_identity::filter::MtlsIdentity>(host, config),
            #[cfg(feature = "token-introspection")]
            FilterKind::TokenIntrospection => {
                boxed::<token_introspection::filter::TokenIntrospection>(host, config)
            }
            #[cfg(feature = "audit-log")]
            FilterKind::AuditLog => boxed::<audit_log::filter::AuditLog>(host, config),
            #[cfg(feature = "identity-exchange")]
            FilterKind::IdentityExchange => {
                boxed::<identity_exchange::IdentityExchange>(host, config)
            }
            #[cfg(feature = "payload-guard")]
            FilterKind::PayloadGuard => boxed::<payload_guard::PayloadGuard>(host, config),
            #[cfg(feature = "policy-authz")]
            FilterKind::PolicyAuthz => boxed::<policy_authz::PolicyAuthz>(host, config),
            #[allow(unreachable_patterns)]
            _ => Err(self.not_in_build(index)),
        }
    }

    /// Checks the filter's own configuration without a proxy (see [`validate`]).
    fn check(self, text: &[u8], index: usize) -> Result<(), ConfigError> {
        if !self.compiled() {
            return Err(self.not_in_build(index));
        }
        let _ = text;
        let parsed: Result<(), ConfigError> = match self {
            #[cfg(feature = "jwt-auth")]
            FilterKind::JwtAuth => jwt_auth::config::Config::parse(text).map(drop),
            #[cfg(feature = "scope-authz")]
            FilterKind::ScopeAuthz => scope_authz::config::Config::parse(text).map(drop),
            #[cfg(feature = "rate-limit")]
            FilterKind::RateLimit => rate_limit::config::Config::parse(text).map(drop),
            #[cfg(feature = "mtls-identity")]
            FilterKind::MtlsIdentity => mtls_identity::config::Config::parse(text).map(drop),
            // Without a proxy there is no environment: a `client_secret_env` is taken as set
            // (at load, a variable that is not there refuses the configuration).
            #[cfg(feature = "token-introspection")]
            FilterKind::TokenIntrospection => {
                token_introspection::config::Config::parse(text, &|_| {
                    Some("(from the environment)".to_string())
                })
                .map(drop)
            }
            // The same for the chain key's variable.
            #[cfg(feature = "audit-log")]
            FilterKind::AuditLog => audit_log::config::Config::parse(text, &|_| {
                Some("(from the environment)".to_string())
            })
            .map(drop),
            // Its signing key is read from the environment and parsed at load; without a proxy
            // only the configuration's shape and fields are checked here.
            #[cfg(feature = "identity-exchange")]
            FilterKind::IdentityExchange => {
                identity_exchange::config::ConfigFile::parse(text).map(drop)
            }
            #[cfg(feature = "payload-guard")]
            FilterKind::PayloadGuard => payload_guard::Config::parse(text).map(drop),
            #[cfg(feature = "policy-authz")]
            FilterKind::PolicyAuthz => policy_authz::Config::parse(text).map(drop),
            #[allow(unreachable_patterns)]
            _ => Ok(()),
        };
        parsed.map_err(|e| e.within(&format!("chain[{index}].config")))
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
    /// The filter's own configuration; absent is the filter's empty configuration. Only its
    /// presence is read here: the text itself is cut from the document (`config_texts`), so the
    /// filter's parser sees exactly what the operator wrote.
    #[serde(default)]
    config: Option<IgnoredAny>,
}

/// Each entry's `config` exactly as written in the document (empty where an entry has none).
///
/// The document has already been parsed (so it is well-formed JSON and `chain`, its entries and
/// their `config` appear once each); this walks its bytes to the value of every
/// `chain[i].config`. A member name written with escapes (`"\u0063onfig"`) is not found by the
/// walk: rather than run a filter without its configuration, that is refused.
fn config_texts<'a>(bytes: &'a [u8], config: &Config) -> Result<Vec<&'a [u8]>, ConfigError> {
    let spans = config_spans(bytes, config.chain.len());
    config
        .chain
        .iter()
        .zip(spans)
        .enumerate()
        .map(|(i, (entry, span))| match (&entry.config, span) {
            (None, _) => Ok(&b""[..]),
            (Some(_), Some((start, end))) => Ok(bytes.get(start..end).unwrap_or_default()),
            (Some(_), None) => Err(ConfigError::new(
                format!("chain[{i}].config"),
                "not found in the text: write the member names `chain` and `config` without escapes",
            )),
        })
        .collect()
}

/// Byte ranges of the `chain[i].config` values of a well-formed document.
fn config_spans(bytes: &[u8], entries: usize) -> Vec<Option<(usize, usize)>> {
    let mut spans = vec![None; entries];
    let mut s = Scanner { bytes, at: 0 };
    s.blank();
    if !s.eat(b'{') {
        return spans;
    }
    loop {
        s.blank();
        if s.eat(b'}') || s.at >= bytes.len() {
            break;
        }
        let key = s.string();
        s.blank();
        s.eat(b':');
        s.blank();
        if key == b"chain" && s.peek() == Some(b'[') {
            s.eat(b'[');
            let mut index = 0usize;
            loop {
                s.blank();
                if s.eat(b']') || s.at >= bytes.len() {
                    break;
                }
                if s.eat(b'{') {
                    loop {
                        s.blank();
                        if s.eat(b'}') || s.at >= bytes.len() {
                            break;
                        }
                        let member = s.string();
                        s.blank();
                        s.eat(b':');
                        s.blank();
                        let start = s.at;
                        s.skip_value();
                        if member == b"config" {
                            if let Some(slot) = spans.get_mut(index) {
                                *slot = Some((start, s.at));
                            }
                        }
                        s.blank();
                        s.eat(b',');
                    }
                } else {
                    s.skip_value();
                }
                index += 1;
                s.blank();
                s.eat(b',');
            }
        } else {
            s.skip_value();
        }
        s.blank();
        s.eat(b',');
    }
    spans
}

/// A cursor over well-formed JSON text.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }
    /// A string at the cursor: its raw content (escapes left as written).
    fn string(&mut self) -> &'a [u8] {
        if !self.eat(b'"') {
            return b"";
        }
        let start = self.at;
        while let Some(b) = self.peek() {
            match b {
                b'\\' => self.at += 2,
                b'"' => break,
                _ => self.at += 1,
            }
        }
        let end = self.at.min(self.bytes.len());
        self.eat(b'"');
        self.bytes.get(start..end).unwrap_or_default()
    }
    /// Past the value at the cursor: a string, an object or array (nested), or a scalar.
    fn skip_value(&mut self) {
        match self.peek() {
            Some(b'"') => {
                self.string();
            }
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                while let Some(b) = self.peek() {
                    match b {
                        b'"' => {
                            self.string();
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                self.at += 1;
                                return;
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.at += 1;
                }
            }
        }
    }
}

/// Checks a configuration without a proxy: the module's own fields, then each entry's
/// configuration with its filter's parser (errors under `chain[i].config`). `build` does this
/// and more (a filter's configure may also read the proxy), so what passes here may still be
/// refused at load for a reason that needs the proxy; nothing refused here loads.
pub fn validate(bytes: &[u8]) -> Result<Vec<FilterKind>, ConfigError> {
    let config: Config = parse_json(bytes)?;
    check_list(&config)?;
    let texts = config_texts(bytes, &config)?;
    for (i, (entry, text)) in config.chain.iter().zip(texts).enumerate() {
        entry.filter.check(text, i)?;
    }
    Ok(config.chain.iter().map(|e| e.filter).collect())
}

/// What the list itself must be: not empty, not too long, each filter once and in this build.
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
        if !entry.filter.compiled() {
            return Err(entry.filter.not_in_build(i));
        }
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
    let texts = config_texts(bytes, &config)?;
    let mut builder = ChainBuilder::new();
    for (i, (entry, text)) in config.chain.iter().zip(texts).enumerate() {
        let kind = entry.filter;
        let added = builder.add(host, |h| kind.configure(h, text, i));
        match added {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(e.within(&format!("chain[{i}].config"))),
            None => return Err(ConfigError::new("chain", "too many filters")),
        }
    }
    Ok(builder.build())
}

#[cfg(test)]
mod span_tests {
    use super::*;

    fn texts(doc: &str) -> Result<Vec<String>, String> {
        let config: Config = parse_json(doc.as_bytes()).map_err(|e| e.to_string())?;
        config_texts(doc.as_bytes(), &config)
            .map(|t| {
                t.iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_config_is_cut_exactly_as_written() {
        let doc = r#" { "chain" : [
            {"config": {"a": "}]\"{", "b": [1, {"c": null}]}, "filter": "jwt-auth"},
            {"filter": "scope-authz"},
            { "filter" : "rate-limit" , "config" :   {"x":1,"x":2}   } ,
            {"filter": "mtls-identity", "config": "text"}
        ] } "#;
        assert_eq!(
            texts(doc).unwrap(),
            vec![
                r#"{"a": "}]\"{", "b": [1, {"c": null}]}"#.to_string(),
                String::new(),
                r#"{"x":1,"x":2}"#.to_string(),
                r#""text""#.to_string(),
            ]
        );
    }

    #[test]
    fn a_config_member_written_with_escapes_is_refused_not_skipped() {
        let doc = r#"{"chain": [{"filter": "jwt-auth", "\u0063onfig": {"providers": {}}}]}"#;
        let err = texts(doc).unwrap_err();
        assert!(
            err.starts_with("chain[0].config: not found in the text"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod build_tests {
    use super::*;

    /// Run in the default build (every filter) and in a slim one
    /// (`cargo test -p shieldwall --no-default-features --features jwt-auth`): a filter outside
    /// the build is refused by name, with the feature that would add it.
    #[test]
    fn a_filter_outside_this_build_is_refused_naming_its_feature() {
        for kind in FilterKind::ALL {
            let doc = format!(
                r#"{{"chain": [{{"filter": "{}", "config": {{}}}}]}}"#,
                kind.name()
            );
            let result = validate(doc.as_bytes()).map_err(|e| e.to_string());
            if kind.compiled() {
                // Past the list: only the filter's own parser may refuse it, under its config.
                if let Err(e) = result {
                    assert!(e.starts_with("chain[0].config"), "{}: {e}", kind.name());
                }
            } else {
                let e = result.unwrap_err();
                assert!(
                    e.starts_with(&format!(
                        "chain[0].filter: {} is not in this build",
                        kind.name()
                    )),
                    "{e}"
                );
                assert!(e.contains(&format!("feature `{}`", kind.name())), "{e}");
            }
        }
    }

    #[test]
    fn the_default_build_has_every_filter() {
        let all = cfg!(all(
            feature = "jwt-auth",
            feature = "scope-authz",
            feature = "rate-limit",
            feature = "mtls-identity",
            feature = "token-introspection",
            feature = "audit-log",
            feature = "identity-exchange",
            feature = "payload-guard",
            feature = "policy-authz"
        ));
        assert_eq!(
            FilterKind::compiled_in().len() == FilterKind::ALL.len(),
            all
        );
    }
}
