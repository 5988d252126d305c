//! The filters this module bundles are modules of their own as well: each library also defines
//! the proxy-wasm exports of its single-filter module (`_initialize`, and callbacks such as
//! `proxy_on_tick`). Linked into this module, those names are defined twice. This module's own
//! definitions come first on the link line and win; the filters' copies are never called.
//! `host-tests/tests/exports.rs` pins the exports and `host-tests/tests/chain.rs` shows the
//! module runs the chain (a filter's `_initialize` would refuse the chain configuration).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--allow-multiple-definition");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
