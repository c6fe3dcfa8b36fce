//! Account records on a node: served only to signed fetches, rate-limited
//! per address, and never telling whether one exists.
//!
//! See `docs/DESIGN-accounts.md`. An account is an ordinary record under
//! [`ACCOUNT_TAG`]; this module answers [`AccountFetch`] requests and holds
//! the per-address rate limit that [`crate::records`] also draws on for
//! creates of account records and for record reads of them.
//!
//! Every answer other than the record itself is `NotFound` (or
//! `Refused(RateLimited)`, given alike whatever is stored), and the
//! signature is checked before the lookup, so the work done does not
//! depend on whether the account exists.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use safe_protocol::XorName;
use safe_protocol::account::{
    ACCOUNT_TAG, AccountFetch, Fetcher, RATE_BURST, RATE_REFILL_SECS, RATE_SLOTS, may_fetch,
};
use safe_protocol::messages::{Refusal, Response};

use crate::node::Node;

/// Answers a signed account fetch.
pub(crate) async fn get(node: &Node, fetch: AccountFetch) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let me = node
        .keypair
        .public()
        .try_into_ed25519()
        .map(|k| k.to_bytes());
    // Checked before the lookup: the same work whatever is stored.
    let valid = me.is_ok_and(|me| fetch.verify(&me, now));
    let name = fetch.address;
    // Only members of the group answer: a node that has left it (and may
    // hold an old login) does not.
    let member = node.is_near(&node.net.peer_id(), &name).await;
    let record = match node.blocking(move |s| s.record(&name)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%name, "cannot read a record: {e}");
            return Response::Refused(Refusal::StorageFailed);
        }
    };
    let fetcher = match (&record, valid && member) {
        (Some(r), true) => may_fetch(r, &fetch.key),
        _ => None,
    };
    // Owners hold the root secret: a 256-bit key nobody can guess, so
    // their fetches are not limited (recovery works under a flood).
    if fetcher != Some(Fetcher::Owner) && !node.limits.take(&name) {
        return Response::Refused(Refusal::RateLimited);
    }
    match (record, fetcher) {
        (Some(r), Some(_)) => crate::records::serve(node, name, r),
        _ => Response::NotFound,
    }
}

/// Whether a create claims an account address (and so draws on its rate
/// limit and tells nothing beyond "taken").
pub(crate) fn is_account_tag(tag: u64) -> bool {
    tag == ACCOUNT_TAG
}

/// Per-address token buckets: [`RATE_BURST`] requests, one more every
/// [`RATE_REFILL_SECS`], in a fixed array of [`RATE_SLOTS`] buckets indexed
/// by a hash of the address keyed with a random per-node key. Nothing is
/// ever evicted, so requests for other addresses cannot refill a bucket;
/// two addresses that share one only limit each other more. Memory: 8
/// bytes a slot (512 KiB).
pub(crate) struct RateLimits {
    key: [u8; 32],
    start: Instant,
    slots: Mutex<Vec<Bucket>>,
}

/// A bucket: tokens left, and when (seconds since `start`) they were
/// last brought up to date.
#[derive(Clone, Copy, Default)]
struct Bucket {
    tokens: u32,
    at: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        let secret = safe_network::libp2p::identity::ed25519::SecretKey::generate();
        let key = *blake3::hash(secret.as_ref()).as_bytes();
        RateLimits {
            key,
            start: Instant::now(),
            slots: Mutex::new(vec![
                Bucket {
                    tokens: RATE_BURST,
                    at: 0
                };
                RATE_SLOTS
            ]),
        }
    }
}

impl RateLimits {
    /// Takes one token of `name`'s bucket: false if there is none.
    pub(crate) fn take(&self, name: &XorName) -> bool {
        let now = u32::try_from(self.start.elapsed().as_secs()).unwrap_or(u32::MAX);
        self.take_at(name, now)
    }

    fn slot(&self, name: &XorName) -> usize {
        let h = blake3::keyed_hash(&self.key, name.as_bytes());
        let mut n = [0u8; 8];
        n.copy_from_slice(&h.as_bytes()[..8]);
        (u64::from_le_bytes(n) % RATE_SLOTS as u64) as usize
    }

    fn take_at(&self, name: &XorName, now: u32) -> bool {
        let slot = self.slot(name);
        let Ok(mut slots) = self.slots.lock() else {
            return false;
        };
        let Some(bucket) = slots.get_mut(slot) else {
            return false;
        };
        let refill = RATE_REFILL_SECS as u32;
        let earned = now.saturating_sub(bucket.at) / refill;
        if earned > 0 {
            bucket.tokens = bucket.tokens.saturating_add(earned).min(RATE_BURST);
            bucket.at = if bucket.tokens == RATE_BURST {
                now
            } else {
                bucket.at + earned * refill
            };
        }
        if bucket.tokens == RATE_BURST {
            // A full bucket's refill starts from its first use, not from
            // when it was last topped up.
            bucket.at = now;
        }
        if bucket.tokens == 0 {
            return false;
        }
        bucket.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_refill() {
        let limits = RateLimits::default();
        let name = XorName([1; 32]);
        let t0 = 1000;
        for _ in 0..RATE_BURST {
            assert!(limits.take_at(&name, t0));
        }
        assert!(!limits.take_at(&name, t0));
        assert!(
            limits.take_at(&XorName([2; 32]), t0),
            "other addresses are apart"
        );
        let later = t0 + RATE_REFILL_SECS as u32;
        assert!(limits.take_at(&name, later));
        assert!(!limits.take_at(&name, later));
        let much_later = later + RATE_REFILL_SECS as u32 * 100;
        for _ in 0..RATE_BURST {
            assert!(limits.take_at(&name, much_later));
        }
        assert!(
            !limits.take_at(&name, much_later),
            "never more than the burst"
        );
    }

    #[test]
    fn flooding_other_addresses_never_refills_a_bucket() {
        let limits = RateLimits::default();
        let target = XorName([7; 32]);
        for _ in 0..RATE_BURST {
            assert!(limits.take_at(&target, 0));
        }
        for i in 0..100_000u64 {
            let mut n = [0u8; 32];
            n[..8].copy_from_slice(&i.to_be_bytes());
            limits.take_at(&XorName(n), 0);
        }
        assert!(!limits.take_at(&target, 0));
    }
}
