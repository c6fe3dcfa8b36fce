//! Fault injection, for tests of everyone else's resilience: a node that
//! serves corrupt chunks, drops record writes, or serves forged or
//! tampered records.
//!
//! Compiled in only with the `test-faults` feature, which only tests
//! enable (the `safe-testkit` crate): a shipped node cannot be switched
//! into lying. Without the feature the hooks below are no-ops that the
//! compiler removes, so the request paths read the same either way.

use bytes::Bytes;
use safe_protocol::mutable::Record;

#[cfg(feature = "test-faults")]
pub use enabled::Faults;
#[cfg(feature = "test-faults")]
use enabled::forge;

#[cfg(feature = "test-faults")]
mod enabled {
    use std::sync::atomic::AtomicBool;

    use safe_protocol::mutable::{Change, Create, Op, Record, Signed, SigningKey, Write};

    /// Faults a test can switch on to check that others cope.
    #[derive(Debug, Default)]
    pub struct Faults {
        /// Serve chunks with one byte flipped.
        pub corrupt_reads: AtomicBool,
        /// Acknowledge mutable-record writes (with a valid receipt) without
        /// applying them: the node drops writes and keeps serving old versions.
        pub drop_record_writes: AtomicBool,
        /// Serve, for any record asked for, a validly signed record of the
        /// same address under an attacker's key, at a higher version.
        pub forge_records: AtomicBool,
        /// Serve records with an entry changed after they were signed.
        pub tamper_records: AtomicBool,
        /// As an exit of anonymous circuits, send back chunks with one
        /// byte flipped (after checking them).
        pub lying_exit: AtomicBool,
    }

    /// A validly signed record for `real`'s address, owned by an attacker's
    /// key and a few versions ahead of `real`.
    pub(super) fn forge(real: &Record) -> Option<Record> {
        let key = SigningKey::from_bytes(&[0x66; 32]);
        let mut create = Signed::new(Create {
            owners: vec![key.verifying_key().to_bytes()],
            threshold: 1,
            ..real.genesis.body.clone()
        });
        create.sign(&key);
        let mut forged = Record::create(create).ok()?;
        for _ in 0..real.state.version + 3 {
            let change = Change::Set {
                key: b"forged".to_vec(),
                value: forged.state.version.to_be_bytes().to_vec(),
            };
            let mut op = Signed::new(Op {
                address: real.address(),
                replaces: forged.state.version,
                prev: forged.state.hash(),
                result: forged.state.apply(&change).ok()?.hash(),
                change,
            });
            op.sign(&key);
            forged.apply(&Write::Op(op)).ok()?;
        }
        Some(forged)
    }
}

/// Without the feature: nothing can be switched on.
#[cfg(not(feature = "test-faults"))]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    _none: (),
}

impl Faults {
    /// The chunk bytes to serve (one byte flipped if `corrupt_reads`).
    pub(crate) fn chunk(&self, bytes: Bytes) -> Bytes {
        #[cfg(feature = "test-faults")]
        if self
            .corrupt_reads
            .load(std::sync::atomic::Ordering::Relaxed)
            && !bytes.is_empty()
        {
            let mut v = bytes.to_vec();
            v[0] ^= 0xff;
            return v.into();
        }
        bytes
    }

    /// The chunk bytes an exit sends back (one byte flipped if
    /// `lying_exit`).
    pub(crate) fn exit_answer(&self, bytes: Bytes) -> Bytes {
        #[cfg(feature = "test-faults")]
        if self.lying_exit.load(std::sync::atomic::Ordering::Relaxed) && !bytes.is_empty() {
            let mut v = bytes.to_vec();
            v[0] ^= 0xff;
            return v.into();
        }
        bytes
    }

    /// True if record writes are to be acknowledged but not applied.
    pub(crate) fn drops_record_writes(&self) -> bool {
        #[cfg(feature = "test-faults")]
        if self
            .drop_record_writes
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return true;
        }
        false
    }

    /// The record to serve: `record`, or what the switched-on faults make
    /// of it.
    pub(crate) fn record(&self, record: Record) -> Record {
        #[cfg(feature = "test-faults")]
        {
            use std::sync::atomic::Ordering;
            let mut record = record;
            if self.tamper_records.load(Ordering::Relaxed) {
                record
                    .state
                    .entries
                    .insert(b"tampered".to_vec(), b"yes".to_vec());
            }
            if self.forge_records.load(Ordering::Relaxed)
                && let Some(forged) = forge(&record)
            {
                return forged;
            }
            record
        }
        #[cfg(not(feature = "test-faults"))]
        record
    }
}
