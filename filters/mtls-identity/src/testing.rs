//! Test certificates made at test time with the `openssl` command line (no fixtures that expire):
//! a CA and leaf certificates signed by it, with the SANs, subject and constraints a test needs.
//! Native builds with the `testing` feature only; used by this crate's tests, the harness tests
//! and the Envoy end-to-end tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A directory with a test CA (EC P-256, valid one day).
pub struct TestCa {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate signed by a [`TestCa`], with its key.
#[derive(Clone, Debug)]
pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate in PEM, as Envoy exposes it in `connection.peer_certificate`.
    pub pem: String,
    /// Lowercase hex SHA-256 of the DER, as `connection.sha256_peer_certificate_digest`.
    pub sha256_hex: String,
}

pub(crate) fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a leaf certificate carries.
#[derive(Clone, Debug, Default)]
pub struct LeafSpec<'a> {
    /// OpenSSL's `-subj` form: `/O=Partner Ltd/CN=partner-1`.
    pub subject: &'a str,
    /// `subjectAltName` entries in OpenSSL's form: `URI:spiffe://…`, `DNS:…`.
    pub sans: &'a [&'a str],
    /// Make it a CA certificate (basicConstraints CA:TRUE, keyCertSign).
    pub ca: bool,
}

impl TestCa {
    /// A new CA in a fresh directory under the system's temporary directory.
    pub fn new(name: &str) -> TestCa {
        let dir = std::env::temp_dir().join(format!(
            "shieldwall-mtls-{}-{}-{}",
            name,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/O=shieldwall tests/CN=test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &dir,
        );
        TestCa {
            cert: dir.join("ca.crt"),
            key: dir.join("ca.key"),
            dir,
        }
    }

    /// An end-entity (not CA) certificate signed by this CA, with `subject` and `sans` in
    /// OpenSSL's form (see [`LeafSpec`]); `file` names its files in the CA's directory.
    pub fn end_entity(&self, file: &str, subject: &str, sans: &[&str]) -> TestCert {
        self.leaf(
            file,
            &LeafSpec {
                subject,
                sans,
                ca: false,
            },
        )
    }

    /// A certificate signed by this CA; `file` names its files in the CA's directory.
    pub fn leaf(&self, file: &str, spec: &LeafSpec<'_>) -> TestCert {
        let mut ext = String::new();
        if spec.ca {
            ext.push_str("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,digitalSignature\n");
        } else {
            ext.push_str("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth,serverAuth\n");
        }
        if !spec.sans.is_empty() {
            ext.push_str(&format!("subjectAltName={}\n", spec.sans.join(",")));
        }
        let file = format!("leaf-{file}");
        let ext_file = format!("{file}.ext");
        std::fs::write(self.dir.join(&ext_file), ext).unwrap();
        let (key, csr, crt) = (
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.crt"),
        );
        openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                spec.subject,
            ],
            &self.dir,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &ext_file,
                "-out",
                &crt,
            ],
            &self.dir,
        );
        let pem = std::fs::read_to_string(self.dir.join(&crt)).unwrap();
        let der_file = format!("{file}.der");
        openssl(
            &["x509", "-in", &crt, "-outform", "DER", "-out", &der_file],
            &self.dir,
        );
        let der = std::fs::read(self.dir.join(&der_file)).unwrap();
        let sha256_hex = shieldwall_jose::sha256(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        TestCert {
            cert: self.dir.join(crt),
            key: self.dir.join(key),
            pem,
            sha256_hex,
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
