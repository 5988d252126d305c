//! mtls-identity: the client certificate of a TLS connection as the caller's identity.
//!
//! Envoy verifies the certificate chain (a TLS listener with a trusted CA); this filter reads the
//! verified certificate, takes its SPIFFE ID when it is an X.509 SVID of a configured trust
//! domain, checks per route who may call, writes the identity context that later filters read, and
//! removes any certificate or identity header a client sent in place of the proxy.
//!
//! Behind a TLS terminator, [`forwarded`] reads the client certificate the terminator forwards in
//! a header, only on a connection whose own certificate is a listed front proxy, and [`chain`]
//! optionally verifies it against configured CA certificates.
//!
//! [`spiffe`] parses SPIFFE IDs; [`dn`] parses and compares distinguished names; [`x509`] is the
//! strict DER reader of certificates and [`cert`] takes from it what the filter decides on;
//! [`config`] parses the plugin configuration; [`filter`] is the stream logic.

pub mod cert;
pub mod chain;
pub mod config;
pub mod dn;
pub mod filter;
pub mod forwarded;
pub mod spiffe;
#[cfg(all(any(test, feature = "testing"), not(target_arch = "wasm32")))]
pub mod testing;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;
pub mod x509;
#[cfg(test)]
mod x509_tests;

pub use config::Config;
pub use filter::{MtlsIdentity, MtlsIdentityStream};
