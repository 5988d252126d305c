//! scripts/oci-package.sh writes a Wasm OCI image (compat variant) that Istio's agent can pull:
//! the layout's structure, media types and every digest are checked here, on a small module. Then
//! scripts/oci-push.sh pushes images to a real registry on loopback (Debian `docker-registry`, the
//! CNCF distribution registry), read back with `skopeo`: the digest a WasmPlugin pins is the one
//! the registry serves, and the module pulled back is the module pushed (the release
//! `shieldwall.wasm`). Both programs come from scripts/setup.sh; without them these tests fail.

// Helpers outside #[test] functions panic on purpose: a panic is how a test reports.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

mod common;

use common::repo_root;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A valid, minimal WebAssembly module: the header and one custom section named "shieldwall".
const MODULE: &[u8] = b"\0asm\x01\0\0\0\0\x0b\x0ashieldwall";

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

#[test]
fn print_digest_prints_only_the_manifest_digest() {
    let dir = scratch("print-digest");
    let wasm = dir.join("in.wasm");
    std::fs::write(&wasm, MODULE).expect("write module");
    let out = run_ok(
        Command::new("bash")
            .arg(repo_root().join("scripts/oci-package.sh"))
            .args(["scope-authz", "--wasm"])
            .arg(&wasm)
            .args(["--tag", "t", "--out"])
            .arg(dir.join("out"))
            .arg("--print-digest"),
    );
    let index = json(&dir.join("out/layout/index.json"));
    let digest = index["manifests"][0]["digest"].as_str().expect("digest");
    assert_eq!(String::from_utf8_lossy(&out), format!("{digest}\n"));
}

// ---- a real registry on loopback ------------------------------------------------------------

/// A program the registry tests need; its absence fails the test, naming the setup script.
fn installed(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed: run scripts/setup.sh (it installs the Debian package {package})"
            )
        })
}

/// The message a machine without the registry or skopeo gets: a failure naming the setup script.
#[test]
#[should_panic(
    expected = "shieldwall-no-such-program is not installed: run scripts/setup.sh (it installs the Debian package no-such-package)"
)]
fn a_missing_program_fails_naming_the_setup_script() {
    installed("shieldwall-no-such-program", "no-such-package");
}

/// The CNCF distribution registry (Debian `docker-registry`) on a free loopback port, plain HTTP,
/// filesystem storage in a scratch directory; killed when dropped.
struct Registry {
    child: std::process::Child,
    port: u16,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let binary = installed("docker-registry", "docker-registry");
        let config = dir.join("config.yml");
        // Port 0: the registry takes a free port and logs it ("listening on 127.0.0.1:<port>").
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: false\nhttp:\n  addr: 127.0.0.1:0\n",
                dir.join("storage").display()
            ),
        )
        .expect("registry config");
        let log = dir.join("registry.log");
        let mut child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.join("registry.out")).expect("log"))
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start docker-registry");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(port) = text
                .split("listening on 127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                return Registry { child, port };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("docker-registry exited ({status}):\n{text}");
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("docker-registry did not listen within 15 s:\n{text}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    run_ok(Command::new(installed("skopeo", "skopeo")).args(args))
}

fn push(module: &Path, repository: &str, tag: &str, out: &Path) -> String {
    installed("skopeo", "skopeo");
    let stdout = run_ok(
        Command::new("bash")
            .arg(repo_root().join("scripts/oci-push.sh"))
            .args([
                "shieldwall",
                repository,
                "--tag",
                tag,
                "--insecure",
                "--wasm",
            ])
            .arg(module)
            .arg("--out")
            .arg(out),
    );
    let text = String::from_utf8(stdout).expect("UTF-8");
    assert_eq!(text.lines().count(), 1, "one line on stdout: {text}");
    text.trim_end().to_string()
}

/// The module the layer of an image layout holds, read through its index, manifest and layer,
/// every blob checked against its digest.
fn module_in_layout(layout: &Path, scratch_dir: &Path) -> (String, Vec<u8>) {
    let index = json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    let digest = manifests[0]["digest"].as_str().expect("digest").to_string();
    let manifest: Value = serde_json::from_slice(&blob(layout, &manifests[0])).expect("manifest");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let layer_path = scratch_dir.join("pulled-layer.tar.gz");
    std::fs::write(&layer_path, blob(layout, &layers[0])).expect("layer");
    let module = run_ok(
        Command::new("tar")
            .arg("-xzOf")
            .arg(&layer_path)
            .arg("plugin.wasm"),
    );
    (digest, module)
}

/// The release module of the one-module chain, what a gateway pulls.
fn release_module() -> PathBuf {
    let target = String::from_utf8(run_ok(
        Command::new("bash").arg(repo_root().join("scripts/target-dir.sh")),
    ))
    .expect("UTF-8");
    let path = PathBuf::from(target.trim_end()).join("wasm32-wasip1/release/shieldwall.wasm");
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build --release --target wasm32-wasip1 -p shieldwall`",
        path.display()
    );
    path
}

/// The whole path of a module to a gateway, on a real registry: scripts/oci-push.sh pushes the
/// release module with skopeo and prints `oci://…@sha256:<digest>`; that digest is the manifest
/// digest the layout holds, the registry serves it byte for byte under the tag and under the
/// digest, and the image pulled back by digest holds the module, byte-identical.
#[test]
fn a_module_pushed_to_a_real_registry_is_pinned_by_its_manifest_digest() {
    let dir = scratch("registry-push");
    let registry = Registry::start(&dir);
    let module_path = release_module();
    let module = std::fs::read(&module_path).expect("module");
    let repository = format!("{}/shieldwall/shieldwall", registry.host());
    let url = push(&module_path, &repository, "0.1.0", &dir.join("pushed"));

    // The digest the WasmPlugin pins is the manifest digest the layout was written with.
    let (built, packaged) = module_in_layout(&dir.join("pushed/layout"), &dir);
    assert_eq!(packaged, module);
    assert_eq!(url, format!("oci://{repository}@{built}"));

    // The registry's view: skopeo inspect names the same digest, and the raw manifest it serves
    // under the tag hashes to it (what Istio's agent compares with `sha256`).
    let reference = format!("docker://{repository}:0.1.0");
    let inspected: Value =
        serde_json::from_slice(&skopeo(&["inspect", "--tls-verify=false", &reference]))
            .expect("inspect JSON");
    assert_eq!(inspected["Digest"], built.as_str());
    assert_eq!(inspected["Architecture"], "wasm");
    assert_eq!(inspected["Os"], "wasip1");
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
    assert_eq!(format!("sha256:{}", hex_sha256(&raw)), built);

    // Pulled back by digest, as a pinned WasmPlugin makes the agent do.
    let by_digest = format!("docker://{repository}@{built}");
    let back = dir.join("pulled");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &by_digest,
        &format!("oci:{}:pulled", back.display()),
    ]);
    let (pulled_digest, pulled) = module_in_layout(&back, &dir);
    assert_eq!(pulled_digest, built);
    assert!(
        pulled == module,
        "plugin.wasm pulled back differs from the module"
    );

    // A WasmPlugin naming that URL (and the digest in `sha256`) is valid Istio, and its filter
    // is read from the URL.
    let plugin = serde_json::json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": "shieldwall", "namespace": "istio-ingress"},
        "spec": {
            "selector": {"matchLabels": {"istio": "ingressgateway"}},
            "url": url,
            "sha256": built.strip_prefix("sha256:").expect("hex"),
            "imagePullPolicy": "IfNotPresent",
            "phase": "AUTHN",
            "failStrategy": "FAIL_CLOSE",
        }
    });
    assert_eq!(common::crds().validate(&plugin), vec![]);
    assert_eq!(
        shieldwall_istio::plugins::filter_of_url(&url).as_deref(),
        Ok("shieldwall")
    );
    eprintln!(
        "pushed {} ({} bytes) to {url}",
        module_path.display(),
        module.len()
    );
}

/// Why the URL pins a digest: pushing another module under the same tag moves the tag, while the
/// first digest still names, and still pulls, the first module.
#[test]
fn a_tag_pushed_over_does_not_move_a_pinned_digest() {
    let dir = scratch("registry-retag");
    let registry = Registry::start(&dir);
    let repository = format!("{}/shieldwall/shieldwall", registry.host());
    let first_module = dir.join("first.wasm");
    let second_module = dir.join("second.wasm");
    std::fs::write(&first_module, MODULE).expect("first");
    std::fs::write(&second_module, b"\0asm\x01\0\0\0\0\x07\x06second").expect("second");
    let first = push(&first_module, &repository, "latest", &dir.join("first"));
    let second = push(&second_module, &repository, "latest", &dir.join("second"));
    assert_ne!(first, second);

    let digest_of = |url: &str| url.rsplit('@').next().expect("digest").to_string();
    let reference = format!("docker://{repository}:latest");
    let inspected: Value =
        serde_json::from_slice(&skopeo(&["inspect", "--tls-verify=false", &reference]))
            .expect("inspect JSON");
    assert_eq!(
        inspected["Digest"].as_str(),
        Some(digest_of(&second).as_str())
    );

    let back = dir.join("pinned");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &first.replacen("oci://", "docker://", 1),
        &format!("oci:{}:pinned", back.display()),
    ]);
    let (digest, module) = module_in_layout(&back, &dir);
    assert_eq!(digest, digest_of(&first));
    assert_eq!(module, MODULE);
}

#[test]
fn oci_push_refuses_a_reference_with_a_tag_or_no_repository() {
    let dir = scratch("push-refuse");
    let wasm = dir.join("in.wasm");
    std::fs::write(&wasm, MODULE).expect("write module");
    for bad in [
        "registry.example.com/shieldwall/jwt-auth:0.1.0",
        "registry.example.com/shieldwall/jwt-auth@sha256:00",
        "registry.example.com",
        "shieldwall/jwt-auth",
    ] {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/oci-push.sh"))
            .args(["jwt-auth", bad, "--wasm"])
            .arg(&wasm)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not <registry>/<repository>"),
            "{bad}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
