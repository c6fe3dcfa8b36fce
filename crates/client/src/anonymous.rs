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
use safe_protocol::messages::{
    EXIT_ANSWER_FORMAT, ExitPutAnswer, ExitWriteAnswer, MAX_CERT_PEERS, Request, Response,
};
use safe_protocol::{MAX_CHUNK_SIZE, XorName};
use safe_relay::cell::{BACKWARD_ROOM, BODY, CELL, FORWARD_ROOM, LinkCell, LinkCommand};
use safe_relay::handshake::{self, CREATED_LEN};
use safe_relay::message::{
    BEGIN_GET_CHUNK, BEGIN_GET_RECORD, BEGIN_PUT_CHUNK, BEGIN_PUT_RECORD, Command, END_DONE,
    END_NOT_FOUND, END_UNPAID, FORWARD_DATA, MAX_HOLDERS, Message,
};
use safe_relay::{ClientCircuit, RelayCert};

use crate::mutable::MutableError;
use crate::network::Connection;
use safe_protocol::mutable::{Record, Write, accept_write, resolve};

fn anon(e: AnonError) -> MutableError {
    MutableError::Network(e.to_string())
}

/// Hops of a circuit.
pub const HOPS: usize = 3;
/// How long one step of a circuit (a handshake, an answer's next cell)
/// may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// Circuits tried for one request before giving up.
pub const TRIES: usize = 3;
/// The longest one exit may take over one request, from its `BEGIN` to
/// its `END` (a few tries fit in [`REQUEST_DEADLINE`]).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
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
    /// The network could not be reached to sample relays.
    #[error("anonymous mode: cannot reach the network to find relays: {0}")]
    Connect(String),
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
    /// The close group's nodes are full.
    #[error("anonymous mode: the nodes that would store it are full")]
    Full,
    /// The network charges for storage, and anonymous puts cannot pay
    /// yet.
    #[error(
        "anonymous mode: this network charges for storage, and anonymous puts cannot pay yet; store it without --anonymous"
    )]
    Unpaid,
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

/// Puts `items` in random order (Fisher–Yates).
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, random_below(i + 1));
    }
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
        tracing::debug!(identity = %self.net.peer_id(), "sampling relays");
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
        // Only nodes with ed25519 ids can be relays; keeping only those
        // keeps the answers' positions those of `peers`.
        peers.retain(|p| peer_to_key(p).is_some());
        peers.truncate(MAX_CERT_PEERS);
        // Certificates from a few of them, each about the others.
        let mut sources = peers.clone();
        shuffle(&mut sources);
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
            let holders = holders_for(&usable, &name, self.k, &[path[0].peer, path[1].peer]);
            let attempt = async {
                let mut circuit = Circuit::build(&path, network).await?;
                circuit.get_chunk_from(name, &holders).await
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
    path_through(sample, name, k, None, &[])
}

/// As [`choose_path`], through `guard` if given; `avoid` (the client's
/// other guards) are neither middle nor exit.
fn path_through(
    sample: &[Relay],
    name: &XorName,
    k: usize,
    guard: Option<PeerId>,
    avoid: &[PeerId],
) -> Result<Vec<Relay>, AnonError> {
    let near = closest(name, sample.iter().map(|r| r.peer), k + 2);
    let mut pool: Vec<&Relay> = sample.iter().collect();
    shuffle(&mut pool);
    let far = |r: &&Relay| !near.contains(&r.peer);
    let too_few = || AnonError::TooFewRelays(sample.len());
    let guard = match guard {
        Some(g) => pool
            .iter()
            .copied()
            .find(|r| r.peer == g)
            .ok_or_else(too_few)?,
        None => pool
            .iter()
            .copied()
            .find(|r| far(r) && r.addrs.iter().any(safe_network::is_tcp))
            .ok_or_else(too_few)?,
    };
    let free = |r: &&Relay| r.peer != guard.peer && !avoid.contains(&r.peer);
    let middle = pool
        .iter()
        .copied()
        .find(|r| far(r) && free(r))
        .ok_or_else(too_few)?;
    let exit = pool
        .iter()
        .copied()
        .find(|r| free(r) && r.peer != middle.peer)
        .ok_or_else(too_few)?;
    Ok(vec![guard.clone(), middle.clone(), exit.clone()])
}

/// Whom the exit should ask for `name`: up to [`MAX_HOLDERS`] of its K
/// closest in the sample, at random, none of them on the client's path (a
/// guard asked for a chunk while it carries the client's circuit would see
/// both; a middle, the guard and the chunk).
fn holders_for(sample: &[Relay], name: &XorName, k: usize, path: &[PeerId]) -> Vec<PeerId> {
    let mut holders: Vec<PeerId> = closest(name, sample.iter().map(|r| r.peer), k)
        .into_iter()
        .filter(|p| !path.contains(p))
        .collect();
    shuffle(&mut holders);
    holders.truncate(MAX_HOLDERS);
    holders
}

/// Whether two exits' answers about a record agree: both "not found", or
/// copies of one genesis of which one is the other's state or future. (A
/// record's address does not bind its owner: an exit could show a record
/// it made itself at the address, which has another genesis.)
fn agree(a: &Option<Record>, b: &Option<Record>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.genesis.id() == b.genesis.id()
                && (a.state == b.state || a.descends_from(b) || b.descends_from(a))
        }
        _ => false,
    }
}

/// Whether `record` shows `write` done: its genesis, a state it made (now
/// or among the states before), or its append (kept, or since removed).
fn shows(record: &Record, write: &Write) -> bool {
    match write {
        Write::Create(c) => record.genesis.id() == c.id(),
        Write::Op(o) => {
            record.state.hash() == o.body.result || record.state.ancestry.contains(&o.body.result)
        }
        Write::Append(a) => {
            let id = a.id();
            record.appends.iter().any(|x| x.id() == id) || record.state.removed.contains(&id)
        }
    }
}

/// What the exits' answers decide, if anything: two that agree, or, of
/// three, the two that agree. Copies that agree are resolved as a reader
/// resolves them (the later state, with every copy's appends).
fn decide(name: XorName, answers: &[Option<Record>]) -> Option<Result<Record, MutableError>> {
    let pairs: &[(usize, usize)] = match answers.len() {
        2 => &[(0, 1)],
        3 => &[(0, 1), (0, 2), (1, 2)],
        _ => &[],
    };
    let (i, j) = pairs
        .iter()
        .copied()
        .find(|&(i, j)| agree(&answers[i], &answers[j]))?;
    match (&answers[i], &answers[j]) {
        (Some(a), Some(b)) => {
            // The copy with fewer appends first: an inbox keeps the first
            // copy's appends when the union is over its limits, and an
            // exit stuffing its copy should not push real letters out.
            let mut copies = [a.clone(), b.clone()];
            copies.sort_by_key(|c| c.appends.len());
            Some(
                resolve(&copies, 1)
                    .map(|r| r.record)
                    .ok_or(MutableError::NotFound(name)),
            )
        }
        _ => Some(Err(MutableError::NotFound(name))),
    }
}

/// Appends a count of `holders` (at most [`MAX_HOLDERS`]) and each
/// length-prefixed peer id: how a `BEGIN` names them.
fn push_holders(begin: &mut Vec<u8>, holders: &[PeerId]) {
    let holders = &holders[..holders.len().min(MAX_HOLDERS)];
    begin.push(holders.len() as u8);
    for h in holders {
        let id = h.to_bytes();
        begin.push(id.len() as u8);
        begin.extend_from_slice(&id);
    }
}

/// Largest answer an exit may give to a record write.
const MAX_EXIT_ANSWER: usize = 16 * 1024;

/// A circuit: the client's end.
pub struct Circuit {
    crypto: ClientCircuit,
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    id: u32,
    next_stream: u32,
    swarm: tokio::task::JoinHandle<()>,
    /// The exit's peer id.
    pub exit: PeerId,
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
        let identity = Keypair::generate_ed25519();
        let me = identity.public().to_peer_id();
        // Logged before the first dial, so every identity that reaches a
        // guard is named, even one whose circuit is never built.
        tracing::debug!(identity = %me, guard = %guard.peer, "building a circuit");
        let mut swarm = safe_network::build_relay_swarm(identity)
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
            exit: path[path.len() - 1].peer,
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
        tracing::debug!(
            identity = %me,
            guard = %guard.peer,
            middle = %path[1].peer,
            exit = %circuit.exit,
            "circuit built"
        );
        Ok(circuit)
    }

    /// The chunk `name`, from the exit, checked by its hash.
    pub async fn get_chunk(&mut self, name: XorName) -> Result<Bytes, AnonError> {
        self.get_chunk_from(name, &[]).await
    }

    /// The chunk `name`, which the exit fetches from `holders` only (at
    /// most [`MAX_HOLDERS`]; none: from the close group as it sees it).
    pub async fn get_chunk_from(
        &mut self,
        name: XorName,
        holders: &[PeerId],
    ) -> Result<Bytes, AnonError> {
        let mut begin = vec![BEGIN_GET_CHUNK];
        begin.extend_from_slice(name.as_bytes());
        if !holders.is_empty() {
            push_holders(&mut begin, holders);
        }
        let bytes = self.request(&begin, MAX_CHUNK_SIZE).await?;
        if XorName::from_content(&bytes) == name {
            Ok(bytes)
        } else {
            Err(AnonError::WrongContent)
        }
    }

    /// The encoded record at `name`, as the exit resolved it from the
    /// copies it got from `holders` (none: the close group as it sees it).
    /// Not checked here: the caller verifies it.
    pub async fn get_record_from(
        &mut self,
        name: XorName,
        holders: &[PeerId],
    ) -> Result<Bytes, AnonError> {
        let mut begin = vec![BEGIN_GET_RECORD];
        begin.extend_from_slice(name.as_bytes());
        if !holders.is_empty() {
            push_holders(&mut begin, holders);
        }
        self.request(&begin, safe_protocol::mutable::MAX_RECORD_SIZE)
            .await
    }

    /// Has the exit send an encoded write to `holders` (none: the close
    /// group as it sees it); what they said, as the exit reports it (the
    /// caller checks the receipts).
    pub async fn put_record_via(
        &mut self,
        write: &[u8],
        holders: &[PeerId],
    ) -> Result<ExitWriteAnswer, AnonError> {
        let mut begin = vec![BEGIN_PUT_RECORD];
        push_holders(&mut begin, holders);
        begin.extend_from_slice(write);
        if begin.len() > FORWARD_DATA {
            return Err(circuit_err("the write does not fit one cell"));
        }
        let bytes = self.request(&begin, MAX_EXIT_ANSWER).await?;
        safe_protocol::codec::decode(EXIT_ANSWER_FORMAT, &bytes, MAX_EXIT_ANSWER)
            .map_err(|_| AnonError::WrongContent)
    }

    /// Has the exit put `chunk` to `holders` (none: its close group as the
    /// exit sees it): the bytes go in `DATA` cells after the `BEGIN`. What
    /// the members said, as the exit reports it (the caller checks the
    /// receipts).
    pub async fn put_chunk_via(
        &mut self,
        chunk: &safe_protocol::Chunk,
        holders: &[PeerId],
    ) -> Result<ExitPutAnswer, AnonError> {
        let mut begin = vec![BEGIN_PUT_CHUNK];
        push_holders(&mut begin, holders);
        begin.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        let bytes = self
            .request_with(&begin, chunk.bytes(), MAX_EXIT_ANSWER)
            .await?;
        safe_protocol::codec::decode(EXIT_ANSWER_FORMAT, &bytes, MAX_EXIT_ANSWER)
            .map_err(|_| AnonError::WrongContent)
    }

    /// Sends a `BEGIN` on a new stream and reads its answer (at most
    /// `max` bytes) up to its `END`.
    async fn request(&mut self, begin: &[u8], max: usize) -> Result<Bytes, AnonError> {
        self.request_with(begin, &[], max).await
    }

    /// [`Circuit::request`] with `body` sent after the `BEGIN` in `DATA`
    /// cells on the same stream. At most [`EXIT_TIMEOUT`] in all, so an
    /// exit that trickles an answer cannot hold a request to the end of
    /// its deadline.
    async fn request_with(
        &mut self,
        begin: &[u8],
        body: &[u8],
        max: usize,
    ) -> Result<Bytes, AnonError> {
        tokio::time::timeout(EXIT_TIMEOUT, self.request_inner(begin, body, max))
            .await
            .map_err(|_| circuit_err("the exit took too long to answer"))?
    }

    async fn request_inner(
        &mut self,
        begin: &[u8],
        body: &[u8],
        max: usize,
    ) -> Result<Bytes, AnonError> {
        let exit = self.crypto.len() - 1;
        let stream = self.next_stream;
        self.next_stream += 1;
        self.send(exit, Command::Begin, stream, begin, false)
            .await?;
        for part in body.chunks(FORWARD_DATA) {
            self.send(exit, Command::Data, stream, part, false).await?;
        }
        let mut bytes = BytesMut::new();
        loop {
            let (from, (command, s, data)) = self.receive().await?;
            if from != exit || s != stream {
                return Err(circuit_err("a cell from the wrong hop or stream"));
            }
            match command {
                Command::Data if bytes.len() + data.len() <= max => bytes.extend_from_slice(&data),
                Command::End => {
                    return match data.first() {
                        Some(&END_DONE) => Ok(bytes.freeze()),
                        Some(&END_NOT_FOUND) => Err(AnonError::NotFound),
                        Some(&END_UNPAID) => Err(AnonError::Unpaid),
                        other => Err(circuit_err(format!(
                            "the exit ended the request ({other:?})"
                        ))),
                    };
                }
                _ => return Err(circuit_err("an answer over the size it may have")),
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

/// Circuits an [`AnonymousStore`] keeps and uses at once.
pub const MAX_CIRCUITS: usize = 4;
/// Guards an [`AnonymousStore`] draws at most: one, and another if the
/// first cannot be reached.
pub const GUARDS: usize = 2;
/// Lookups of random keys for a sample.
const SAMPLE_LOOKUPS: usize = 4;
/// How long a kept sample is used before the network is sampled again.
pub const SAMPLE_TTL: Duration = Duration::from_secs(3600);
/// Format version of a kept sample.
const SAMPLE_VERSION: u8 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptSample {
    version: u8,
    network: [u8; 32],
    taken: u64,
    /// (peer id, TCP addresses, certificate).
    relays: Vec<(Vec<u8>, Vec<String>, Vec<u8>)>,
}

/// A kept sample for `network`, if it is young enough; every relay in it
/// checked again (a damaged or foreign file gives nothing).
fn load_sample(path: &std::path::Path, network: &[u8; 32]) -> Vec<Relay> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(kept) = postcard::from_bytes::<KeptSample>(&bytes) else {
        return Vec::new();
    };
    let t = now();
    if kept.version != SAMPLE_VERSION
        || &kept.network != network
        || t.saturating_sub(kept.taken) > SAMPLE_TTL.as_secs()
    {
        return Vec::new();
    }
    kept.relays
        .into_iter()
        .filter_map(|(peer, addrs, cert)| {
            let peer = PeerId::from_bytes(&peer).ok()?;
            let cert = RelayCert::from_bytes(&cert).ok()?;
            cert.verify(&peer_to_key(&peer)?, network, t).ok()?;
            let addrs = addrs.iter().filter_map(|a| a.parse().ok()).collect();
            Some(Relay { peer, addrs, cert })
        })
        .collect()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptGuard {
    version: u8,
    network: [u8; 32],
    /// (peer id, TCP addresses, certificate), as in a kept sample.
    relay: (Vec<u8>, Vec<String>, Vec<u8>),
    until: u64,
}

/// Days a drawn guard is kept: 30, plus up to 30 at random.
const GUARD_DAYS: u64 = 30;

fn relay_to_kept(r: &Relay) -> (Vec<u8>, Vec<String>, Vec<u8>) {
    (
        r.peer.to_bytes(),
        r.addrs.iter().map(|a| a.to_string()).collect(),
        r.cert.to_bytes(),
    )
}

fn relay_from_kept((peer, addrs, cert): (Vec<u8>, Vec<String>, Vec<u8>)) -> Option<Relay> {
    Some(Relay {
        peer: PeerId::from_bytes(&peer).ok()?,
        addrs: addrs.iter().filter_map(|a| a.parse().ok()).collect(),
        cert: RelayCert::from_bytes(&cert).ok()?,
    })
}

/// The kept guard for `network`, if it still lives (its certificate is
/// checked when it is used).
fn load_guard(path: &std::path::Path, network: &[u8; 32]) -> Option<Relay> {
    let kept: KeptGuard = postcard::from_bytes(&std::fs::read(path).ok()?).ok()?;
    if kept.version != SAMPLE_VERSION || &kept.network != network || now() >= kept.until {
        return None;
    }
    relay_from_kept(kept.relay)
}

fn save_guard(path: &std::path::Path, network: &[u8; 32], guard: &Relay) -> std::io::Result<()> {
    let days = GUARD_DAYS + random_below(GUARD_DAYS as usize + 1) as u64;
    let kept = KeptGuard {
        version: SAMPLE_VERSION,
        network: *network,
        relay: relay_to_kept(guard),
        until: now() + days * 24 * 3600,
    };
    crate::home::write_private(
        path,
        &postcard::to_allocvec(&kept).map_err(std::io::Error::other)?,
    )
}

fn save_sample(
    path: &std::path::Path,
    network: &[u8; 32],
    sample: &[Relay],
) -> std::io::Result<()> {
    let kept = KeptSample {
        version: SAMPLE_VERSION,
        network: *network,
        taken: now(),
        relays: sample
            .iter()
            .map(|r| {
                (
                    r.peer.to_bytes(),
                    r.addrs.iter().map(|a| a.to_string()).collect(),
                    r.cert.to_bytes(),
                )
            })
            .collect(),
    };
    crate::home::write_private(
        path,
        &postcard::to_allocvec(&kept).map_err(std::io::Error::other)?,
    )
}
/// A sample this large always has a guard and middle far from any name
/// (K + 2 near it, three hops).
const GOOD_SAMPLE: usize = 12;
/// Samples taken (a second apart) while the sample is smaller.
const SAMPLE_TRIES: usize = 30;

/// The refusal of everything anonymous mode does not do yet.
pub const NOT_YET: &str = "logging in is not available anonymously (it would hand an exit the account's password verifier); log in without --anonymous, then use --anonymous for the rest (it never falls back to direct requests)";

struct Pooled {
    circuit: Circuit,
    guard: PeerId,
    middle: PeerId,
    used: std::time::Instant,
}

/// A pooled circuit idle this long is dropped rather than reused: relays
/// close circuits that carry nothing for a minute.
const POOL_IDLE: Duration = Duration::from_secs(45);
/// The longest one chunk read may take, every try included.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(60);

/// Chunk reads through circuits, for a [`crate::Client`] in anonymous mode:
/// a sample of relays taken once, at most [`MAX_CIRCUITS`] circuits kept
/// and used at once, a chunk never sent over a circuit whose guard or
/// middle may hold it, exits that lie not used again, and no direct
/// request for data, ever.
pub struct AnonymousStore {
    /// The ordinary connection, made only to sample relays (never for data).
    conn: tokio::sync::OnceCell<Connection>,
    /// How to make it, for a store that has not connected yet.
    bootstrap: Option<crate::Bootstrap>,
    /// Close group size K.
    k: usize,
    network: [u8; 32],
    sample_file: Option<std::path::PathBuf>,
    sample: tokio::sync::Mutex<Vec<Relay>>,
    idle: std::sync::Mutex<Vec<Pooled>>,
    blamed: std::sync::Mutex<Vec<PeerId>>,
    /// This store's guard: every circuit goes through it.
    guards: std::sync::Mutex<Vec<Relay>>,
    /// Guards drawn so far.
    drawn: std::sync::atomic::AtomicUsize,
    slots: tokio::sync::Semaphore,
}

impl AnonymousStore {
    /// Reads through circuits of relays found through `conn` (which is used
    /// for lookups of random keys and certificates only), on `network`.
    pub fn new(conn: Connection, network: [u8; 32]) -> Self {
        let k = conn.k;
        Self::with(
            tokio::sync::OnceCell::new_with(Some(conn)),
            None,
            k,
            network,
        )
    }

    /// As [`AnonymousStore::new`], but connecting through `bootstrap` only
    /// when it must sample relays: with a kept sample (and guard), reading
    /// makes no connection but the circuits', so no node learns that this
    /// client is online when it reads.
    pub fn lazy(bootstrap: crate::Bootstrap, k: usize, network: [u8; 32]) -> Self {
        Self::with(tokio::sync::OnceCell::new(), Some(bootstrap), k, network)
    }

    fn with(
        conn: tokio::sync::OnceCell<Connection>,
        bootstrap: Option<crate::Bootstrap>,
        k: usize,
        network: [u8; 32],
    ) -> Self {
        Self {
            conn,
            bootstrap,
            k,
            network,
            sample_file: None,
            sample: tokio::sync::Mutex::new(Vec::new()),
            idle: std::sync::Mutex::new(Vec::new()),
            blamed: std::sync::Mutex::new(Vec::new()),
            guards: std::sync::Mutex::new(Vec::new()),
            drawn: std::sync::atomic::AtomicUsize::new(0),
            slots: tokio::sync::Semaphore::new(MAX_CIRCUITS),
        }
    }

    /// Keeps the sample in `path` and starts from it while it is younger
    /// than [`SAMPLE_TTL`], so that reads do not sample the network each
    /// time: the nodes asked for certificates then see a client sampling
    /// relays now and then, not at the moment it reads something.
    pub fn with_sample_file(mut self, path: std::path::PathBuf) -> Self {
        self.sample_file = Some(path);
        self
    }

    /// The connection used for sampling, if one was made.
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.get()
    }

    async fn connect(&self) -> Result<&Connection, AnonError> {
        self.conn
            .get_or_try_init(|| async {
                let bootstrap = self
                    .bootstrap
                    .as_ref()
                    .ok_or_else(|| circuit_err("no way to reach the network"))?;
                Connection::connect(bootstrap, self.k)
                    .await
                    .map_err(|e| AnonError::Connect(e.to_string()))
            })
            .await
    }

    async fn sample(&self) -> Result<Vec<Relay>, AnonError> {
        let mut sample = self.sample.lock().await;
        if sample.is_empty()
            && let Some(path) = &self.sample_file
        {
            *sample = load_sample(path, &self.network);
        }
        let had = sample.len();
        // A kept sample is used as it is, however small the network.
        let loaded = had >= HOPS;
        // Nodes fetch each other's certificates every few seconds: a
        // network that has just started may need a moment.
        // It stops growing at the network's size (or GOOD_SAMPLE).
        let mut still = 0;
        for _ in 0..SAMPLE_TRIES {
            if loaded || sample.len() >= GOOD_SAMPLE || (sample.len() >= HOPS && still >= 3) {
                break;
            }
            let found = self
                .connect()
                .await?
                .relay_sample(SAMPLE_LOOKUPS, self.network)
                .await;
            if found.len() > sample.len() {
                *sample = found;
                still = 0;
            } else {
                still += 1;
            }
            if sample.len() < GOOD_SAMPLE {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        if sample.len() < HOPS {
            return Err(AnonError::TooFewRelays(sample.len()));
        }
        if sample.len() > had
            && let Some(path) = &self.sample_file
            && let Err(e) = save_sample(path, &self.network, &sample)
        {
            tracing::debug!("cannot keep the relay sample in {}: {e}", path.display());
        }
        // Blamed exits stay in the sample: they are still nodes, and still
        // in the close groups computed from it (leaving them out would name
        // non-members as holders); they are only never exits again.
        Ok(sample.clone())
    }

    /// This store's guard: the kept one (`guard`, next to the sample file)
    /// while it lives (30 to 60 days from when it was drawn) and its
    /// certificate is valid (a newer one from the sample replaces it),
    /// else one drawn now from the sample and kept. (A guard that holds a
    /// chunk may carry its circuit: it sees only cells, and the exit is
    /// never told to ask it.)
    fn guard(&self, sample: &[Relay]) -> Result<Relay, AnonError> {
        let mut guards = self.guards.lock().unwrap_or_else(|e| e.into_inner());
        if guards.is_empty()
            && let Some(file) = self.guard_file()
            && let Some(g) = load_guard(&file, &self.network)
        {
            guards.push(g);
        }
        let t = now();
        if let Some(g) = guards.first_mut() {
            if let Some(fresh) = sample.iter().find(|r| r.peer == g.peer) {
                *g = fresh.clone();
            }
            let key = peer_to_key(&g.peer);
            if key.is_some_and(|k| g.cert.verify(&k, &self.network, t).is_ok()) {
                return Ok(g.clone());
            }
            guards.clear();
        }
        let pool: Vec<&Relay> = sample
            .iter()
            .filter(|r| r.addrs.iter().any(safe_network::is_tcp))
            .collect();
        if pool.is_empty() {
            return Err(AnonError::TooFewRelays(sample.len()));
        }
        let g = pool[random_below(pool.len())].clone();
        guards.push(g.clone());
        self.drawn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(file) = self.guard_file()
            && let Err(e) = save_guard(&file, &self.network, &g)
        {
            tracing::debug!("cannot keep the guard in {}: {e}", file.display());
        }
        Ok(g)
    }

    fn guard_file(&self) -> Option<std::path::PathBuf> {
        self.sample_file.as_ref().map(|p| p.with_file_name("guard"))
    }

    /// A guard that could not be reached is replaced, at most [`GUARDS`]
    /// times in all for one store (so that failures cannot walk a client
    /// through many guards).
    fn guard_failed(&self, guard: PeerId) {
        let mut guards = self.guards.lock().unwrap_or_else(|e| e.into_inner());
        if guards.first().is_some_and(|g| g.peer == guard)
            && self.drawn.load(std::sync::atomic::Ordering::Relaxed) < GUARDS
        {
            guards.remove(0);
        }
    }

    /// An idle circuit through this store's guard whose middle is not near
    /// `name` and whose exit is not in `not_exits`, or a new one.
    async fn circuit_for(
        &self,
        sample: &[Relay],
        name: &XorName,
        not_exits: &[PeerId],
        fresh: bool,
    ) -> Result<Pooled, AnonError> {
        let near = closest(name, sample.iter().map(|r| r.peer), self.k + 2);
        let guard = self.guard(sample)?;
        let mut not_exits = not_exits.to_vec();
        not_exits.extend(
            self.blamed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .copied(),
        );
        let not_exits = &not_exits[..];
        let reused = if fresh {
            None
        } else {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|p| p.used.elapsed() < POOL_IDLE);
            idle.iter()
                .position(|p| {
                    p.guard == guard.peer
                        && !near.contains(&p.middle)
                        && !not_exits.contains(&p.circuit.exit)
                })
                .map(|i| idle.swap_remove(i))
        };
        if let Some(p) = reused {
            return Ok(p);
        }
        // The guard is used whether or not the sample still holds it.
        let mut relays = sample.to_vec();
        if !relays.iter().any(|r| r.peer == guard.peer) {
            relays.push(guard.clone());
        }
        let path = path_through(&relays, name, self.k, Some(guard.peer), not_exits)?;
        let circuit = match Circuit::build(&path, self.network).await {
            Ok(c) => c,
            Err(e) => {
                if matches!(e, AnonError::Guard(..)) {
                    self.guard_failed(guard.peer);
                }
                return Err(e);
            }
        };
        Ok(Pooled {
            circuit,
            guard: path[0].peer,
            middle: path[1].peer,
            used: std::time::Instant::now(),
        })
    }

    /// The chunk `name`, through circuits; see [`AnonymousStore`]. At most
    /// [`REQUEST_DEADLINE`] in all.
    pub async fn get_chunk(&self, name: XorName) -> Result<Bytes, AnonError> {
        match tokio::time::timeout(REQUEST_DEADLINE, self.try_get_chunk(name)).await {
            Ok(result) => result,
            Err(_) => Err(AnonError::Exhausted {
                name,
                tries: TRIES,
                last: format!("no answer within {REQUEST_DEADLINE:?}"),
            }),
        }
    }

    async fn try_get_chunk(&self, name: XorName) -> Result<Bytes, AnonError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| circuit_err("closed"))?;
        let mut last = String::new();
        // Exits that said "not found": another one is asked before the
        // answer is believed.
        let mut not_found: Vec<PeerId> = Vec::new();
        for _ in 0..TRIES {
            let (sample, mut pooled) = match self.next_circuit(&name, &not_found, false).await? {
                Ok(found) => found,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let exit = pooled.circuit.exit;
            let holders = self.holders_if_near(&sample, &name, &pooled);
            match pooled.circuit.get_chunk_from(name, &holders).await {
                Ok(bytes) => {
                    self.keep(pooled);
                    return Ok(bytes);
                }
                Err(AnonError::NotFound) => {
                    self.keep(pooled);
                    not_found.push(exit);
                    if not_found.len() >= 2 {
                        return Err(AnonError::NotFound);
                    }
                    last = AnonError::NotFound.to_string();
                }
                Err(e) => {
                    if matches!(e, AnonError::WrongContent) {
                        self.blame(exit);
                    }
                    tracing::debug!("anonymous get of {name} failed: {e}");
                    last = e.to_string();
                }
            }
        }
        if not_found.len() == TRIES {
            return Err(AnonError::NotFound);
        }
        Err(AnonError::Exhausted {
            name,
            tries: TRIES,
            last,
        })
    }

    /// Whom the exit should ask for `name`: named only when the guard or
    /// middle may be in its close group (a superset test on the sample),
    /// so that neither is asked; otherwise nobody is named and the exit
    /// asks the close group as it sees it, so the client's sample shows in
    /// nothing it sends.
    fn holders_if_near(&self, sample: &[Relay], name: &XorName, pooled: &Pooled) -> Vec<PeerId> {
        let near = closest(name, sample.iter().map(|r| r.peer), self.k + 2);
        let path = [pooled.guard, pooled.middle];
        if path.iter().any(|p| near.contains(p)) {
            holders_for(sample, name, self.k, &path)
        } else {
            Vec::new()
        }
    }

    /// The sample and a circuit for a request about `name` whose exit is
    /// none of `not_exits` (`fresh`: never a pooled one). `Err` ends the
    /// request (too few relays, no network); `Ok(Err(why))` is one failed
    /// try.
    async fn next_circuit(
        &self,
        name: &XorName,
        not_exits: &[PeerId],
        fresh: bool,
    ) -> Result<Result<(Vec<Relay>, Pooled), String>, AnonError> {
        let sample = self.sample().await?;
        match self.circuit_for(&sample, name, not_exits, fresh).await {
            Ok(p) => Ok(Ok((sample, p))),
            Err(e @ (AnonError::TooFewRelays(_) | AnonError::Connect(_))) => Err(e),
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    /// An exit that lied is not used again by this store.
    fn blame(&self, exit: PeerId) {
        self.blamed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(exit);
    }

    /// The record at `name`, through circuits: the copies two different
    /// exits resolved, each verified, resolved again as a reader resolves
    /// them (so an exit that shows an older copy loses to one that shows
    /// its future, and appends are united). "Not found" only when both
    /// exits say so. At most [`REQUEST_DEADLINE`].
    pub async fn get_record(&self, name: XorName) -> Result<Record, MutableError> {
        match tokio::time::timeout(REQUEST_DEADLINE, self.try_get_record(name)).await {
            Ok(result) => result,
            Err(_) => Err(MutableError::Network(format!(
                "anonymous mode: no answer for record {name} within {REQUEST_DEADLINE:?}"
            ))),
        }
    }

    async fn try_get_record(&self, name: XorName) -> Result<Record, MutableError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| anon(circuit_err("closed")))?;
        self.read_record(name).await
    }

    /// [`AnonymousStore::get_record`]'s work, for a caller that holds a
    /// slot. Every exit is on a circuit of its own, never reused: an exit
    /// shown two records could link them (a sender's own profile and the
    /// inbox it writes to, say).
    async fn read_record(&self, name: XorName) -> Result<Record, MutableError> {
        // Each answering exit's copy (`None`: "not found").
        let mut answers: Vec<Option<Record>> = Vec::new();
        let mut answered: Vec<PeerId> = Vec::new();
        let mut last = String::new();
        for _ in 0..2 * TRIES {
            // Two that agree, or a third to decide between two that do not.
            if decide(name, &answers).is_some() || answers.len() >= 3 {
                break;
            }
            let (sample, mut pooled) = match self
                .next_circuit(&name, &answered, true)
                .await
                .map_err(anon)?
            {
                Ok(found) => found,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let exit = pooled.circuit.exit;
            let holders = self.holders_if_near(&sample, &name, &pooled);
            match pooled.circuit.get_record_from(name, &holders).await {
                Ok(bytes) => {
                    let verified = tokio::task::spawn_blocking(move || {
                        Record::decode(&bytes).and_then(|r| r.verify(&name).map(|()| r))
                    })
                    .await;
                    match verified {
                        Ok(Ok(r)) => {
                            answers.push(Some(r));
                            answered.push(exit);
                        }
                        _ => {
                            self.blame(exit);
                            last = "an exit sent a record that does not verify".into();
                        }
                    }
                }
                Err(AnonError::NotFound) => {
                    answers.push(None);
                    answered.push(exit);
                }
                Err(e) => last = e.to_string(),
            }
        }
        decide(name, &answers).unwrap_or_else(|| {
            Err(MutableError::Network(match answers.len() {
                0 | 1 => format!(
                    "anonymous mode: record {name} could not be read through two exits (last: {last})"
                ),
                _ => format!(
                    "anonymous mode: the exits disagree about record {name} (a lying exit?); try again"
                ),
            }))
        })
    }

    /// Sends a write to a record's close group through a circuit of its own
    /// (never shared with reads or other writes): the exit sends it on and
    /// reports what each member said. It succeeds when a majority of the
    /// record's close group, as this store's sample shows it, gave valid
    /// receipts for this very write (an exit cannot forge them). A refusal
    /// is believed when two exits report it; otherwise another circuit is
    /// tried. At most [`REQUEST_DEADLINE`].
    pub async fn write_record(&self, write: &Write) -> Result<(), MutableError> {
        let name = write.address();
        match tokio::time::timeout(REQUEST_DEADLINE, self.try_write_record(write)).await {
            Ok(result) => result,
            Err(_) => Err(MutableError::Network(format!(
                "anonymous mode: no answer for the write to {name} within {REQUEST_DEADLINE:?}"
            ))),
        }
    }

    async fn try_write_record(&self, write: &Write) -> Result<(), MutableError> {
        let bytes = write.encode().map_err(MutableError::Invalid)?;
        // The BEGIN: a byte, the holders (each at most 40 bytes), the write.
        let room = FORWARD_DATA - 2 - MAX_HOLDERS * 40;
        if bytes.len() > room {
            return Err(MutableError::Network(format!(
                "anonymous mode: a write of {} bytes is too large to send through a circuit (at most {room} for now)",
                bytes.len()
            )));
        }
        let (name, proof) = (write.address(), write.proof());
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| anon(circuit_err("closed")))?;
        let mut tried: Vec<PeerId> = Vec::new();
        let (mut full, mut unpaid) = (0, 0);
        let mut last = String::new();
        for _ in 0..TRIES {
            let (sample, mut pooled) =
                match self.next_circuit(&name, &tried, true).await.map_err(anon)? {
                    Ok(found) => found,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                };
            let group = closest(&name, sample.iter().map(|r| r.peer), self.k);
            let need = safe_network::close_group::majority(self.k.min(group.len()));
            let exit = pooled.circuit.exit;
            tried.push(exit);
            let holders = self.holders_if_near(&sample, &name, &pooled);
            let answer = match pooled.circuit.put_record_via(&bytes, &holders).await {
                Ok(a) => a,
                Err(AnonError::Unpaid) => {
                    // One exit alone might say so to censor: two must.
                    unpaid += 1;
                    if unpaid >= 2 {
                        return Err(MutableError::Payment(format!(
                            "{} (creating a record is paid for on this network)",
                            AnonError::Unpaid
                        )));
                    }
                    last = AnonError::Unpaid.to_string();
                    continue;
                }
                Err(e) => {
                    if matches!(e, AnonError::WrongContent) {
                        self.blame(exit);
                    }
                    last = e.to_string();
                    continue;
                }
            };
            let mut signers: Vec<PeerId> = answer
                .receipts
                .iter()
                .filter(|r| r.name == name && r.proof == proof && r.verify())
                .filter_map(|r| safe_network::close_group::key_to_peer(&r.node_key))
                .filter(|p| group.contains(p))
                .collect();
            signers.sort();
            signers.dedup();
            if signers.len() >= need {
                // The receipts' signers are the close group as the sample
                // shows it, which on a large network may not be the real
                // one: the record, read through two other exits (which
                // look the group up), must show the write too.
                match self.read_record(name).await {
                    Ok(r) if shows(&r, write) => return Ok(()),
                    Ok(_) => {
                        last = "receipts, but the record read back does not show the write".into()
                    }
                    Err(e) => last = format!("receipts, but reading back failed: {e}"),
                }
                continue;
            }
            // A refusal is only the exit's word: the record, read through
            // two exits, and the rules themselves decide. If they refuse
            // the write, that is the answer; if not, another try.
            if !answer.refusals.is_empty() {
                let current = match self.read_record(name).await {
                    Ok(r) => Some(r),
                    Err(MutableError::NotFound(_)) => None,
                    Err(e) => {
                        last = format!("refused, and reading the record failed: {e}");
                        continue;
                    }
                };
                if let Err(e) = accept_write(current, write, now()) {
                    return Err(MutableError::Refused(e));
                }
                last = "refused by some members, though the record allows it".into();
                continue;
            }
            if answer.full > 0 {
                full += 1;
                if full >= 2 {
                    return Err(MutableError::Full);
                }
            }
            last = format!(
                "{} of the close group's {} confirmed (need {need})",
                signers.len(),
                group.len()
            );
        }
        Err(MutableError::Network(format!(
            "anonymous mode: the write to {name} was not confirmed through {TRIES} circuits (last: {last})"
        )))
    }

    /// Stores `chunk` through a circuit of its own: the exit puts it to
    /// the chunk's close group and hands back the members' receipts. It
    /// succeeds when a majority of the close group, as this store's sample
    /// shows it, signed valid receipts for it. At most [`REQUEST_DEADLINE`].
    pub async fn put_chunk(&self, chunk: &safe_protocol::Chunk) -> Result<(), AnonError> {
        let name = *chunk.name();
        match tokio::time::timeout(REQUEST_DEADLINE, self.try_put_chunk(chunk)).await {
            Ok(result) => result,
            Err(_) => Err(AnonError::Exhausted {
                name,
                tries: TRIES,
                last: format!("no answer within {REQUEST_DEADLINE:?}"),
            }),
        }
    }

    async fn try_put_chunk(&self, chunk: &safe_protocol::Chunk) -> Result<(), AnonError> {
        let name = *chunk.name();
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| circuit_err("closed"))?;
        let mut tried: Vec<PeerId> = Vec::new();
        let mut full = 0;
        let mut unpaid = 0;
        let mut last = String::new();
        for _ in 0..TRIES {
            let (sample, mut pooled) = match self.next_circuit(&name, &tried, true).await? {
                Ok(found) => found,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let exit = pooled.circuit.exit;
            tried.push(exit);
            let group = closest(&name, sample.iter().map(|r| r.peer), self.k);
            let need = safe_network::close_group::majority(self.k.min(group.len()));
            let holders = self.holders_if_near(&sample, &name, &pooled);
            match pooled.circuit.put_chunk_via(chunk, &holders).await {
                Ok(answer) => {
                    let signers =
                        safe_network::close_group::valid_signers(&name, &group, &answer.receipts);
                    if signers.len() >= need {
                        return Ok(());
                    }
                    if answer.full > 0 {
                        full += 1;
                        if full >= 2 {
                            return Err(AnonError::Full);
                        }
                    }
                    last = format!(
                        "{} of the close group's {} confirmed (need {need})",
                        signers.len(),
                        group.len()
                    );
                }
                Err(AnonError::Unpaid) => {
                    // Two exits must say so: one alone could be lying to
                    // keep this put off the network.
                    unpaid += 1;
                    if unpaid >= 2 {
                        return Err(AnonError::Unpaid);
                    }
                    last = AnonError::Unpaid.to_string();
                }
                Err(e) => {
                    if matches!(e, AnonError::WrongContent) {
                        self.blame(exit);
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

    fn keep(&self, mut pooled: Pooled) {
        pooled.used = std::time::Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_CIRCUITS {
            idle.push(pooled);
        }
    }
}

impl crate::store::ChunkStore for AnonymousStore {
    async fn put(&self, chunk: safe_protocol::Chunk) -> Result<(), crate::StoreError> {
        match self.put_chunk(&chunk).await {
            Ok(()) => Ok(()),
            Err(e @ AnonError::Full) => Err(crate::StoreError::Full(e.to_string())),
            Err(e @ AnonError::Unpaid) => Err(crate::StoreError::Payment(e.to_string())),
            Err(e) => Err(crate::StoreError::Network(e.to_string())),
        }
    }

    async fn get(&self, name: XorName) -> Result<safe_protocol::Chunk, crate::StoreError> {
        match self.get_chunk(name).await {
            Ok(bytes) => Ok(safe_protocol::Chunk::new(bytes)?),
            Err(AnonError::NotFound) => Err(crate::StoreError::NotFound(name)),
            Err(e) => Err(crate::StoreError::Network(e.to_string())),
        }
    }
}
