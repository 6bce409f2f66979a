//! One timer per client (retransmission or give-up deadline) in a hashed
//! timing wheel: arming, cancelling and firing are O(1) and allocate
//! nothing, whatever the number of clients.
//!
//! The wheel has [`SLOTS`] slots of [`TICK_NS`]; a deadline further away
//! than one turn waits in its slot and is skipped until it is due.

/// Width of one slot.
pub const TICK_NS: u64 = 1_000_000;
/// Slots in one turn of the wheel (4.1 s at 1 ms).
pub const SLOTS: usize = 4096;
const NONE: u32 = u32::MAX;

#[derive(Debug)]
pub struct TimerWheel {
    heads: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Slot of an armed timer, NONE when disarmed.
    slot: Vec<u32>,
    deadline: Vec<u64>,
    /// The first tick not yet fully processed.
    cursor: u64,
}

impl TimerWheel {
    pub fn new(timers: usize) -> TimerWheel {
        TimerWheel {
            heads: vec![NONE; SLOTS],
            next: vec![NONE; timers],
            prev: vec![NONE; timers],
            slot: vec![NONE; timers],
            deadline: vec![0; timers],
            cursor: 0,
        }
    }

    /// Arms (or re-arms) timer `i` to fire at `deadline_ns`.
    pub fn arm(&mut self, i: u32, deadline_ns: u64) {
        self.cancel(i);
        // A deadline already behind the cursor goes into the cursor's slot,
        // which the next `expire` visits first.
        let tick = (deadline_ns / TICK_NS).max(self.cursor);
        let s = (tick % SLOTS as u64) as u32;
        let iu = i as usize;
        self.deadline[iu] = deadline_ns;
        self.slot[iu] = s;
        self.prev[iu] = NONE;
        self.next[iu] = self.heads[s as usize];
        if self.next[iu] != NONE {
            self.prev[self.next[iu] as usize] = i;
        }
        self.heads[s as usize] = i;
    }

    pub fn cancel(&mut self, i: u32) {
        let iu = i as usize;
        let s = self.slot[iu];
        if s == NONE {
            return;
        }
        let (p, n) = (self.prev[iu], self.next[iu]);
        if p == NONE {
            self.heads[s as usize] = n;
        } else {
            self.next[p as usize] = n;
        }
        if n != NONE {
            self.prev[n as usize] = p;
        }
        self.slot[iu] = NONE;
    }

    pub fn is_armed(&self, i: u32) -> bool {
        self.slot[i as usize] != NONE
    }

    /// Disarms every timer due at `now_ns` and appends it to `fired`.
    pub fn expire(&mut self, now_ns: u64, fired: &mut Vec<u32>) {
        let now_tick = now_ns / TICK_NS;
        // After a long pause one turn visits every slot once.
        let first = self.cursor.max(now_tick.saturating_sub(SLOTS as u64 - 1));
        for tick in first..=now_tick {
            let s = (tick % SLOTS as u64) as usize;
            let mut e = self.heads[s];
            while e != NONE {
                let after = self.next[e as usize];
                if self.deadline[e as usize] <= now_ns {
                    self.cancel(e);
                    fired.push(e);
                }
                e = after;
            }
        }
        // The current tick stays open: deadlines later in it are not due yet.
        self.cursor = now_tick;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_time_and_not_before() {
        let mut w = TimerWheel::new(4);
        let mut fired = Vec::new();
        w.arm(0, 5 * TICK_NS + 10);
        w.arm(1, 2 * TICK_NS);
        w.arm(2, (SLOTS as u64 + 3) * TICK_NS); // more than one turn away
        w.expire(2 * TICK_NS - 1, &mut fired);
        assert!(fired.is_empty());
        w.expire(5 * TICK_NS, &mut fired);
        assert_eq!(fired, vec![1]);
        w.expire(5 * TICK_NS + 10, &mut fired);
        assert_eq!(fired, vec![1, 0]);
        fired.clear();
        w.expire(4 * TICK_NS + SLOTS as u64 * TICK_NS / 2, &mut fired);
        w.expire(3 * TICK_NS + SLOTS as u64 * TICK_NS, &mut fired);
        assert_eq!(fired, vec![2]);
        assert!(!w.is_armed(2));
    }

    #[test]
    fn cancel_and_rearm() {
        let mut w = TimerWheel::new(3);
        let mut fired = Vec::new();
        w.arm(0, TICK_NS);
        w.arm(1, TICK_NS);
        w.arm(2, TICK_NS);
        w.cancel(1);
        w.arm(0, 10 * TICK_NS);
        w.expire(2 * TICK_NS, &mut fired);
        assert_eq!(fired, vec![2]);
        w.expire(100 * TICK_NS, &mut fired);
        assert_eq!(fired, vec![2, 0]);
    }

    #[test]
    fn past_deadlines_fire_at_the_next_expiry() {
        let mut w = TimerWheel::new(1);
        let mut fired = Vec::new();
        w.expire(50 * TICK_NS, &mut fired);
        w.arm(0, 3 * TICK_NS);
        w.expire(50 * TICK_NS, &mut fired);
        assert_eq!(fired, vec![0]);
    }
}
