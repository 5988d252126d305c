//! The certificate reader against RustCrypto's `x509-cert` (the library the filter used before):
//! certificates made with openssl of every kind the filter meets, and every mutation of them
//! (each byte changed in several ways, each truncation), read by both. Whatever [`x509`] accepts,
//! `x509-cert` must accept with the same fields; the certificates themselves both must accept.
//! Plus the DER rules one by one on hand-made encodings.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::Path;

use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};

use crate::cert::PeerCertificate;
use crate::dn::{canonical_kind, Attribute, Dn};
use crate::x509::{self, Certificate};

fn openssl(dir: &Path, args: &[&str]) {
    crate::testing::openssl(args, dir);
}

/// Self-signed certificates (DER) of the kinds the filter reads: each key type, v1 and v3,
/// UTCTime and GeneralizedTime, multi-valued RDNs, the string types of subjects, every kind of
/// subjectAltName, path lengths, critical and non-critical extensions.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = std::env::temp_dir().join(format!("shieldwall-x509-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let p384 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1"];
    let rsa = ["-newkey", "rsa:2048"];
    let ed = ["-newkey", "ed25519"];
    let cases: Vec<(&str, &[&str], Vec<&str>)> = vec![
        (
            "svid",
            &ec,
            vec![
                "-subj",
                "/O=shieldwall/CN=svid",
                "-addext",
                "subjectAltName=URI:spiffe://example.org/ns/a/sa/b",
                "-addext",
                "keyUsage=critical,digitalSignature",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
            ],
        ),
        (
            "many-sans",
            &ec,
            vec![
                "-multivalue-rdn",
                "-subj",
                "/C=DE/O=Partner Ltd/OU=b+CN=partner-1/emailAddress=ops@example.com",
                "-addext",
                "subjectAltName=URI:spiffe://example.org/a,URI:https://example.org/x,DNS:a.example.org,DNS:*.b.example.org,email:x@example.org,IP:10.0.0.1,IP:::1,RID:1.2.3.4,dirName:dir_sect,otherName:1.3.6.1.4.1.311.20.2.3;UTF8:user@example.org",
            ],
        ),
        (
            "rsa-ca",
            &rsa,
            vec![
                "-subj",
                "/CN=rsa CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE,pathlen:3",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ),
        (
            "ed25519",
            &ed,
            vec![
                "-utf8",
                "-subj",
                "/CN=Zoë Ærø/O=ed",
                "-addext",
                "subjectAltName=DNS:ed.example.org",
                "-addext",
                "keyUsage=digitalSignature,encipherOnly,decipherOnly",
            ],
        ),
        (
            "p384-long",
            &p384,
            vec![
                "-subj",
                "/DC=org/DC=example/CN=p384",
                "-days",
                "20000",
                "-addext",
                "basicConstraints=CA:TRUE,pathlen:0",
            ],
        ),
    ];
    std::fs::write(
        dir.join("dir.cnf"),
        "[req]\ndistinguished_name=dn\n[dn]\n[dir_sect]\nC=UK\nO=Directory\nCN=dir name\n",
    )
    .unwrap();
    let mut out = Vec::new();
    for (name, key, extra) in cases {
        let mut args = vec!["req", "-x509", "-nodes", "-config", "dir.cnf"];
        args.extend_from_slice(key);
        args.extend_from_slice(&["-keyout", "k.pem", "-out", "c.pem", "-outform", "DER"]);
        if !extra.contains(&"-days") {
            args.extend_from_slice(&["-days", "2"]);
        }
        args.extend_from_slice(&extra);
        openssl(&dir, &args);
        out.push((name.to_string(), std::fs::read(dir.join("c.pem")).unwrap()));
    }
    // A v1 certificate: a CSR signed without extensions.
    let mut csr = vec!["req", "-new", "-nodes", "-config", "dir.cnf"];
    csr.extend_from_slice(&ec);
    csr.extend_from_slice(&["-keyout", "v1.key", "-out", "v1.csr", "-subj", "/CN=v1"]);
    openssl(&dir, &csr);
    openssl(
        &dir,
        &[
            "x509", "-req", "-in", "v1.csr", "-key", "v1.key", "-days", "2", "-outform", "DER",
            "-out", "v1.der",
        ],
    );
    let v1 = std::fs::read(dir.join("v1.der")).unwrap();
    out.push(("v1".to_string(), v1));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

// ------------------------------------------------------------------ the reference

/// The filter's certificate reading as it was written on `x509-cert`.
fn reference_peer(der: &[u8]) -> Result<PeerCertificate, String> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    let tbs = &cert.tbs_certificate;
    let mut rdns: Vec<Vec<Attribute>> = tbs
        .subject
        .0
        .iter()
        .map(|rdn| {
            rdn.0
                .iter()
                .map(|atv| {
                    let oid = atv.oid.to_string();
                    let value = &atv.value;
                    let text = match value.tag() {
                        Tag::Utf8String => Utf8StringRef::try_from(value)
                            .ok()
                            .map(|s| s.as_str().to_string()),
                        Tag::PrintableString => PrintableStringRef::try_from(value)
                            .ok()
                            .map(|s| s.as_str().to_string()),
                        Tag::Ia5String => Ia5StringRef::try_from(value)
                            .ok()
                            .map(|s| s.as_str().to_string()),
                        Tag::TeletexString => TeletexStringRef::try_from(value)
                            .ok()
                            .map(|s| s.as_str().to_string()),
                        _ => None,
                    };
                    Attribute {
                        kind: canonical_kind(&oid).unwrap_or(oid),
                        value: text.unwrap_or_else(|| {
                            format!(
                                "#{}",
                                shieldwall_core::json_text::hex(&value.to_der().unwrap())
                            )
                        }),
                    }
                })
                .collect()
        })
        .collect();
    rdns.reverse();
    let mut out = PeerCertificate {
        sha256: shieldwall_jose::sha256(der),
        subject: Dn { rdns },
        uri_sans: Vec::new(),
        dns_sans: Vec::new(),
        is_ca: false,
        can_sign_certificates: false,
    };
    let mut seen = Vec::new();
    for ext in tbs.extensions.iter().flatten() {
        if seen.contains(&ext.extn_id) {
            return Err("an extension appears twice".into());
        }
        seen.push(ext.extn_id);
        let value = ext.extn_value.as_bytes();
        if ext.extn_id == SubjectAltName::OID {
            let san = SubjectAltName::from_der(value).map_err(|e| e.to_string())?;
            for name in san.0 {
                match name {
                    GeneralName::UniformResourceIdentifier(uri) => {
                        out.uri_sans.push(uri.to_string())
                    }
                    GeneralName::DnsName(dns) => out.dns_sans.push(dns.to_string()),
                    _ => {}
                }
            }
        } else if ext.extn_id == BasicConstraints::OID {
            out.is_ca = BasicConstraints::from_der(value)
                .map_err(|e| e.to_string())?
                .ca;
        } else if ext.extn_id == KeyUsage::OID {
            let ku = KeyUsage::from_der(value).map_err(|e| e.to_string())?;
            out.can_sign_certificates = ku.key_cert_sign() || ku.crl_sign();
        }
    }
    Ok(out)
}

/// A name with each RDN's attributes in one order (`x509-cert` sorts them, this reader keeps
/// the order written; names are compared as sets of attributes per RDN).
fn sorted(dn: &Dn) -> Dn {
    Dn {
        rdns: dn
            .rdns
            .iter()
            .map(|rdn| {
                let mut rdn = rdn.clone();
                rdn.sort();
                rdn
            })
            .collect(),
    }
}

/// Whatever this reader accepts, `x509-cert` accepts with the same fields. Returns whether this
/// reader accepted.
fn agree(der: &[u8], label: &str) -> bool {
    let ours = PeerCertificate::from_der(der);
    let Ok(ours) = ours else {
        return false;
    };
    let theirs = reference_peer(der)
        .unwrap_or_else(|e| panic!("{label}: accepted here, refused by x509-cert: {e}"));
    assert_eq!(
        PeerCertificate {
            subject: sorted(&ours.subject),
            ..ours.clone()
        },
        PeerCertificate {
            subject: sorted(&theirs.subject),
            ..theirs
        },
        "{label}"
    );
    let cert = Certificate::from_der(der).unwrap();
    let reference = x509_cert::Certificate::from_der(der).unwrap();
    let tbs = &reference.tbs_certificate;
    let validity = &tbs.validity;
    assert_eq!(
        cert.not_before,
        validity.not_before.to_unix_duration().as_secs(),
        "{label}"
    );
    assert_eq!(
        cert.not_after,
        validity.not_after.to_unix_duration().as_secs(),
        "{label}"
    );
    let spki = &tbs.subject_public_key_info;
    assert_eq!(
        x509::oid_string(cert.public_key_algorithm.oid),
        spki.algorithm.oid.to_string(),
        "{label}"
    );
    assert_eq!(
        cert.public_key_algorithm.parameters.map(|p| p.der.to_vec()),
        spki.algorithm
            .parameters
            .as_ref()
            .map(|p| p.to_der().unwrap()),
        "{label}"
    );
    assert_eq!(
        x509::whole_bytes(cert.public_key, "").ok(),
        spki.subject_public_key.as_bytes(),
        "{label}"
    );
    assert_eq!(
        x509::whole_bytes(cert.signature, "").ok(),
        reference.signature.as_bytes(),
        "{label}"
    );
    assert_eq!(
        cert.signature_algorithm.der,
        reference.signature_algorithm.to_der().unwrap(),
        "{label}"
    );
    let extensions: Vec<(String, bool, Vec<u8>)> = tbs
        .extensions
        .iter()
        .flatten()
        .map(|e| {
            (
                e.extn_id.to_string(),
                e.critical,
                e.extn_value.as_bytes().to_vec(),
            )
        })
        .collect();
    let ours_ext: Vec<(String, bool, Vec<u8>)> = cert
        .extensions
        .iter()
        .map(|e| (x509::oid_string(e.oid), e.critical, e.value.to_vec()))
        .collect();
    assert_eq!(ours_ext, extensions, "{label}");
    // Where x509-cert re-encodes the certificate to the same bytes (it sorts RDN sets), the
    // signed part and the names are the same bytes.
    if reference.to_der().unwrap() == der {
        assert_eq!(cert.tbs, tbs.to_der().unwrap(), "{label}");
        assert_eq!(cert.issuer.der, tbs.issuer.to_der().unwrap(), "{label}");
        assert_eq!(cert.subject.der, tbs.subject.to_der().unwrap(), "{label}");
    }
    true
}

#[test]
fn the_reader_agrees_with_x509_cert_on_every_mutation_of_real_certificates() {
    let corpus = corpus();
    let mut refused_here_only: BTreeMap<String, usize> = BTreeMap::new();
    let mut mutations = 0usize;
    let mut accepted = 0usize;
    for (name, der) in &corpus {
        assert!(agree(der, name), "{name}: the certificate is refused");
        let expected = reference_peer(der).unwrap();
        if name == "many-sans" {
            assert_eq!(
                expected.uri_sans,
                ["spiffe://example.org/a", "https://example.org/x"]
            );
            assert_eq!(expected.dns_sans, ["a.example.org", "*.b.example.org"]);
        }
        let mut check = |bytes: &[u8], label: String| {
            mutations += 1;
            if agree(bytes, &label) {
                accepted += 1;
            } else if reference_peer(bytes).is_ok() {
                let reason = PeerCertificate::from_der(bytes).unwrap_err();
                // Group by the message without tag values.
                let key = reason.split(" 0x").next().unwrap_or_default().to_string();
                *refused_here_only.entry(key).or_default() += 1;
            }
        };
        for i in 0..der.len() {
            for change in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
                let mut m = der.clone();
                m[i] ^= change;
                check(&m, format!("{name}: byte {i} ^ {change:#04x}"));
            }
            for value in [0x00u8, 0x80] {
                let mut m = der.clone();
                m[i] = value;
                check(&m, format!("{name}: byte {i} = {value:#04x}"));
            }
            check(&der[..i], format!("{name}: cut at {i}"));
            let mut m = der.clone();
            m.insert(i, 0);
            check(&m, format!("{name}: 00 inserted at {i}"));
        }
    }
    // Thousands of mutations, and some still read (values changed inside strings, keys and
    // signatures).
    assert!(mutations > 20_000, "{mutations}");
    assert!(accepted > 1_000, "{accepted}");
    // Where this reader is stricter than x509-cert, the reasons are the DER rules it adds:
    // x509-cert takes a DEFAULT value encoded, non-zero unused bits, an OID arc with a leading
    // 0x80 octet, a context-specific element it does not know between the fields of
    // tbsCertificate (it skips it), and an x400Address or otherName SAN whose inner elements
    // are not well-formed.
    let known = [
        "`cA` FALSE encoded (DER omits it)",
        "`critical` FALSE encoded (DER omits it)",
        "version: v1 encoded (DER omits it)",
        "unused bits that are not zero",
        "an object identifier arc with a leading zero",
        "tbsCertificate: data after the end",
        "subjectAltName: an x400Address",
        "subjectAltName: an otherName",
    ];
    for reason in refused_here_only.keys() {
        assert!(
            known
                .iter()
                .any(|k| reason.ends_with(k) || reason.contains(k)),
            "refused here only, for a reason not listed: {reason} ({refused_here_only:?})"
        );
    }
    // Each of those rules is met by some mutation.
    for rule in known.iter().take(5) {
        assert!(
            refused_here_only.keys().any(|r| r.contains(rule)),
            "{rule}: {refused_here_only:?}"
        );
    }
}

// ------------------------------------------------------------------ the DER rules

/// A TLV with a short or long length as given.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

#[test]
fn lengths_must_be_definite_and_minimal() {
    let read = |bytes: &[u8]| x509::Reader::new(bytes).any().map(|t| t.content.len());
    assert_eq!(read(&[0x04, 0x01, 0xaa]), Ok(1));
    assert_eq!(read(&tlv(0x04, &[0; 200])), Ok(200));
    assert_eq!(read(&tlv(0x04, &[0; 300])), Ok(300));
    for (bytes, error) in [
        (vec![0x04, 0x81, 0x01, 0xaa], "a long-form length below 128"),
        (
            vec![0x04, 0x82, 0x00, 0x81],
            "a length with a leading zero octet",
        ),
        (vec![0x30, 0x80, 0x00, 0x00], "an indefinite length"),
        (vec![0x07, 0x00], "an unknown tag 0x07"),
        (vec![0x2c, 0x00], "an unknown tag 0x2c"),
        (vec![0x04, 0x84, 1, 0, 0, 0], "a length too large"),
        (vec![0x1f, 0x20, 0x00], "a high tag number"),
        (vec![0x04, 0x02, 0xaa], "the encoding ends early"),
        (vec![0x04], "the encoding ends early"),
    ] {
        assert_eq!(read(&bytes), Err(error.to_string()), "{bytes:02x?}");
    }
}

#[test]
fn object_identifiers_integers_booleans_and_bit_strings_are_der() {
    assert_eq!(x509::oid_string(&[0x55, 0x1d, 0x11]), "2.5.29.17");
    assert_eq!(x509::oid_string(x509::oid::KEY_USAGE), "2.5.29.15");
    assert_eq!(x509::oid_string(x509::oid::BASIC_CONSTRAINTS), "2.5.29.19");
    assert_eq!(
        x509::oid_string(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
        "1.2.840.10045.3.1.7"
    );
    assert!(
        x509::check_oid(&[0x88, 0x37, 0x01]).is_err(),
        "2.999.1: second arc over 39"
    );
    assert!(x509::check_oid(&[]).is_err());
    assert!(x509::check_oid(&[0x55, 0x04]).is_err(), "two octets");
    assert!(
        x509::check_oid(&[0x55, 0x80, 0x01]).is_err(),
        "a leading 80 in an arc"
    );
    assert!(
        x509::check_oid(&[0x55, 0x81]).is_err(),
        "ends inside an arc"
    );
    assert!(
        x509::check_oid(&[0x55, 0x90, 0x80, 0x80, 0x80, 0x00]).is_err(),
        "over 32 bits"
    );
    assert!(x509::check_oid(&[0x55; 40]).is_err(), "over 39 octets");

    let int = |content: &[u8]| {
        let bytes = tlv(0x02, content);
        x509::unsigned_integer(&mut x509::Reader::new(&bytes), "n").map(<[u8]>::to_vec)
    };
    assert_eq!(int(&[0x00, 0x80]), Ok(vec![0x80]));
    assert_eq!(int(&[0x7f]), Ok(vec![0x7f]));
    assert_eq!(int(&[0x00]), Ok(vec![0x00]));
    assert!(int(&[0x00, 0x7f]).is_err(), "a superfluous 00");
    assert!(int(&[0xff, 0x80]).is_err(), "a superfluous FF");
    assert!(int(&[0x80]).is_err(), "negative");
    assert!(int(&[]).is_err(), "empty");

    let bc = |content: &[u8]| x509::basic_constraints(&tlv(0x30, content));
    assert_eq!(bc(&[]), Ok(false));
    assert_eq!(bc(&[0x01, 0x01, 0xff]), Ok(true));
    assert_eq!(bc(&[0x01, 0x01, 0xff, 0x02, 0x01, 0x03]), Ok(true));
    assert!(bc(&[0x01, 0x01, 0x00]).is_err(), "cA FALSE encoded");
    assert!(bc(&[0x01, 0x01, 0x01]).is_err(), "a BOOLEAN not 00 or FF");
    assert!(
        bc(&[0x01, 0x01, 0xff, 0x02, 0x02, 0x01, 0x00]).is_err(),
        "path length over 255"
    );

    let ku = |content: &[u8]| x509::can_sign_certificates(&tlv(0x03, content));
    assert_eq!(ku(&[0x07, 0x80]), Ok(false), "digitalSignature");
    assert_eq!(ku(&[0x02, 0x04]), Ok(true), "keyCertSign");
    assert_eq!(ku(&[0x01, 0x02]), Ok(true), "cRLSign");
    assert_eq!(ku(&[0x07, 0x80, 0x80]), Ok(false), "decipherOnly");
    assert!(ku(&[0x02, 0x05]).is_err(), "an unused bit set");
    assert!(ku(&[0x08, 0x80]).is_err(), "eight unused bits");
    assert!(ku(&[0x00, 0x80, 0x00, 0x00]).is_err(), "more than 16 bits");
}

/// A v3 certificate around the given validity and extensions, with dummy algorithm, names, key
/// and signature (the reader checks structure, not the signature).
fn certificate(validity: &[u8], extensions: Option<&[u8]>) -> Vec<u8> {
    let alg = tlv(0x30, &[0x06, 0x03, 0x2b, 0x65, 0x70]);
    let name = tlv(
        0x30,
        &tlv(
            0x31,
            &tlv(0x30, &[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, b'x']),
        ),
    );
    let spki = tlv(0x30, &[alg.clone(), tlv(0x03, &[0x00, 1, 2, 3])].concat());
    let mut tbs = [
        tlv(0xa0, &[0x02, 0x01, 0x02]),
        vec![0x02, 0x01, 0x01],
        alg.clone(),
        name.clone(),
        tlv(0x30, validity),
        name,
        spki,
    ]
    .concat();
    if let Some(ext) = extensions {
        tbs.extend(tlv(0xa3, &tlv(0x30, ext)));
    }
    tlv(
        0x30,
        &[tlv(0x30, &tbs), alg, tlv(0x03, &[0x00, 9, 9])].concat(),
    )
}

fn utc(text: &str) -> Vec<u8> {
    tlv(0x17, text.as_bytes())
}

fn generalized(text: &str) -> Vec<u8> {
    tlv(0x18, text.as_bytes())
}

#[test]
fn validity_is_read_in_the_forms_rfc_5280_allows() {
    let read = |a: Vec<u8>, b: Vec<u8>| {
        Certificate::from_der(&certificate(&[a, b].concat(), None))
            .map(|c| (c.not_before, c.not_after))
    };
    assert_eq!(
        read(utc("700101000000Z"), utc("491231235959Z")),
        Ok((0, 2_524_607_999))
    );
    assert_eq!(
        read(utc("240229120000Z"), generalized("20500101000000Z")),
        Ok((1_709_208_000, 2_524_608_000))
    );
    for (a, b) in [
        (utc("690101000000Z"), utc("700101000000Z")),
        (utc("230229000000Z"), utc("240101000000Z")),
        (utc("240431000000Z"), utc("250101000000Z")),
        (utc("241301000000Z"), utc("250101000000Z")),
        (utc("240101240000Z"), utc("250101000000Z")),
        (utc("240101006000Z"), utc("250101000000Z")),
        (utc("240101000060Z"), utc("250101000000Z")),
        (utc("2401010000Z"), utc("250101000000Z")),
        (utc("240101000000+0100"), utc("250101000000Z")),
        (utc("240101000000z"), utc("250101000000Z")),
        (utc("24010100000aZ"), utc("250101000000Z")),
        (generalized("20240101000000.5Z"), utc("250101000000Z")),
        (tlv(0x04, b"240101000000Z"), utc("250101000000Z")),
    ] {
        assert!(
            read(a.clone(), b).is_err(),
            "{}",
            String::from_utf8_lossy(&a)
        );
    }
    // 2000 is a leap year, 2100 is not.
    assert!(read(generalized("20000229000000Z"), utc("250101000000Z")).is_ok());
    assert!(read(
        generalized("21000229000000Z"),
        generalized("21010101000000Z")
    )
    .is_err());
}

#[test]
fn structure_rules_beyond_the_lengths() {
    let validity = [utc("240101000000Z"), utc("250101000000Z")].concat();
    let san = tlv(0x30, &[0x86, 0x03, b'a', b':', b'b']);
    let ext = |critical: &[u8], value: &[u8]| {
        tlv(
            0x30,
            &[
                &[0x06, 0x03, 0x55, 0x1d, 0x11][..],
                critical,
                &tlv(0x04, value),
            ]
            .concat(),
        )
    };
    let good = certificate(&validity, Some(&ext(&[], &san)));
    let cert = Certificate::from_der(&good).unwrap();
    assert_eq!(cert.extensions.len(), 1);
    assert!(!cert.extensions[0].critical);
    let critical = certificate(&validity, Some(&ext(&[0x01, 0x01, 0xff], &san)));
    assert!(Certificate::from_der(&critical).unwrap().extensions[0].critical);
    for (bytes, error) in [
        (
            certificate(&validity, Some(&ext(&[0x01, 0x01, 0x00], &san))),
            "`critical` FALSE encoded",
        ),
        (
            certificate(&validity, Some(&[ext(&[], &san), ext(&[], &san)].concat())),
            "an extension appears twice",
        ),
        (
            certificate(&validity, Some(&[])),
            "extensions: an empty list",
        ),
        ([good.clone(), vec![0]].concat(), "data after the end"),
    ] {
        let e = Certificate::from_der(&bytes).unwrap_err();
        assert!(e.contains(error), "{e}");
    }
    // The SAN kinds: IA5 names only, known tags only.
    assert_eq!(
        x509::subject_alt_names(&tlv(0x30, &[0x82, 0x01, b'a', 0x86, 0x01, b'u'])),
        Ok((vec!["u".to_string()], vec!["a".to_string()]))
    );
    assert!(x509::subject_alt_names(&tlv(0x30, &[0x82, 0x01, 0xe9])).is_err());
    assert!(x509::subject_alt_names(&tlv(0x30, &[0x89, 0x00])).is_err());
    assert!(x509::subject_alt_names(&tlv(0x30, &[0xa4, 0x02, 0x04, 0x00])).is_err());
    // An x400Address nested a few levels is read; nested thousands deep it is refused, not
    // followed until the stack runs out.
    let nested = |levels: usize| {
        let mut inner = vec![0x04, 0x00];
        for _ in 0..levels {
            inner = tlv(0x30, &inner);
        }
        x509::subject_alt_names(&tlv(0x30, &tlv(0xa3, &inner)))
    };
    assert!(nested(4).is_ok());
    let e = nested(5_000).unwrap_err();
    assert!(e.contains("nested too deeply"), "{e}");
}
