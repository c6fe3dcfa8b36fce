//! The one rule for a write against what a store holds, shared by the
//! nodes and the client's local store so both behave alike.

use super::{Applied, Record, RecordError, Write};

/// [`apply_write`] as a node first accepts a write, at unix time `now`
/// (seconds): with the rules that depend on the clock or on how full the
/// record is ([`crate::inbox::check_accept`]) checked first.
pub fn accept_write(
    current: Option<Record>,
    write: &Write,
    now: u64,
) -> Result<Option<Record>, RecordError> {
    crate::inbox::check_accept(current.as_ref(), write, now)?;
    apply_write(current, write)
}

/// Applies `write` to `current` (what the store holds at the write's
/// address): the record to store, or `None` when nothing changes (a write
/// already applied, which succeeds again so that retries are safe).
///
/// A create succeeds only where nothing is held (or as a retry of the very
/// create held); anything else needs a record to apply to.
pub fn apply_write(current: Option<Record>, write: &Write) -> Result<Option<Record>, RecordError> {
    match (current, write) {
        (None, Write::Create(c)) => Record::create(c.clone()).map(Some),
        (None, _) => Err(RecordError::NotFound),
        (Some(mut r), w) => match r.apply(w)? {
            Applied::Changed => Ok(Some(r)),
            Applied::AlreadyApplied => Ok(None),
        },
    }
}
