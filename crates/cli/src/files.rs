//! `safe put` and `safe get`: files (and, for `get`, any address).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use safe_client::files::read_secret_file;
use safe_client::output::OutputFile;
use safe_client::{
    ByteRange, Client, Found, Home, Opened, Opening, PutOptions, Secret, TreeOptions, TreeReport,
};
use safe_protocol::manifest::{FileData, Node};
use safe_protocol::{Address, DataKind, Host};

use crate::args::{Network, Target, with_client};
use crate::show;

/// Files at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;

#[derive(clap::Args)]
pub(crate) struct PutArgs {
    /// The file or directory to store, or `-` for standard input. A
    /// directory becomes a snapshot (safe://d…).
    path: PathBuf,
    #[command(flatten)]
    target: Target,
    /// Print one JSON object (address, size, chunks, stored_bytes,
    /// sent_bytes, paid_nanos: what storing it cost, in nanos).
    #[arg(long)]
    json: bool,
    /// Private mode: mix the contents of this key file into every chunk
    /// key. The same file is needed to get the data back.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct GetArgs {
    /// A safe:// address (a file, chunk, record or directory snapshot), a
    /// path inside a snapshot (safe://d…/path/to/file), or a name
    /// (safe://[service.]name[/path][?v=N]).
    address: String,
    #[command(flatten)]
    target: Target,
    /// Write here (`-` for stdout) instead of stdout. A regular file is
    /// replaced only once every byte is verified; a device or pipe is
    /// written directly; a symlink is followed.
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Only bytes START to END inclusive, START- for the rest, or -N for
    /// the last N bytes (as in HTTP).
    #[arg(long, value_name = "START-END", allow_hyphen_values = true)]
    range: Option<String>,
    /// The key file a private file was put with.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Print JSON: for a record, the record; for a file (with -o), what
    /// was written.
    #[arg(long)]
    json: bool,
}

fn secret(path: Option<&Path>) -> Result<Option<Secret>> {
    Ok(path.map(read_secret_file).transpose()?)
}

pub(crate) async fn put(args: PutArgs, network: Network) -> Result<()> {
    let secret = secret(args.secret_file.as_deref())?;
    let stdin = args.path.as_os_str() == "-";
    // Checked before connecting: a typo should not wait for the network.
    let size = if stdin {
        None
    } else {
        let meta = std::fs::metadata(&args.path)
            .with_context(|| format!("cannot read {}", args.path.display()))?;
        if meta.is_dir() {
            if secret.is_some() {
                bail!("--secret-file is for single files; directories are public snapshots");
            }
            let client = args.target.client(network, true).await?;
            return with_client(client, |client| put_tree(client, args.path, args.json)).await;
        }
        meta.is_file().then_some(meta.len())
    };
    let client = args.target.client(network, true).await?;
    with_client(client, |client| async move {
        let bar = size.and_then(|s| progress_bar(s, "encrypting"));
        let options = PutOptions {
            secret,
            progress: bar.clone().map(|bar| {
                let f: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |n| bar.set_position(n));
                f
            }),
        };
        let report = if stdin {
            client
                .put_stream(std::io::stdin(), "standard input", &options)
                .await
        } else {
            client.put_file(&args.path, &options).await
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let report = report?;
        if args.json {
            let value = serde_json::json!({
                "address": report.address.to_string(),
                "size": report.size,
                "chunks": report.chunks,
                "stored_bytes": report.stored_bytes,
                "sent_bytes": client.bytes_sent(),
                "paid_nanos": client.payer().paid(),
            });
            println!("{value}");
        } else {
            println!("{}", report.address);
        }
        Ok(())
    })
    .await
}

/// A progress callback `(done, total)` and the bar it moves.
type ProgressCallback = (
    Option<ProgressBar>,
    Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
);

/// A progress bar drawn with `template` (on a terminal only), and the
/// callback that moves it.
fn progress_with(template: &str) -> ProgressCallback {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar
    });
    let progress = bar.clone().map(|bar| {
        let f: Arc<dyn Fn(u64, u64) + Send + Sync> = Arc::new(move |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        });
        f
    });
    (bar, progress)
}

/// A progress bar of files stored.
pub(crate) fn tree_progress() -> ProgressCallback {
    progress_with("storing {bar:40} {pos}/{len} files {per_sec} eta {eta}")
}

/// A progress bar of bytes fetched.
pub(crate) fn fetch_progress() -> ProgressCallback {
    progress_with("fetching {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
}

async fn put_tree(client: Client, dir: PathBuf, json: bool) -> Result<()> {
    let (bar, progress) = tree_progress();
    let options = TreeOptions {
        progress,
        cache: Some(Home::from_env().put_cache()),
        secret: None,
    };
    let report = client.put_tree(&dir, &options).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    if json {
        println!("{}", tree_json(&report, &client));
    } else {
        println!("{}", report.address);
    }
    Ok(())
}

fn tree_json(report: &TreeReport, client: &Client) -> serde_json::Value {
    serde_json::json!({
        "address": report.address.to_string(),
        "files": report.files,
        "dirs": report.dirs,
        "links": report.links,
        "bytes": report.bytes,
        "sent_bytes": client.bytes_sent(),
        "paid_nanos": client.payer().paid(),
    })
}

/// What a URL names once any name in it is looked up.
pub(crate) struct Located {
    /// The address.
    pub(crate) address: Address,
    /// The path inside it.
    pub(crate) path: Vec<String>,
    /// The URL as the user gave it.
    shown: String,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Parses `text` and, for a name (`safe://www.name/…`), looks it up.
pub(crate) async fn locate(text: &str, target: &Target, network: Network) -> Result<Located> {
    let url = show::parse_url(text)?;
    let shown = url.to_string();
    let (address, path) = match &url.host {
        Host::Address(a) => (*a, url.path.clone()),
        Host::Name { .. } => {
            let client = target.client(network, false).await?;
            with_client(
                client,
                |client| async move { Ok(client.resolve(&url).await?) },
            )
            .await?
        }
    };
    Ok(Located {
        address,
        path,
        shown,
    })
}

pub(crate) async fn get(args: GetArgs, network: Network) -> Result<()> {
    let url = locate(&args.address, &args.target, network).await?;
    if url.address.kind == DataKind::Directory {
        return get_in_tree(args, url, network).await;
    }
    if !url.path.is_empty() {
        bail!(
            "{} is a {}: only a directory snapshot (safe://d…) has paths",
            url.address,
            url.address.kind.describe()
        );
    }
    let address = url.address;
    let range = args
        .range
        .as_deref()
        .map(str::parse::<ByteRange>)
        .transpose()?;
    let to_stdout = args.output.as_ref().is_none_or(|o| o.as_os_str() == "-");
    if address.kind == safe_protocol::DataKind::Mutable
        && (args.output.is_some() || range.is_some())
    {
        bail!(
            "{} is a mutable record: -o and --range do not apply (see `safe mutable get --help`)",
            args.address
        );
    }
    if args.json && to_stdout && address.kind != safe_protocol::DataKind::Mutable {
        bail!("--json with a file needs -o OUT (without it the file itself goes to stdout)");
    }
    let secret = secret(args.secret_file.as_deref())?;
    let client = args.target.client(network, false).await?;
    with_client(client, |client| async move {
        match client.open(&address, secret.as_ref()).await? {
            Opening::Record(record) => {
                show::print_record(address.name, &record, args.json);
                Ok(())
            }
            Opening::Bytes(opened) => {
                let output = args.output.as_deref().filter(|_| !to_stdout);
                write_file(&client, &address, &opened, range, output, args.json).await
            }
        }
    })
    .await
}

/// `safe get` of a snapshot or a path inside one.
async fn get_in_tree(args: GetArgs, url: Located, network: Network) -> Result<()> {
    let range = args
        .range
        .as_deref()
        .map(str::parse::<ByteRange>)
        .transpose()?;
    let client = args.target.client(network, false).await?;
    with_client(client, |client| async move {
        match client.find(url.address.name, &url.path).await? {
            Found::Dir { manifest, .. } => {
                let out = match args.output.as_deref() {
                    Some(o) if o.as_os_str() != "-" => o,
                    _ => bail!(
                        "{url} is a directory: give -o OUTDIR to fetch it (or `safe ls {url}` to list it)"
                    ),
                };
                if range.is_some() {
                    bail!("--range is for files; {url} is a directory");
                }
                let (bar, progress) = fetch_progress();
                let report = client.get_tree_with(manifest, out, None, progress).await;
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                let report = report?;
                if args.json {
                    println!("{}", tree_json(&report, &client));
                }
                Ok(())
            }
            Found::Entry(entry) => {
                let opened = match entry.node {
                    Node::File {
                        data: FileData::Inline(bytes),
                        ..
                    } => Opened::inline(bytes)?,
                    Node::File {
                        data: FileData::Stored(name),
                        ..
                    } => {
                        client
                            .open_file(&Address::new(DataKind::File, name), None)
                            .await?
                    }
                    Node::Symlink { target } => bail!("{url} is a symlink to {target:?}"),
                    Node::Dir { .. } => bail!("{url} is a directory"),
                };
                let to_stdout = args.output.as_ref().is_none_or(|o| o.as_os_str() == "-");
                if args.json && to_stdout {
                    bail!("--json with a file needs -o OUT (without it the file itself goes to stdout)");
                }
                let output = args.output.as_deref().filter(|_| !to_stdout);
                write_file(&client, &url.address, &opened, range, output, args.json).await
            }
        }
    })
    .await
}

#[derive(clap::Args)]
pub(crate) struct LsArgs {
    /// A directory snapshot, or a path inside one (safe://d…/path), or a
    /// name that points at one (safe://www.name/path).
    url: String,
    #[command(flatten)]
    target: Target,
    /// Print JSON: a list of {name, kind, size, address}.
    #[arg(long)]
    json: bool,
}

/// `safe ls`: name, kind, size and address of each entry.
pub(crate) async fn ls(args: LsArgs, network: Network) -> Result<()> {
    let url = locate(&args.url, &args.target, network).await?;
    if url.address.kind != DataKind::Directory {
        bail!(
            "{} is a {}; `safe ls` lists directory snapshots (safe://d…)",
            url.address,
            url.address.kind.describe()
        );
    }
    let client = args.target.client(network, false).await?;
    with_client(client, |client| async move {
        let entries = match client.find(url.address.name, &url.path).await? {
            Found::Dir { listing, .. } => listing.entries().to_vec(),
            Found::Entry(entry) => vec![entry],
        };
        let rows: Vec<(String, &str, u64, String)> = entries
            .iter()
            .map(|e| {
                let (kind, size, address) = match &e.node {
                    Node::File {
                        size,
                        data: FileData::Stored(n),
                    } => ("file", *size, Address::new(DataKind::File, *n).to_string()),
                    Node::File {
                        size,
                        data: FileData::Inline(_),
                    } => ("file", *size, String::new()),
                    Node::Dir { manifest, size, .. } => (
                        "dir",
                        *size,
                        Address::new(DataKind::Directory, *manifest).to_string(),
                    ),
                    Node::Symlink { target } => {
                        ("link", 0, format!("-> {}", show::text(target.as_bytes())))
                    }
                };
                (e.name.clone(), kind, size, address)
            })
            .collect();
        if args.json {
            let list: Vec<_> = rows
                .iter()
                .map(|(name, kind, size, address)| {
                    let mut v = serde_json::json!({ "name": name, "kind": kind, "size": size });
                    if let Some(target) = address.strip_prefix("-> ") {
                        v["target"] = target.into();
                    } else if !address.is_empty() {
                        v["address"] = address.as_str().into();
                    }
                    v
                })
                .collect();
            println!("{}", serde_json::Value::Array(list));
        } else {
            for (name, kind, size, address) in rows {
                let name = show::text(name.as_bytes());
                let shown = if address.is_empty() {
                    "(inline)".to_string()
                } else {
                    address
                };
                println!("{kind:<4} {size:>12} {name}  {shown}");
            }
        }
        Ok(())
    })
    .await
}

async fn write_file(
    client: &Client,
    address: &Address,
    opened: &Opened,
    range: Option<ByteRange>,
    output: Option<&Path>,
    json: bool,
) -> Result<()> {
    let range = match range {
        Some(r) => r.resolve(opened.size)?,
        None => 0..opened.size,
    };
    let bar = progress_bar(range.end - range.start, "decrypting");
    let written = match output {
        None => {
            let mut out = Progress {
                inner: std::io::BufWriter::with_capacity(1 << 20, std::io::stdout()),
                bar: bar.clone(),
            };
            let n = client.read_range(opened, range, &mut out).await?;
            out.flush().context("writing to stdout")?;
            n
        }
        Some(path) => {
            let mut file = OutputFile::create(path)?;
            let mut out = Progress {
                inner: std::io::BufWriter::with_capacity(1 << 20, file.writer()),
                bar: bar.clone(),
            };
            let n = client.read_range(opened, range, &mut out).await?;
            out.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
            drop(out);
            file.finish()?;
            n
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json && let Some(path) = output {
        let value = serde_json::json!({
            "address": address.to_string(),
            "size": opened.size,
            "written": written,
            "output": path.display().to_string(),
        });
        println!("{value}");
    }
    Ok(())
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
