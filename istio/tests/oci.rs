//! scripts/oci-package.sh writes a Wasm OCI image (compat variant) that Istio's agent can pull:
//! the layout's structure, media types and every digest are checked here, on a small module so the
//! test needs no release build.

// Helpers outside #[test] functions panic on purpose: a panic is how a test reports.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A valid, minimal WebAssembly module: the header and one custom section named "shieldwall".
const MODULE: &[u8] = b"\0asm\x01\0\0\0\0\x0b\x0ashieldwall";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("oci-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn package(dir: &Path, module: &[u8], tag: &str) -> std::process::Output {
    let wasm = dir.join("in.wasm");
    std::fs::write(&wasm, module).expect("write module");
    Command::new("bash")
        .arg(repo_root().join("scripts/oci-package.sh"))
        .args(["jwt-auth", "--wasm"])
        .arg(&wasm)
        .args(["--tag", tag, "--out"])
        .arg(dir.join("out"))
        .output()
        .expect("run scripts/oci-package.sh")
}

fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("JSON")
}

/// Reads the blob a descriptor names, checking that its size and digest are right.
fn blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().expect("digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob exists");
    assert_eq!(hex_sha256(&bytes), hex, "blob content matches its digest");
    assert_eq!(
        descriptor["size"].as_u64(),
        Some(bytes.len() as u64),
        "size of {digest}"
    );
    bytes
}

#[test]
fn oci_package_writes_a_compat_wasm_image_layout() {
    let dir = scratch("layout");
    let out = package(&dir, MODULE, "1.2.3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let layout = dir.join("out/layout");

    assert_eq!(
        json(&layout.join("oci-layout")),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        "1.2.3"
    );

    let manifest: Value = serde_json::from_slice(&blob(&layout, &manifests[0])).expect("manifest");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );
    assert_eq!(
        manifest["annotations"]["io.shieldwall.module.sha256"],
        hex_sha256(MODULE).as_str()
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "the compat variant has exactly one layer");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    // The layer is a gzip'd tar holding plugin.wasm, and nothing else.
    let layer = blob(&layout, &layers[0]);
    let layer_path = dir.join("layer.tar.gz");
    std::fs::write(&layer_path, &layer).expect("write layer");
    let listing = run_ok(Command::new("tar").arg("-tzf").arg(&layer_path));
    assert_eq!(String::from_utf8_lossy(&listing), "plugin.wasm\n");
    let extracted = run_ok(
        Command::new("tar")
            .arg("-xzOf")
            .arg(&layer_path)
            .arg("plugin.wasm"),
    );
    assert_eq!(extracted, MODULE);

    // The config's diff_id is the digest of the uncompressed layer.
    let config: Value =
        serde_json::from_slice(&blob(&layout, &manifest["config"])).expect("config");
    let tar = run_ok(Command::new("gzip").arg("-dc").arg(&layer_path));
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([format!("sha256:{}", hex_sha256(&tar))])
    );
    assert_eq!(config["rootfs"]["type"], "layers");

    // No stray blob.
    let blobs = std::fs::read_dir(layout.join("blobs/sha256"))
        .expect("blobs")
        .count();
    assert_eq!(blobs, 3, "manifest, config and layer");

    // The archive holds the same layout.
    let archive = dir.join("out/jwt-auth-1.2.3.tar");
    let names =
        String::from_utf8(run_ok(Command::new("tar").arg("-tf").arg(&archive))).expect("names");
    for name in ["oci-layout", "index.json", "blobs/sha256/"] {
        assert!(names.lines().any(|l| l == name), "{name} in {names}");
    }
    let archived_index = run_ok(
        Command::new("tar")
            .arg("-xOf")
            .arg(&archive)
            .arg("index.json"),
    );
    assert_eq!(
        archived_index,
        std::fs::read(layout.join("index.json")).expect("index")
    );

    // The script prints the manifest digest (what a WasmPlugin pins) and the module digest.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let manifest_digest = manifests[0]["digest"].as_str().expect("digest");
    assert!(
        stdout.contains(&format!("manifest {manifest_digest}")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("module   sha256:{}", hex_sha256(MODULE))));
}

#[test]
fn oci_package_is_reproducible() {
    let first = scratch("repro-a");
    let second = scratch("repro-b");
    assert!(package(&first, MODULE, "t").status.success());
    assert!(package(&second, MODULE, "t").status.success());
    let a = std::fs::read(first.join("out/jwt-auth-t.tar")).expect("a");
    let b = std::fs::read(second.join("out/jwt-auth-t.tar")).expect("b");
    assert_eq!(hex_sha256(&a), hex_sha256(&b));
}

#[test]
fn oci_package_refuses_what_is_not_a_module_or_a_tag() {
    let dir = scratch("refuse");
    let out = package(&dir, b"#!/bin/sh\n", "t");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly module"));
    let out = package(&dir, MODULE, "bad tag");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an OCI tag"));
}
