//! The stream glue of mtls-identity: removes certificate and identity headers a client sent,
//! reads the client certificate of the connection (or, on a connection from a listed front proxy,
//! the one it forwards in a header), applies the first rule whose route matches, and on success
//! writes the identity context and the configured headers.

use std::cell::RefCell;
use std::rc::Rc;

use shieldwall_core::metrics::Metrics;
use shieldwall_core::{
    Action, ConfigError, Host, Identity, Reply, RequestLine, RootFilter, StreamFilter,
};

use crate::cert::{NotSvid, PeerCertificate};
use crate::config::{Config, ForwardClientCert, Matcher, Requires, XFCC_HEADER};
use crate::spiffe::SpiffeId;

/// What the filter knows about the caller's certificate.
pub struct Caller {
    pub cert: PeerCertificate,
    /// The SPIFFE ID when the certificate is an X.509 SVID of a configured trust domain.
    pub spiffe: Result<SpiffeId, SpiffeRefusal>,
    /// The front proxy (its SPIFFE ID, or `sha256:<hex>`) that forwarded the certificate in a
    /// header; `None` for the certificate of the connection itself.
    pub via: Option<String>,
}

/// Why a certificate gives no SPIFFE identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpiffeRefusal {
    NotSvid(NotSvid),
    UntrustedDomain(String),
}

impl SpiffeRefusal {
    pub fn reason(&self) -> &'static str {
        match self {
            SpiffeRefusal::NotSvid(n) => n.reason(),
            SpiffeRefusal::UntrustedDomain(_) => "untrusted_trust_domain",
        }
    }
}

impl Caller {
    pub fn new(cert: PeerCertificate, trust_domains: &[String]) -> Caller {
        let spiffe = match cert.svid() {
            Ok(id) if trust_domains.iter().any(|td| td == id.trust_domain()) => Ok(id),
            Ok(id) => Err(SpiffeRefusal::UntrustedDomain(
                id.trust_domain().to_string(),
            )),
            Err(e) => Err(SpiffeRefusal::NotSvid(e)),
        };
        Caller {
            cert,
            spiffe,
            via: None,
        }
    }

    pub fn matches(&self, m: &Matcher) -> bool {
        let id = self.spiffe.as_ref().ok();
        match m {
            Matcher::SpiffeIds(ids) => id.is_some_and(|id| ids.iter().any(|x| x == id.as_str())),
            Matcher::SpiffeIdPrefix(prefix) => id.is_some_and(|id| id.is_at_or_under(prefix)),
            Matcher::TrustDomain(td) => id.is_some_and(|id| id.trust_domain() == td),
            Matcher::Subject(dn) => self.cert.subject.matches(dn),
            Matcher::DnsSan(name) => self
                .cert
                .dns_sans
                .iter()
                .any(|d| d.strip_suffix('.').unwrap_or(d).eq_ignore_ascii_case(name)),
            Matcher::Any(list) => list.iter().any(|m| self.matches(m)),
            Matcher::All(list) => list.iter().all(|m| self.matches(m)),
        }
    }
}

/// An XFCC element value, quoted when it holds a separator (`,` `;` `=`), a quote or a space,
/// with `"` and `\` escaped inside quotes.
fn xfcc_value(value: &str, always_quote: bool) -> String {
    let needs = always_quote
        || value
            .chars()
            .any(|c| matches!(c, ',' | ';' | '=' | '"' | '\\') || c.is_whitespace());
    if !needs {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// The `x-forwarded-client-cert` element for a certificate, in Envoy's form:
/// `Hash=<hex>;Subject="<subject>";URI=<uri>;DNS=<dns>`, every SAN listed.
pub fn xfcc(cert: &PeerCertificate) -> String {
    let mut parts = vec![format!("Hash={}", cert.sha256_hex())];
    parts.push(format!(
        "Subject={}",
        xfcc_value(&cert.subject.render(), true)
    ));
    for uri in &cert.uri_sans {
        parts.push(format!("URI={}", xfcc_value(uri, false)));
    }
    for dns in &cert.dns_sans {
        parts.push(format!("DNS={}", xfcc_value(dns, false)));
    }
    parts.join(";")
}

/// The root context: the parsed configuration and the worker's metric ids.
pub struct MtlsIdentity {
    config: Rc<Config>,
    metrics: Rc<RefCell<Metrics>>,
}

impl RootFilter for MtlsIdentity {
    type Stream = MtlsIdentityStream;
    const NAME: &'static str = "mtls_identity";

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(config)?;
        (host as &dyn Host).info(&format!(
            "mtls-identity: {} rules, {} trust domains",
            config.rules.len(),
            config.trust_domains.len()
        ));
        Ok(MtlsIdentity {
            config: Rc::new(config),
            metrics: Rc::new(RefCell::new(Metrics::new(Self::NAME))),
        })
    }

    fn new_stream(&mut self, _host: &mut dyn Host, _context_id: u32) -> MtlsIdentityStream {
        MtlsIdentityStream {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

pub struct MtlsIdentityStream {
    config: Rc<Config>,
    metrics: Rc<RefCell<Metrics>>,
}

/// The reason of a certificate that cannot be read.
const UNREADABLE: &str = "unreadable_certificate";

/// The client certificate: none, or one that was read, or one that could not be read or (a
/// forwarded one) verified, with the reason and what went wrong.
enum Presented {
    None,
    Certificate(Box<Caller>),
    Unreadable(&'static str, String),
}

impl MtlsIdentityStream {
    fn count(&self, host: &mut dyn Host, event: &str) {
        if let Ok(mut m) = self.metrics.try_borrow_mut() {
            m.inc(host, event);
        }
    }

    fn deny(&self, host: &mut dyn Host, reply: Reply, reason: &str, log: &str) -> Action {
        self.count(host, &format!("denied.{reason}"));
        (host as &dyn Host).info(&format!("mtls-identity: refused ({reason}): {log}"));
        reply.with_reason(reason.to_string()).send(host);
        Action::Pause
    }

    /// Removes what a client may have sent in place of the proxy. `trusted_front` says whether
    /// the connection is one of the listed front proxies.
    fn remove_client_headers(&self, host: &mut dyn Host, trusted_front: bool) {
        let config = &self.config;
        let forward_only = config.forward_client_cert == ForwardClientCert::ForwardOnly;
        if !forward_only {
            host.set_request_header(XFCC_HEADER, None);
        }
        if let Some(fp) = &config.front_proxy {
            // The forwarded header is kept only as a trusted front proxy sent it, under
            // `forward_only`; from any other connection it never reaches the upstream.
            if !(forward_only && trusted_front) {
                host.set_request_header(&fp.header, None);
            }
        }
        for h in [&config.spiffe_id_header, &config.cert_sha256_header]
            .into_iter()
            .flatten()
        {
            host.set_request_header(h, None);
        }
    }

    /// The certificate of the connection itself.
    fn presented(&self, host: &dyn Host) -> Presented {
        let mtls = host
            .property(&["connection", "mtls"])
            .is_some_and(|v| v.first().is_some_and(|b| *b != 0));
        if !mtls {
            return Presented::None;
        }
        let Some(pem) = host.property(&["connection", "peer_certificate"]) else {
            return Presented::Unreadable(
                UNREADABLE,
                "the proxy does not expose the peer certificate".into(),
            );
        };
        match PeerCertificate::from_pem(&pem) {
            Ok(cert) => {
                Presented::Certificate(Box::new(Caller::new(cert, &self.config.trust_domains)))
            }
            Err(e) => Presented::Unreadable(UNREADABLE, e),
        }
    }

    /// The client certificate: forwarded in the header when the connection is a listed front
    /// proxy, else the connection's own. Also says whether the connection is a front proxy.
    fn client(&self, host: &mut dyn Host) -> (Presented, bool) {
        let connection = self.presented(host);
        let Some(fp) = &self.config.front_proxy else {
            return (connection, false);
        };
        let values: Vec<String> = host
            .request_headers()
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(&fp.header))
            .map(|(_, v)| v)
            .collect();
        let proxy = match &connection {
            Presented::Certificate(c) => fp.recognise(&c.cert),
            Presented::None | Presented::Unreadable(..) => None,
        };
        let Some(proxy) = proxy else {
            if !values.is_empty() {
                (host as &dyn Host).info(&format!(
                    "mtls-identity: `{}` ignored and removed: the connection is not a listed front proxy",
                    fp.header
                ));
                self.count(host, "front_proxy.header_ignored");
            }
            return (connection, false);
        };
        // The front proxy's own certificate is never the client's identity.
        let now_secs = (host as &dyn Host).now_nanos() / 1_000_000_000;
        let forwarded = match fp.read(&values, now_secs) {
            Ok(None) => Presented::None,
            Ok(Some(cert)) => {
                let mut caller = Caller::new(cert, &self.config.trust_domains);
                caller.via = Some(proxy);
                Presented::Certificate(Box::new(caller))
            }
            Err(e) => Presented::Unreadable(
                e.reason,
                format!(
                    "the certificate forwarded by {proxy} in `{}`: {}",
                    fp.header, e.detail
                ),
            ),
        };
        (forwarded, true)
    }

    /// Writes the identity context and the headers for the upstream.
    fn admit(&self, host: &mut dyn Host, caller: &Caller) {
        let config = &self.config;
        let subject = caller.cert.subject.render();
        let id = caller.spiffe.as_ref().ok();
        let mut identity = Identity {
            // The SPIFFE ID, else the subject; none when both are missing (XFCC fields without
            // `Subject` or `URI`).
            sub: id
                .map(|i| i.as_str().to_string())
                .or_else(|| (!subject.is_empty()).then(|| subject.clone())),
            spiffe_id: id.map(|i| i.as_str().to_string()),
            cert_sha256: Some(caller.cert.thumbprint()),
            tenant: id.and_then(|i| config.tenants.get(i.trust_domain()).cloned()),
            auth: vec!["mtls".to_string()],
            ..Default::default()
        };
        identity
            .claims
            .insert("cert_subject".into(), serde_json::Value::String(subject));
        if let Some(via) = &caller.via {
            identity
                .claims
                .insert("front_proxy".into(), serde_json::Value::String(via.clone()));
        }
        if identity.merge_and_write(host).is_err() {
            (host as &dyn Host).warn("mtls-identity: the identity context could not be written");
            self.count(host, "identity_write_failed");
        }
        if let (Some(h), Some(id)) = (&config.spiffe_id_header, id) {
            host.set_request_header(h, Some(id.as_str()));
        }
        if let Some(h) = &config.cert_sha256_header {
            host.set_request_header(h, Some(&caller.cert.thumbprint()));
        }
        if config.forward_client_cert == ForwardClientCert::SanitizeSet {
            host.set_request_header(XFCC_HEADER, Some(&xfcc(&caller.cert)));
        }
    }

    fn decide(&self, host: &mut dyn Host) -> Action {
        // Read before anything is removed: the forwarded header is read only from a front proxy.
        let (presented, trusted_front) = self.client(host);
        self.remove_client_headers(host, trusted_front);
        let config = self.config.clone();
        let line = match RequestLine::from_host(host, config.path) {
            Ok(line) => line,
            Err(e) => {
                return self.deny(
                    host,
                    Reply::bad_request(e.code(), e.description()),
                    e.code(),
                    "the request path cannot be decided on",
                )
            }
        };
        let Some(rule) = config
            .rules
            .iter()
            .find(|r| r.route.matches(&line).is_some())
        else {
            return self.deny(
                host,
                Reply::forbidden(
                    "no_matching_rule",
                    "no rule of the gateway allows this request",
                ),
                "no_matching_rule",
                "no rule matches the request",
            );
        };
        match (&rule.requires, presented) {
            (Requires::Nothing, Presented::None) | (Requires::Optional, Presented::None) => {
                self.count(host, "allowed.no_certificate");
                Action::Continue
            }
            (Requires::Nothing, Presented::Unreadable(_, e)) => {
                (host as &dyn Host).warn(&format!(
                    "mtls-identity: certificate ignored by {}: {e}",
                    rule.label
                ));
                self.count(host, "allowed.no_certificate");
                Action::Continue
            }
            (Requires::Certificate(_), Presented::None) => self.deny(
                host,
                Reply::new(
                    401,
                    "missing_client_certificate",
                    "this route needs a client certificate",
                ),
                "missing_client_certificate",
                &format!("{} needs a client certificate", rule.label),
            ),
            (_, Presented::Unreadable(reason, e)) => self.deny(
                host,
                Reply::forbidden("access_denied", "the client certificate cannot be used"),
                reason,
                &e,
            ),
            (Requires::Nothing | Requires::Optional, Presented::Certificate(caller)) => {
                self.admit(host, &caller);
                self.count(host, "allowed");
                Action::Continue
            }
            (Requires::Certificate(m), Presented::Certificate(caller)) => {
                if caller.matches(m) {
                    self.admit(host, &caller);
                    self.count(host, "allowed");
                    return Action::Continue;
                }
                let (reason, why) = match (&caller.spiffe, m.uses_spiffe()) {
                    (Err(r), true) => (r.reason(), format!("not a SPIFFE identity: {r:?}")),
                    (Ok(id), _) => ("not_allowed", format!("{id} is not allowed")),
                    (Err(_), false) => ("not_allowed", "the certificate does not match".into()),
                };
                self.deny(
                    host,
                    Reply::forbidden(
                        "access_denied",
                        "the client certificate may not access this resource",
                    ),
                    reason,
                    &format!("{} refused the caller: {why}", rule.label),
                )
            }
        }
    }
}

impl StreamFilter for MtlsIdentityStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Action {
        self.decide(host)
    }
}
