//! Contacts files: the peers a client bootstraps from, one multiaddr (with
//! `/p2p/<peer id>`) per line; `#` starts a comment.

use std::path::Path;

use libp2p::Multiaddr;

/// File name of the contacts file inside a testnet or data directory.
pub const CONTACTS_FILE: &str = "contacts";

/// Reads a contacts file; unparsable lines are errors naming the line.
pub fn read(path: &Path) -> std::io::Result<Vec<Multiaddr>> {
    let text = std::fs::read_to_string(path)?;
    parse(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Parses contacts text.
pub fn parse(text: &str) -> Result<Vec<Multiaddr>, String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i, l.split('#').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            l.parse::<Multiaddr>()
                .map_err(|e| format!("line {}: {l:?} is not a multiaddr: {e}", i + 1))
        })
        .collect()
}

/// Writes a contacts file atomically (temp file and rename).
pub fn write(path: &Path, addrs: &[Multiaddr]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = String::from("# safe contacts: peers to bootstrap from\n");
    for a in addrs {
        text.push_str(&a.to_string());
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_skips_comments_and_names_bad_lines() {
        let ok = parse("# hi\n/ip4/127.0.0.1/tcp/1\n\n/ip4/127.0.0.1/udp/2/quic-v1 # q\n").unwrap();
        assert_eq!(ok.len(), 2);
        let err = parse("/ip4/127.0.0.1/tcp/1\nnonsense\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
    }
}
