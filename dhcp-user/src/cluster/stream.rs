//! The lease stream: the connection and its setup, the pipelined
//! publishes of what the journal ships, the consumer that applies the
//! other servers' records (through the fencing walk), and the end of an
//! acquire (a share's bit is set only once the stream was read up to this
//! server's own marker, so every record made before the claim is in).
use super::fence::{Fence, Verdict};
use super::payload::{self, Kind, Marker, Subjects};
use super::pipeline::{Entry, Pipeline, Route, State, route};
use super::service::{Apply, LearnOwn, MAX_IN_FLIGHT, Shared, set_state};
use crate::lease::journal::{Feed, Marks, Shipped};
use async_nats::jetstream::{self, consumer, kv, stream as js_stream};
use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A share to acquire under a claim revision (from the control task).
#[derive(Clone, Copy, Debug)]
pub struct Acquire {
    pub share: u8,
    pub revision: u64,
}

pub struct Conn {
    pub js: jetstream::Context,
    pub kv: kv::Store,
    pub stream: js_stream::Stream,
    pub subjects: Subjects,
}

impl Conn {
    /// Connects (retrying in the background) and creates the stream and
    /// the KV bucket if they are not there (both calls are idempotent:
    /// the same config again is no change). `None` when stopped first.
    pub async fn open(shared: &Shared, stop: &mut watch::Receiver<bool>) -> Option<Conn> {
        let addrs: Vec<async_nats::ServerAddr> = shared
            .nats
            .iter()
            .filter_map(|u| match u.parse() {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::error!(url = %u, "cluster: not a NATS URL: {e}");
                    None
                }
            })
            .collect();
        let client = async_nats::ConnectOptions::new()
            .name(format!("xdhcpd {}", shared.name))
            .retry_on_initial_connect()
            .connection_timeout(shared.period().max(Duration::from_millis(500)))
            .event_callback(|e| async move {
                tracing::debug!("cluster: NATS connection: {e}");
            })
            .connect(addrs)
            .await;
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cluster: NATS client: {e}");
                return None;
            }
        };
        let mut js = jetstream::new(client);
        js.set_timeout(shared.period().max(Duration::from_millis(500)));
        let subjects = Subjects::new(&shared.stream_name);
        let mut warned = false;
        loop {
            match setup(shared, &js, &subjects).await {
                Ok((stream, kv)) => {
                    return Some(Conn {
                        js,
                        kv,
                        stream,
                        subjects,
                    });
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(
                            "cluster: setting up the stream and KV bucket: {e} (retrying)"
                        );
                        warned = true;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => return None,
            }
        }
    }
}

async fn setup(
    shared: &Shared,
    js: &jetstream::Context,
    subjects: &Subjects,
) -> Result<(js_stream::Stream, kv::Store), async_nats::Error> {
    // A log of batches, each message kept for `retention` (longer than
    // any lease lasts, see fence.rs): a full read in order is the
    // catch-up. Created, or brought to this config if it differs (a new
    // `retention`); the same config again is no change.
    js.create_or_update_stream(js_stream::Config {
        name: shared.stream_name.clone(),
        subjects: vec![subjects.all()],
        max_messages_per_subject: -1,
        max_age: shared.retention,
        storage: js_stream::StorageType::File,
        num_replicas: shared.replicas,
        ..Default::default()
    })
    .await?;
    let stream = js.get_stream(shared.stream_name.clone()).await?;
    // The bucket's stream is made here with the settings async-nats's
    // `create_key_value` would give it, because that call first asks for
    // the account's info, whose answer from nats-server 2.9 this client
    // version does not parse. Same config again: no change.
    js.get_or_create_stream(js_stream::Config {
        name: format!("KV_{}", shared.bucket),
        subjects: vec![format!("$KV.{}.>", shared.bucket)],
        max_messages_per_subject: 1,
        storage: js_stream::StorageType::File,
        num_replicas: shared.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: js_stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await?;
    let kv = js.get_key_value(shared.bucket.clone()).await?;
    Ok((stream, kv))
}

/// An acquire that published its marker and waits for the consumer to
/// pass it.
pub struct PendingGrant {
    share: u8,
    revision: u64,
    marker_seq: u64,
    /// Given up after `failover_after` (the control task acquires anew).
    since: std::time::Instant,
}

/// One message of records in flight: its number (its `Nats-Msg-Id`, the
/// same when it is sent again) and the pipeline ids it carries.
pub struct Sent {
    no: u64,
    ids: Vec<u64>,
}

type AckFuture = BoxFuture<'static, (Sent, Result<u64, String>)>;

pub struct Worker {
    pub shared: Arc<Shared>,
    pub conn: Conn,
    pub pipeline: Pipeline,
    pub marks: Option<Marks>,
    pub apply: Apply,
    /// Until caught up, when the journal was empty at start.
    pub learn_own: Option<LearnOwn>,
    pub fence: Fence,
    pub applied_seq: u64,
    pub pending: Vec<PendingGrant>,
    /// When the consumer last delivered a message.
    pub last_read: std::time::Instant,
    /// Messages of records sent so far (numbers their `Nats-Msg-Id`).
    pub sent: u64,
    /// Where the journal's group buffers go back once taken apart.
    pub feed: Feed,
    /// Scratch: the pipeline ids of one `ship` to publish.
    pub ids: Vec<u64>,
    /// The message being encoded. Sent as a frozen split of it; once the
    /// client has written and dropped that, `reserve` takes the same
    /// allocation back, so a message of hundreds of records costs no
    /// allocation in steady load.
    pub body: BytesMut,
}

/// Records one `ship` takes from the groups waiting, at least (a bigger
/// group goes whole): the stream's messages carry what waited together.
const SHIP: usize = 1024;

/// How long a fenced record's mark waits: twice the workers' limit for a
/// parked reply, so that its reply was dropped (`parked_expired`), not
/// sent, when the mark passes it.
const GIVE_UP: Duration = Duration::from_secs(2 * crate::handler::PARK_LIMIT.as_secs());

impl Worker {
    pub async fn run(
        mut self,
        mut batches: mpsc::Receiver<Vec<Shipped>>,
        mut acquires: mpsc::UnboundedReceiver<Acquire>,
        mut stop: watch::Receiver<bool>,
    ) {
        // Catch-up target: the stream's last sequence now. Until it is read
        // the heartbeat says `ready: false` and no share is acquired.
        let target = loop {
            match self.conn.stream.get_info().await {
                Ok(i) => break i.state.last_sequence,
                Err(e) => tracing::debug!("cluster: stream info: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.shared.period()) => {}
                _ = stop.changed() => return,
            }
        };
        self.shared.stats.stream_last_seq.fetch_max(target, Relaxed);
        let mut messages = self.consume(1, &mut stop).await;
        if target == 0 {
            self.caught_up(target);
        }
        let mut acks: FuturesUnordered<AckFuture> = FuturesUnordered::new();
        let mut tick = tokio::time::interval(self.shared.period() / 2);
        let mut batches_open = true;
        loop {
            let room = self.pipeline.in_flight() < MAX_IN_FLIGHT;
            tokio::select! {
                _ = stop.changed() => break,
                b = batches.recv(), if room && batches_open => match b {
                    Some(b) => self.ship(b, &mut batches, &acks).await,
                    None => batches_open = false,
                },
                Some((sent, res)) = acks.next(), if !acks.is_empty() => {
                    self.acked(sent, res, &acks).await;
                }
                m = messages.next() => match m {
                    Some(Ok(m)) => {
                        self.last_read = std::time::Instant::now();
                        self.message(&m);
                        if !self.shared.lock().caught_up && self.applied_seq >= target {
                            self.caught_up(target);
                        }
                    }
                    Some(Err(e)) => tracing::debug!("cluster: stream consumer: {e}"),
                    None => {
                        // The consumer ended (server restarted and forgot
                        // it): go on after the last sequence read.
                        messages = self.consume(self.applied_seq + 1, &mut stop).await;
                    }
                },
                Some(a) = acquires.recv() => self.acquire(a).await,
                _ = tick.tick() => {
                    // A consumer that stopped delivering while the stream
                    // has more (the server restarted and lost it, and the
                    // client did not notice): made again after the last
                    // sequence read.
                    let behind = self.shared.stats.stream_last_seq.load(Relaxed) > self.applied_seq;
                    if behind && self.last_read.elapsed() > self.shared.period() * 3 {
                        tracing::debug!(from = self.applied_seq + 1, "cluster: consumer stalled: made again");
                        self.last_read = std::time::Instant::now();
                        messages = self.consume(self.applied_seq + 1, &mut stop).await;
                    }
                }
            }
            self.grant_ready();
            self.drain();
        }
        // Stopping: what is in flight gets a moment to be acknowledged, so
        // that it is counted (and, replicated, its mark moves).
        let deadline = tokio::time::Instant::now() + self.shared.period();
        while !acks.is_empty() {
            match tokio::time::timeout_at(deadline, acks.next()).await {
                Ok(Some((sent, Ok(seq)))) => {
                    self.stored(&sent, seq);
                }
                Ok(Some((sent, Err(_)))) => {
                    for &id in &sent.ids {
                        self.pipeline.answer(id, State::Settled);
                    }
                    let n = sent.ids.len() as u64;
                    self.shared.stats.publish_errors.fetch_add(n, Relaxed);
                }
                _ => break,
            }
        }
        self.drain();
    }

    fn caught_up(&mut self, target: u64) {
        self.shared.lock().caught_up = true;
        // From here on this server's own records are its journal's first.
        self.learn_own = None;
        self.shared.kick.notify_one();
        tracing::info!(
            name = %self.shared.name,
            stream_seq = target,
            applied = self.shared.stats.applied.load(Relaxed),
            learned = self.shared.stats.learned.load(Relaxed),
            fenced = self.shared.stats.fenced.load(Relaxed),
            "cluster: stream caught up"
        );
        set_state(&self.shared);
    }

    /// An ordered consumer over the whole stream from `start`; retried
    /// until it exists (or stop: an empty stream then).
    async fn consume(
        &self,
        start: u64,
        stop: &mut watch::Receiver<bool>,
    ) -> futures_util::stream::BoxStream<'static, Result<jetstream::Message, String>> {
        loop {
            let made = self
                .conn
                .stream
                .create_consumer(consumer::pull::OrderedConfig {
                    deliver_policy: if start <= 1 {
                        consumer::DeliverPolicy::All
                    } else {
                        consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: start,
                        }
                    },
                    ..Default::default()
                })
                .await;
            match made {
                Ok(c) => match c.messages().await {
                    Ok(m) => return m.map(|r| r.map_err(|e| e.to_string())).boxed(),
                    Err(e) => tracing::debug!("cluster: consumer messages: {e}"),
                },
                Err(e) => tracing::debug!("cluster: creating the consumer: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.shared.period()) => {}
                _ = stop.changed() => return futures_util::stream::pending().boxed(),
            }
        }
    }

    /// Publishes the records of owned shares, in order, as few messages
    /// as [`payload::MAX_BATCH`] allows (whatever the journal shipped
    /// while the last ones were out goes together, up to [`SHIP`]: the
    /// group commit of the stream); the others stay in this server's
    /// journal only.
    async fn ship(
        &mut self,
        first: Vec<Shipped>,
        more: &mut mpsc::Receiver<Vec<Shipped>>,
        acks: &FuturesUnordered<AckFuture>,
    ) {
        let now = std::time::Instant::now();
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        let mut group = first;
        let mut taken = 0;
        loop {
            taken += group.len();
            {
                let c = self.shared.lock();
                for s in group.drain(..) {
                    let share = self.shared.ownership.share_of_record(&s.rec);
                    let (state, share, revision) =
                        match route(share, s.rec.state, c.held | c.releasing, &c.mine) {
                            Route::Publish { share, revision } => {
                                (State::InFlight, share, revision)
                            }
                            Route::Local { share } => {
                                self.shared.stats.local_only.fetch_add(1, Relaxed);
                                (State::Settled, share, 0)
                            }
                        };
                    let id = self.pipeline.push(Entry {
                        producer: s.producer,
                        seq: s.seq,
                        rec: s.rec,
                        share,
                        revision,
                        state,
                        epoch: c.epoch,
                        shipped: now,
                    });
                    if state == State::InFlight {
                        ids.push(id);
                    }
                }
            }
            self.feed.give_back(group);
            if taken >= SHIP || self.pipeline.in_flight() >= MAX_IN_FLIGHT {
                break;
            }
            match more.try_recv() {
                Ok(g) => group = g,
                Err(_) => break,
            }
        }
        for chunk in ids.chunks(payload::MAX_BATCH) {
            self.sent += 1;
            let sent = Sent {
                no: self.sent,
                ids: chunk.to_vec(),
            };
            self.publish(sent, acks).await;
        }
        self.ids = ids;
        self.update_lag();
    }

    /// Sends one message of records; its acknowledgement comes back
    /// through `acks`.
    async fn publish(&mut self, sent: Sent, acks: &FuturesUnordered<AckFuture>) {
        self.body.reserve(64 + 128 * sent.ids.len());
        payload::encode_batch(
            &self.shared.name,
            sent.ids
                .iter()
                .filter_map(|&id| self.pipeline.get(id))
                .map(|e| (e.share, e.revision, &e.rec)),
            &mut self.body,
        );
        let body = self.body.split().freeze();
        let subject = self.conn.subjects.lease(&self.shared.name);
        let mut headers = async_nats::HeaderMap::new();
        // Replicated: a message sent again that had in fact been stored is
        // dropped by the stream's duplicate window. Durable mode never
        // sends again, and spares the stream that bookkeeping.
        if self.shared.replicated {
            headers.insert(
                "Nats-Msg-Id",
                format!("{}.{:x}.{}", self.shared.name, self.shared.boot, sent.no).as_str(),
            );
        }
        // The send waits only while the client's outgoing buffer is full
        // (NATS unreachable for long); bounded, so that a stop is heard.
        let res = tokio::time::timeout(
            self.shared.period(),
            self.conn.js.publish_with_headers(subject, headers, body),
        )
        .await;
        match res {
            Ok(Ok(ack)) => acks.push(Box::pin(async move {
                let r = ack.await.map(|a| a.sequence).map_err(|e| e.to_string());
                (sent, r)
            })),
            Ok(Err(e)) => acks.push(Box::pin(async move { (sent, Err(e.to_string())) })),
            Err(_) => acks.push(Box::pin(
                async move { (sent, Err("send timed out".into())) },
            )),
        }
    }

    fn stored(&mut self, sent: &Sent, seq: u64) {
        let st = &self.shared.stats;
        st.published.fetch_add(sent.ids.len() as u64, Relaxed);
        st.messages.fetch_add(1, Relaxed);
        st.stream_last_seq.fetch_max(seq, Relaxed);
        for &id in &sent.ids {
            self.pipeline.answer(id, State::Stored(seq));
        }
    }

    async fn acked(
        &mut self,
        mut sent: Sent,
        res: Result<u64, String>,
        acks: &FuturesUnordered<AckFuture>,
    ) {
        match res {
            Ok(seq) => self.stored(&sent, seq),
            Err(e) => {
                let st = &self.shared.stats;
                st.publish_errors.fetch_add(sent.ids.len() as u64, Relaxed);
                tracing::debug!("cluster: publish: {e}");
                // The message goes again (a stream's leader election in
                // nats-server 2.9 takes 4-9 s, and every publish of that
                // moment fails), without the records a newer one of the
                // same address follows on its way: a reader applies
                // records in stream order, and must end with the newest.
                // Sent twice, a record is applied twice, which changes
                // nothing; `replicated` still sends the same Nats-Msg-Id,
                // so the stream keeps one. Replicated: until stored (their
                // ACKs wait). Durable: the leases are safe on disk, and a
                // record shipped `failover_after` ago is given up (the
                // peers learn its address at its next change), so that an
                // outage does not fill the pipeline.
                let give_up = (!self.shared.replicated).then_some(self.shared.failover);
                let pipeline = &mut self.pipeline;
                sent.ids.retain(|&id| {
                    let young = |e: &Entry| give_up.is_none_or(|g| e.shipped.elapsed() < g);
                    let keep = !pipeline.superseded(id) && pipeline.get(id).is_some_and(young);
                    if !keep {
                        pipeline.answer(id, State::Settled);
                    }
                    keep
                });
                if !sent.ids.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    self.publish(sent, acks).await;
                }
            }
        }
        self.update_lag();
    }

    fn update_lag(&self) {
        let st = &self.shared.stats;
        st.in_flight
            .store(self.pipeline.in_flight() as u64, Relaxed);
        st.replication_lag
            .store(self.pipeline.len() as u64, Relaxed);
        for (k, n) in self.shared.unstored.iter().enumerate() {
            n.store(self.pipeline.in_flight_of(k as u8), Relaxed);
        }
    }

    /// Moves the marks (replicated) past the answered front of the
    /// pipeline; in durable mode just retires it.
    fn drain(&mut self) {
        let (serving, epoch) = {
            let c = self.shared.lock();
            (c.serving, c.epoch)
        };
        let Some(marks) = &self.marks else {
            self.pipeline.drain(|_| true);
            self.update_lag();
            return;
        };
        if !serving {
            return;
        }
        let (fence, applied) = (&self.fence, self.applied_seq);
        let mut given_up = 0u64;
        let stats = &self.shared.stats;
        let moved = self.pipeline.drain(|e| match e.state {
            State::Stored(seq) => {
                // Across a cut-off the share may have been taken: pass only
                // once the consumer has read past the record and no
                // other owner's marker precedes it.
                if e.epoch != epoch && applied < seq {
                    return false;
                }
                match fence.check(e.share, e.revision, seq) {
                    Verdict::Valid => true,
                    // Another owner's marker precedes it: its client must
                    // not be told. Held until the worker has surely dropped
                    // the parked reply (PARK_LIMIT), then passed: the
                    // producer's later replies need not wait for good.
                    Verdict::Fenced { .. } => {
                        if e.shipped.elapsed() < GIVE_UP {
                            return false;
                        }
                        stats.held_fenced.fetch_add(1, Relaxed);
                        given_up += 1;
                        true
                    }
                }
            }
            _ => true,
        });
        if given_up > 0 {
            tracing::warn!(
                records = given_up,
                "cluster: replicated records fenced by another owner's claim (their share was \
                 taken while this server was cut off): their ACKs were never sent"
            );
        }
        for (p, seq) in moved {
            marks.advance(p, seq);
        }
        self.update_lag();
    }

    /// Publishes the marker of an acquire; the bit is set once the
    /// consumer has read up to it (see `grant_ready`).
    async fn acquire(&mut self, a: Acquire) {
        let m = Marker {
            share: a.share,
            revision: a.revision,
            owner: self.shared.name.clone(),
        };
        let subject = self.conn.subjects.claim(a.share);
        let res = match self
            .conn
            .js
            .publish(subject, payload::encode_marker(&m).into())
            .await
        {
            Ok(ack) => ack.await.map(|a| a.sequence).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match res {
            Ok(seq) => {
                self.shared.stats.stream_last_seq.fetch_max(seq, Relaxed);
                self.pending.push(PendingGrant {
                    share: a.share,
                    revision: a.revision,
                    marker_seq: seq,
                    since: std::time::Instant::now(),
                });
            }
            Err(e) => {
                tracing::debug!(share = a.share, "cluster: publishing the marker: {e}");
                // The control task tries again at its next heartbeat.
                self.shared.lock().busy &= !(1 << a.share);
            }
        }
    }

    /// Sets the bits of the acquires whose marker the consumer has passed,
    /// if the claim still names this server under the same revision and
    /// its heartbeats are good.
    fn grant_ready(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let applied = self.applied_seq;
        let shared = self.shared.clone();
        let mut c = shared.lock();
        let failover = shared.failover;
        self.pending.retain(|p| {
            if applied < p.marker_seq {
                if p.since.elapsed() < failover {
                    return true;
                }
                // The consumer never got to the marker: the control task
                // acquires anew (a new marker) at its next round.
                c.busy &= !(1u32 << p.share);
                return false;
            }
            let bit = 1u32 << p.share;
            let still = c.mine.get(p.share as usize).copied().flatten() == Some(p.revision);
            if still && c.serving && c.busy & bit != 0 {
                shared.ownership.grant(p.share);
                c.held |= bit;
                tracing::info!(
                    name = %shared.name,
                    share = p.share,
                    revision = p.revision,
                    marker_seq = p.marker_seq,
                    "cluster: share acquired"
                );
            }
            c.busy &= !bit;
            false
        });
        drop(c);
        set_state(&shared);
    }

    /// One message of the stream, in order.
    fn message(&mut self, m: &jetstream::Message) {
        let st = &self.shared.stats;
        let seq = match m.info() {
            Ok(i) => i.stream_sequence,
            Err(_) => {
                st.decode_errors.fetch_add(1, Relaxed);
                return;
            }
        };
        if seq <= self.applied_seq {
            return;
        }
        self.applied_seq = seq;
        st.applied_seq.store(seq, Relaxed);
        st.stream_last_seq.fetch_max(seq, Relaxed);
        match self.conn.subjects.kind(m.subject.as_str()) {
            Kind::Claim(k) => match payload::decode_marker(&m.payload) {
                Some(mk) if mk.share == k => {
                    self.fence.marker(k, seq, mk.revision);
                    st.markers.fetch_add(1, Relaxed);
                }
                _ => {
                    st.decode_errors.fetch_add(1, Relaxed);
                }
            },
            Kind::Lease => match payload::batch_header(&m.payload) {
                Some((origin, n)) if origin == self.shared.name && self.learn_own.is_none() => {
                    st.own.fetch_add(u64::from(n), Relaxed);
                }
                _ => match payload::decode_batch(&m.payload) {
                    Some(b) => {
                        let own = b.origin == self.shared.name;
                        for p in &b.records {
                            if own {
                                st.own.fetch_add(1, Relaxed);
                            }
                            match self.fence.check(p.share, p.revision, seq) {
                                Verdict::Fenced { .. } => {
                                    st.fenced.fetch_add(1, Relaxed);
                                }
                                Verdict::Valid if own => {
                                    if let Some(learn) = &mut self.learn_own
                                        && learn(&p.rec)
                                    {
                                        st.learned.fetch_add(1, Relaxed);
                                    }
                                }
                                Verdict::Valid if (self.apply)(&p.rec) => {
                                    st.applied.fetch_add(1, Relaxed);
                                }
                                Verdict::Valid => {
                                    st.skipped.fetch_add(1, Relaxed);
                                }
                            }
                        }
                    }
                    None => {
                        st.decode_errors.fetch_add(1, Relaxed);
                    }
                },
            },
            Kind::Other => {
                st.decode_errors.fetch_add(1, Relaxed);
            }
        }
    }
}
