//! Per-peer request rate limits and bans (issue 15, floods).
//!
//! Every peer's inbound data requests draw from a token bucket of its
//! own: `rate` requests a second (the node's `--request-rate`, default
//! [`DEFAULT_REQUEST_RATE`]), with bursts of up to [`BURST_SECS`] seconds'
//! worth. A request with no token left is answered at once with
//! [`Refusal::PeerRateLimited`](safe_protocol::messages::Refusal) and never
//! reaches the node's queue, so one peer's flood takes no room from the
//! others.
//!
//! A peer that keeps sending after being refused is banned: each refusal
//! is a strike, strikes are forgiven at a tenth of the rate, and a peer
//! with more than a burst's worth of strikes outstanding is disconnected,
//! taken out of the routing table and refused for [`BAN`]. A peer sending
//! at twice the rate uses up its burst in 2 s and is banned some 2 s later;
//! one less than 10% over the rate is refused now and then, never banned.
//! A sender that pauses after each refusal, as [`crate::driver::Net`]
//! does, is never banned unless it keeps more than about a tenth of the
//! rate times its pause in flight to one node. Counts: [`limited`] and [`banned`] (the node's
//! `safe_requests_rate_limited_total` and `safe_peers_banned_total`).
//!
//! Both tables are bounded ([`MAX_TRACKED_PEERS`], [`MAX_BANNED`]): when
//! one is full, the entries that cost nothing to forget (a full bucket, the
//! ban closest to its end) go first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Inbound requests a second one peer may send, by default: far below a
/// flood, and far above what honest peers send one node, even a gateway
/// that many readers share (a 1 GiB upload sends each node of a 10-node
/// network about 500 a second; a node refused replicates later, and a
/// client asks another member of the group).
pub const DEFAULT_REQUEST_RATE: u32 = 5000;
/// A bucket holds this many seconds' worth of requests.
pub const BURST_SECS: u32 = 2;
/// How long a banned peer stays disconnected and refused.
pub const BAN: Duration = Duration::from_secs(600);
/// Peers whose buckets are tracked at once.
pub const MAX_TRACKED_PEERS: usize = 4096;
/// Peers banned at once.
pub const MAX_BANNED: usize = 4096;

static LIMITED: AtomicU64 = AtomicU64::new(0);
static BANNED: AtomicU64 = AtomicU64::new(0);

/// Requests refused for their peer's rate in this process so far.
pub fn limited() -> u64 {
    LIMITED.load(Ordering::Relaxed)
}

/// Peers banned in this process so far.
pub fn banned() -> u64 {
    BANNED.load(Ordering::Relaxed)
}

/// What to do with one inbound request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Allow,
    /// Refuse it: the peer is over its rate.
    Refuse,
    /// Refuse it and ban the peer: it kept on after being refused.
    Ban,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    strikes: f64,
    at: Instant,
}

/// The buckets and bans of one node.
#[derive(Debug)]
pub struct PeerLimits {
    rate: f64,
    peers: HashMap<PeerId, Bucket>,
    bans: HashMap<PeerId, Instant>,
}

impl PeerLimits {
    /// Limits of `rate` requests a second per peer; 0 turns them off.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            peers: HashMap::new(),
            bans: HashMap::new(),
        }
    }

    fn burst(&self) -> f64 {
        self.rate * f64::from(BURST_SECS)
    }

    /// Counts one request from `peer` at `now`.
    pub fn check(&mut self, peer: PeerId, now: Instant) -> Verdict {
        if self.rate <= 0.0 {
            return Verdict::Allow;
        }
        let burst = self.burst();
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_TRACKED_PEERS {
            self.forget_idle(now);
        }
        let bucket = self.peers.entry(peer).or_insert(Bucket {
            tokens: burst,
            strikes: 0.0,
            at: now,
        });
        let secs = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.at = bucket.at.max(now);
        bucket.tokens = (bucket.tokens + secs * self.rate).min(burst);
        bucket.strikes = (bucket.strikes - secs * self.rate / 10.0).max(0.0);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Allow;
        }
        LIMITED.fetch_add(1, Ordering::Relaxed);
        bucket.strikes += 1.0;
        if bucket.strikes > burst {
            self.peers.remove(&peer);
            return Verdict::Ban;
        }
        Verdict::Refuse
    }

    /// Drops buckets that are full by now (their peers lose nothing);
    /// if none is, one without strikes (a flooder's strikes are kept),
    /// or else any, so the table stays bounded.
    fn forget_idle(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst());
        self.peers.retain(|_, b| {
            let secs = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + secs * rate < burst
        });
        if self.peers.len() >= MAX_TRACKED_PEERS {
            let victim = self
                .peers
                .iter()
                .find(|(_, b)| b.strikes == 0.0)
                .or_else(|| self.peers.iter().next())
                .map(|(p, _)| *p);
            if let Some(p) = victim {
                self.peers.remove(&p);
            }
        }
    }

    /// Notes `peer` banned from `now` for [`BAN`]. When the table of bans
    /// is full, the ban closest to its end is ended now: its peer is
    /// returned, to be let in again.
    #[must_use = "a ban ended early must be lifted"]
    pub fn ban(&mut self, peer: PeerId, now: Instant) -> Option<PeerId> {
        let mut ended = None;
        if !self.bans.contains_key(&peer)
            && self.bans.len() >= MAX_BANNED
            && let Some(first) = self.bans.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p)
        {
            self.bans.remove(&first);
            ended = Some(first);
        }
        BANNED.fetch_add(1, Ordering::Relaxed);
        self.bans.insert(peer, now + BAN);
        ended
    }

    /// Whether `peer` is banned.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.contains_key(peer)
    }

    /// Peers banned now.
    pub fn banned_now(&self) -> usize {
        self.bans.len()
    }

    /// Ends the bans that are over at `now`, returning their peers.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let over: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in &over {
            self.bans.remove(p);
        }
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_burst_then_its_rate_and_others_are_apart() {
        let mut limits = PeerLimits::new(100);
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        for _ in 0..200 {
            assert_eq!(limits.check(a, t0), Verdict::Allow);
        }
        assert_eq!(limits.check(a, t0), Verdict::Refuse);
        assert_eq!(limits.check(b, t0), Verdict::Allow, "another peer");
        // A tenth of a second later: ten more.
        let t1 = t0 + Duration::from_millis(100);
        let allowed = (0..20)
            .filter(|_| limits.check(a, t1) == Verdict::Allow)
            .count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn a_peer_that_keeps_on_is_banned_and_one_a_little_over_is_not() {
        let t0 = Instant::now();
        // Twice the rate: banned within a few seconds.
        let mut limits = PeerLimits::new(100);
        let flood = PeerId::random();
        let mut banned_at = None;
        for i in 0..2000u64 {
            let now = t0 + Duration::from_millis(i * 5);
            if limits.check(flood, now) == Verdict::Ban {
                banned_at = Some(i);
                break;
            }
        }
        let at = banned_at.expect("a flood at twice the rate is banned");
        assert!(at > 400, "not before its burst and strikes are spent: {at}");

        // 5% over the rate for a minute: refused now and then, never banned.
        let eager = PeerId::random();
        let (mut refused, mut ban) = (0, false);
        for i in 0..6300u64 {
            let now = t0 + Duration::from_micros(i * 9524);
            match limits.check(eager, now) {
                Verdict::Allow => {}
                Verdict::Refuse => refused += 1,
                Verdict::Ban => ban = true,
            }
        }
        assert!(refused > 0 && !ban, "refused {refused}, banned {ban}");
    }

    #[test]
    fn bans_end_and_tables_stay_bounded() {
        let t0 = Instant::now();
        let mut limits = PeerLimits::new(10);
        let p = PeerId::random();
        assert_eq!(limits.ban(p, t0), None);
        assert!(limits.is_banned(&p));
        assert!(limits.expire(t0 + BAN - Duration::from_secs(1)).is_empty());
        assert_eq!(limits.expire(t0 + BAN), vec![p]);
        assert!(!limits.is_banned(&p));

        let mut ended = 0;
        for i in 0..MAX_BANNED as u64 + 10 {
            ended += usize::from(
                limits
                    .ban(PeerId::random(), t0 + Duration::from_millis(i))
                    .is_some(),
            );
        }
        assert_eq!(limits.banned_now(), MAX_BANNED);
        assert_eq!(ended, 10, "each ban pushed out is handed back to be lifted");
        for _ in 0..MAX_TRACKED_PEERS + 10 {
            limits.check(PeerId::random(), t0);
        }
        assert!(limits.peers.len() <= MAX_TRACKED_PEERS);
    }

    #[test]
    fn rate_zero_is_off() {
        let mut limits = PeerLimits::new(0);
        let p = PeerId::random();
        let t0 = Instant::now();
        assert!((0..100_000).all(|_| limits.check(p, t0) == Verdict::Allow));
    }
}
