//! `cargo xtask lab up|down`: a lab for a person at a shell, left running,
//! and what to type to use it.
use crate::lab::{self, Lab, LabOptions, SERVER_ADDR};
use crate::process::require_root;
use anyhow::Result;

/// Brings the lab up, prints its namespaces, interfaces and the commands
/// that use them, and leaves it up (`down` removes it).
pub fn up(opts: &LabOptions) -> Result<()> {
    require_root("the lab")?;
    let name = &opts.name;
    let lab = Lab::up(opts)?;
    let cli_if = lab
        .cli_vlan_if
        .clone()
        .unwrap_or_else(|| lab.cli_if.clone());
    println!("lab {name} is up");
    println!(
        "  server  namespace {:<14} interface {:<12} mac {}  address {SERVER_ADDR}{}",
        lab.srv_ns,
        lab.srv_if,
        lab::format_mac(&lab.srv_mac),
        opts.server_vlan_addr
            .as_deref()
            .map(|a| format!(", {a} on VLAN {}", opts.client_vlan.unwrap_or(0)))
            .unwrap_or_default()
    );
    println!(
        "  client  namespace {:<14} interface {:<12} mac {}  address {}",
        lab.cli_ns,
        cli_if,
        lab::format_mac(&lab.cli_mac),
        opts.client_addr.as_deref().unwrap_or("none")
    );
    println!();
    println!("  enter a side:   ip netns exec {} bash", lab.srv_ns);
    println!(
        "  run the server: ip netns exec {} target/release/xdhcpd --config FILE   (interface = \"{}\")",
        lab.srv_ns, lab.srv_if
    );
    println!(
        "  get a lease:    ip netns exec {} dhclient -1 -v -lf /tmp/{name}.leases -pf /tmp/{name}.pid {cli_if}",
        lab.cli_ns
    );
    if opts.client_addr.is_some() {
        println!(
            "  load it:        ip netns exec {} perfdhcp -4 -l {cli_if} -r 1000 -R 1000 -p 5",
            lab.cli_ns
        );
    }
    println!("  take it down:   cargo xtask lab down --name {name}");
    // The lab outlives this command; `lab down` removes it.
    std::mem::forget(lab);
    Ok(())
}

/// Removes the namespaces of lab `name` (and with them its interfaces).
pub fn down(name: &str) -> Result<()> {
    require_root("the lab")?;
    // "NAME-" so that taking down `xlab` leaves `xlab2` alone.
    let prefix = format!("{name}-");
    let found: Vec<String> = lab::netns_list()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if found.is_empty() {
        println!("lab {name} was not up");
        return Ok(());
    }
    lab::remove_stale(&prefix)?;
    println!("lab {name} is down (removed {})", found.join(", "));
    Ok(())
}
