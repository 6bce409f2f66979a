//! The engine's time per packet beside dhcproto's, from one criterion run
//! of `benches/engine.rs`, and what it projects to on a NIC with
//! zero-copy AF_XDP, where the rings cost a fraction of what the lab's
//! veth in copy mode does.
use super::report::thousands;
use crate::lab::run as run_cmd;
use crate::workspace::cargo;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;

/// Median ns per packet, each from criterion's estimate.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct EngineNs {
    pub engine_discover: f64,
    pub engine_request: f64,
    pub dhcproto_discover: f64,
    pub dhcproto_request: f64,
}

/// Per packet, receiving and sending it through AF_XDP zero-copy rings on
/// one queue: 16 Mpps per queue on mlx5 (the xdp-project's published
/// AF_XDP forwarding figure), 62.5 ns. Not measured here: this machine
/// has no such NIC.
pub const ZERO_COPY_RING_NS: f64 = 1e9 / 16e6;

/// Runs `cargo bench --bench engine` (criterion's own timing: a few
/// seconds of warm-up and of samples per function) and reads the medians
/// it wrote under `target_dir/criterion`.
pub fn measure(target_dir: &Path) -> Result<EngineNs> {
    run_cmd(
        cargo()
            .env("AYA_BUILD_SKIP", "1")
            .args(["bench", "--bench", "engine", "--", "--noplot"]),
    )
    .context("cargo bench --bench engine")?;
    let read = |group: &str, f: &str| -> Result<f64> {
        let p = target_dir
            .join("criterion")
            .join(group)
            .join(f)
            .join("new/estimates.json");
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        median_ns(&text).with_context(|| format!("no median in {}", p.display()))
    };
    Ok(EngineNs {
        engine_discover: read("discover_offer", "xdhcp_engine")?,
        engine_request: read("request_ack", "xdhcp_engine")?,
        dhcproto_discover: read("discover_offer", "dhcproto_decode_encode")?,
        dhcproto_request: read("request_ack", "dhcproto_decode_encode")?,
    })
}

/// criterion's `estimates.json`: the median's point estimate, in ns per
/// iteration (one packet here).
fn median_ns(estimates: &str) -> Option<f64> {
    let v: Value = serde_json::from_str(estimates).ok()?;
    v["median"]["point_estimate"].as_f64()
}

impl EngineNs {
    /// dhcproto's time over the engine's, DISCOVER→OFFER and REQUEST→ACK.
    pub fn ratios(&self) -> (f64, f64) {
        (
            self.dhcproto_discover / self.engine_discover.max(f64::MIN_POSITIVE),
            self.dhcproto_request / self.engine_request.max(f64::MIN_POSITIVE),
        )
    }

    pub fn render(&self) -> String {
        let (d, r) = self.ratios();
        format!(
            "| per packet (criterion, median ns) | xdhcpd engine | dhcproto | dhcproto / engine |\n\
             |---|---:|---:|---:|\n\
             | DISCOVER → OFFER | {} | {} | {d:.1}× |\n\
             | REQUEST → ACK | {} | {} | {r:.1}× |\n",
            thousands(self.engine_discover),
            thousands(self.dhcproto_discover),
            thousands(self.engine_request),
            thousands(self.dhcproto_request),
        )
    }

    /// Leases per second on one core when every DORA costs the engine's
    /// two packets plus `ring_ns` for each of them.
    pub fn leases_per_core(&self, ring_ns: f64) -> f64 {
        1e9 / (self.engine_discover + self.engine_request + 2.0 * ring_ns)
    }

    /// The projection, labelled as one, with the same model applied to
    /// this lab's echo (whose cost per round trip stands in for the
    /// rings) beside the measured rate, so the model can be judged.
    pub fn projection(&self, echo_round_trips: Option<f64>, fast_measured: Option<f64>) -> String {
        let mut s = format!(
            "Projection, not a measurement: one core on a NIC with zero-copy AF_XDP, at \
             {ZERO_COPY_RING_NS:.1} ns per packet for the rings (16 Mpps per queue, the \
             xdp-project's published mlx5 figure) plus the engine's two packets above: {} \
             leases/s per core in fast mode (the engine alone, without rings: {}).",
            thousands(self.leases_per_core(ZERO_COPY_RING_NS)),
            thousands(self.leases_per_core(0.0)),
        );
        if let Some(rt) = echo_round_trips.filter(|rt| *rt > 0.0) {
            let lab_ns = 1e9 / rt;
            let model = self.leases_per_core(lab_ns);
            s.push_str(&format!(
                " The same model for this lab, with the echo's {} ns per round trip (copy mode, \
                 veth) for the rings: {} leases/s",
                thousands(lab_ns),
                thousands(model)
            ));
            match fast_measured {
                Some(m) => s.push_str(&format!(
                    ", against {} measured for xdhcpd fast ({:.0} %).",
                    thousands(m),
                    100.0 * m / model
                )),
                None => s.push('.'),
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_and_projects() {
        let est = r#"{"mean":{"point_estimate":510.0},"median":{"point_estimate":500.5,"standard_error":1.0}}"#;
        assert_eq!(median_ns(est), Some(500.5));
        assert_eq!(median_ns("{}"), None);
        let e = EngineNs {
            engine_discover: 400.0,
            engine_request: 475.0,
            dhcproto_discover: 2_000.0,
            dhcproto_request: 3_800.0,
        };
        assert_eq!(e.ratios(), (5.0, 8.0));
        // 1e9 / (400 + 475 + 125)
        assert!((e.leases_per_core(ZERO_COPY_RING_NS) - 1e6).abs() < 1e-6);
        let t = e.render();
        assert!(
            t.contains("| DISCOVER → OFFER | 400 | 2,000 | 5.0× |"),
            "{t}"
        );
        let p = e.projection(Some(250_000.0), Some(180_000.0));
        assert!(p.starts_with("Projection, not a measurement"), "{p}");
        // 1e9 / (875 + 2 × 4000) = 112,676
        assert!(
            p.contains("112,676 leases/s, against 180,000 measured"),
            "{p}"
        );
    }
}
