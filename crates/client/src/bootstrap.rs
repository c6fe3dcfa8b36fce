//! Finding the network: which peers a client bootstraps from, and what to
//! tell the user when none of them answers.
//!
//! Peers come from the first of: peers the caller gives (the CLI's
//! `--peer`), the `SAFE_PEERS` environment variable (comma-separated
//! multiaddrs), the contacts file of the local testnet in the data
//! directory ([`crate::Home::contacts`]).

use std::fmt;
use std::path::PathBuf;

use safe_network::libp2p::Multiaddr;

use crate::home::Home;

/// The environment variable with comma-separated bootstrap multiaddrs.
pub const SAFE_PEERS: &str = "SAFE_PEERS";

/// Where a client's bootstrap peers came from (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerSource {
    /// Given by the caller (`--peer`).
    Given,
    /// The `SAFE_PEERS` environment variable.
    Env,
    /// A contacts file.
    Contacts(PathBuf),
}

impl fmt::Display for PeerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSource::Given => write!(f, "given with --peer"),
            PeerSource::Env => write!(f, "in {SAFE_PEERS}"),
            PeerSource::Contacts(path) => write!(f, "in {}", path.display()),
        }
    }
}

/// The peers to bootstrap from, and where they came from.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    /// The peers' addresses.
    pub peers: Vec<Multiaddr>,
    /// Where they came from.
    pub source: PeerSource,
}

impl Bootstrap {
    /// Peers the caller names.
    pub fn given(peers: Vec<Multiaddr>) -> Self {
        Self {
            peers,
            source: PeerSource::Given,
        }
    }

    /// `SAFE_PEERS` if set and not empty, else the contacts file in `home`.
    pub fn from_env(home: &Home) -> Result<Self, ConnectError> {
        if let Some(text) = std::env::var_os(SAFE_PEERS).filter(|v| !v.is_empty()) {
            let text = text.to_string_lossy();
            let peers = text
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    t.parse::<Multiaddr>().map_err(|e| ConnectError::BadPeers {
                        source_of: PeerSource::Env,
                        reason: format!("{t:?} is not a multiaddr ({e})"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Self {
                peers,
                source: PeerSource::Env,
            });
        }
        let path = home.contacts();
        match safe_network::contacts::read(&path) {
            Ok(peers) => Ok(Self {
                peers,
                source: PeerSource::Contacts(path),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ConnectError::NoPeers { contacts: path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(ConnectError::BadPeers {
                source_of: PeerSource::Contacts(path),
                reason: e.to_string(),
            }),
            Err(source) => Err(ConnectError::Contacts { path, source }),
        }
    }
}

/// Why the client could not join the network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// No peers were given and there is no contacts file.
    #[error(
        "no peers to connect to: no --peer, no {SAFE_PEERS} and no contacts file at {} — start a local network with `safe testnet up`",
        contacts.display()
    )]
    NoPeers {
        /// Where the contacts file was looked for.
        contacts: PathBuf,
    },
    /// Peers were given but none was found in what was given.
    #[error("no peers to connect to ({source_of} is empty)")]
    EmptyPeers {
        /// Where the (empty) list came from.
        source_of: PeerSource,
    },
    /// A peer address does not parse.
    #[error("cannot use the peers {source_of}: {reason}")]
    BadPeers {
        /// Where the addresses came from.
        source_of: PeerSource,
        /// What is wrong.
        reason: String,
    },
    /// The contacts file exists but cannot be read.
    #[error("cannot read the contacts file {}: {source}", path.display())]
    Contacts {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// None of the peers could be reached.
    #[error("cannot reach the network: {}", unreachable(.source_of, .tried))]
    Unreachable {
        /// Where the peers came from.
        source_of: PeerSource,
        /// Each address tried and why it failed (the details; the message
        /// summarises them).
        tried: Vec<(Multiaddr, DialFailure)>,
    },
    /// Peers answered but none takes part in routing.
    #[error(
        "cannot reach the network: the {peers} peer(s) {source_of} answered but none routes (are they safe nodes?)"
    )]
    NotRouting {
        /// Where the peers came from.
        source_of: PeerSource,
        /// How many were tried.
        peers: usize,
    },
    /// The client's network stack could not be built.
    #[error("cannot start the network stack")]
    Stack(#[source] safe_network::BuildError),
}

/// Why one bootstrap peer could not be dialled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialFailure {
    /// The dial failed.
    #[error(transparent)]
    Dial(#[from] safe_network::driver::DialError),
    /// No connection within the time allowed.
    #[error("no answer in {0:?}")]
    TimedOut(std::time::Duration),
}

impl DialFailure {
    /// A short, common reason for the failure, if it is one: from the OS
    /// errors inside it where there are some, else from libp2p's words.
    pub fn cause(&self) -> Option<&'static str> {
        let dial = match self {
            DialFailure::TimedOut(_) => return Some("timed out"),
            DialFailure::Dial(safe_network::driver::DialError::Failed(dial)) => dial,
            DialFailure::Dial(_) => return cause_in_words(&self.to_string()),
        };
        let mut kinds = Vec::new();
        if let safe_network::libp2p::swarm::DialError::Transport(attempts) = dial {
            for (_, e) in attempts {
                io_kinds(e, &mut kinds, 0);
            }
        }
        io_kinds(dial, &mut kinds, 0);
        kinds
            .into_iter()
            .find_map(cause_of_kind)
            .or_else(|| cause_in_words(&self.to_string()))
    }
}

/// The kinds of every `io::Error` in an error's chain (inner errors of
/// custom I/O errors included), at most 16 deep.
fn io_kinds(
    e: &(dyn std::error::Error + 'static),
    out: &mut Vec<std::io::ErrorKind>,
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        out.push(io.kind());
        if let Some(inner) = io.get_ref() {
            io_kinds(inner, out, depth + 1);
        }
    }
    if let Some(next) = e.source() {
        io_kinds(next, out, depth + 1);
    }
}

fn cause_of_kind(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => "connection refused",
        TimedOut => "timed out",
        NetworkUnreachable => "network unreachable",
        HostUnreachable => "no route to host",
        AddrNotAvailable => "address not available",
        ConnectionReset | ConnectionAborted => "connection reset",
        _ => return None,
    })
}

/// "none of the 10 peers in …/contacts answered (connection refused) — is
/// 'safe testnet up' running?": the per-peer errors are summarised by
/// kind, each kind once.
fn unreachable(source: &PeerSource, tried: &[(Multiaddr, DialFailure)]) -> String {
    let mut causes: Vec<&'static str> = Vec::new();
    let mut other: Option<String> = None;
    for (_, e) in tried {
        match e.cause() {
            Some(c) if !causes.contains(&c) => causes.push(c),
            Some(_) => {}
            None => other = other.or_else(|| Some(e.to_string())),
        }
    }
    let mut summary = causes.join(", ");
    if let Some(e) = &other {
        let first = e.lines().next().unwrap_or(e);
        let short: String = first.chars().take(100).collect();
        if !summary.is_empty() {
            summary.push_str(", ");
        }
        summary.push_str(&short);
        if short.len() < first.len() {
            summary.push('…');
        }
    }
    let who = match tried.len() {
        1 => format!("the peer {} {source}", tried[0].0),
        n => format!("none of the {n} peers {source}"),
    };
    let verb = if tried.len() == 1 {
        "did not answer"
    } else {
        "answered"
    };
    let hint = match source {
        PeerSource::Contacts(_) => " — is 'safe testnet up' running?",
        _ => "",
    };
    format!("{who} {verb} ({summary}){hint}")
}

/// A short, common reason for a failed dial, recognised in libp2p's words
/// (for failures that carry no OS error: a wrong peer id, an address no
/// transport takes).
fn cause_in_words(error: &str) -> Option<&'static str> {
    let e = error.to_ascii_lowercase();
    [
        ("connection refused", "connection refused"),
        ("os error 111", "connection refused"),
        ("no answer in", "timed out"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("network is unreachable", "network unreachable"),
        ("no route to host", "no route to host"),
        ("wrong peer id", "a different node answers at that address"),
        (
            "unexpected peer id",
            "a different node answers at that address",
        ),
        ("multiaddr is not supported", "address not supported"),
        (
            "the network task has stopped",
            "the client's network task stopped",
        ),
    ]
    .iter()
    .find(|(needle, _)| e.contains(needle))
    .map(|(_, short)| *short)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    fn refused(a: &Multiaddr) -> DialFailure {
        use safe_network::libp2p::{TransportError, swarm};
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let dial = swarm::DialError::Transport(vec![(a.clone(), TransportError::Other(io))]);
        DialFailure::Dial(safe_network::driver::DialError::Failed(dial))
    }

    #[test]
    fn unreachable_is_one_short_line() {
        let tried: Vec<_> = (1..=10).map(|p| (addr(p), refused(&addr(p)))).collect();
        let e = ConnectError::Unreachable {
            source_of: PeerSource::Contacts("/home/u/.local/share/safe/contacts".into()),
            tried,
        };
        let text = e.to_string();
        assert_eq!(
            text,
            "cannot reach the network: none of the 10 peers in /home/u/.local/share/safe/contacts answered (connection refused) — is 'safe testnet up' running?"
        );
    }

    #[test]
    fn causes_are_summarised_by_kind_and_others_cut_short() {
        let tried = vec![
            (addr(1), refused(&addr(1))),
            (
                addr(2),
                DialFailure::TimedOut(std::time::Duration::from_secs(5)),
            ),
            (addr(3), refused(&addr(3))),
        ];
        let text = ConnectError::Unreachable {
            source_of: PeerSource::Env,
            tried,
        }
        .to_string();
        assert!(
            text.ends_with(
                "none of the 3 peers in SAFE_PEERS answered (connection refused, timed out)"
            ),
            "{text}"
        );
        let aborted = DialFailure::Dial(safe_network::driver::DialError::Failed(
            safe_network::libp2p::swarm::DialError::Aborted,
        ));
        let text = ConnectError::Unreachable {
            source_of: PeerSource::Given,
            tried: vec![(addr(1), aborted)],
        }
        .to_string();
        assert!(text.len() < 200 && !text.contains('\n'), "{text}");
        assert!(
            text.contains("the peer /ip4/127.0.0.1/tcp/1 given with --peer did not answer ("),
            "{text}"
        );
    }
}
