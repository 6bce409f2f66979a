//! The rules that turn runs into one figure: ISC's rate ladder for
//! perfdhcp (the 2.5 % drop threshold, the confirming second run, the
//! stop at perfdhcp's own limit) and the median of xdhcpgen's repeats.
//! Pure functions, so the tests below pin them down without a lab.
use serde::Serialize;

/// ISC's threshold: a step with more failed exchanges than this ends the
/// ladder.
pub const MAX_DROP_PCT: f64 = 2.5;
/// A step that completes less than this share of its target rate within
/// the drop threshold shows perfdhcp's own limit: the ladder ends there.
pub const LOAD_LIMIT_SHARE: f64 = 0.9;

/// Share of started DORA exchanges (DISCOVERs sent) that got no ACK.
pub fn drop_pct(discovers_sent: u64, acks_received: u64) -> f64 {
    if discovers_sent == 0 {
        return 100.0;
    }
    100.0 * discovers_sent.saturating_sub(acks_received) as f64 / discovers_sent as f64
}

/// Why a perfdhcp ladder ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Stop {
    /// More than [`MAX_DROP_PCT`] of the exchanges failed at this target.
    Drops {
        target: u32,
        drop_pct: f64,
    },
    /// perfdhcp completed less than [`LOAD_LIMIT_SHARE`] of this target
    /// without dropping: it could not load the server harder.
    LoadLimit {
        target: u32,
        rate: f64,
    },
    /// Every rate asked for was within the threshold.
    LastStep,
    Interrupted,
}

/// The step/stop rule: whether the ladder ends after a step that asked
/// for `target` DORA/s, completed `rate` and lost `drop_pct` %.
pub fn stop_after(target: u32, rate: f64, drop_pct: f64) -> Option<Stop> {
    if drop_pct > MAX_DROP_PCT {
        Some(Stop::Drops { target, drop_pct })
    } else if rate < LOAD_LIMIT_SHARE * f64::from(target) {
        Some(Stop::LoadLimit { target, rate })
    } else {
        None
    }
}

/// The index of the median of `values` (the lower one of an even count).
pub fn median_index(values: &[f64]) -> Option<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order.get(values.len().checked_sub(1)? / 2).copied()
}

/// Whether a step is run once more before its verdict stands: a step
/// over the drop threshold is confirmed by a second run (one noisy run of
/// the lab must not end a ladder); perfdhcp's own limit is not.
pub fn try_again(verdict: Option<Stop>, attempt: u32) -> bool {
    attempt < 2 && matches!(verdict, Some(Stop::Drops { .. }))
}

/// The ladder's result: the index of the step with the highest completed
/// rate among those with at most [`MAX_DROP_PCT`] drops; `steps` holds
/// (completed rate, drop %) per step.
pub fn best_step(steps: &[(f64, f64)]) -> Option<usize> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, (_, d))| *d <= MAX_DROP_PCT)
        .max_by(|(_, (a, _)), (_, (b, _))| a.total_cmp(b))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_count_exchanges_without_an_ack() {
        assert_eq!(drop_pct(1000, 1000), 0.0);
        assert_eq!(drop_pct(1000, 975), 2.5);
        assert_eq!(drop_pct(1000, 1200), 0.0);
        assert_eq!(drop_pct(0, 0), 100.0);
    }

    #[test]
    fn the_ladder_stops_past_two_and_a_half_percent() {
        assert_eq!(stop_after(1000, 999.0, 0.0), None);
        assert_eq!(stop_after(1000, 980.0, 2.5), None);
        assert_eq!(
            stop_after(8000, 7600.0, 2.6),
            Some(Stop::Drops {
                target: 8000,
                drop_pct: 2.6
            })
        );
        // Drops win over a low rate: the server lost them.
        assert!(matches!(
            stop_after(8000, 100.0, 50.0),
            Some(Stop::Drops { .. })
        ));
        // Within the threshold but far below the target: perfdhcp's limit.
        assert_eq!(
            stop_after(32000, 13000.0, 0.1),
            Some(Stop::LoadLimit {
                target: 32000,
                rate: 13000.0
            })
        );
        assert_eq!(stop_after(16000, 14500.0, 0.0), None);
    }

    #[test]
    fn a_failed_step_is_confirmed_once() {
        let drops = stop_after(8000, 7000.0, 5.0);
        assert!(try_again(drops, 1));
        assert!(!try_again(drops, 2));
        assert!(!try_again(None, 1));
        assert!(!try_again(stop_after(32000, 13000.0, 0.0), 1));
    }

    #[test]
    fn the_result_is_the_fastest_step_within_the_threshold() {
        // (completed rate, drop %)
        let steps = [(1000.0, 0.0), (2000.0, 0.1), (3900.0, 2.4), (4100.0, 9.0)];
        assert_eq!(best_step(&steps), Some(2));
        // A step over the threshold never counts, however fast.
        assert_eq!(best_step(&[(5000.0, 3.0)]), None);
        assert_eq!(best_step(&[]), None);
        // The rate decides, not the order.
        assert_eq!(
            best_step(&[(900.0, 0.0), (1900.0, 0.0), (1500.0, 1.0)]),
            Some(1)
        );
        assert_eq!(best_step(&[(1000.0, 2.5)]), Some(0));
    }

    #[test]
    fn the_median_run_is_picked() {
        assert_eq!(median_index(&[]), None);
        assert_eq!(median_index(&[5.0]), Some(0));
        assert_eq!(median_index(&[90.0, 70.0, 80.0]), Some(2));
        // An even count takes the lower of the two middle ones.
        assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), Some(3));
    }
}
