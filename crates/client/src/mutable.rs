//! Mutable records over the network, verified by the client.
//!
//! - **Write** ([`Connection::write_record`]): the client finds the close
//!   group itself and sends the signed write to every member; each
//!   validates it against its own copy and answers with a signed receipt
//!   or a typed refusal. The write succeeds at a majority of receipts from
//!   members of the group the client looked up (records are small, so
//!   sending to each member costs little, and no member's word is taken
//!   for another's). Short of a majority, the refusal most members gave is
//!   the error ("already exists", "stale version", ...).
//! - **Read** ([`Connection::get_record`]): asks every member, verifies
//!   every copy's whole proof, and keeps what
//!   [`safe_protocol::mutable::resolve`] picks: the genesis most copies
//!   share, at the highest version no copy proves stale. A node serving an
//!   old, forged or tampered copy is outvoted or fails verification.
//! - Helpers build the signed writes: [`new_create`], [`prepare`],
//!   [`new_append`].

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use safe_network::close_group::{key_to_peer, majority, peer_to_key};
use safe_network::libp2p::PeerId;
use safe_protocol::XorName;
use safe_protocol::account::AccountFetch;
use safe_protocol::messages::{Refusal, Request, Response};
use safe_protocol::mutable::{
    Append, Change, Create, Op, PublicKey, Record, RecordError, Signed, SigningKey, Write,
    record_address, resolve,
};

use crate::Connection;
use crate::store::RecordStore;

/// Copies up to this many bytes in all are verified on the calling task
/// (a few signatures); larger ones on a blocking thread.
pub const INLINE_VERIFY_BYTES: usize = 32 * 1024;

/// How long one member may take to answer a record request.
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a record operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MutableError {
    /// No record at the address.
    #[error("no mutable record at {0}")]
    NotFound(XorName),
    /// The close group refused the write, for this reason.
    #[error("refused: {0}")]
    Refused(RecordError),
    /// The write is invalid before it is even sent.
    #[error("invalid operation: {0}")]
    Invalid(RecordError),
    /// The close group's nodes are full.
    #[error("the nodes of the record's close group are full")]
    Full,
    /// Too few members answered.
    #[error("only {got} of {group} close group members confirmed (need {need}){}", errors_suffix(.errors))]
    NoMajority {
        /// Valid receipts.
        got: usize,
        /// Members asked.
        group: usize,
        /// Receipts needed.
        need: usize,
        /// What went wrong with the others.
        errors: Vec<String>,
    },
    /// The network failed.
    #[error("{0}")]
    Network(String),
    /// Creating the record could not be paid for (on a network that
    /// charges); nothing was written.
    #[error("{0}")]
    Payment(String),
    /// A create that was already applied: the record exists with exactly
    /// this claim (the caller, or a co-owner, created it before). The
    /// write was sent again and confirmed, so it is safe to treat as done;
    /// reported so a user is told the truth.
    #[error(
        "already exists (created by {}, now at version {version}, owned by {})",
        if *by_you { "you" } else { "a co-owner with this same claim" },
        show_owners(owners, *threshold)
    )]
    AlreadyCreated {
        /// Whether a key that signed this create also signed the record's
        /// genesis.
        by_you: bool,
        /// The record's version now.
        version: u64,
        /// Its owners now (ownership may have changed hands since).
        owners: Vec<PublicKey>,
        /// Its threshold now.
        threshold: u8,
    },
    /// An owner operation that was already applied (a replay).
    #[error("already applied (the record is at version {version})")]
    AlreadyApplied {
        /// The record's version now.
        version: u64,
    },
    /// The close group refuses more requests for this address for now
    /// (account logins: a few a minute).
    #[error("too many attempts for this account lately; wait a minute and try again")]
    RateLimited,
    /// A local store failed.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

fn show_owners(owners: &[PublicKey], threshold: u8) -> String {
    let list: Vec<String> = owners.iter().map(hex::encode).collect();
    if owners.len() == 1 {
        list.join("")
    } else {
        format!(
            "{} ({threshold} of {} must sign)",
            list.join(", "),
            owners.len()
        )
    }
}

fn errors_suffix(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    }
}

/// Creates the record `name`/`tag` owned by `owner` alone in `store`, unless
/// it exists already (another machine of the owner made it first).
pub async fn create_owned<S: RecordStore>(
    store: &S,
    name: &[u8],
    tag: u64,
    owner: &SigningKey,
) -> Result<(), MutableError> {
    let create = new_create(
        name,
        tag,
        vec![owner.verifying_key().to_bytes()],
        1,
        false,
        owner,
    )?;
    match store.write_record(&Write::Create(create)).await {
        Ok(()) | Err(MutableError::Refused(RecordError::AlreadyExists)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A signed create of the record `name`/`tag`, signed by `creator` (who must
/// be among `owners`; empty `owners` means the creator alone).
pub fn new_create(
    name: &[u8],
    tag: u64,
    mut owners: Vec<PublicKey>,
    threshold: u8,
    public_append: bool,
    creator: &SigningKey,
) -> Result<Signed<Create>, MutableError> {
    if owners.is_empty() {
        owners.push(creator.verifying_key().to_bytes());
    }
    owners.sort();
    owners.dedup();
    let mut create = Signed::new(Create {
        name: name.to_vec(),
        tag,
        owners,
        threshold,
        public_append,
    });
    create.sign(creator);
    // Checks the limits, the owners and that the creator is one of them.
    Record::create(create.clone()).map_err(MutableError::Invalid)?;
    Ok(create)
}

/// An unsigned operation making `change` to `record` as it is now.
pub fn prepare(record: &Record, change: Change) -> Result<Signed<Op>, MutableError> {
    let next = record.state.apply(&change).map_err(MutableError::Invalid)?;
    Ok(Signed::new(Op {
        address: record.address(),
        replaces: record.state.version,
        prev: record.state.hash(),
        change,
        result: next.hash(),
    }))
}

/// Random low bits of an append's nonce, under its time: two appends of one
/// value by one author in the same microsecond still differ.
const NONCE_RANDOM_BITS: u32 = 10;

/// A signed append of `value` to the record at `address`.
///
/// Its nonce is the author's clock in microseconds since the Unix epoch,
/// shifted up by [`NONCE_RANDOM_BITS`] random bits: it keeps two appends
/// of one value apart, and gives readers an order people understand
/// ([`appends_in_order`]).
pub fn new_append(address: XorName, value: Vec<u8>, signers: &[SigningKey]) -> Signed<Append> {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let seed = safe_network::libp2p::identity::ed25519::SecretKey::generate();
    let random = u64::from(u16::from_le_bytes([seed.as_ref()[0], seed.as_ref()[1]]))
        & ((1 << NONCE_RANDOM_BITS) - 1);
    let mut append = Signed::new(Append {
        address,
        value,
        nonce: (micros << NONCE_RANDOM_BITS) | random,
    });
    for key in signers {
        append.sign(key);
    }
    append
}

/// When the author says an append was made (from its nonce, see
/// [`new_append`]); `None` if the nonce holds no plausible time.
pub fn append_time(append: &Append) -> Option<std::time::SystemTime> {
    let micros = append.nonce >> NONCE_RANDOM_BITS;
    // Before 2020 or a century ahead: not a time this client wrote.
    const FROM: u64 = 1_577_836_800_000_000;
    const UNTIL: u64 = FROM + 100 * 365 * 24 * 3600 * 1_000_000;
    (FROM..UNTIL)
        .contains(&micros)
        .then(|| std::time::UNIX_EPOCH + Duration::from_micros(micros))
}

/// A record's appends in the order they were made, by their authors'
/// clocks (ties and appends without a time by id): the order to show
/// people, unlike the record's own order, which is by hash.
pub fn appends_in_order(record: &Record) -> Vec<&Signed<Append>> {
    let mut list: Vec<&Signed<Append>> = record.appends.iter().collect();
    list.sort_by_cached_key(|a| (append_time(&a.body).is_none(), a.body.nonce, a.id()));
    list
}

/// Decodes and verifies a copy `peer` served.
fn verify_copy(peer: PeerId, name: &XorName, bytes: &[u8]) -> Result<Record, MutableError> {
    Record::decode(bytes)
        .and_then(|r| r.verify(name).map(|()| r))
        .map_err(|e| {
            tracing::warn!(%peer, %name, "node served a record that does not verify: {e}");
            MutableError::Network(format!("bad copy ({e})"))
        })
}

/// The address of the record `name` under `tag` (re-exported for callers).
pub fn address_of(name: &[u8], tag: u64) -> XorName {
    record_address(name, tag)
}

impl Connection {
    /// Sends a write to the record's close group; succeeds when a majority
    /// of the group (as this client finds it) confirms with valid receipts.
    pub async fn write_record(&self, write: &Write) -> Result<(), MutableError> {
        let bytes: bytes::Bytes = write.encode().map_err(MutableError::Invalid)?.into();
        let name = write.address();
        let proof = write.proof();
        let group = self.close_group(&name).await;
        if group.is_empty() {
            return Err(MutableError::Network(format!(
                "record {name}: no nodes found"
            )));
        }
        let need = self.majority_for(&group).await;
        // A create on a network that charges carries the payment for its
        // address ([`crate::pay`]).
        let payment = match write {
            Write::Create(_) => self.payment_for(&name),
            _ => None,
        };
        let answers = join_all(group.iter().map(|p| {
            let request = Request::PutRecord {
                write: bytes.clone(),
                payment: payment.clone(),
            };
            tokio::time::timeout(RECORD_TIMEOUT, self.net.request(*p, request))
        }))
        .await;
        let mut signers: Vec<PeerId> = Vec::new();
        let mut refusals: BTreeMap<String, (usize, RecordError)> = BTreeMap::new();
        let (mut full, mut limited, mut errors) = (0, 0, Vec::new());
        for (peer, answer) in group.iter().zip(answers) {
            match answer {
                Ok(Ok(Response::RecordStored(r))) => {
                    let valid = r.name == name
                        && r.proof == proof
                        && r.verify()
                        && key_to_peer(&r.node_key) == Some(*peer);
                    if valid {
                        signers.push(*peer);
                    } else {
                        errors.push(format!("{peer}: invalid receipt"));
                    }
                }
                Ok(Ok(Response::RecordRefused(e))) => {
                    refusals.entry(format!("{e:?}")).or_insert((0, e)).0 += 1;
                }
                Ok(Ok(Response::Refused(Refusal::Full))) => full += 1,
                Ok(Ok(Response::Refused(Refusal::RateLimited))) => limited += 1,
                Ok(Ok(other)) => {
                    errors.push(format!("{peer}: unexpected answer ({})", other.kind()))
                }
                Ok(Err(e)) => errors.push(format!("{peer}: {e}")),
                Err(_) => errors.push(format!("{peer}: no answer in {RECORD_TIMEOUT:?}")),
            }
        }
        signers.sort();
        signers.dedup();
        if !errors.is_empty() {
            self.forget_group(&name);
        }
        // Only members old enough count ([`crate::age`]).
        let counted = self.counted_members(&group).await;
        signers.retain(|p| counted.contains(p));
        if signers.len() >= need {
            if payment.is_some() {
                self.paid(&name);
            }
            return Ok(());
        }
        if let Some((_, e)) = refusals.into_values().max_by_key(|(n, _)| *n) {
            return Err(MutableError::Refused(e));
        }
        if full > 0 {
            return Err(MutableError::Full);
        }
        if limited > 0 {
            return Err(MutableError::RateLimited);
        }
        Err(MutableError::NoMajority {
            got: signers.len(),
            group: group.len(),
            need,
            errors,
        })
    }

    /// Reads the record at `name` from its whole close group, verifying
    /// every copy, and returns the one the group's majority stands for.
    pub async fn get_record(&self, name: XorName) -> Result<Record, MutableError> {
        self.read_record(name, |_| Some(Request::GetRecord { name }))
            .await
    }

    /// Reads the account record at `address` with fetches signed by
    /// `signer` (its login key or an owner; see
    /// [`safe_protocol::account`]), one per member, then as
    /// [`Connection::get_record`]. A missing account and a key that may
    /// not fetch it are both [`MutableError::NotFound`].
    pub async fn fetch_account(
        &self,
        address: XorName,
        signer: &SigningKey,
    ) -> Result<Record, MutableError> {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.read_record(address, |peer| {
            let to = peer_to_key(&peer)?;
            Some(Request::GetAccount(AccountFetch::new(
                address, to, time, signer,
            )))
        })
        .await
    }

    /// Reads the record at `name` from its whole close group, sending each
    /// member the request `request_for` makes for it.
    async fn read_record(
        &self,
        name: XorName,
        request_for: impl Fn(PeerId) -> Option<Request>,
    ) -> Result<Record, MutableError> {
        let group = self.close_group(&name).await;
        if group.is_empty() {
            return Err(MutableError::Network(format!(
                "record {name}: no nodes found"
            )));
        }
        let answers = join_all(group.iter().map(|p| async {
            match request_for(*p) {
                Some(request) => self.fetch_record(*p, request).await,
                None => Err(MutableError::Network("not a node key".into())),
            }
        }))
        .await;
        let (mut limited, mut errors) = (0, Vec::new());
        let mut served: Vec<(PeerId, bytes::Bytes)> = Vec::new();
        let mut not_found_from = Vec::new();
        for (peer, answer) in group.iter().zip(answers) {
            match answer {
                Ok(Some(bytes)) => served.push((*peer, bytes)),
                Ok(None) => not_found_from.push(*peer),
                Err(MutableError::RateLimited) => limited += 1,
                Err(e) => errors.push(format!("{peer}: {e}")),
            }
        }
        let total: usize = served.iter().map(|(_, b)| b.len()).sum();
        // Copies are usually byte-identical, so each distinct one is
        // checked once. Verifying checks every signature in the record: a
        // large one is checked off the async threads.
        let check = move || {
            let mut seen: Vec<(blake3::Hash, Option<Record>)> = Vec::new();
            served
                .into_iter()
                .map(|(peer, bytes)| {
                    let id = blake3::hash(&bytes);
                    let verdict = match seen.iter().find(|(h, _)| *h == id) {
                        Some((_, v)) => v.clone(),
                        None => {
                            let v = verify_copy(peer, &name, &bytes).ok();
                            seen.push((id, v.clone()));
                            v
                        }
                    };
                    (peer, verdict)
                })
                .collect::<Vec<_>>()
        };
        let checked = if total <= INLINE_VERIFY_BYTES {
            check()
        } else {
            tokio::task::spawn_blocking(check)
                .await
                .map_err(|e| MutableError::Network(format!("verification task failed: {e}")))?
        };
        let mut copies = Vec::new();
        for (peer, verdict) in checked {
            match verdict {
                Some(r) => copies.push(r),
                None => errors.push(format!("{peer}: a copy that does not verify")),
            }
        }
        if !errors.is_empty() {
            self.forget_group(&name);
        }
        // "Not found" counts only from members old enough ([`crate::age`]),
        // asked only when some member said it; copies count from anyone:
        // the owners' signatures vouch for them.
        if !not_found_from.is_empty() {
            let counted = self.counted_members(&group).await;
            not_found_from.retain(|p| counted.contains(p));
        }
        let not_found = not_found_from.len();
        if let Some(winner) = resolve(&copies, 1).map(|r| r.record) {
            let genesis = winner.genesis.id();
            let backing = copies.iter().filter(|c| c.genesis.id() == genesis).count();
            // A record only a few members hold, against a majority that
            // holds nothing, is a lone node's invention (or a write that
            // failed), not the network's record.
            if backing >= not_found {
                return Ok(winner);
            }
        }
        // Members that would not answer may hold what the rest do not
        // (an account's login: a few served it, the rest refused for
        // now): not "not found".
        if limited > 0 {
            return Err(MutableError::RateLimited);
        }
        if not_found >= majority(group.len()) || (not_found > 0 && errors.is_empty()) {
            return Err(MutableError::NotFound(name));
        }
        Err(MutableError::Network(format!(
            "record {name}: no valid copy from its close group: {}",
            errors.join("; ")
        )))
    }

    /// One member's copy of the record, verified (`None`: it holds none).
    pub async fn get_record_from(
        &self,
        peer: PeerId,
        name: XorName,
    ) -> Result<Option<Record>, MutableError> {
        match self.fetch_record(peer, Request::GetRecord { name }).await? {
            Some(bytes) => verify_copy(peer, &name, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// One member's encoded copy, unverified (`None`: it holds none).
    async fn fetch_record(
        &self,
        peer: PeerId,
        request: Request,
    ) -> Result<Option<bytes::Bytes>, MutableError> {
        let request = self.net.request(peer, request);
        match tokio::time::timeout(RECORD_TIMEOUT, request).await {
            Ok(Ok(Response::Record(bytes))) => Ok(Some(bytes)),
            Ok(Ok(Response::NotFound)) => Ok(None),
            Ok(Ok(Response::Refused(Refusal::RateLimited))) => Err(MutableError::RateLimited),
            Ok(Ok(other)) => Err(MutableError::Network(format!(
                "unexpected answer ({})",
                other.kind()
            ))),
            Ok(Err(e)) => Err(MutableError::Network(e.to_string())),
            Err(_) => Err(MutableError::Network(format!(
                "no answer in {RECORD_TIMEOUT:?}"
            ))),
        }
    }

    /// Reads the record, makes `change` signed by `signers`, and writes it.
    /// Returns the record as it now is.
    pub async fn update_record(
        &self,
        name: XorName,
        change: Change,
        signers: &[SigningKey],
    ) -> Result<Record, MutableError> {
        update(self, name, change, signers).await
    }
}

/// Reads the record at `name` from `store`, makes `change` signed by
/// `signers`, checks it against the record and writes it. Returns the
/// record as it now is.
pub async fn update<S: RecordStore>(
    store: &S,
    name: XorName,
    change: Change,
    signers: &[SigningKey],
) -> Result<Record, MutableError> {
    let record = store.get_record(name).await?;
    update_from(store, record, change, signers).await
}

/// [`update`] of a record the caller has just read.
pub async fn update_from<S: RecordStore>(
    store: &S,
    mut record: Record,
    change: Change,
    signers: &[SigningKey],
) -> Result<Record, MutableError> {
    let mut op = prepare(&record, change)?;
    for key in signers {
        op.sign(key);
    }
    let write = Write::Op(op);
    // Checked here first: a refusal the client can see needs no trip.
    record.apply(&write).map_err(MutableError::Refused)?;
    store.write_record(&write).await?;
    Ok(record)
}

impl RecordStore for Connection {
    async fn write_record(&self, write: &Write) -> Result<(), MutableError> {
        Connection::write_record(self, write).await
    }

    async fn get_record(&self, name: XorName) -> Result<Record, MutableError> {
        Connection::get_record(self, name).await
    }

    async fn fetch_account(
        &self,
        address: XorName,
        signer: &SigningKey,
    ) -> Result<Record, MutableError> {
        Connection::fetch_account(self, address, signer).await
    }
}
