//! Heartbeats and claims in the JetStream KV bucket: the control task.
//!
//! Every period (`failover_after / 6`) it puts `hb.<name>`, reads every
//! peer's heartbeat and every `claim.<k>` (plain reads: the revision seen
//! is what the KV stores now, so a stalled watch can never make a live
//! peer look dead), and carries out what [`Roles::plan`] says. A claim is
//! only ever written by `create` (fails if it exists) or by `update` with
//! the revision read (compare-and-set): two servers racing for a share
//! cannot both win, and the winner's revision is the fencing token.
use super::roles::{Action, Claim, Heartbeat, Roles};
use super::service::Shared;
use super::stats::{PeerStatus, ShareStatus};
use super::stream::Acquire;
use async_nats::jetstream::{self, kv};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// A hand back under way: the bit is clear; the claim goes to the home
/// once `at` has passed and the stream has stored every record of the
/// share this server published. `at` is a period past the workers' limit
/// for a parked reply: an ACK for a lease decided before the bit went
/// leaves only once its record is safe on the local disk, which is when
/// the journal ships it, and never later than that limit, so by `at`
/// every record whose ACK left was shipped (and published: the share is
/// `releasing`). The home then reads them before its marker; a record
/// that only reached the stream after the marker would be fenced, and the
/// home would never learn a lease its client holds.
struct HandBack {
    share: u8,
    revision: u64,
    at: Instant,
}

pub async fn control(
    shared: Arc<Shared>,
    store: kv::Store,
    js: jetstream::Context,
    mut roles: Roles,
    acquire: mpsc::UnboundedSender<Acquire>,
    mut stop: watch::Receiver<bool>,
) {
    let period = shared.period();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let hb_key = format!("hb.{}", shared.name);
    let mut seq = 0u64;
    let mut handbacks: Vec<HandBack> = Vec::new();
    let mut was_cut = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.kick.notified() => {}
            _ = stop.changed() => return,
        }
        // Heartbeat. The claims stay valid until the time it was *sent*
        // plus failover_after/2 (the watchdog enforces it).
        seq += 1;
        let (ready, owned) = {
            let c = shared.lock();
            (c.caught_up, bits(c.held))
        };
        let hb = Heartbeat { ready, owned, seq };
        let sent = Instant::now();
        let body = serde_json::to_vec(&hb).unwrap_or_default();
        match tokio::time::timeout(period, store.put(&hb_key, body.into())).await {
            Ok(Ok(_)) => {
                shared.stats.heartbeats.fetch_add(1, Relaxed);
                let mut c = shared.lock();
                c.valid_until = Some(sent + shared.failover / 2);
                if !c.serving {
                    c.serving = true;
                    // Back: the claims that still name this server are
                    // acquired again below; renewing-only ends.
                    shared.ownership.set_renewing(0);
                    drop(c);
                    if was_cut {
                        tracing::info!(name = %shared.name, "cluster: heartbeats stored again: back");
                    }
                    super::service::set_state(&shared);
                }
            }
            Ok(Err(e)) => {
                shared.stats.heartbeat_errors.fetch_add(1, Relaxed);
                tracing::debug!("cluster: heartbeat put: {e}");
            }
            Err(_) => {
                shared.stats.heartbeat_errors.fetch_add(1, Relaxed);
            }
        }
        // Read everyone's heartbeat and every claim; a failed read makes
        // this round take nothing over.
        let mut reads_ok = true;
        for (p, name) in shared.peers.iter().enumerate() {
            if p == shared.me {
                continue;
            }
            match tokio::time::timeout(period, store.entry(format!("hb.{name}"))).await {
                Ok(Ok(Some(e))) if e.operation == kv::Operation::Put => {
                    let hb: Option<Heartbeat> = serde_json::from_slice(&e.value).ok();
                    if hb.is_none() {
                        shared.stats.decode_errors.fetch_add(1, Relaxed);
                    }
                    roles.heartbeat(p, e.revision, hb.as_ref(), Instant::now());
                }
                Ok(Ok(_)) => {}
                _ => reads_ok = false,
            }
        }
        for k in 0..shared.shares {
            match tokio::time::timeout(period, store.entry(format!("claim.{k}"))).await {
                Ok(Ok(Some(e))) if e.operation == kv::Operation::Put => {
                    match serde_json::from_slice::<Claim>(&e.value) {
                        Ok(c) => roles.claim(k, Some((&c.owner, e.revision))),
                        Err(_) => {
                            shared.stats.decode_errors.fetch_add(1, Relaxed);
                            // Unreadable: an owner nobody is, taken over
                            // like a dead one's (by CAS on its revision).
                            roles.claim(k, Some(("", e.revision)));
                        }
                    }
                }
                Ok(Ok(_)) => roles.claim(k, None),
                _ => reads_ok = false,
            }
        }
        if let Ok(i) = tokio::time::timeout(period, stream_last(&js, &shared.stream_name)).await {
            shared.stats.stream_last_seq.fetch_max(i, Relaxed);
        }
        let now = Instant::now();
        // A claim that no longer names this server under the revision it
        // holds: the bit goes at once, whatever else this round does.
        let (held, busy, serving) = {
            let mut c = shared.lock();
            for k in 0..shared.shares {
                let Some(rev) = c.mine[k as usize] else {
                    continue;
                };
                let still = roles.claims[k as usize].read.flatten() == Some((shared.me, rev));
                let handing = handbacks.iter().any(|h| h.share == k);
                if !still && !handing && roles.claims[k as usize].read.is_some() {
                    if c.held & (1 << k) != 0 {
                        tracing::info!(name = %shared.name, share = k, "cluster: share lost to another owner");
                    }
                    shared.revoke(&mut c, k);
                }
            }
            was_cut |= !c.serving;
            (c.held, c.busy, c.serving && c.caught_up && reads_ok)
        };
        for a in roles.plan(now, held, busy, serving) {
            match a {
                Action::Create(k) => {
                    let body = claim_body(&shared.name);
                    match store.create(format!("claim.{k}"), body.into()).await {
                        Ok(rev) => {
                            tracing::info!(name = %shared.name, share = k, revision = rev, "cluster: claim created");
                            roles.claim(k, Some((&shared.name, rev)));
                            start_acquire(&shared, &acquire, k, rev);
                        }
                        Err(e) => {
                            shared.stats.claim_conflicts.fetch_add(1, Relaxed);
                            tracing::debug!(share = k, "cluster: claim create: {e}");
                        }
                    }
                }
                Action::Acquire(k, rev) => start_acquire(&shared, &acquire, k, rev),
                Action::Revoke(k) => {
                    let mut c = shared.lock();
                    shared.revoke(&mut c, k);
                }
                Action::TakeOver(k, rev) => {
                    let from = roles.claims[k as usize]
                        .read
                        .flatten()
                        .and_then(|(o, _)| shared.peers.get(o).cloned())
                        .unwrap_or_default();
                    let body = claim_body(&shared.name);
                    match store.update(format!("claim.{k}"), body.into(), rev).await {
                        Ok(new) => {
                            shared.stats.takeovers.fetch_add(1, Relaxed);
                            tracing::warn!(
                                name = %shared.name,
                                share = k,
                                from = %from,
                                revision = new,
                                "cluster: share taken over (its owner's heartbeat stood still for failover_after)"
                            );
                            roles.claim(k, Some((&shared.name, new)));
                            start_acquire(&shared, &acquire, k, new);
                        }
                        Err(e) => {
                            shared.stats.claim_conflicts.fetch_add(1, Relaxed);
                            tracing::debug!(share = k, "cluster: takeover CAS: {e}");
                        }
                    }
                }
                Action::HandBack(k, rev) => {
                    let mut c = shared.lock();
                    shared.ownership.revoke(k);
                    c.held &= !(1 << k);
                    c.busy |= 1 << k;
                    c.releasing |= 1 << k;
                    handbacks.push(HandBack {
                        share: k,
                        revision: rev,
                        at: now + crate::handler::PARK_LIMIT + period,
                    });
                }
            }
        }
        // Hand backs whose wait is over: the claim goes to the home.
        let mut i = 0;
        while i < handbacks.len() {
            let k = handbacks[i].share as usize;
            if handbacks[i].at > Instant::now() || shared.unstored[k].load(Relaxed) > 0 {
                i += 1;
                continue;
            }
            let h = handbacks.swap_remove(i);
            let home = shared.peers[roles.home(h.share)].clone();
            let res = store
                .update(
                    format!("claim.{}", h.share),
                    claim_body(&home).into(),
                    h.revision,
                )
                .await;
            let mut c = shared.lock();
            c.busy &= !(1 << h.share);
            c.releasing &= !(1 << h.share);
            c.mine[h.share as usize] = None;
            match res {
                Ok(new) => {
                    shared.stats.handbacks.fetch_add(1, Relaxed);
                    tracing::info!(name = %shared.name, share = h.share, to = %home, revision = new, "cluster: share handed back");
                    drop(c);
                    if let Some(hi) = roles.index_of(&home) {
                        roles.claims[h.share as usize].read = Some(Some((hi, new)));
                    }
                }
                Err(e) => {
                    shared.stats.claim_conflicts.fetch_add(1, Relaxed);
                    tracing::debug!(share = h.share, "cluster: hand back CAS: {e}");
                }
            }
        }
        views(&shared, &roles);
    }
}

fn start_acquire(shared: &Shared, tx: &mpsc::UnboundedSender<Acquire>, k: u8, revision: u64) {
    let mut c = shared.lock();
    if !c.serving {
        return;
    }
    c.busy |= 1 << k;
    c.mine[k as usize] = Some(revision);
    drop(c);
    if tx.send(Acquire { share: k, revision }).is_err() {
        shared.lock().busy &= !(1 << k);
    }
}

fn claim_body(owner: &str) -> Vec<u8> {
    serde_json::to_vec(&Claim {
        owner: owner.to_string(),
    })
    .unwrap_or_default()
}

pub(super) fn bits(mask: u32) -> Vec<u8> {
    (0..32).filter(|k| mask & (1 << k) != 0).collect()
}

async fn stream_last(js: &jetstream::Context, name: &str) -> u64 {
    match js.get_stream_no_info(name).await {
        Ok(s) => s
            .get_info()
            .await
            .map(|i| i.state.last_sequence)
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// The shares and peers as this round saw them, for the stats.
fn views(shared: &Shared, roles: &Roles) {
    let now = Instant::now();
    let shares = (0..shared.shares)
        .map(|k| {
            let read = roles.claims[k as usize].read.flatten();
            ShareStatus {
                share: k,
                home: shared.peers[roles.home(k)].clone(),
                owner: read
                    .and_then(|(o, _)| shared.peers.get(o).cloned())
                    .unwrap_or_default(),
                revision: read.map_or(0, |(_, r)| r),
            }
        })
        .collect();
    let peers = roles
        .peers
        .iter()
        .enumerate()
        .map(|(p, v)| PeerStatus {
            name: v.name.clone(),
            alive: roles.alive(p, now),
            ready: if p == shared.me {
                shared.lock().caught_up
            } else {
                v.ready
            },
            last_seen_ms: if p == shared.me {
                0
            } else {
                now.duration_since(v.changed).as_millis() as u64
            },
        })
        .collect();
    if let Ok(mut v) = shared.stats.views.lock() {
        v.shares = shares;
        v.peers = peers;
    }
    super::service::set_state(shared);
}
