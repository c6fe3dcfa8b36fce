//! `safe fs …`: the logged-in user's own filesystem (private, versioned).
//! Design: docs/DESIGN-fs.md.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use safe_client::fs::{Committed, Fs, Version, parse_path};
use safe_client::tree::{Found, TreeOptions};
use safe_client::{Account, Client, Home};
use safe_protocol::manifest::{Entry, Node};

use crate::args::{Network, Peers, with_client};
use crate::files::{fetch_progress, tree_progress};
use crate::show;

#[derive(Subcommand)]
pub(crate) enum FsCommand {
    /// List a directory (default: the root).
    Ls {
        /// The path, e.g. /photos/2026.
        #[arg(default_value = "/")]
        path: String,
        /// List this version instead of the latest (see `history`).
        #[arg(long, value_name = "N")]
        version: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// Make a directory (and any missing parents).
    Mkdir {
        /// The path.
        path: String,
        #[command(flatten)]
        net: Peers,
    },
    /// Store a local file or directory at PATH (replacing what is there).
    Put {
        /// The local file or directory.
        local: PathBuf,
        /// Where it goes, e.g. /docs/report.pdf.
        path: String,
        #[command(flatten)]
        net: Peers,
    },
    /// Fetch a file or a whole directory.
    Get {
        /// The path.
        path: String,
        /// Where to write it (default: its name, in the current directory).
        #[arg(short, long, value_name = "LOCAL")]
        output: Option<PathBuf>,
        /// Fetch it as it was in this version (see `history`).
        #[arg(long, value_name = "N")]
        version: Option<u64>,
        #[command(flatten)]
        net: Peers,
    },
    /// Remove a file, link or empty directory (-r: a directory and all in it).
    Rm {
        /// The path.
        path: String,
        /// Remove a directory and everything in it.
        #[arg(short, long)]
        recursive: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// Move or rename.
    Mv {
        /// From.
        from: String,
        /// To (must not exist).
        to: String,
        #[command(flatten)]
        net: Peers,
    },
    /// Copy (costs nothing but new directory listings: the data is shared).
    Cp {
        /// From.
        from: String,
        /// To (must not exist).
        to: String,
        #[command(flatten)]
        net: Peers,
    },
    /// The versions of the filesystem (with PATH: those where PATH changed).
    History {
        /// Only versions where this path changed.
        path: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// Make PATH hold exactly the local directory, sending only what
    /// changed, and say what did.
    Sync {
        /// The local directory.
        local: PathBuf,
        /// The directory in your filesystem.
        path: String,
        #[command(flatten)]
        net: Peers,
    },
    /// Publish a file or directory: a public safe://f… or safe://d… that
    /// anyone can read, holding that path's contents and nothing else.
    ///
    /// Each publish also updates the path's publication record, which a
    /// name can follow: with --name, the name's service follows this path
    /// (publish again and the name serves the new contents); with --pin
    /// as well, it points at this publish only.
    Publish {
        /// The path.
        path: String,
        /// A public name to point at it (registered now if it is free).
        #[arg(long)]
        name: Option<String>,
        /// The name's service.
        #[arg(long, default_value = safe_protocol::name::DEFAULT_SERVICE)]
        service: String,
        /// Point the name at this publish, not at whatever is published
        /// at this path later.
        #[arg(long, requires = "name")]
        pin: bool,
        #[command(flatten)]
        signers: crate::keys::Signers,
        #[command(flatten)]
        net: Peers,
    },
}

fn net_of(command: &FsCommand) -> &Peers {
    match command {
        FsCommand::Ls { net, .. }
        | FsCommand::Mkdir { net, .. }
        | FsCommand::Put { net, .. }
        | FsCommand::Get { net, .. }
        | FsCommand::Rm { net, .. }
        | FsCommand::Mv { net, .. }
        | FsCommand::Cp { net, .. }
        | FsCommand::History { net, .. }
        | FsCommand::Sync { net, .. }
        | FsCommand::Publish { net, .. } => net,
    }
}

pub(crate) async fn run(command: FsCommand, network: Network) -> Result<()> {
    let home = Home::from_env();
    let account = home.session().require()?;
    let client = net_of(&command).connect(network).await?;
    with_client(client, |client| async move {
        run_with(&client, &account, &home, command).await
    })
    .await
}

fn said(committed: &Committed, what: &str) {
    match &committed.version {
        Some(v) => eprintln!("{what}: version {}", v.number),
        None => eprintln!("{what}: nothing changed"),
    }
    for c in &committed.conflicts {
        eprintln!(
            "conflict: changed on another machine too; yours is kept as {}",
            show::text(c.as_bytes())
        );
    }
}

async fn run_with(
    client: &Client,
    account: &Account,
    home: &Home,
    command: FsCommand,
) -> Result<()> {
    let fs = Fs::new(client, account);
    let options = || TreeOptions {
        progress: None,
        cache: Some(home.fs_cache(account)),
        secret: None,
    };
    match command {
        FsCommand::Ls {
            path,
            version,
            json,
            ..
        } => {
            let path = parse_path(&path)?;
            let entries = match fs.find(&path, version).await? {
                Found::Dir { listing, .. } => listing.entries().to_vec(),
                Found::Entry(e) => vec![e],
            };
            print_entries(&entries, json);
        }
        FsCommand::Mkdir { path, .. } => {
            let path = parse_path(&path)?;
            said(&fs.mkdir(&path).await?, "made");
        }
        FsCommand::Put { local, path, .. } => {
            let path = parse_path(&path)?;
            let (bar, progress) = tree_progress();
            let options = TreeOptions {
                progress,
                ..options()
            };
            let done = fs.put(&local, &path, &options).await;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let (committed, report) = done?;
            said(
                &committed,
                &format!("stored {} files, {} bytes", report.files, report.bytes),
            );
        }
        FsCommand::Get {
            path,
            output,
            version,
            ..
        } => {
            let parts = parse_path(&path)?;
            let out = match (output, parts.last()) {
                (Some(o), _) => o,
                (None, Some(name)) => PathBuf::from(name),
                (None, None) => bail!("give -o LOCAL to fetch the whole filesystem"),
            };
            let (bar, progress) = fetch_progress();
            let report = fs.get_with(&parts, version, &out, progress).await;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let report = report?;
            eprintln!(
                "fetched {} files, {} bytes into {}",
                report.files,
                report.bytes,
                out.display()
            );
        }
        FsCommand::Rm {
            path, recursive, ..
        } => {
            let path = parse_path(&path)?;
            said(&fs.rm(&path, recursive).await?, "removed");
        }
        FsCommand::Mv { from, to, .. } => {
            let (from, to) = (parse_path(&from)?, parse_path(&to)?);
            said(&fs.copy(&from, &to, false).await?, "moved");
        }
        FsCommand::Cp { from, to, .. } => {
            let (from, to) = (parse_path(&from)?, parse_path(&to)?);
            said(&fs.copy(&from, &to, true).await?, "copied");
        }
        FsCommand::History { path, json, .. } => {
            let versions = fs.history().await?;
            let shown = match path {
                None => versions,
                Some(p) => changes_of(&fs, &parse_path(&p)?, versions).await?,
            };
            print_history(&shown, json);
        }
        FsCommand::Sync { local, path, .. } => {
            let path = parse_path(&path)?;
            let (bar, progress) = tree_progress();
            let options = TreeOptions {
                progress,
                ..options()
            };
            let done = fs.sync(&local, &path, &options).await;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let (committed, diff, _) = done?;
            println!(
                "{} added, {} changed, {} removed",
                diff.added, diff.changed, diff.removed
            );
            said(&committed, "synced");
        }
        FsCommand::Publish {
            path,
            name,
            service,
            pin,
            signers,
            ..
        } => {
            let path = parse_path(&path)?;
            let named = match name {
                Some(n) => Some((
                    safe_protocol::name::check_label(&n)?,
                    safe_protocol::name::check_label(&service)?,
                    signers.keys()?,
                )),
                None => None,
            };
            let scratch = home.scratch();
            std::fs::create_dir_all(&scratch)?;
            remove_stale(&scratch);
            let dir = tempfile::tempdir_in(&scratch)?;
            let address = fs.publish(&path, dir.path()).await?;
            let publication = fs.set_publication(&path, address).await?;
            let publication =
                safe_protocol::Address::new(safe_protocol::DataKind::Mutable, publication);
            match named {
                None => {
                    println!("{address}");
                    eprintln!("follow it from a name with `safe name set NAME www {publication}`");
                }
                Some((name, service, keys)) => {
                    eprintln!("published {address}");
                    let target = if pin { address } else { publication };
                    crate::names::point(client, &name, &service, target, &keys).await?;
                }
            }
        }
    }
    Ok(())
}

/// The versions in which what `path` names differs from the version
/// before.
async fn changes_of(fs: &Fs<'_>, path: &[String], versions: Vec<Version>) -> Result<Vec<Version>> {
    let mut out = Vec::new();
    // Before the first version, nothing was anywhere.
    let mut before: Option<Entry> = None;
    for v in versions {
        let now = match fs.find_at(Some(v.root), path).await {
            Ok(Found::Entry(e)) => Some(e),
            Ok(Found::Dir { manifest, listing }) => Some(Entry {
                name: String::new(),
                node: Node::Dir {
                    manifest,
                    size: listing.total_size(),
                    files: listing.total_files(),
                },
                meta: Default::default(),
            }),
            Err(
                safe_client::fs::FsError::NotFound(_) | safe_client::fs::FsError::NotADirectory(_),
            ) => None,
            Err(e) => return Err(e.into()),
        };
        if before != now {
            out.push(v);
        }
        before = now;
    }
    Ok(out)
}

fn print_history(versions: &[Version], json: bool) {
    if json {
        let list: Vec<_> = versions
            .iter()
            .map(|v| {
                serde_json::json!({
                    "version": v.number, "time": v.time, "size": v.size,
                    "files": v.files, "change": v.note,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return;
    }
    if versions.is_empty() {
        eprintln!("no versions yet");
    }
    for v in versions {
        println!(
            "{:>5}  {}  {:>12} bytes {:>8} files  {}",
            v.number,
            show::time(v.time),
            v.size,
            v.files,
            show::text(v.note.as_bytes())
        );
    }
}

fn print_entries(entries: &[Entry], json: bool) {
    let rows: Vec<(&str, &str, u64, Option<&str>)> = entries
        .iter()
        .map(|e| match &e.node {
            Node::File { size, .. } => (e.name.as_str(), "file", *size, None),
            Node::Dir { size, .. } => (e.name.as_str(), "dir", *size, None),
            Node::Symlink { target } => (e.name.as_str(), "link", 0, Some(target.as_str())),
        })
        .collect();
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(name, kind, size, target)| {
                let mut v = serde_json::json!({ "name": name, "kind": kind, "size": size });
                if let Some(t) = target {
                    v["target"] = (*t).into();
                }
                v
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return;
    }
    for (name, kind, size, target) in rows {
        let name = show::text(name.as_bytes());
        match target {
            Some(t) => println!(
                "{kind:<4} {size:>12} {name} -> {}",
                show::text(t.as_bytes())
            ),
            None => println!("{kind:<4} {size:>12} {name}"),
        }
    }
}

/// Removes what publishes killed an hour or more ago left in `scratch`
/// (decrypted copies of private files).
fn remove_stale(scratch: &std::path::Path) {
    let Ok(items) = std::fs::read_dir(scratch) else {
        return;
    };
    let hour = std::time::Duration::from_secs(3600);
    for item in items.flatten() {
        let old = item
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > hour));
        if old {
            let _ = std::fs::remove_dir_all(item.path());
        }
    }
}
