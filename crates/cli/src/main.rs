//! `safe`: the command-line face of the network.
//!
//! Errors print as one line on stderr (`error: …`) and exit with status 1.

use std::io::{IsTerminal, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use safe_client::{LocalStore, files};
use safe_protocol::Address;
use safe_selfenc::{Config, Secret};

/// Files at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;
/// Largest secret file read.
const MAX_SECRET_FILE: u64 = 64 * 1024;

#[derive(Parser)]
#[command(
    name = "safe",
    version,
    about = "SAFE network: store and fetch self-encrypted data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Self-encrypt a file into chunks and print its safe:// address.
    Put {
        /// The file to store.
        path: PathBuf,
        /// Store chunks in this local directory (created if missing).
        #[arg(long, value_name = "DIR")]
        local_store: PathBuf,
        /// Print one JSON object (address, size, chunks, stored_bytes).
        #[arg(long)]
        json: bool,
        /// Private mode: mix the contents of this key file into every chunk
        /// key. The same file is needed to get the data back.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
    /// Fetch a file (or part of it) by its safe:// address.
    Get {
        /// A safe:// address printed by `safe put`.
        address: String,
        /// Read chunks from this local directory.
        #[arg(long, value_name = "DIR")]
        local_store: PathBuf,
        /// Write here instead of stdout; nothing is left here if the get fails.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Only bytes START to END inclusive (as in HTTP), or START- for the rest.
        #[arg(long, value_name = "START-END")]
        range: Option<String>,
        /// The key file a private file was put with.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Put {
            path,
            local_store,
            json,
            secret_file,
        } => put(&path, &local_store, json, secret_file.as_deref()).await,
        Command::Get {
            address,
            local_store,
            output,
            range,
            secret_file,
        } => {
            let address: Address = address
                .parse()
                .with_context(|| format!("invalid address {address:?}"))?;
            let range = range.as_deref().map(parse_range).transpose()?;
            get(
                &address,
                &local_store,
                output.as_deref(),
                range,
                secret_file.as_deref(),
            )
            .await
        }
    }
}

fn read_secret(path: Option<&Path>) -> Result<Option<Secret>> {
    let Some(path) = path else { return Ok(None) };
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read secret file {}", path.display()))?;
    if meta.len() > MAX_SECRET_FILE || meta.len() < 16 {
        bail!(
            "secret file {} must hold between 16 bytes and 64 KiB of random data",
            path.display()
        );
    }
    let material = std::fs::read(path)
        .with_context(|| format!("cannot read secret file {}", path.display()))?;
    Ok(Some(Secret::derive_from(&material)))
}

fn progress_bar(size: u64, verb: &str) -> Option<ProgressBar> {
    if size < PROGRESS_MIN_BYTES || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(size);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{verb} {{bar:40}} {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} eta {{eta}}"
    )) {
        bar.set_style(style);
    }
    Some(bar)
}

async fn put(path: &Path, store_dir: &Path, json: bool, secret_file: Option<&Path>) -> Result<()> {
    let secret = read_secret(secret_file)?;
    let store = Arc::new(LocalStore::open(store_dir)?);
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let bar = progress_bar(size, "encrypting");
    let progress: Arc<dyn Fn(u64) + Send + Sync> = match bar.clone() {
        Some(bar) => Arc::new(move |n| bar.set_position(n)),
        None => Arc::new(|_| {}),
    };
    let config = Config {
        secret,
        ..Config::default()
    };
    let report = files::put_file(store, path, config, progress).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    if json {
        let value = serde_json::json!({
            "address": report.address.to_string(),
            "size": report.size,
            "chunks": report.chunks,
            "stored_bytes": report.stored_bytes,
        });
        println!("{value}");
    } else {
        println!("{}", report.address);
    }
    Ok(())
}

/// Parses `START-END` (inclusive) or `START-` into a half-open range.
fn parse_range(text: &str) -> Result<Range<u64>> {
    let bad = || {
        anyhow::anyhow!(
            "invalid range {text:?}: expected START-END or START- (bytes, END inclusive)"
        )
    };
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end = match end.trim() {
        "" => u64::MAX,
        e => {
            let e: u64 = e.parse().map_err(|_| bad())?;
            if e < start {
                bail!("invalid range {text:?}: END is before START");
            }
            e.saturating_add(1)
        }
    };
    Ok(start..end)
}

async fn get(
    address: &Address,
    store_dir: &Path,
    output: Option<&Path>,
    range: Option<Range<u64>>,
    secret_file: Option<&Path>,
) -> Result<()> {
    let secret = read_secret(secret_file)?;
    if !store_dir.is_dir() {
        bail!("local store {} does not exist", store_dir.display());
    }
    let store = Arc::new(LocalStore::open(store_dir)?);
    let opened = files::open(&store, address, secret.as_ref()).await?;
    let range = range.unwrap_or(0..u64::MAX);
    let shown = range.end.min(opened.size).saturating_sub(range.start);
    let bar = progress_bar(shown, "decrypting");
    match output {
        None => {
            let mut out = Progress {
                inner: std::io::BufWriter::with_capacity(1 << 20, std::io::stdout()),
                bar: bar.clone(),
            };
            files::read_range(&store, &opened, range, &mut out).await?;
            out.flush().context("writing to stdout")?;
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if path.is_dir() {
                bail!(
                    "{} is a directory; give a file name with -o",
                    path.display()
                );
            }
            // Written beside OUT and renamed into place only when complete:
            // a failed get leaves nothing at OUT.
            let tmp = tempfile::Builder::new()
                .prefix(".safe-get-")
                .tempfile_in(dir)
                .with_context(|| format!("cannot create a file in {}", dir.display()))?;
            let mut out = Progress {
                inner: std::io::BufWriter::with_capacity(1 << 20, tmp),
                bar: bar.clone(),
            };
            files::read_range(&store, &opened, range, &mut out).await?;
            let tmp = out
                .inner
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("writing {}", path.display()))?;
            tmp.as_file()
                .sync_all()
                .with_context(|| format!("writing {}", path.display()))?;
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// A writer that advances a progress bar.
struct Progress<W> {
    inner: W,
    bar: Option<ProgressBar>,
}

impl<W: Write> Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0-0").unwrap(), 0..1);
        assert_eq!(parse_range("10-19").unwrap(), 10..20);
        assert_eq!(parse_range("5-").unwrap(), 5..u64::MAX);
        assert!(parse_range("9-3").is_err());
        assert!(parse_range("abc").is_err());
        assert!(parse_range("-5").is_err());
    }
}
