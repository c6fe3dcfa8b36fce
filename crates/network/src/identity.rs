//! A node's persistent identity: an ed25519 key pair in its directory.

use std::io::Write;
use std::path::Path;

use libp2p::identity::Keypair;

/// Loads the key pair at `path`, or creates one (file mode 0600, written
/// durably) if there is none.
pub fn load_or_create(path: &Path) -> std::io::Result<Keypair> {
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a valid identity key: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .map_err(std::io::Error::other)?;
            let tmp = path.with_extension("tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            Ok(keypair)
        }
        Err(e) => Err(e),
    }
}
