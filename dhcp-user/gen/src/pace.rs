//! The pace at which a worker starts new exchanges: a token bucket filled
//! at the target rate, holding at most one batch so that a stall is not
//! followed by a burst the server never sees in real life.

#[derive(Debug, Clone)]
pub struct Pacer {
    /// Exchanges per nanosecond; 0 for open loop (no limit).
    per_ns: f64,
    burst: f64,
    tokens: f64,
    last_ns: u64,
}

impl Pacer {
    /// `rate` exchanges per second (0: as fast as the window allows).
    pub fn new(rate: f64, burst: usize) -> Pacer {
        let burst = burst.max(1) as f64;
        Pacer {
            per_ns: rate.max(0.0) / 1e9,
            burst,
            // Start with a single token: the first batch is not a burst.
            tokens: 1.0,
            last_ns: 0,
        }
    }

    /// Refills for the time since the last call; true when an exchange may
    /// start now.
    #[inline]
    pub fn ready(&mut self, now_ns: u64) -> bool {
        if self.per_ns == 0.0 {
            return true;
        }
        if now_ns > self.last_ns {
            let gained = (now_ns - self.last_ns) as f64 * self.per_ns;
            self.tokens = (self.tokens + gained).min(self.burst);
            self.last_ns = now_ns;
        }
        self.tokens >= 1.0
    }

    /// Takes the token `ready` promised.
    #[inline]
    pub fn spend(&mut self) {
        if self.per_ns != 0.0 {
            self.tokens -= 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate() {
        let mut p = Pacer::new(1000.0, 8);
        let mut started = 0;
        // 100 ms in 10 µs steps.
        for step in 0..10_000u64 {
            while p.ready(step * 10_000) {
                p.spend();
                started += 1;
            }
        }
        assert!((99..=101).contains(&started), "{started}");
    }

    #[test]
    fn burst_is_capped_and_open_loop_is_unlimited() {
        let mut p = Pacer::new(1000.0, 4);
        let mut n = 0;
        while p.ready(10_000_000_000) {
            p.spend();
            n += 1;
        }
        assert_eq!(n, 4);
        let mut open = Pacer::new(0.0, 4);
        assert!((0..1000).all(|_| {
            let r = open.ready(0);
            open.spend();
            r
        }));
    }
}
