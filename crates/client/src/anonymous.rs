//! Anonymous reads through 3-hop relay circuits (issue 16;
//! `docs/DESIGN-anonymity.md`).
//!
//! - [`Connection::relay_sample`]: relays found by lookups of *random*
//!   keys (never of anything to be fetched), each with a relay certificate
//!   that two other nodes handed over byte for byte; a node that signed two
//!   different certificates for one period is dropped.
//! - [`Circuit`]: a circuit guard → middle → exit, built from a fresh
//!   libp2p identity that speaks only the relay protocol, so the guard
//!   learns the client's address and nothing else, and no other hop learns
//!   it at all.
//! - [`Connection::get_chunk_anonymously`]: a chunk through a circuit whose
//!   guard and middle are not near the chunk's close group, checked by its
//!   hash, retried on new circuits, and never fetched directly instead.
//!
//! This is the first part of the design: chunk reads. Not built yet:
//! lasting guards, sampling through circuits, stream isolation, writes
//! and records, flow control (one answer is at most a chunk).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use safe_network::close_group::{closest, peer_to_key};
use safe_network::libp2p::identity::Keypair;
use safe_network::libp2p::swarm::SwarmEvent;
use safe_network::libp2p::swarm::dial_opts::DialOpts;
use safe_network::libp2p::{Multiaddr, PeerId, Stream};
use safe_protocol::messages::{MAX_CERT_PEERS, Request, Response};
use safe_protocol::{MAX_CHUNK_SIZE, XorName};
use safe_relay::cell::{BACKWARD_ROOM, BODY, CELL, FORWARD_ROOM, LinkCell, LinkCommand};
use safe_relay::handshake::{self, CREATED_LEN};
use safe_relay::message::{BEGIN_GET_CHUNK, Command, END_DONE, END_NOT_FOUND, Message};
use safe_relay::{ClientCircuit, RelayCert};

use crate::network::Connection;

/// Hops of a circuit.
pub const HOPS: usize = 3;
/// How long one step of a circuit (a handshake, an answer's next cell)
/// may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// Circuits tried for one request before giving up.
pub const TRIES: usize = 3;
/// Nodes asked for the certificates of a sample.
const CERT_SOURCES: usize = 3;

/// Why anonymous access failed. It never falls back to a direct request.
#[derive(Debug, thiserror::Error)]
pub enum AnonError {
    /// Too few relays with confirmed certificates to build a circuit.
    #[error(
        "anonymous mode: only {0} relays with confirmed certificates were found (3 needed, not near what is fetched)"
    )]
    TooFewRelays(usize),
    /// The guard could not be reached.
    #[error("anonymous mode: cannot reach the guard {0}: {1}")]
    Guard(PeerId, String),
    /// A circuit failed (closed, refused, timed out, or a cell failed).
    #[error("anonymous mode: circuit failed: {0}")]
    Circuit(String),
    /// The exit sent bytes, every cell of them intact, that are not the
    /// chunk: the exit lied (it is not used again for this request).
    #[error("anonymous mode: the exit sent bytes that are not the chunk")]
    WrongContent,
    /// The exit had no copy.
    #[error("anonymous mode: the chunk was not found")]
    NotFound,
    /// Every try failed.
    #[error("anonymous mode: no circuit could fetch {name} after {tries} tries (last: {last})")]
    Exhausted {
        /// What was asked for.
        name: XorName,
        /// Circuits tried.
        tries: usize,
        /// The last failure.
        last: String,
    },
}

fn circuit_err(e: impl std::fmt::Display) -> AnonError {
    AnonError::Circuit(e.to_string())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A relay a circuit may use.
#[derive(Clone, Debug)]
pub struct Relay {
    /// Its peer id.
    pub peer: PeerId,
    /// Where to reach it (used for a guard only).
    pub addrs: Vec<Multiaddr>,
    /// Its relay certificate, confirmed by two other nodes.
    pub cert: RelayCert,
}

fn random_key() -> XorName {
    let mut k = [0u8; 32];
    // A fixed key would still be a valid lookup; randomness only spreads them.
    let _ = getrandom::fill(&mut k);
    XorName(k)
}

fn random_below(n: usize) -> usize {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    (u64::from_le_bytes(b) % n.max(1) as u64) as usize
}

impl Connection {
    /// Relays found by `lookups` lookups of random keys, each with a
    /// certificate for `network` that at least two other nodes handed over
    /// identically. A node for which two different valid certificates of
    /// one period turn up is left out.
    pub async fn relay_sample(&self, lookups: usize, network: [u8; 32]) -> Vec<Relay> {
        let mut peers: Vec<PeerId> = Vec::new();
        for _ in 0..lookups.max(1) {
            for p in self
                .net
                .lookup(random_key(), crate::network::LOOKUP_WIDTH)
                .await
                .peers
            {
                if !peers.contains(&p) {
                    peers.push(p);
                }
            }
        }
        peers.truncate(MAX_CERT_PEERS);
        // Certificates from a few of them, each about the others.
        let mut sources = peers.clone();
        for i in (1..sources.len()).rev() {
            sources.swap(i, random_below(i + 1));
        }
        sources.truncate(CERT_SOURCES);
        let mut answers: Vec<(PeerId, Vec<Bytes>)> = Vec::new();
        for &source in &sources {
            let keys: Vec<[u8; 32]> = peers.iter().filter_map(peer_to_key).collect();
            let asked = tokio::time::timeout(
                STEP_TIMEOUT,
                self.net
                    .request(source, Request::RelayCerts { peers: keys }),
            )
            .await;
            if let Ok(Ok(Response::RelayCerts(certs))) = asked {
                answers.push((source, certs));
            }
        }
        let t = now();
        let mut relays = Vec::new();
        'peers: for (i, &peer) in peers.iter().enumerate() {
            let Some(key) = peer_to_key(&peer) else {
                continue;
            };
            // What the other nodes said about this one (never its own word).
            let mut said: Vec<(Bytes, RelayCert)> = Vec::new();
            for (source, certs) in &answers {
                if *source == peer {
                    continue;
                }
                let Some(bytes) = certs.get(i).filter(|b| !b.is_empty()) else {
                    continue;
                };
                if let Ok(cert) = RelayCert::from_bytes(bytes)
                    && cert.verify(&key, &network, t).is_ok()
                {
                    said.push((bytes.clone(), cert));
                }
            }
            for (a, b) in said.iter().zip(said.iter().skip(1)) {
                if a.1.conflicts(&b.1) {
                    tracing::warn!(%peer, "relay signed two certificates for one period; left out");
                    continue 'peers;
                }
            }
            let agreed = said.len() >= 2 && said.iter().all(|(b, _)| *b == said[0].0);
            if agreed {
                let addrs = self.net.addresses_of(peer).await;
                relays.push(Relay {
                    peer,
                    addrs,
                    cert: said.swap_remove(0).1,
                });
            }
        }
        relays
    }

    /// Reads the chunk `name` through a circuit of relays from `sample`
    /// (see [`Connection::relay_sample`]) whose guard and middle are not
    /// among the K + 2 closest to `name` there, so no node that may hold
    /// the chunk sees the client's circuit. The chunk is checked by its
    /// hash; a failure is retried on a new circuit, up to [`TRIES`]; the
    /// chunk is never fetched directly instead.
    pub async fn get_chunk_anonymously(
        &self,
        sample: &[Relay],
        name: XorName,
        network: [u8; 32],
    ) -> Result<Bytes, AnonError> {
        let mut last = String::new();
        // Exits that sent bytes that were not the chunk: not used again.
        let mut blamed: Vec<PeerId> = Vec::new();
        for _ in 0..TRIES {
            let usable: Vec<Relay> = sample
                .iter()
                .filter(|r| !blamed.contains(&r.peer))
                .cloned()
                .collect();
            let path = choose_path(&usable, &name, self.k)?;
            let exit = path[HOPS - 1].peer;
            let attempt = async {
                let mut circuit = Circuit::build(&path, network).await?;
                circuit.get_chunk(name).await
            };
            match attempt.await {
                Ok(bytes) => return Ok(bytes),
                Err(AnonError::NotFound) => return Err(AnonError::NotFound),
                Err(e) => {
                    tracing::debug!("anonymous get of {name} failed: {e}");
                    if matches!(e, AnonError::WrongContent) {
                        blamed.push(exit);
                    }
                    last = e.to_string();
                }
            }
        }
        Err(AnonError::Exhausted {
            name,
            tries: TRIES,
            last,
        })
    }
}

/// A guard, middle and exit from `sample`: distinct, drawn at random; the
/// guard with an address and, like the middle, not among the K + 2
/// closest to `name` in the sample (a superset of its close group there).
pub fn choose_path(sample: &[Relay], name: &XorName, k: usize) -> Result<Vec<Relay>, AnonError> {
    let near = closest(name, sample.iter().map(|r| r.peer), k + 2);
    let mut pool: Vec<&Relay> = sample.iter().collect();
    for i in (1..pool.len()).rev() {
        pool.swap(i, random_below(i + 1));
    }
    let far = |r: &&Relay| !near.contains(&r.peer);
    let guard = pool
        .iter()
        .copied()
        .find(|r| far(r) && r.addrs.iter().any(safe_network::is_tcp))
        .ok_or(AnonError::TooFewRelays(sample.len()))?;
    let middle = pool
        .iter()
        .copied()
        .find(|r| far(r) && r.peer != guard.peer)
        .ok_or(AnonError::TooFewRelays(sample.len()))?;
    let exit = pool
        .iter()
        .copied()
        .find(|r| r.peer != guard.peer && r.peer != middle.peer)
        .ok_or(AnonError::TooFewRelays(sample.len()))?;
    Ok(vec![guard.clone(), middle.clone(), exit.clone()])
}

/// A circuit: the client's end.
pub struct Circuit {
    crypto: ClientCircuit,
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    id: u32,
    next_stream: u32,
    swarm: tokio::task::JoinHandle<()>,
}

impl Drop for Circuit {
    fn drop(&mut self) {
        self.swarm.abort();
    }
}

impl Circuit {
    /// Builds a circuit through `path` (guard first), from a fresh
    /// identity.
    pub async fn build(path: &[Relay], network: [u8; 32]) -> Result<Self, AnonError> {
        let Some(guard) = path.first() else {
            return Err(AnonError::TooFewRelays(0));
        };
        let mut swarm = safe_network::build_relay_swarm(Keypair::generate_ed25519())
            .map_err(|e| AnonError::Guard(guard.peer, e.to_string()))?;
        // The relay swarm speaks TCP only, and knows no addresses but the
        // guard's: dial it, and wait for the connection.
        let addrs: Vec<Multiaddr> = guard
            .addrs
            .iter()
            .filter(|a| safe_network::is_tcp(a))
            .cloned()
            .collect();
        let dial = DialOpts::peer_id(guard.peer).addresses(addrs).build();
        swarm
            .dial(dial)
            .map_err(|e| AnonError::Guard(guard.peer, e.to_string()))?;
        let connected = async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == guard.peer => {
                        return Ok(());
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        return Err(error.to_string());
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(STEP_TIMEOUT, connected)
            .await
            .map_err(|_| AnonError::Guard(guard.peer, "timed out".into()))?
            .map_err(|e| AnonError::Guard(guard.peer, e))?;
        let mut control = swarm.behaviour().new_control();
        let swarm = tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        let stream = tokio::time::timeout(
            STEP_TIMEOUT,
            control.open_stream(guard.peer, safe_network::RELAY_PROTOCOL),
        )
        .await
        .map_err(|_| AnonError::Guard(guard.peer, "timed out".into()))?
        .map_err(|e| AnonError::Guard(guard.peer, e.to_string()))?;
        let (reader, writer) = stream.split();
        let mut id = [0u8; 4];
        let _ = getrandom::fill(&mut id);
        let mut circuit = Circuit {
            crypto: ClientCircuit::new().map_err(circuit_err)?,
            reader,
            writer,
            id: u32::from_le_bytes(id).max(1),
            next_stream: 1,
            swarm,
        };
        // The guard: CREATE on the link.
        let key = hop_key(guard)?;
        let (hs, create) =
            handshake::start(&guard.cert, &key, &network, now()).map_err(circuit_err)?;
        circuit.write(LinkCommand::Create, &create).await?;
        let cell = circuit.read().await?;
        if cell.command != LinkCommand::Created {
            return Err(circuit_err(format!(
                "the guard answered {:?}",
                cell.command
            )));
        }
        let keys = hs.finish(&cell.body[..CREATED_LEN]).map_err(circuit_err)?;
        circuit.crypto.push(keys).map_err(circuit_err)?;
        // The rest: EXTEND through the circuit so far.
        for hop in &path[1..] {
            let key = hop_key(hop)?;
            let (hs, create) =
                handshake::start(&hop.cert, &key, &network, now()).map_err(circuit_err)?;
            let id = hop.peer.to_bytes();
            let mut data = vec![id.len() as u8];
            data.extend_from_slice(&id);
            data.extend_from_slice(&create);
            let last = circuit.crypto.len() - 1;
            let (from, m) = circuit
                .exchange(last, Command::Extend, 0, &data, true)
                .await?;
            if from != last || m.0 != Command::Extended {
                return Err(circuit_err("the circuit did not extend"));
            }
            let keys = hs.finish(&m.2).map_err(circuit_err)?;
            circuit.crypto.push(keys).map_err(circuit_err)?;
        }
        Ok(circuit)
    }

    /// The chunk `name`, from the exit, checked by its hash.
    pub async fn get_chunk(&mut self, name: XorName) -> Result<Bytes, AnonError> {
        let exit = self.crypto.len() - 1;
        let stream = self.next_stream;
        self.next_stream += 1;
        let mut begin = vec![BEGIN_GET_CHUNK];
        begin.extend_from_slice(name.as_bytes());
        self.send(exit, Command::Begin, stream, &begin, false)
            .await?;
        let mut bytes = BytesMut::new();
        loop {
            let (from, (command, s, data)) = self.receive().await?;
            if from != exit || s != stream {
                return Err(circuit_err("a cell from the wrong hop or stream"));
            }
            match command {
                Command::Data if bytes.len() + data.len() <= MAX_CHUNK_SIZE => {
                    bytes.extend_from_slice(&data)
                }
                Command::End => {
                    return match data.first() {
                        Some(&END_DONE) => {
                            let bytes = bytes.freeze();
                            if XorName::from_content(&bytes) == name {
                                Ok(bytes)
                            } else {
                                Err(AnonError::WrongContent)
                            }
                        }
                        Some(&END_NOT_FOUND) => Err(AnonError::NotFound),
                        other => Err(circuit_err(format!(
                            "the exit ended the request ({other:?})"
                        ))),
                    };
                }
                _ => return Err(circuit_err("an answer over a chunk's size")),
            }
        }
    }

    async fn write(&mut self, command: LinkCommand, prefix: &[u8]) -> Result<(), AnonError> {
        let cell = LinkCell::with_prefix(self.id, command, prefix).map_err(circuit_err)?;
        self.write_cell(cell).await
    }

    async fn write_cell(&mut self, cell: LinkCell) -> Result<(), AnonError> {
        let mut bytes = vec![0u8; CELL];
        let out: &mut [u8; CELL] = (&mut bytes[..]).try_into().map_err(circuit_err)?;
        cell.encode(out);
        let written = async {
            self.writer.write_all(&bytes).await?;
            self.writer.flush().await
        };
        tokio::time::timeout(STEP_TIMEOUT, written)
            .await
            .map_err(|_| circuit_err("the guard link stalled"))?
            .map_err(circuit_err)
    }

    async fn read(&mut self) -> Result<LinkCell, AnonError> {
        let mut buf = vec![0u8; CELL];
        tokio::time::timeout(STEP_TIMEOUT, self.reader.read_exact(&mut buf))
            .await
            .map_err(|_| circuit_err("no answer in time"))?
            .map_err(circuit_err)?;
        let cell = LinkCell::decode(&buf).map_err(circuit_err)?;
        if cell.circuit != self.id {
            return Err(circuit_err("a cell for another circuit"));
        }
        Ok(cell)
    }

    async fn send(
        &mut self,
        hop: usize,
        command: Command,
        stream: u32,
        data: &[u8],
        early: bool,
    ) -> Result<(), AnonError> {
        let message = Message {
            command,
            stream,
            data,
        }
        .to_bytes(FORWARD_ROOM)
        .map_err(circuit_err)?;
        let body = self
            .crypto
            .seal(hop, &message, early)
            .map_err(circuit_err)?;
        let command = if early {
            LinkCommand::RelayEarly
        } else {
            LinkCommand::Relay
        };
        self.write_cell(LinkCell {
            circuit: self.id,
            command,
            body,
        })
        .await
    }

    /// The next backward message: the hop that sent it, and its command,
    /// stream and data.
    async fn receive(&mut self) -> Result<(usize, (Command, u32, Vec<u8>)), AnonError> {
        let cell = self.read().await?;
        if cell.command != LinkCommand::Relay {
            return Err(circuit_err(format!(
                "the circuit was closed ({:?})",
                cell.command
            )));
        }
        let mut body: Box<[u8; BODY]> = cell.body;
        let (from, area) = self.crypto.open(&mut body).map_err(circuit_err)?;
        let m = Message::decode(area, BACKWARD_ROOM).map_err(circuit_err)?;
        // Hops other than the exit may only answer an EXTEND.
        if from + 1 < self.crypto.len() && m.command != Command::Extended {
            return Err(circuit_err("a middle hop sent a message it may not"));
        }
        Ok((from, (m.command, m.stream, m.data.to_vec())))
    }

    async fn exchange(
        &mut self,
        hop: usize,
        command: Command,
        stream: u32,
        data: &[u8],
        early: bool,
    ) -> Result<(usize, (Command, u32, Vec<u8>)), AnonError> {
        self.send(hop, command, stream, data, early).await?;
        self.receive().await
    }
}

fn hop_key(relay: &Relay) -> Result<[u8; 32], AnonError> {
    peer_to_key(&relay.peer)
        .ok_or_else(|| circuit_err(format!("{} has no ed25519 key", relay.peer)))
}
