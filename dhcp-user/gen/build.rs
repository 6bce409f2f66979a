//! Finds the generator's XDP program (`dhcp-ebpf/src/gen.rs`), which
//! `dhcp-user`'s build script builds together with the server's, and hands
//! its path to `steer` as `XDHCPGEN_STEER_OBJECT`. The eBPF crate is built
//! once; only this package embeds the generator's object.
use std::env;
use std::path::PathBuf;

fn main() {
    // `dhcp-user` (links = "xdhcp-ebpf") says where it left the objects.
    let dir = env::var_os("DEP_XDHCP_EBPF_OBJECT_DIR")
        .expect("dhcp-user's build script reports DEP_XDHCP_EBPF_OBJECT_DIR");
    let object = PathBuf::from(dir).join(dhcp_common_gen_object());
    println!("cargo:rerun-if-env-changed=DEP_XDHCP_EBPF_OBJECT_DIR");
    println!("cargo:rerun-if-changed={}", object.display());
    println!("cargo:rustc-env=XDHCPGEN_STEER_OBJECT={}", object.display());
}

/// `dhcp_common::GEN_OBJECT`; build scripts cannot use the crate itself
/// without making it a build dependency.
fn dhcp_common_gen_object() -> &'static str {
    "xdhcpgen-steer"
}
