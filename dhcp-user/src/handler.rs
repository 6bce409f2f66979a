//! The contract between the I/O workers and the engine: a worker hands
//! each received frame to a [`FrameHandler`] and sends what it writes.
//! Both sides depend on this module and on nothing of each other, so the
//! engine never sees a ring and the workers never see a lease.
use std::os::fd::RawFd;
use std::time::Instant;

/// Room a TX buffer offers a reply: a full Ethernet frame with two VLAN
/// tags at the largest DHCP message we ever build.
pub const TX_FRAME_CAPACITY: usize = 2048;

/// Longest a reply waits for its lease record to be safe (synced, or in
/// `replicated` mode stored by the cluster). Past it the reply is dropped
/// (`parked_expired`): the client has retransmitted by then (RFC 2131's
/// first retry is after about 4 s) and a late ACK only confuses it, and a
/// cluster thread that gives up on a record (fenced by another server's
/// claim) may move the marks past it once this much has passed, knowing
/// its reply is gone.
pub const PARK_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the reply a handler just wrote is, for the worker's latency
/// histograms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    Offer,
    Ack,
    Nak,
    /// Anything else (or a handler that does not say).
    Other,
}

/// What a worker does with each received frame.
pub trait FrameHandler: Send {
    /// Called once per batch before its frames, with the batch's clock.
    fn begin_batch(&mut self, now: Instant);
    /// Looks at one received frame and writes the reply frame, if any, to
    /// the start of `tx` (at least [`TX_FRAME_CAPACITY`] bytes), returning
    /// its length. Must not allocate, block, or panic on any input.
    fn handle(&mut self, rx: &[u8], tx: &mut [u8]) -> Option<usize>;
    /// Called for each frame of a batch before the first `handle`, then
    /// [`FrameHandler::prefetched`] once: the handler may start loading
    /// what the frames will need (the lease table's lines), so that the
    /// cache misses of a batch's random clients overlap rather than come
    /// one by one. A hint: it changes nothing, and a frame it cannot make
    /// out is simply passed over.
    fn prefetch(&mut self, _rx: &[u8]) {}
    fn prefetched(&mut self) {}
    /// What the reply `handle` just wrote is.
    fn reply_kind(&self) -> ReplyKind {
        ReplyKind::Other
    }
    /// The journal ticket the reply `handle` just wrote must wait for
    /// before it may be sent; 0 when it may leave at once.
    fn hold_for(&self) -> u64 {
        0
    }
    /// The highest ticket the journal has made safe. A worker calls it
    /// each loop to release the replies it parked (the handler also hands
    /// the journal what it had to keep back).
    fn durable(&mut self) -> u64 {
        u64::MAX
    }
    /// Whether lease records wait to be handed to the journal: a worker
    /// with nothing to do sleeps only briefly then.
    fn backlog(&self) -> bool {
        false
    }
    /// An eventfd that becomes readable when [`FrameHandler::durable`]
    /// moves (the journal's, for this worker), owned by the handler for
    /// as long as it lives: a worker with parked replies sleeps on it
    /// beside its socket, see [`crate::os::wait_for`].
    fn durable_fd(&self) -> Option<RawFd> {
        None
    }
    /// The conflict-check ticket the reply `handle` just wrote must wait
    /// for (an OFFER whose address is being probed); 0 when none. A reply
    /// may wait for both this and [`FrameHandler::hold_for`].
    fn probe_for(&self) -> u64 {
        0
    }
    /// The highest probe ticket that has completed. A worker calls it
    /// while it has replies parked for probes, then asks
    /// [`FrameHandler::released`] of each parked ticket up to it.
    fn probed(&mut self) -> u64 {
        u64::MAX
    }
    /// Whether the reply parked under probe ticket `ticket` (completed,
    /// see [`FrameHandler::probed`]) may leave; false: its address is in
    /// use, the reply is dropped. Asked once per ticket, in ticket order.
    fn released(&mut self, _ticket: u64) -> bool {
        true
    }
    /// An eventfd that becomes readable when [`FrameHandler::probed`]
    /// moves, owned by the handler like [`FrameHandler::durable_fd`].
    fn probe_fd(&self) -> Option<RawFd> {
        None
    }
}
