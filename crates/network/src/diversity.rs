//! Address diversity (issue 15; the model is go-libp2p-kad-dht's IP
//! diversity filter): one network block may hold at most
//! [`Admission::max_per_subnet`](crate::Admission) places in each k-bucket
//! of a routing table and in each lookup's answer (so in each close group
//! found by a lookup).
//!
//! Ids cost work ([`crate::identity`]), but an attacker with a rack of
//! machines can still make many; what those machines share is address
//! space. A block is an IPv4 /24 or an IPv6 /48, the unit a hosting
//! provider hands out. A peer's block is that of the first address it is
//! known by (its TCP listen address, as identify reports it).
//!
//! Loopback addresses are exempt unless `limit_loopback` is set (local
//! testnets run every node on 127.0.0.1; the tests of these limits give
//! their nodes addresses in different 127.x.y.0/24 blocks and set it).

use std::net::IpAddr;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// Default places one block may hold per k-bucket and per close group.
pub const DEFAULT_MAX_PER_SUBNET: usize = 2;

static REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Peers kept out of a k-bucket or a lookup answer by these limits in
/// this process so far.
pub fn refused() -> u64 {
    REFUSED.load(std::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn note_refused() {
    REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A network block: an IPv4 /24 or an IPv6 /48.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subnet {
    /// The first three bytes of an IPv4 address.
    V4([u8; 3]),
    /// The first six bytes of an IPv6 address.
    V6([u8; 6]),
}

/// The IP address of `addr` (its first component) as per-address limits
/// count it: `None` if it has none, or if it is loopback and
/// `limit_loopback` is off.
pub(crate) fn counted_ip(addr: &Multiaddr, limit_loopback: bool) -> Option<IpAddr> {
    let ip = match addr.iter().next()? {
        Protocol::Ip4(ip) => IpAddr::V4(ip),
        Protocol::Ip6(ip) => IpAddr::V6(ip),
        _ => return None,
    };
    (!ip.is_loopback() || limit_loopback).then_some(ip)
}

/// The block of `addr` (its first IP component), unless the address is
/// loopback and `limit_loopback` is off, or has no IP.
pub fn subnet_of(addr: &Multiaddr, limit_loopback: bool) -> Option<Subnet> {
    Some(match counted_ip(addr, limit_loopback)? {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            Subnet::V4([o[0], o[1], o[2]])
        }
        IpAddr::V6(ip) => {
            let o = ip.octets();
            Subnet::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
        }
    })
}

/// The first block among `addrs` (`None` if none counts).
pub fn first_subnet<'a>(
    addrs: impl IntoIterator<Item = &'a Multiaddr>,
    limit_loopback: bool,
) -> Option<Subnet> {
    addrs.into_iter().find_map(|a| subnet_of(a, limit_loopback))
}

/// Keeps the items of `items` (in their order) whose block has not yet
/// had `max` places; items with no block always stay.
pub fn keep_diverse<T>(items: Vec<T>, max: usize, subnet: impl Fn(&T) -> Option<Subnet>) -> Vec<T> {
    if max == 0 {
        return items;
    }
    let mut seen: std::collections::HashMap<Subnet, usize> = std::collections::HashMap::new();
    items
        .into_iter()
        .filter(|item| match subnet(item) {
            Some(s) => {
                let n = seen.entry(s).or_default();
                *n += 1;
                *n <= max
            }
            None => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_24s_and_48s_and_loopback_is_exempt_unless_asked() {
        let a: Multiaddr = "/ip4/203.0.113.7/tcp/1".parse().unwrap();
        let b: Multiaddr = "/ip4/203.0.113.200/tcp/9".parse().unwrap();
        let c: Multiaddr = "/ip4/203.0.114.7/tcp/1".parse().unwrap();
        assert_eq!(subnet_of(&a, false), subnet_of(&b, false));
        assert_ne!(subnet_of(&a, false), subnet_of(&c, false));
        let v6a: Multiaddr = "/ip6/2001:db8:5:ffff::1/tcp/1".parse().unwrap();
        let v6b: Multiaddr = "/ip6/2001:db8:5:1::1/tcp/1".parse().unwrap();
        assert_eq!(subnet_of(&v6a, false), subnet_of(&v6b, false));
        let lo: Multiaddr = "/ip4/127.0.3.1/tcp/1".parse().unwrap();
        assert_eq!(subnet_of(&lo, false), None);
        assert_eq!(subnet_of(&lo, true), Some(Subnet::V4([127, 0, 3])));
    }

    #[test]
    fn at_most_max_per_block_are_kept_in_order() {
        let s = |i: u8| Some(Subnet::V4([10, 0, i]));
        let items = vec![
            (1, s(1)),
            (2, s(1)),
            (3, s(2)),
            (4, s(1)),
            (5, None),
            (6, s(2)),
        ];
        let kept: Vec<u8> = keep_diverse(items.clone(), 2, |x| x.1)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(kept, vec![1, 2, 3, 5, 6]);
        assert_eq!(keep_diverse(items, 0, |x| x.1).len(), 6);
    }
}
