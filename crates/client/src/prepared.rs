//! Prepared-operation files: how the owners of a shared record pass an
//! owner operation around to collect signatures before anyone submits it.
//!
//! Format (version 1), a text file of two lines:
//!
//! ```text
//! safe prepared operation v1
//! <hex of the encoded Write, as on the wire>
//! ```
//!
//! Files are written beside their destination and renamed into place, so a
//! reader never sees half of one.

use std::path::{Path, PathBuf};

use safe_protocol::mutable::{MAX_WRITE_SIZE, Op, RecordError, Signed, SigningKey, Write};

/// First line of a prepared-operation file.
pub const PREPARED_HEADER: &str = "safe prepared operation v1";

/// Largest prepared-operation file read: the hex of the largest write and
/// the header.
pub const MAX_PREPARED_FILE: u64 = (2 * MAX_WRITE_SIZE + 1024) as u64;

/// Why a prepared-operation file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreparedError {
    /// The file system failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a prepared operation.
    #[error("{} is not a prepared operation (from `safe mutable … --prepare`)", .0.display())]
    NotPrepared(PathBuf),
    /// The file is too large to be one.
    #[error("{} is too large to be a prepared operation", .0.display())]
    TooLarge(PathBuf),
    /// The file starts right but its operation does not decode.
    #[error("{} is damaged", .0.display())]
    Damaged(PathBuf, #[source] Option<RecordError>),
    /// The file holds a write that is not an owner operation.
    #[error("{} does not hold an owner operation", .0.display())]
    NotAnOperation(PathBuf),
    /// The write does not encode (over a limit).
    #[error("the operation cannot be saved")]
    Encode(#[source] RecordError),
}

/// Writes `write` to `path` (replacing it atomically).
pub fn write(path: &Path, write: &Write) -> Result<(), PreparedError> {
    let bytes = write.encode().map_err(PreparedError::Encode)?;
    let text = format!("{PREPARED_HEADER}\n{}\n", hex::encode(bytes));
    let io = |source| PreparedError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Reads the write saved in `path`.
pub fn read(path: &Path) -> Result<Write, PreparedError> {
    let io = |source| PreparedError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_PREPARED_FILE {
        return Err(PreparedError::TooLarge(path.to_path_buf()));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|_| PreparedError::NotPrepared(path.into()))?;
    let mut lines = text.lines();
    if lines.next() != Some(PREPARED_HEADER) {
        return Err(PreparedError::NotPrepared(path.to_path_buf()));
    }
    let bytes = lines
        .next()
        .and_then(|l| hex::decode(l.trim()).ok())
        .ok_or_else(|| PreparedError::Damaged(path.to_path_buf(), None))?;
    Write::decode(&bytes).map_err(|e| PreparedError::Damaged(path.to_path_buf(), Some(e)))
}

/// Reads the owner operation saved in `path`.
pub fn read_op(path: &Path) -> Result<Signed<Op>, PreparedError> {
    match read(path)? {
        Write::Op(op) => Ok(op),
        _ => Err(PreparedError::NotAnOperation(path.to_path_buf())),
    }
}

/// Adds the signatures of `keys` to `op` (read from `path` with
/// [`read_op`]) and saves it back; returns how many signatures it now has.
pub fn sign(path: &Path, op: &mut Signed<Op>, keys: &[SigningKey]) -> Result<usize, PreparedError> {
    for key in keys {
        op.sign(key);
    }
    write(path, &Write::Op(op.clone()))?;
    Ok(op.sigs.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutable::new_create;
    use safe_protocol::mutable::SigningKey;

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let create = new_create(b"x", 0, vec![], 1, false, &key).unwrap();
        let w = Write::Create(create);
        let path = dir.path().join("op");
        super::write(&path, &w).unwrap();
        assert_eq!(read(&path).unwrap(), w);

        std::fs::write(&path, "hello\n").unwrap();
        assert!(matches!(read(&path), Err(PreparedError::NotPrepared(_))));
        std::fs::write(&path, format!("{PREPARED_HEADER}\nzz\n")).unwrap();
        assert!(matches!(read(&path), Err(PreparedError::Damaged(..))));
        std::fs::write(&path, format!("{PREPARED_HEADER}\n00ff\n")).unwrap();
        assert!(matches!(
            read(&path),
            Err(PreparedError::Damaged(_, Some(_)))
        ));
        // A create is not an operation to sign.
        super::write(&path, &w).unwrap();
        assert!(matches!(
            read_op(&path),
            Err(PreparedError::NotAnOperation(_))
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(read(&missing), Err(PreparedError::Io { .. })));
    }
}
