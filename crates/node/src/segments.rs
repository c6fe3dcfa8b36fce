//! Chunk bodies in append-only segment files (store format 2).
//!
//! A node stores many chunks of up to a MiB each, written once and read
//! rarely. One file per chunk made every put create an inode, rename it and
//! fsync it and its directory, and the filesystem's inode allocation alone
//! took an eighth of a node's CPU during an upload. Here chunks are appended
//! to a few large files instead:
//!
//! ```text
//! DIR/segments/00000001.seg    entries, one after another
//!
//! entry (starts on a 4 KiB boundary):
//!   header block, 4096 bytes:
//!     0..8    magic "safe-rec"
//!     8..10   entry format version, u16 LE (1)
//!     10..12  zero
//!     12..16  body length, u32 LE
//!     16..48  name (the BLAKE3 hash of the body)
//!     48..    zero
//!   body, padded with zeros to whole 4 KiB blocks
//! ```
//!
//! Entries are written with `O_DIRECT` where the filesystem takes it (see
//! [`safe_direct`]): a chunk received from the network already
//! starts on a block boundary, so only its last partial block is copied.
//! Appends to a segment are serialised; a segment is sealed at
//! [`SEGMENT_BYTES`] and the next one started.
//!
//! Which entry holds which chunk is kept in the store's index (redb), with
//! a watermark per segment: the length up to which the segment was fsynced
//! before the index was last committed durably. Everything past a watermark
//! is checked when the store opens ([`Segments::recover`]): whole entries
//! whose body hashes to their name are indexed, a damaged one is skipped,
//! and a torn tail (a header that does not parse, or a body cut short) is
//! cut off. Entries are self-checking (the name is the hash of the body),
//! so no separate checksum is needed.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use safe_direct::{self as direct, ALIGN, Aligned};
use safe_protocol::{MAX_CHUNK_SIZE, XorName};

/// A segment is sealed once the next entry would take it past this.
pub const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;

const MAGIC: &[u8; 8] = b"safe-rec";
const ENTRY_VERSION: u16 = 1;
const HEADER: usize = ALIGN;
const EXTENSION: &str = "seg";

/// Where an entry is: its segment, its offset there and its body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Segment number.
    pub segment: u32,
    /// Offset of the entry's header in the segment.
    pub offset: u64,
    /// Length of the body.
    pub len: u32,
}

impl Location {
    /// The offset just past the entry.
    pub fn end(&self) -> u64 {
        self.offset + span(self.len as usize)
    }
}

/// Bytes an entry with a body of `len` bytes takes in its segment.
pub fn span(len: usize) -> u64 {
    (HEADER + len.div_ceil(ALIGN) * ALIGN) as u64
}

/// What recovery found at one entry.
pub enum Found {
    /// A whole entry whose body hashes to its name.
    Good(XorName, Location),
    /// An entry whose body does not match its name (skipped).
    Damaged(XorName, Location),
}

/// Why an entry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The segment file is gone.
    #[error("segment {0} is missing")]
    Missing(u32),
    /// The entry on disk is not the one the index names.
    #[error("entry at {segment}:{offset} is damaged: {why}")]
    Damaged {
        /// Segment number.
        segment: u32,
        /// Entry offset.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// The disk failed.
    #[error("reading segment {segment}: {source}")]
    Io {
        /// Segment number.
        segment: u32,
        /// The error.
        source: std::io::Error,
    },
}

/// The segment being appended to.
struct Active {
    id: u32,
    file: File,
    /// Bytes of whole entries in it.
    len: u64,
    /// Written to since the last sync.
    dirty: bool,
}

/// Segments and their sync state, appended to under one lock.
struct Writer {
    /// `None` until the first append (a store that is only read makes no
    /// segment).
    active: Option<Active>,
    /// Segments sealed since the last sync: number, file, final length.
    sealed: Vec<(u32, File, u64)>,
    /// A segment file was created since the last sync (the directory
    /// needs an fsync).
    created: bool,
    /// The number of the last segment there is.
    last: u32,
    /// Its length (when it is not open for appending yet).
    last_len: u64,
    /// The next append must start a new segment (the last one's end is
    /// unknown after a failed cut).
    start_new: bool,
}

/// The segment files of one store.
pub struct Segments {
    dir: PathBuf,
    /// Seal a segment once the next entry would take it past this.
    limit: u64,
    direct: AtomicBool,
    writer: Mutex<Writer>,
}

impl Segments {
    /// The directory holding the segment files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens (creating if needed) the segments in `dir`, returning them and
    /// each existing segment's number and length, in order.
    #[cfg(test)]
    pub fn open(dir: &Path) -> std::io::Result<(Self, Vec<(u32, u64)>)> {
        Self::open_with_limit(dir, SEGMENT_BYTES)
    }

    /// [`Segments::open`] with segments sealed at `limit` bytes.
    pub fn open_with_limit(dir: &Path, limit: u64) -> std::io::Result<(Self, Vec<(u32, u64)>)> {
        fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let id = entry.file_name().to_str().and_then(parse_file_name);
            match id {
                Some(id) => found.push((id, entry.metadata()?.len())),
                None => tracing::warn!("{}: not a segment, ignored", path.display()),
            }
        }
        found.sort_unstable();
        let (last, last_len) = found.last().copied().unwrap_or((0, 0));
        let segments = Self {
            dir: dir.to_path_buf(),
            limit,
            direct: AtomicBool::new(cfg!(target_os = "linux")),
            writer: Mutex::new(Writer {
                active: None,
                sealed: Vec::new(),
                created: false,
                last,
                last_len,
                start_new: false,
            }),
        };
        Ok((segments, found))
    }

    /// The file of segment `id`.
    pub fn path(&self, id: u32) -> PathBuf {
        self.dir.join(format!("{id:08x}.{EXTENSION}"))
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        // Appends leave the writer consistent at every step (a failed write
        // is cut back before the lock is released), so a poisoned lock is
        // used as is.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True (once) if `result` failed because the filesystem took `O_DIRECT`
    /// at open but refuses it for I/O: direct I/O is turned off, and the
    /// caller retries buffered.
    fn refused_direct<T>(&self, result: &std::io::Result<T>, what: &str, segment: u32) -> bool {
        match result {
            Err(e) if direct::refused(e) && self.direct.swap(false, Ordering::Relaxed) => {
                tracing::debug!("segment {segment}: direct {what} refused ({e}), going buffered");
                true
            }
            _ => false,
        }
    }

    /// Opens segment `id` for appending at `len`, with `O_DIRECT` when the
    /// filesystem takes it.
    fn open_for_append(&self, id: u32, len: u64, create: bool) -> std::io::Result<Active> {
        let path = self.path(id);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(create);
        let mut file = match self.direct.load(Ordering::Relaxed) {
            true => match direct::open_direct(&mut options.clone(), &path)? {
                Some(f) => f,
                None => {
                    self.direct.store(false, Ordering::Relaxed);
                    options.open(&path)?
                }
            },
            false => options.open(&path)?,
        };
        // Anything past the last whole entry (cut off by recovery, or a
        // failed append) goes.
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        Ok(Active {
            id,
            file,
            len,
            dirty: false,
        })
    }

    /// Appends an entry holding `body` under `name`, returning where it is.
    /// The entry reaches the disk (`O_DIRECT`) or the page cache, so it
    /// survives the process being killed; [`Segments::sync`] makes it
    /// survive power loss.
    #[cfg(test)]
    pub fn append(&self, name: &XorName, body: &[u8]) -> std::io::Result<Location> {
        self.append_then(name, body, |loc| loc)
    }

    /// Appends an entry (as `append`) and, still holding the append lock,
    /// runs `then` with its location: the caller indexes the entry there,
    /// so that every entry below the length [`Segments::sync`] reports
    /// has been indexed before it.
    pub fn append_then<T>(
        &self,
        name: &XorName,
        body: &[u8],
        then: impl FnOnce(Location) -> T,
    ) -> std::io::Result<T> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|&l| l as usize <= MAX_CHUNK_SIZE)
            .ok_or_else(|| std::io::Error::other("entry too large"))?;
        let span = span(body.len());
        let mut writer = self.writer();
        let w = &mut *writer;
        if w.active.is_none() {
            let (id, len, create) = if w.last == 0 || w.start_new || w.last_len + span > self.limit
            {
                (next_id(w.last)?, 0, true)
            } else {
                (w.last, w.last_len, false)
            };
            w.active = Some(self.open_for_append(id, len, create)?);
            w.created |= create;
            w.last = id;
            w.start_new = false;
        }
        if let Some(active) = w
            .active
            .as_mut()
            .filter(|a| a.len > 0 && a.len + span > self.limit)
        {
            let next = self.open_for_append(next_id(active.id)?, 0, true)?;
            let old = std::mem::replace(active, next);
            if old.dirty {
                w.sealed.push((old.id, old.file, old.len));
            }
            w.created = true;
            w.last = active.id;
        }
        let Some(active) = w.active.as_mut() else {
            return Err(std::io::Error::other("no segment to append to"));
        };
        let offset = active.len;
        let mut result = write_entry(&mut active.file, name, body);
        if self.refused_direct(&result, "write", active.id) {
            result = self
                .open_for_append(active.id, offset, false)
                .and_then(|mut reopened| {
                    reopened.dirty = active.dirty;
                    *active = reopened;
                    write_entry(&mut active.file, name, body)
                });
        }
        match result {
            Ok(()) => {
                active.len += span;
                active.dirty = true;
                Ok(then(Location {
                    segment: active.id,
                    offset,
                    len,
                }))
            }
            Err(e) => {
                // Cut the partial entry off, so the next one starts on a
                // entry boundary.
                let cut = active
                    .file
                    .set_len(offset)
                    .and_then(|()| active.file.seek(SeekFrom::Start(offset)).map(|_| ()));
                if let Err(cut) = cut {
                    // The segment's end is unknown now: seal it (recovery
                    // at the next start cuts the tail), still to be synced
                    // if it holds unsynced entries, and start a new one.
                    tracing::error!("segment {}: cannot cut a failed append: {cut}", active.id);
                    if let Some(old) = w.active.take()
                        && old.dirty
                    {
                        w.sealed.push((old.id, old.file, old.len));
                    }
                    w.start_new = true;
                }
                Err(e)
            }
        }
    }

    /// Makes every entry appended so far durable, returning each segment
    /// written to since the last sync with the length now durable (the
    /// caller records these as watermarks in a durable index commit).
    pub fn sync(&self) -> std::io::Result<Vec<(u32, u64)>> {
        let (sealed, active, created) = {
            let mut w = self.writer();
            let sealed = std::mem::take(&mut w.sealed);
            let created = std::mem::take(&mut w.created);
            let active = match w.active.as_mut().filter(|a| a.dirty) {
                Some(a) => match a.file.try_clone() {
                    Ok(f) => {
                        a.dirty = false;
                        Some((a.id, f, a.len))
                    }
                    Err(e) => {
                        w.sealed = sealed;
                        w.created |= created;
                        return Err(e);
                    }
                },
                None => None,
            };
            (sealed, active, created)
        };
        let files: Vec<_> = sealed.into_iter().chain(active).collect();
        let synced = (|| {
            for (_, file, _) in &files {
                file.sync_data()?;
            }
            if created {
                File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        })();
        match synced {
            Ok(()) => Ok(files.into_iter().map(|(id, _, len)| (id, len)).collect()),
            Err(e) => {
                // Try again next time.
                let mut w = self.writer();
                w.created |= created;
                for (id, file, len) in files {
                    match w.active.as_mut() {
                        Some(a) if a.id == id => a.dirty = true,
                        _ => w.sealed.push((id, file, len)),
                    }
                }
                Err(e)
            }
        }
    }

    /// Reads the body of the entry at `loc`, checking that its header names
    /// `name` (the caller checks the body's hash).
    pub fn read(&self, name: &XorName, loc: Location) -> Result<Bytes, ReadError> {
        let io = |source| ReadError::Io {
            segment: loc.segment,
            source,
        };
        let path = self.path(loc.segment);
        let span = span(loc.len as usize) as usize;
        let mut buf = Aligned::zeroed(span).map_err(|e| io(e.into()))?;
        let read = |direct: bool, buf: &mut [u8]| -> std::io::Result<usize> {
            let mut options = OpenOptions::new();
            options.read(true);
            let file = match direct {
                true => direct::open_direct(&mut options.clone(), &path)?,
                false => None,
            };
            let mut file = match file {
                Some(f) => f,
                None => options.open(&path)?,
            };
            file.seek(SeekFrom::Start(loc.offset))?;
            read_full(&mut file, buf)
        };
        let mut result = read(self.direct.load(Ordering::Relaxed), buf.blocks_mut());
        if self.refused_direct(&result, "read", loc.segment) {
            result = read(false, buf.blocks_mut());
        }
        let filled = match result {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ReadError::Missing(loc.segment));
            }
            Err(e) => return Err(io(e)),
        };
        let damaged = |why| ReadError::Damaged {
            segment: loc.segment,
            offset: loc.offset,
            why,
        };
        let body_end = HEADER + loc.len as usize;
        if filled < body_end {
            return Err(damaged("cut short"));
        }
        match parse_header(&buf.blocks()[..HEADER]) {
            Some((n, l)) if n == *name && l == loc.len => Ok(buf.slice(HEADER, loc.len as usize)),
            Some(_) => Err(damaged("header names another entry")),
            None => Err(damaged("no entry header")),
        }
    }

    /// Walks the entries of segment `id` from offset `from` (an entry
    /// boundary), calling `f` with the file (positioned at the entry's
    /// body) for each entry whose header parses and whose body is all
    /// there. Where no entry starts (damage, or a torn write) it looks
    /// for the next header block by block, so damage in the middle of a
    /// segment hides nothing after it. Returns the offset where the last
    /// whole entry ends: the segment's length, unless its tail is torn.
    fn walk(
        &self,
        file: &mut File,
        id: u32,
        from: u64,
        mut f: impl FnMut(&mut File, XorName, Location) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        let end = file.metadata()?.len();
        let (mut pos, mut whole) = (from, from);
        let mut header = vec![0u8; HEADER];
        while pos < end {
            file.seek(SeekFrom::Start(pos))?;
            if read_full(file, &mut header)? < HEADER {
                break;
            }
            let found = parse_header(&header).map(|(name, len)| {
                let loc = Location {
                    segment: id,
                    offset: pos,
                    len,
                };
                (name, loc)
            });
            match found {
                Some((name, loc)) if loc.end() <= end => {
                    f(file, name, loc)?;
                    pos = loc.end();
                    whole = pos;
                }
                _ => pos += ALIGN as u64,
            }
        }
        Ok(whole)
    }

    /// The name and location of every entry in segment `id`, in order.
    pub fn entries(&self, id: u32, mut f: impl FnMut(XorName, Location)) -> std::io::Result<()> {
        let mut file = File::open(self.path(id))?;
        self.walk(&mut file, id, 0, |_, name, loc| {
            f(name, loc);
            Ok(())
        })
        .map(|_| ())
    }

    /// Checks segment `id` from offset `from` (an entry boundary) to its
    /// end, telling `found` about each entry (its body re-hashed); cuts
    /// off a torn tail and makes the segment durable. Returns the segment's
    /// length after that.
    pub fn recover(
        &self,
        id: u32,
        from: u64,
        mut found: impl FnMut(Found),
    ) -> std::io::Result<u64> {
        let path = self.path(id);
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        let end = file.metadata()?.len();
        let mut body = Vec::with_capacity(MAX_CHUNK_SIZE);
        let pos = self.walk(&mut file, id, from, |file, name, loc| {
            body.resize(loc.len as usize, 0);
            if read_full(file, &mut body)? < body.len() {
                return Err(std::io::Error::other("segment shrank while being read"));
            }
            match XorName::from_content(&body) == name {
                true => found(Found::Good(name, loc)),
                false => found(Found::Damaged(name, loc)),
            }
            Ok(())
        })?;
        if pos < end {
            tracing::warn!(
                "{}: cut a torn tail of {} bytes at {pos}",
                path.display(),
                end - pos
            );
            file.set_len(pos)?;
        }
        if from < end {
            file.sync_all()?;
        }
        let mut w = self.writer();
        if id == w.last {
            w.last_len = pos;
        }
        Ok(pos)
    }

    /// Deletes segment `id` (all its entries are dead or copied
    /// elsewhere). The newest segment, which appends go to (or will reopen
    /// after a restart), is never deleted.
    pub fn remove(&self, id: u32) -> std::io::Result<()> {
        {
            // Held while deleting, so no append can pick the file up.
            let w = self.writer();
            if id == w.last {
                return Err(std::io::Error::other(
                    "the newest segment cannot be removed",
                ));
            }
            match fs::remove_file(self.path(id)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        File::open(&self.dir)?.sync_all()
    }

    /// The newest segment (appended to now, or reopened by the next
    /// append), if there is one.
    pub fn newest(&self) -> Option<u32> {
        Some(self.writer().last).filter(|&id| id != 0)
    }
}

/// The number in a segment file name (exactly as [`Segments::path`]
/// writes it: eight lowercase hex digits, ".seg"). Numbers start at 1.
fn parse_file_name(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if hex.len() != 8 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().filter(|&id| id != 0)
}

/// The number after segment `id`.
fn next_id(id: u32) -> std::io::Result<u32> {
    id.checked_add(1)
        .ok_or_else(|| std::io::Error::other("segment numbers are exhausted"))
}

/// Writes one entry at the file's position: header block, then the body
/// in whole blocks.
fn write_entry(file: &mut File, name: &XorName, body: &[u8]) -> std::io::Result<()> {
    let mut header = Aligned::zeroed(HEADER)?;
    let h = header.blocks_mut();
    h[..8].copy_from_slice(MAGIC);
    h[8..10].copy_from_slice(&ENTRY_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(body.len() as u32).to_le_bytes());
    h[16..48].copy_from_slice(&name.0);
    file.write_all(header.blocks())?;
    direct::write_direct(file, body)
}

/// The name and body length in a header block, if it is one.
fn parse_header(h: &[u8]) -> Option<(XorName, u32)> {
    if h.get(..8)? != MAGIC || h.get(8..10)? != ENTRY_VERSION.to_le_bytes() {
        return None;
    }
    let len = u32::from_le_bytes(h.get(12..16)?.try_into().ok()?);
    if len as usize > MAX_CHUNK_SIZE {
        return None;
    }
    Some((XorName(h.get(16..48)?.try_into().ok()?), len))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use safe_protocol::Chunk;

    fn chunk(seed: u8, len: usize) -> Chunk {
        Chunk::new(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(seed))
                .collect::<Vec<u8>>(),
        )
        .unwrap()
    }

    #[test]
    fn appends_read_back_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let chunks: Vec<Chunk> = [0, 1, 4095, 4096, 4097, 70_000, MAX_CHUNK_SIZE]
            .iter()
            .enumerate()
            .map(|(i, &len)| chunk(i as u8 + 3, len))
            .collect();
        let mut locs = Vec::new();
        {
            let (segs, found) = Segments::open(dir.path()).unwrap();
            assert!(found.is_empty());
            for c in &chunks {
                let loc = segs.append(c.name(), c.bytes()).unwrap();
                assert_eq!(loc.offset % ALIGN as u64, 0);
                locs.push(loc);
            }
            for (c, loc) in chunks.iter().zip(&locs) {
                assert_eq!(segs.read(c.name(), *loc).unwrap(), c.bytes());
            }
            // Asking for another name at a location is refused.
            assert!(matches!(
                segs.read(chunks[1].name(), locs[0]),
                Err(ReadError::Damaged { .. })
            ));
            assert_eq!(segs.sync().unwrap(), vec![(1, locs.last().unwrap().end())]);
            assert!(segs.sync().unwrap().is_empty(), "nothing new to sync");
        }
        let (segs, found) = Segments::open(dir.path()).unwrap();
        assert_eq!(found, vec![(1, locs.last().unwrap().end())]);
        let mut seen = Vec::new();
        let len = segs
            .recover(1, 0, |f| match f {
                Found::Good(n, l) => seen.push((n, l)),
                Found::Damaged(..) => panic!("nothing is damaged"),
            })
            .unwrap();
        assert_eq!(len, locs.last().unwrap().end());
        let expected: Vec<_> = chunks.iter().map(|c| *c.name()).zip(locs.clone()).collect();
        assert_eq!(seen, expected);
        // Appending after reopening goes on where the last entry ended.
        let more = chunk(99, 10);
        let loc = segs.append(more.name(), more.bytes()).unwrap();
        assert_eq!(loc.offset, len);
        assert_eq!(segs.read(more.name(), loc).unwrap(), more.bytes());
        assert_eq!(
            segs.read(chunks[5].name(), locs[5]).unwrap(),
            chunks[5].bytes()
        );
    }

    #[test]
    fn recovery_skips_damage_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (chunk(1, 5000), chunk(2, 9000), chunk(3, 100));
        let (la, lb, lc) = {
            let (segs, _) = Segments::open(dir.path()).unwrap();
            (
                segs.append(a.name(), a.bytes()).unwrap(),
                segs.append(b.name(), b.bytes()).unwrap(),
                segs.append(c.name(), c.bytes()).unwrap(),
            )
        };
        let path = dir.path().join("00000001.seg");
        let mut bytes = fs::read(&path).unwrap();
        // Damage b's body, and cut c's in half (a torn write).
        bytes[lb.offset as usize + HEADER + 10] ^= 1;
        bytes.truncate(lc.offset as usize + HEADER + 50);
        fs::write(&path, &bytes).unwrap();
        let (segs, _) = Segments::open(dir.path()).unwrap();
        let (mut good, mut damaged) = (Vec::new(), Vec::new());
        let len = segs
            .recover(1, 0, |f| match f {
                Found::Good(n, l) => good.push((n, l)),
                Found::Damaged(n, l) => damaged.push((n, l)),
            })
            .unwrap();
        assert_eq!(good, vec![(*a.name(), la)]);
        assert_eq!(damaged, vec![(*b.name(), lb)]);
        assert_eq!(len, lc.offset);
        assert_eq!(fs::metadata(&path).unwrap().len(), lc.offset);
        // The next entry goes where the torn one was.
        let d = chunk(4, 3000);
        assert_eq!(segs.append(d.name(), d.bytes()).unwrap().offset, lc.offset);
        // Recovery from a watermark only looks past it.
        let mut after = Vec::new();
        segs.recover(1, lc.offset, |f| {
            if let Found::Good(n, _) = f {
                after.push(n)
            }
        })
        .unwrap();
        assert_eq!(after, vec![*d.name()]);
    }

    #[test]
    fn a_damaged_header_hides_nothing_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (chunk(1, 5000), chunk(2, 9000), chunk(3, 100));
        let (lb, lc) = {
            let (segs, _) = Segments::open(dir.path()).unwrap();
            segs.append(a.name(), a.bytes()).unwrap();
            (
                segs.append(b.name(), b.bytes()).unwrap(),
                segs.append(c.name(), c.bytes()).unwrap(),
            )
        };
        let path = dir.path().join("00000001.seg");
        let mut bytes = fs::read(&path).unwrap();
        bytes[lb.offset as usize] ^= 1; // b's magic
        fs::write(&path, &bytes).unwrap();
        let (segs, _) = Segments::open(dir.path()).unwrap();
        let mut good = Vec::new();
        let len = segs
            .recover(1, 0, |f| {
                if let Found::Good(n, _) = f {
                    good.push(n)
                }
            })
            .unwrap();
        assert_eq!(good, vec![*a.name(), *c.name()]);
        assert_eq!(len, lc.end(), "nothing cut");
        assert_eq!(segs.read(c.name(), lc).unwrap(), c.bytes());
    }

    #[test]
    fn only_our_file_names_are_segments() {
        assert_eq!(parse_file_name("00000001.seg"), Some(1));
        assert_eq!(parse_file_name("0000001a.seg"), Some(26));
        for bad in [
            "1.seg",
            "+0000001.seg",
            "0000001A.seg",
            "00000000.seg",
            "00000001.seg.tmp",
            "000000001.seg",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        // The last number there is: no wrap-around, a clear error.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ffffffff.seg"), b"").unwrap();
        fs::write(dir.path().join("1.seg"), b"not ours").unwrap();
        let (segs, found) = Segments::open_with_limit(dir.path(), 1).unwrap();
        assert_eq!(found, vec![(u32::MAX, 0)]);
        let c = chunk(5, 10);
        let err = segs.append(c.name(), c.bytes()).unwrap_err();
        assert!(err.to_string().contains("exhausted"), "{err}");
    }

    #[test]
    fn full_segments_are_sealed_and_synced() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 10 << 20;
        let (segs, _) = Segments::open_with_limit(dir.path(), limit).unwrap();
        let c = chunk(7, MAX_CHUNK_SIZE);
        let per_segment = limit / span(c.len());
        // Distinct names are not needed by the segments themselves.
        let mut last = None;
        for _ in 0..=per_segment {
            last = Some(segs.append(c.name(), c.bytes()).unwrap());
        }
        let last = last.unwrap();
        assert_eq!((last.segment, last.offset), (2, 0));
        let synced = segs.sync().unwrap();
        assert_eq!(
            synced,
            vec![(1, per_segment * span(c.len())), (2, span(c.len()))]
        );
        assert_eq!(segs.newest(), Some(2));
        assert!(segs.remove(2).is_err(), "the newest segment stays");
        segs.remove(1).unwrap();
        assert!(matches!(
            segs.read(
                c.name(),
                Location {
                    segment: 1,
                    offset: 0,
                    len: c.len() as u32
                }
            ),
            Err(ReadError::Missing(1))
        ));
    }
}
