//! A fixed-capacity FIFO of client indices, allocated once: the queues of
//! clients due to send, free to start, or bound. Every client sits in a
//! given queue at most once, so a queue as large as the fleet never fills.

#[derive(Debug)]
pub struct Ring {
    slots: Vec<u32>,
    head: usize,
    len: usize,
}

impl Ring {
    pub fn with_capacity(capacity: usize) -> Ring {
        Ring {
            slots: vec![0; capacity.max(1)],
            head: 0,
            len: 0,
        }
    }

    /// Appends `v`; false (and nothing stored) when the ring is full.
    #[inline]
    pub fn push(&mut self, v: u32) -> bool {
        if self.len == self.slots.len() {
            return false;
        }
        let at = (self.head + self.len) % self.slots.len();
        self.slots[at] = v;
        self.len += 1;
        true
    }

    #[inline]
    pub fn pop(&mut self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let v = self.slots[self.head];
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        Some(v)
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_wraps_and_refuses_when_full() {
        let mut r = Ring::with_capacity(3);
        assert!(r.push(1) && r.push(2) && r.push(3));
        assert!(!r.push(4));
        assert_eq!(r.pop(), Some(1));
        assert!(r.push(4));
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r.pop(), r.pop(), r.pop(), r.pop()),
            (Some(2), Some(3), Some(4), None)
        );
        assert!(r.is_empty());
    }
}
