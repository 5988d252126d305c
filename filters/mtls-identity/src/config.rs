//! The plugin configuration of mtls-identity and its validation into the runtime form.
//! Unknown fields are refused; every error names its field path. The document is read by hand
//! from a parsed JSON value (`shieldwall_core::json_config`), not by serde's derived code, which
//! would be a large part of the module.

use std::collections::BTreeMap;

use serde_json::Value;
use shieldwall_core::config::Within;
use shieldwall_core::json_config::{array, choice, object, parse_document, string, strings};
use shieldwall_core::route::{PathOptions, RouteMatch, RouteMatchConfig};
use shieldwall_core::ConfigError;

use crate::chain::TrustedCa;
use crate::dn::Dn;
use crate::forwarded::{Format, FrontProxy};
use crate::spiffe::{check_trust_domain, SpiffeId};

/// The header Envoy uses for forwarded client certificate details.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

#[derive(Debug)]
pub struct ConfigFile {
    pub trust_domains: Vec<String>,
    pub tenant_from_trust_domain: BTreeMap<String, String>,
    pub rules: Vec<RuleFile>,
    pub forward_client_cert: ForwardClientCert,
    pub headers: HeadersFile,
    pub from_front_proxy: Option<FrontProxyFile>,
    pub path: PathOptions,
}

impl ConfigFile {
    pub fn from_json(v: &Value) -> Result<ConfigFile, ConfigError> {
        let o = object(
            v,
            &[
                "trust_domains",
                "tenant_from_trust_domain",
                "rules",
                "forward_client_cert",
                "headers",
                "from_front_proxy",
                "path",
            ],
        )?;
        Ok(ConfigFile {
            trust_domains: o.or("trust_domains", Vec::new(), strings)?,
            tenant_from_trust_domain: o.or("tenant_from_trust_domain", BTreeMap::new(), |v| {
                let map = v
                    .as_object()
                    .ok_or_else(|| shieldwall_core::json_config::invalid_type(v, "a map"))?;
                let mut out = BTreeMap::new();
                for (key, value) in map {
                    out.insert(key.clone(), string(value).map_err(|e| e.within(key))?);
                }
                Ok(out)
            })?,
            rules: o.need("rules", |v| array(v, RuleFile::from_json))?,
            forward_client_cert: o.or(
                "forward_client_cert",
                ForwardClientCert::Sanitize,
                ForwardClientCert::from_json,
            )?,
            headers: o.or("headers", HeadersFile::default(), HeadersFile::from_json)?,
            from_front_proxy: o.optional("from_front_proxy", FrontProxyFile::from_json)?,
            path: o.or("path", PathOptions::default(), PathOptions::from_json)?,
        })
    }
}

#[derive(Debug)]
pub struct RuleFile {
    /// A name for logs (default `rules[<index>]`).
    pub name: Option<String>,
    pub route: RouteMatchConfig,
    /// `"optional"`, an object of matchers, or absent. Read by hand for precise errors.
    pub requires: Option<Value>,
}

impl RuleFile {
    fn from_json(v: &Value) -> Result<RuleFile, ConfigError> {
        let o = object(v, &["name", "match", "requires"])?;
        Ok(RuleFile {
            name: o.optional("name", string)?,
            route: o.need("match", RouteMatchConfig::from_json)?,
            requires: o.get("requires").cloned(),
        })
    }
}

/// `from_front_proxy`: a TLS terminator in front that forwards the client certificate in a header.
#[derive(Debug)]
pub struct FrontProxyFile {
    pub proxies: ProxiesFile,
    pub header: Option<String>,
    pub format: Option<Format>,
    /// CA certificates (PEM) a forwarded certificate must be issued by.
    pub ca_certificates: Vec<String>,
}

impl FrontProxyFile {
    fn from_json(v: &Value) -> Result<FrontProxyFile, ConfigError> {
        let o = object(v, &["proxies", "header", "format", "ca_certificates"])?;
        Ok(FrontProxyFile {
            proxies: o.need("proxies", ProxiesFile::from_json)?,
            header: o.optional("header", string)?,
            format: o.optional("format", |v| {
                choice(
                    v,
                    &[
                        ("xfcc", Format::Xfcc),
                        ("pem", Format::Pem),
                        ("der_base64", Format::DerBase64),
                    ],
                )
            })?,
            ca_certificates: o.or("ca_certificates", Vec::new(), strings)?,
        })
    }
}

/// The front proxies, by their own connection certificate.
#[derive(Debug, Default)]
pub struct ProxiesFile {
    pub spiffe_ids: Vec<String>,
    pub sha256: Vec<String>,
}

impl ProxiesFile {
    fn from_json(v: &Value) -> Result<ProxiesFile, ConfigError> {
        let o = object(v, &["spiffe_ids", "sha256"])?;
        Ok(ProxiesFile {
            spiffe_ids: o.or("spiffe_ids", Vec::new(), strings)?,
            sha256: o.or("sha256", Vec::new(), strings)?,
        })
    }
}

#[derive(Debug, Default)]
pub struct HeadersFile {
    pub spiffe_id: Option<String>,
    pub cert_sha256: Option<String>,
}

impl HeadersFile {
    fn from_json(v: &Value) -> Result<HeadersFile, ConfigError> {
        let o = object(v, &["spiffe_id", "cert_sha256"])?;
        Ok(HeadersFile {
            spiffe_id: o.optional("spiffe_id", string)?,
            cert_sha256: o.optional("cert_sha256", string)?,
        })
    }
}

/// What happens to `x-forwarded-client-cert`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardClientCert {
    /// Remove any copy the client sent.
    #[default]
    Sanitize,
    /// Remove it, then set one for the verified certificate (Envoy's format).
    SanitizeSet,
    /// Keep it as it arrived: only behind a trusted front proxy that sets it.
    ForwardOnly,
}

impl ForwardClientCert {
    fn from_json(v: &Value) -> Result<ForwardClientCert, ConfigError> {
        choice(
            v,
            &[
                ("sanitize", ForwardClientCert::Sanitize),
                ("sanitize_set", ForwardClientCert::SanitizeSet),
                ("forward_only", ForwardClientCert::ForwardOnly),
            ],
        )
    }
}

#[derive(Debug, Default)]
struct MatcherFile {
    spiffe_ids: Option<Vec<String>>,
    spiffe_id_prefix: Option<String>,
    trust_domain: Option<String>,
    subject: Option<String>,
    dns_san: Option<String>,
    any: Option<Vec<Value>>,
    all: Option<Vec<Value>>,
}

impl MatcherFile {
    fn from_json(v: &Value) -> Result<MatcherFile, ConfigError> {
        let o = object(
            v,
            &[
                "spiffe_ids",
                "spiffe_id_prefix",
                "trust_domain",
                "subject",
                "dns_san",
                "any",
                "all",
            ],
        )?;
        let values = |v: &Value| array(v, |x| Ok(x.clone()));
        Ok(MatcherFile {
            spiffe_ids: o.optional("spiffe_ids", strings)?,
            spiffe_id_prefix: o.optional("spiffe_id_prefix", string)?,
            trust_domain: o.optional("trust_domain", string)?,
            subject: o.optional("subject", string)?,
            dns_san: o.optional("dns_san", string)?,
            any: o.optional("any", values)?,
            all: o.optional("all", values)?,
        })
    }
}

// ------------------------------------------------------------------ runtime form

/// A condition on the client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// The SVID's SPIFFE ID is one of these.
    SpiffeIds(Vec<String>),
    /// The SVID's SPIFFE ID is this one or below it, on whole path segments.
    SpiffeIdPrefix(SpiffeId),
    /// The SVID is of this trust domain.
    TrustDomain(String),
    /// The certificate's subject, compared after normalising.
    Subject(Dn),
    /// One of the certificate's DNS SANs (compared without regard to case).
    DnsSan(String),
    Any(Vec<Matcher>),
    All(Vec<Matcher>),
}

impl Matcher {
    /// Whether the matcher needs a SPIFFE identity anywhere (for the reason of a refusal).
    pub fn uses_spiffe(&self) -> bool {
        match self {
            Matcher::SpiffeIds(_) | Matcher::SpiffeIdPrefix(_) | Matcher::TrustDomain(_) => true,
            Matcher::Subject(_) | Matcher::DnsSan(_) => false,
            Matcher::Any(list) | Matcher::All(list) => list.iter().any(Matcher::uses_spiffe),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requires {
    /// No certificate needed (the identity is still taken when one is there).
    Nothing,
    /// The identity is taken when a certificate is there.
    Optional,
    /// A certificate must be there and match.
    Certificate(Matcher),
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub label: String,
    pub route: RouteMatch,
    pub requires: Requires,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub trust_domains: Vec<String>,
    pub tenants: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
    pub forward_client_cert: ForwardClientCert,
    pub spiffe_id_header: Option<String>,
    pub cert_sha256_header: Option<String>,
    pub front_proxy: Option<FrontProxy>,
    pub path: PathOptions,
}

/// Nesting deeper than this in `any`/`all` is refused (the evaluation is recursive).
const MAX_DEPTH: usize = 8;

fn header_name(name: &str) -> Result<String, String> {
    let name = any_header_name(name)?;
    if name == XFCC_HEADER {
        return Err(format!("`{XFCC_HEADER}` is set by `forward_client_cert`"));
    }
    Ok(name)
}

fn any_header_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err("not a lower-case HTTP header name".into());
    }
    Ok(name.to_string())
}

/// A SHA-256 in hex, upper or lower case, optionally with `:` between the bytes (the form of
/// `openssl x509 -fingerprint -sha256`), as lowercase hex without separators.
fn sha256_hex(text: &str) -> Result<String, String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("not a SHA-256 in hex (64 hex digits)".into());
    }
    Ok(hex.to_ascii_lowercase())
}

fn front_proxy(file: FrontProxyFile, identity_headers: &[&str]) -> Result<FrontProxy, ConfigError> {
    let ProxiesFile { spiffe_ids, sha256 } = file.proxies;
    if spiffe_ids.is_empty() && sha256.is_empty() {
        return Err(ConfigError::new(
            "proxies",
            "no front proxy: give `spiffe_ids` or `sha256`",
        ));
    }
    let mut ids = Vec::with_capacity(spiffe_ids.len());
    for (i, id) in spiffe_ids.iter().enumerate() {
        let id = SpiffeId::parse(id).map_err(|e| {
            ConfigError::new(
                format!("proxies.spiffe_ids[{i}]"),
                format!("not a SPIFFE ID: {e}"),
            )
        })?;
        ids.push(id.as_str().to_string());
    }
    let mut hashes = Vec::with_capacity(sha256.len());
    for (i, h) in sha256.iter().enumerate() {
        hashes
            .push(sha256_hex(h).map_err(|e| ConfigError::new(format!("proxies.sha256[{i}]"), e))?);
    }
    let format = file.format.unwrap_or(Format::Xfcc);
    let header = match (file.header, format) {
        (Some(h), _) => any_header_name(&h).map_err(|e| ConfigError::new("header", e))?,
        (None, Format::Xfcc) => XFCC_HEADER.to_string(),
        (None, _) => {
            return Err(ConfigError::new(
                "header",
                "needed with `pem` and `der_base64` (the header the front proxy writes)",
            ))
        }
    };
    if format != Format::Xfcc && header == XFCC_HEADER {
        return Err(ConfigError::new(
            "header",
            format!("`{XFCC_HEADER}` holds the `xfcc` format"),
        ));
    }
    if identity_headers.contains(&header.as_str()) {
        return Err(ConfigError::new(
            "header",
            "one of the headers the filter writes (`headers`)",
        ));
    }
    let mut cas = Vec::with_capacity(file.ca_certificates.len());
    for (i, pem) in file.ca_certificates.iter().enumerate() {
        cas.push(
            TrustedCa::from_pem(pem)
                .map_err(|e| ConfigError::new(format!("ca_certificates[{i}]"), e))?,
        );
    }
    Ok(FrontProxy {
        spiffe_ids: ids,
        sha256: hashes,
        header,
        format,
        cas,
    })
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let document = parse_document(bytes)?;
        Config::build(ConfigFile::from_json(&document)?)
    }

    pub fn build(file: ConfigFile) -> Result<Config, ConfigError> {
        let mut trust_domains = Vec::new();
        for (i, td) in file.trust_domains.iter().enumerate() {
            check_trust_domain(td)
                .map_err(|e| ConfigError::new(format!("trust_domains[{i}]"), e.to_string()))?;
            if trust_domains.contains(td) {
                return Err(ConfigError::new(
                    format!("trust_domains[{i}]"),
                    "listed twice",
                ));
            }
            trust_domains.push(td.clone());
        }
        for (td, tenant) in &file.tenant_from_trust_domain {
            let path = format!("tenant_from_trust_domain.{td}");
            if !trust_domains.contains(td) {
                return Err(ConfigError::new(path, "not one of `trust_domains`"));
            }
            if tenant.is_empty() {
                return Err(ConfigError::new(path, "the tenant is empty"));
            }
        }
        if file.rules.is_empty() {
            return Err(ConfigError::new(
                "rules",
                "at least one rule is needed (a request that matches no rule is refused)",
            ));
        }
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, r) in file.rules.into_iter().enumerate() {
            let at = format!("rules[{i}]");
            let route = RouteMatch::compile(&r.route).within("match").within(&at)?;
            let requires =
                match r.requires {
                    None => Requires::Nothing,
                    Some(Value::String(s)) if s == "optional" => Requires::Optional,
                    Some(Value::String(_)) => return Err(ConfigError::new(
                        format!("{at}.requires"),
                        "the only string allowed is \"optional\"; otherwise an object of matchers",
                    )),
                    Some(v) => Requires::Certificate(
                        matcher(&v, &trust_domains, 0).within(&format!("{at}.requires"))?,
                    ),
                };
            rules.push(Rule {
                label: r.name.unwrap_or(at),
                route,
                requires,
            });
        }
        let spiffe_id_header = match file.headers.spiffe_id {
            Some(h) => Some(header_name(&h).map_err(|e| ConfigError::new("headers.spiffe_id", e))?),
            None => None,
        };
        let cert_sha256_header = match file.headers.cert_sha256 {
            Some(h) => {
                Some(header_name(&h).map_err(|e| ConfigError::new("headers.cert_sha256", e))?)
            }
            None => None,
        };
        if spiffe_id_header.is_some() && spiffe_id_header == cert_sha256_header {
            return Err(ConfigError::new(
                "headers.cert_sha256",
                "the same header as `headers.spiffe_id`",
            ));
        }
        let identity_headers: Vec<&str> = [&spiffe_id_header, &cert_sha256_header]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let front_proxy = match file.from_front_proxy {
            Some(f) => Some(front_proxy(f, &identity_headers).within("from_front_proxy")?),
            None => None,
        };
        Ok(Config {
            trust_domains,
            tenants: file.tenant_from_trust_domain,
            rules,
            forward_client_cert: file.forward_client_cert,
            spiffe_id_header,
            cert_sha256_header,
            front_proxy,
            path: file.path,
        })
    }
}

/// A SPIFFE ID from the configuration, whose trust domain must be a configured one.
fn configured_id(text: &str, trust_domains: &[String]) -> Result<SpiffeId, String> {
    let id = SpiffeId::parse(text).map_err(|e| format!("not a SPIFFE ID: {e}"))?;
    if !trust_domains.iter().any(|td| td == id.trust_domain()) {
        return Err(format!(
            "the trust domain `{}` is not one of `trust_domains`",
            id.trust_domain()
        ));
    }
    Ok(id)
}

fn list(
    values: &[Value],
    trust_domains: &[String],
    depth: usize,
) -> Result<Vec<Matcher>, ConfigError> {
    if values.is_empty() {
        return Err(ConfigError::new("", "the list is empty"));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| matcher(v, trust_domains, depth + 1).within(&format!("[{i}]")))
        .collect()
}

/// One matcher object. Several keys in one object must all hold.
fn matcher(value: &Value, trust_domains: &[String], depth: usize) -> Result<Matcher, ConfigError> {
    if depth > MAX_DEPTH {
        return Err(ConfigError::new("", "`any`/`all` nested too deeply"));
    }
    if !value.is_object() {
        return Err(ConfigError::new(
            "",
            "expected \"optional\" or an object of matchers",
        ));
    }
    let file = MatcherFile::from_json(value)?;
    let mut parts = Vec::new();
    if let Some(ids) = file.spiffe_ids {
        if ids.is_empty() {
            return Err(ConfigError::new("spiffe_ids", "the list is empty"));
        }
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let id = configured_id(id, trust_domains)
                .map_err(|e| ConfigError::new(format!("spiffe_ids[{i}]"), e))?;
            out.push(id.as_str().to_string());
        }
        parts.push(Matcher::SpiffeIds(out));
    }
    if let Some(prefix) = file.spiffe_id_prefix {
        // A trailing `/` says "below this path"; the ID itself is matched without it.
        let trimmed = prefix.strip_suffix('/').unwrap_or(&prefix);
        let id = configured_id(trimmed, trust_domains)
            .map_err(|e| ConfigError::new("spiffe_id_prefix", e))?;
        parts.push(Matcher::SpiffeIdPrefix(id));
    }
    if let Some(td) = file.trust_domain {
        if !trust_domains.contains(&td) {
            return Err(ConfigError::new(
                "trust_domain",
                "not one of `trust_domains`",
            ));
        }
        parts.push(Matcher::TrustDomain(td));
    }
    if let Some(subject) = file.subject {
        parts.push(Matcher::Subject(
            Dn::parse(&subject).map_err(|e| ConfigError::new("subject", e))?,
        ));
    }
    if let Some(dns) = file.dns_san {
        let name = dns.strip_suffix('.').unwrap_or(&dns).to_ascii_lowercase();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
        if !valid {
            return Err(ConfigError::new("dns_san", "not a DNS name"));
        }
        parts.push(Matcher::DnsSan(name));
    }
    if let Some(any) = file.any {
        parts.push(Matcher::Any(
            list(&any, trust_domains, depth).within("any")?,
        ));
    }
    if let Some(all) = file.all {
        parts.push(Matcher::All(
            list(&all, trust_domains, depth).within("all")?,
        ));
    }
    match parts.len() {
        0 => Err(ConfigError::new(
            "",
            "no matcher: give `spiffe_ids`, `spiffe_id_prefix`, `trust_domain`, `subject`, `dns_san`, `any` or `all`",
        )),
        1 => parts
            .pop()
            .ok_or_else(|| ConfigError::new("", "no matcher")),
        _ => Ok(Matcher::All(parts)),
    }
}
