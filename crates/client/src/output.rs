//! Writing fetched data to a path the user names, as `cp` and `curl -o` do.
//!
//! - A regular file (or a path where nothing is yet) is written to a
//!   temporary file beside it, fsynced and renamed into place only when
//!   every byte is verified: a failed get leaves nothing new at the path
//!   and the old file, if any, untouched. A new file's mode is 0666 less
//!   the umask; a replaced file keeps its mode (and, where the process may
//!   set them, its owner and group). As with any rename, other hard links
//!   to the old file keep the old contents.
//! - A symlink is followed: the file it points to is what is written.
//! - A device, FIFO or socket (`/dev/null`, a named pipe) is opened and
//!   written directly; it is never replaced.
//! - `/dev/stdout` (and `/dev/fd/1`, `/proc/self/fd/1`) is this process's
//!   standard output, whatever it is connected to; other paths under
//!   `/dev/fd/`, `/proc/` and `/dev/std*` are opened and written in place,
//!   never replaced.
//! - A directory is refused.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Most symlinks followed to find what a path names.
pub const MAX_SYMLINKS: usize = 40;

/// Why the output could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The path is a directory.
    #[error("{} is a directory; give a file name", .0.display())]
    IsDirectory(PathBuf),
    /// Too many symlinks (or a loop).
    #[error("{}: too many levels of symbolic links", .0.display())]
    SymlinkLoop(PathBuf),
    /// The file system failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// An output being written; [`OutputFile::finish`] makes it final.
pub struct OutputFile {
    path: PathBuf,
    kind: Kind,
}

enum Kind {
    /// Renamed onto `path` when finished; removed if dropped unfinished.
    Replace(tempfile::NamedTempFile),
    /// A device or pipe written in place.
    InPlace(File),
    /// This process's standard output.
    Stdout(std::io::Stdout),
}

/// Paths that name this process's standard output.
const STDOUT_ALIASES: [&str; 3] = ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"];

/// Whether `path` names an open file of some process rather than a place
/// in the file system: written in place, never replaced.
fn is_descriptor_path(path: &Path) -> bool {
    path.starts_with("/proc")
        || path.starts_with("/dev/fd")
        || ["/dev/stdin", "/dev/stdout", "/dev/stderr"]
            .iter()
            .any(|p| path == Path::new(p))
}

impl OutputFile {
    /// Prepares to write to `path` (see the module docs for what happens
    /// with each kind of path).
    pub fn create(path: &Path) -> Result<Self, OutputError> {
        let io = |source| OutputError::Io {
            path: path.to_path_buf(),
            source,
        };
        if STDOUT_ALIASES.iter().any(|p| path == Path::new(p)) {
            return Ok(Self {
                path: path.to_path_buf(),
                kind: Kind::Stdout(std::io::stdout()),
            });
        }
        // The kernel follows symlinks (and /proc's magic links) here.
        let (target, kind) = match fs::metadata(path) {
            Ok(m) if m.is_dir() => return Err(OutputError::IsDirectory(path.to_path_buf())),
            Ok(m) if !m.is_file() || is_descriptor_path(path) => {
                let file = OpenOptions::new().write(true).open(path).map_err(io)?;
                (path.to_path_buf(), Kind::InPlace(file))
            }
            Ok(m) => {
                let target = fs::canonicalize(path).map_err(io)?;
                let tmp = temp_beside(&target).map_err(io)?;
                keep_mode_and_owner(&tmp, &m).map_err(io)?;
                (target, Kind::Replace(tmp))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Nothing there yet, or a symlink to nothing: create what
                // the link names.
                let target = follow_symlinks(path)?;
                (
                    target.clone(),
                    Kind::Replace(temp_beside(&target).map_err(io)?),
                )
            }
            // A loop of symlinks is named as such; anything else as it is.
            Err(e) => return Err(follow_symlinks(path).err().unwrap_or_else(|| io(e))),
        };
        Ok(Self { path: target, kind })
    }

    /// Where the bytes go.
    pub fn writer(&mut self) -> &mut (dyn Write + Send) {
        match &mut self.kind {
            Kind::Replace(tmp) => tmp.as_file_mut(),
            Kind::InPlace(f) => f,
            Kind::Stdout(out) => out,
        }
    }

    /// Flushes, and for a regular file makes it durable and puts it in
    /// place.
    pub fn finish(self) -> Result<(), OutputError> {
        let io = |source| OutputError::Io {
            path: self.path.clone(),
            source,
        };
        match self.kind {
            Kind::Replace(tmp) => {
                tmp.as_file().sync_all().map_err(io)?;
                tmp.persist(&self.path).map_err(|e| io(e.error))?;
                Ok(())
            }
            Kind::InPlace(mut f) => f.flush().map_err(io),
            Kind::Stdout(mut out) => out.flush().map_err(io),
        }
    }
}

/// A temporary file beside `path`, created with mode 0666 less the umask
/// (as a file `cp` makes).
fn temp_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".safe-get-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Gives the temporary file the mode of the file it will replace, and its
/// owner and group where this process may (as `cp` does without `-p`,
/// failing to keep the owner is not an error).
fn keep_mode_and_owner(tmp: &tempfile::NamedTempFile, old: &fs::Metadata) -> std::io::Result<()> {
    tmp.as_file().set_permissions(old.permissions())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(old.uid()), Some(old.gid()));
    }
    Ok(())
}

/// The path `path` names once every symlink is followed (the final target
/// need not exist: writing creates it).
fn follow_symlinks(path: &Path) -> Result<PathBuf, OutputError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&current).map_err(|source| OutputError::Io {
                    path: current.clone(),
                    source,
                })?;
                current = match current.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(OutputError::SymlinkLoop(path.to_path_buf()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
        let mut out = OutputFile::create(path)?;
        out.writer().write_all(bytes).unwrap();
        out.finish()
    }

    #[test]
    fn regular_files_are_replaced_whole_and_symlinks_followed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        write(&file, b"one").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"one");
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_ne!(
            mode, 0o600,
            "the mode follows the umask, not tempfile's 0600"
        );

        let link = dir.path().join("link");
        std::os::unix::fs::symlink("a", &link).unwrap();
        write(&link, b"two").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&file).unwrap(), b"two");

        // A dangling link creates its target.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("new", &dangling).unwrap();
        write(&dangling, b"three").unwrap();
        assert_eq!(fs::read(dir.path().join("new")).unwrap(), b"three");

        // Dropped unfinished: nothing left behind, the old file intact.
        let mut out = OutputFile::create(&file).unwrap();
        out.writer().write_all(b"partial").unwrap();
        drop(out);
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    #[test]
    fn descriptor_paths_are_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("log");
        fs::write(&file, b"kept").unwrap();
        let f = OpenOptions::new().append(true).open(&file).unwrap();
        use std::os::fd::AsRawFd;
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
        let out = OutputFile::create(&by_fd).unwrap();
        assert!(
            matches!(out.kind, Kind::InPlace(_)),
            "never replaced by rename"
        );
        drop(out);
        assert_eq!(
            fs::read(&file).unwrap(),
            b"kept",
            "nothing replaced or truncated"
        );
        assert!(matches!(
            OutputFile::create(Path::new("/dev/stdout")).unwrap().kind,
            Kind::Stdout(_)
        ));
    }

    #[test]
    fn devices_are_written_not_replaced() {
        write(Path::new("/dev/null"), b"gone").unwrap();
        let meta = fs::metadata("/dev/null").unwrap();
        assert!(!meta.is_file(), "/dev/null is still a device");
    }

    #[test]
    fn directories_and_loops_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            OutputFile::create(dir.path()),
            Err(OutputError::IsDirectory(_))
        ));
        let a = dir.path().join("x");
        std::os::unix::fs::symlink("x", &a).unwrap();
        assert!(matches!(
            OutputFile::create(&a),
            Err(OutputError::SymlinkLoop(_))
        ));
    }
}
