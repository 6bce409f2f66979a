//! Builds the XDP programs in `dhcp-ebpf` for the BPF target (nightly +
//! bpf-linker, see TOOLCHAIN notes in the README) and leaves the objects in
//! OUT_DIR, where `io::xdp` embeds the server's; the generator's package
//! (`gen/`) finds its own there through `links` metadata.
use std::path::{Path, PathBuf};
use std::{env, fs};

/// The eBPF crate's binary target; `io::xdp` includes `$OUT_DIR/<this>`.
const OBJECT: &str = "xdhcp-steer";

fn main() -> anyhow::Result<()> {
    let manifest = env::var("CARGO_MANIFEST_DIR")?;
    let root = Path::new(&manifest).join("..");
    let ebpf = root.join("dhcp-ebpf");
    let common = root.join("dhcp-common");

    // aya-build watches dhcp-ebpf itself; the program also compiles in the
    // shared constants and is linked by whatever bpf-linker is on PATH.
    println!("cargo:rerun-if-changed={}", common.display());
    if let Some(linker) = find_in_path("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }

    aya_build::build_ebpf(
        [aya_build::Package {
            name: "dhcp-ebpf",
            root_dir: ebpf
                .to_str()
                .ok_or_else(|| anyhow::anyhow!("path {} is not valid UTF-8", ebpf.display()))?,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )?;

    // With AYA_BUILD_SKIP (a quick `cargo check`/`clippy` without nightly)
    // aya-build leaves nothing behind; an empty object keeps the crate
    // compiling, and `Steering::attach` refuses to run with it.
    let object = PathBuf::from(env::var("OUT_DIR")?).join(OBJECT);
    if !object.exists() {
        fs::write(&object, [])?;
    }
    // The generator's program (xdhcpgen), embedded by its package's
    // `steer` module: DEP_XDHCP_EBPF_OBJECT_DIR in that build script.
    let gen_object = PathBuf::from(env::var("OUT_DIR")?).join(dhcp_common_gen_object());
    if !gen_object.exists() {
        fs::write(&gen_object, [])?;
    }
    println!("cargo::metadata=object_dir={}", env::var("OUT_DIR")?);
    Ok(())
}

/// `dhcp_common::GEN_OBJECT`; build scripts cannot use the crate itself
/// without making it a build dependency.
fn dhcp_common_gen_object() -> &'static str {
    "xdhcpgen-steer"
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
