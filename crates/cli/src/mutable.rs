//! `safe keys …` and `safe mutable …`: owners' keys and mutable records.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use safe_client::mutable::{new_append, new_create, prepare};
use safe_client::{KeyDir, KeyError, KeyStore, MutableError, NetworkStore};
use safe_protocol::mutable::{
    Change, MAX_WRITE_SIZE, PublicKey, Record, SigningKey, Write, record_address,
};
use safe_protocol::{Address, DataKind, XorName};

use crate::Peers;

/// Key used when `--key` is not given; made on first use.
const DEFAULT_KEY: &str = "default";
/// First line of a prepared-operation file.
const PREPARED_HEADER: &str = "safe prepared operation v1";

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a new signing key pair (kept in the data directory, mode 0600)
    /// and print its public key.
    Create {
        /// The key's name.
        #[arg(default_value = DEFAULT_KEY)]
        name: String,
        /// Print JSON (name, public_key).
        #[arg(long)]
        json: bool,
    },
    /// List your keys and their public keys.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Signing keys to use (repeatable, for records several owners share).
#[derive(clap::Args)]
pub(crate) struct Signers {
    /// Name of a key from `safe keys list` (repeatable). Default: "default",
    /// made on first use.
    #[arg(long = "key", value_name = "K")]
    keys: Vec<String>,
}

/// Where an owner operation goes.
#[derive(clap::Args)]
pub(crate) struct OpOutput {
    #[command(flatten)]
    signers: Signers,
    /// Do not submit: write the operation, signed by --key, to FILE for
    /// the other owners to `safe mutable sign` and anyone to `submit`.
    #[arg(long, value_name = "FILE")]
    prepare: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub(crate) enum MutableCommand {
    /// Claim a record at an address made from NAME and a type tag; prints
    /// its safe:// address. Fails if someone holds it already.
    Create {
        /// The record's name.
        name: String,
        /// Type tag: different apps use different tags for the same names.
        #[arg(long, default_value_t = 0)]
        tag: u64,
        /// Owners: public keys (hex) or names of your keys, comma-separated.
        /// Default: the signing key alone. The signing key must be one.
        #[arg(long, value_delimiter = ',', value_name = "PK,...")]
        owners: Vec<String>,
        /// Owner signatures each change needs.
        #[arg(long, default_value_t = 1, value_name = "M")]
        threshold: u8,
        /// Let anyone append (an inbox); otherwise only owners may.
        #[arg(long)]
        public_append: bool,
        #[command(flatten)]
        signers: Signers,
        #[command(flatten)]
        peers: Peers,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set entry KEY to VALUE.
    Set {
        /// The record's safe:// address.
        address: String,
        /// Entry key.
        key: String,
        /// Entry value.
        value: String,
        #[command(flatten)]
        out: OpOutput,
        #[command(flatten)]
        peers: Peers,
    },
    /// Remove entry KEY.
    Remove {
        /// The record's safe:// address.
        address: String,
        /// Entry key.
        key: String,
        #[command(flatten)]
        out: OpOutput,
        #[command(flatten)]
        peers: Peers,
    },
    /// Append VALUE (anyone, on a --public-append record; else owners).
    Append {
        /// The record's safe:// address.
        address: String,
        /// The value.
        value: String,
        #[command(flatten)]
        signers: Signers,
        #[command(flatten)]
        peers: Peers,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove appended values by id (owners).
    RemoveAppend {
        /// The record's safe:// address.
        address: String,
        /// Ids as shown by `safe mutable get`.
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        out: OpOutput,
        #[command(flatten)]
        peers: Peers,
    },
    /// Show a record (version, owners, entries, appends), or one entry.
    Get {
        /// The record's safe:// address.
        address: String,
        /// Show only this entry's value.
        key: Option<String>,
        #[command(flatten)]
        peers: Peers,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change owners and threshold: transfer, share or give up ownership.
    Owners {
        /// The record's safe:// address.
        address: String,
        /// The new owners: public keys (hex) or names of your keys.
        #[arg(
            long = "set",
            value_delimiter = ',',
            required = true,
            value_name = "PK,..."
        )]
        owners: Vec<String>,
        /// Owner signatures each change will need. Default: the current
        /// threshold (if the new owners are that many).
        #[arg(long, value_name = "M")]
        threshold: Option<u8>,
        #[command(flatten)]
        out: OpOutput,
        #[command(flatten)]
        peers: Peers,
    },
    /// Add your signature to a prepared operation file.
    Sign {
        /// The file from `--prepare`.
        file: PathBuf,
        #[command(flatten)]
        signers: Signers,
        /// Print JSON (file, signed_by, signatures).
        #[arg(long)]
        json: bool,
    },
    /// Send a prepared, signed operation to the network.
    Submit {
        /// The file from `--prepare`, signed by enough owners.
        file: PathBuf,
        #[command(flatten)]
        peers: Peers,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn key_dir() -> KeyDir {
    KeyDir::new(safe_network::contacts::default_data_dir().join("keys"))
}

pub(crate) fn keys(command: KeysCommand) -> Result<()> {
    let store = key_dir();
    match command {
        KeysCommand::Create { name, json } => {
            let key = store.create(&name)?;
            let pk = hex::encode(key.verifying_key().to_bytes());
            if json {
                println!("{}", serde_json::json!({ "name": name, "public_key": pk }));
            } else {
                println!("{pk}");
                eprintln!(
                    "key {name:?} saved in {}",
                    store.dir().join(format!("{name}.key")).display()
                );
            }
        }
        KeysCommand::List { json } => {
            let list = store.list()?;
            if json {
                let items: Vec<_> = list
                    .iter()
                    .map(|(n, pk)| serde_json::json!({ "name": n, "public_key": hex::encode(pk) }))
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else if list.is_empty() {
                eprintln!("no keys yet: make one with `safe keys create`");
            } else {
                for (name, pk) in list {
                    println!("{name}\t{}", hex::encode(pk));
                }
            }
        }
    }
    Ok(())
}

/// The signing keys named, or the default key (made if missing).
fn signing_keys(signers: &Signers) -> Result<Vec<SigningKey>> {
    let store = key_dir();
    if signers.keys.is_empty() {
        return match store.get(DEFAULT_KEY) {
            Ok(k) => Ok(vec![k]),
            Err(KeyError::NotFound(_)) => {
                let k = store.create(DEFAULT_KEY)?;
                eprintln!(
                    "made your first key, {DEFAULT_KEY:?}: {}",
                    hex::encode(k.verifying_key().to_bytes())
                );
                Ok(vec![k])
            }
            Err(e) => Err(e.into()),
        };
    }
    signers
        .keys
        .iter()
        .map(|n| store.get(n).map_err(Into::into))
        .collect()
}

/// A public key given as 64 hex characters or as the name of one of ours.
fn parse_owner(text: &str) -> Result<PublicKey> {
    if text.len() == 64
        && let Ok(bytes) = hex::decode(text)
    {
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("invalid public key {text:?}"));
    }
    match key_dir().get(text) {
        Ok(k) => Ok(k.verifying_key().to_bytes()),
        Err(KeyError::NotFound(_) | KeyError::BadName(_)) => bail!(
            "{text:?} is neither a public key (64 hex characters) nor the name of one of your keys"
        ),
        Err(e) => Err(e.into()),
    }
}

fn parse_owners(list: &[String]) -> Result<Vec<PublicKey>> {
    list.iter().map(|o| parse_owner(o.trim())).collect()
}

/// Parses a safe:// address that must be a mutable record.
pub(crate) fn record_name(text: &str) -> Result<XorName> {
    let address: Address = text
        .parse()
        .with_context(|| format!("invalid address {text:?}"))?;
    if address.kind != DataKind::Mutable {
        bail!(
            "{text} is a {}, not a mutable record (use `safe get` for files)",
            address.kind.describe()
        );
    }
    Ok(address.name)
}

/// A client error in the user's terms (addresses as safe://m…).
fn user_error(e: MutableError) -> anyhow::Error {
    match e {
        MutableError::NotFound(name) => {
            anyhow::anyhow!("no mutable record at {}", show_address(name))
        }
        other => other.into(),
    }
}

fn show_address(name: XorName) -> String {
    Address::new(DataKind::Mutable, name).to_string()
}

/// Text for a value from the network: itself if UTF-8 (control
/// characters escaped, so it cannot drive the terminal or break lines),
/// else `0x` and hex.
fn show_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.chars().any(char::is_control) => s
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Ok(s) => s.to_string(),
        Err(_) => format!("0x{}", hex::encode(bytes)),
    }
}

pub(crate) async fn mutable(command: MutableCommand) -> Result<()> {
    match command {
        MutableCommand::Create {
            name,
            tag,
            owners,
            threshold,
            public_append,
            signers,
            peers,
            json,
        } => {
            let key = signing_keys(&signers)?
                .into_iter()
                .next()
                .context("no signing key")?;
            let owners = parse_owners(&owners)?;
            let signer = key.verifying_key().to_bytes();
            if !owners.is_empty() && !owners.contains(&signer) {
                bail!(
                    "the signing key ({}) must be one of the --owners",
                    hex::encode(signer)
                );
            }
            let create = new_create(name.as_bytes(), tag, owners, threshold, public_append, &key)
                .map_err(|e| anyhow::anyhow!("cannot create the record: {e}"))?;
            let address = record_address(name.as_bytes(), tag);
            with_network(&peers, |net| async move {
                net.write_record(&Write::Create(create)).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "address": show_address(address), "version": 0 })
                    );
                } else {
                    println!("{}", show_address(address));
                }
                Ok(())
            })
            .await
        }
        MutableCommand::Set {
            address,
            key,
            value,
            out,
            peers,
        } => {
            let change = Change::Set {
                key: key.into_bytes(),
                value: value.into_bytes(),
            };
            owner_op(&address, |_: &Record| Ok(change), out, &peers).await
        }
        MutableCommand::Remove {
            address,
            key,
            out,
            peers,
        } => {
            let change = Change::Remove {
                key: key.into_bytes(),
            };
            owner_op(&address, |_: &Record| Ok(change), out, &peers).await
        }
        MutableCommand::RemoveAppend {
            address,
            ids,
            out,
            peers,
        } => {
            let ids = ids
                .iter()
                .map(|id| {
                    hex::decode(id)
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .with_context(|| format!("invalid append id {id:?} (64 hex characters)"))
                })
                .collect::<Result<Vec<[u8; 32]>>>()?;
            let change = Change::RemoveAppends { ids };
            owner_op(&address, |_: &Record| Ok(change), out, &peers).await
        }
        MutableCommand::Owners {
            address,
            owners,
            threshold,
            out,
            peers,
        } => {
            let mut owners = parse_owners(&owners)?;
            owners.sort();
            owners.dedup();
            let change = move |r: &Record| {
                let threshold = match threshold {
                    Some(t) => t,
                    None if usize::from(r.state.threshold) <= owners.len() => r.state.threshold,
                    None => bail!(
                        "the record needs {} signatures but --set names {} owner(s): give --threshold",
                        r.state.threshold,
                        owners.len()
                    ),
                };
                Ok(Change::Owners { owners, threshold })
            };
            owner_op(&address, change, out, &peers).await
        }
        MutableCommand::Append {
            address,
            value,
            signers,
            peers,
            json,
        } => {
            let name = record_name(&address)?;
            let keys = signing_keys(&signers)?;
            let append = new_append(name, value.into_bytes(), &keys);
            let id = append.id();
            with_network(&peers, |net| async move {
                net.write_record(&Write::Append(append))
                    .await
                    .map_err(user_error)?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "address": show_address(name), "id": hex::encode(id) })
                    );
                } else {
                    println!("appended {}", hex::encode(id));
                }
                Ok(())
            })
            .await
        }
        MutableCommand::Get {
            address,
            key,
            peers,
            json,
        } => get(&address, key.as_deref(), &peers, json).await,
        MutableCommand::Sign {
            file,
            signers,
            json,
        } => {
            let mut op = read_prepared(&file)?;
            let Write::Op(signed) = &mut op else {
                bail!("{} does not hold an owner operation", file.display());
            };
            eprintln!(
                "signing: {} on {}, replacing version {}",
                describe(&signed.body.change),
                show_address(signed.body.address),
                signed.body.replaces
            );
            let keys = signing_keys(&signers)?;
            for key in &keys {
                signed.sign(key);
            }
            let count = signed.sigs.len();
            write_prepared(&file, &op)?;
            let by: Vec<String> = keys
                .iter()
                .map(|k| hex::encode(k.verifying_key().to_bytes()))
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": file.display().to_string(),
                        "signed_by": by,
                        "signatures": count,
                    })
                );
            } else {
                println!(
                    "signed by {}; {} now has {count} signature(s)",
                    by.join(", "),
                    file.display()
                );
            }
            Ok(())
        }
        MutableCommand::Submit { file, peers, json } => {
            let write = read_prepared(&file)?;
            let Write::Op(op) = &write else {
                bail!("{} does not hold an owner operation", file.display());
            };
            let (name, version) = (op.body.address, op.body.replaces + 1);
            with_network(&peers, |net| async move {
                net.write_record(&write).await.map_err(user_error)?;
                print_version(name, version, json);
                Ok(())
            })
            .await
        }
    }
}

/// Reads, prepares, signs and submits (or saves) an owner operation.
async fn owner_op(
    address: &str,
    change: impl FnOnce(&Record) -> Result<Change>,
    out: OpOutput,
    peers: &Peers,
) -> Result<()> {
    let name = record_name(address)?;
    let keys = signing_keys(&out.signers)?;
    with_network(peers, |net| async move {
        let record = net.get_record(name).await.map_err(user_error)?;
        let mut op = prepare(&record, change(&record)?)?;
        for key in &keys {
            op.sign(key);
        }
        let version = op.body.replaces + 1;
        let write = Write::Op(op);
        if let Some(path) = &out.prepare {
            write_prepared(path, &write)?;
            let need = record.state.threshold;
            println!(
                "prepared in {}: version {version}, {} of {need} signature(s); other owners run `safe mutable sign {}`, then anyone runs `safe mutable submit {}`",
                path.display(),
                keys.len(),
                path.display(),
                path.display()
            );
            return Ok(());
        }
        net.write_record(&write).await.map_err(user_error)?;
        print_version(name, version, out.json);
        Ok(())
    })
    .await
}

fn print_version(name: XorName, version: u64, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "address": show_address(name), "version": version })
        );
    } else {
        println!("version {version}");
    }
}

fn describe(change: &Change) -> String {
    match change {
        Change::Set { key, value } => {
            format!("set {:?} = {:?}", show_bytes(key), show_bytes(value))
        }
        Change::Remove { key } => format!("remove {:?}", show_bytes(key)),
        Change::Owners { owners, threshold } => format!(
            "owners become {} ({threshold} must sign)",
            owners
                .iter()
                .map(hex::encode)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Change::RemoveAppends { ids } => format!("remove {} appended value(s)", ids.len()),
    }
}

fn write_prepared(path: &Path, write: &Write) -> Result<()> {
    let bytes = write.encode().map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = format!("{PREPARED_HEADER}\n{}\n", hex::encode(bytes));
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn read_prepared(path: &Path) -> Result<Write> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > (2 * MAX_WRITE_SIZE + 1024) as u64 {
        bail!("{} is too large to be a prepared operation", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    if lines.next() != Some(PREPARED_HEADER) {
        bail!(
            "{} is not a prepared operation (from `safe mutable … --prepare`)",
            path.display()
        );
    }
    let bytes = lines
        .next()
        .and_then(|l| hex::decode(l.trim()).ok())
        .with_context(|| format!("{} is damaged", path.display()))?;
    Write::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("{} is damaged", path.display()))
}

/// Connects, runs `f`, and always closes the connection.
async fn with_network<F, Fut>(peers: &Peers, f: F) -> Result<()>
where
    F: FnOnce(NetworkStore) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let net = crate::connect(peers).await?;
    let result = f(net.clone()).await;
    net.shutdown().await;
    result
}

/// `safe mutable get` (and `safe get` of a mutable address).
pub(crate) async fn get(address: &str, key: Option<&str>, peers: &Peers, json: bool) -> Result<()> {
    let name = record_name(address)?;
    with_network(peers, |net| async move {
        let record = net.get_record(name).await.map_err(user_error)?;
        if let Some(key) = key {
            let value = record
                .state
                .entries
                .get(key.as_bytes())
                .with_context(|| format!("no entry {key:?} in {address}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "key": key, "value": show_bytes(value), "version": record.state.version })
                );
            } else {
                println!("{}", show_bytes(value));
            }
            return Ok(());
        }
        if json {
            println!("{}", record_json(name, &record));
        } else {
            print_record(name, &record);
        }
        Ok(())
    })
    .await
}

fn record_json(name: XorName, r: &Record) -> serde_json::Value {
    let entries: serde_json::Map<String, serde_json::Value> = r
        .state
        .entries
        .iter()
        .map(|(k, v)| (show_bytes(k), show_bytes(v).into()))
        .collect();
    let appends: Vec<_> = r
        .appends
        .iter()
        .map(|a| serde_json::json!({ "id": hex::encode(a.id()), "value": show_bytes(&a.body.value) }))
        .collect();
    serde_json::json!({
        "address": show_address(name),
        "version": r.state.version,
        "owners": r.state.owners.iter().map(hex::encode).collect::<Vec<_>>(),
        "threshold": r.state.threshold,
        "public_append": r.state.public_append,
        "entries": entries,
        "appends": appends,
    })
}

fn print_record(name: XorName, r: &Record) {
    let s = &r.state;
    println!("{}", show_address(name));
    println!("version: {}", s.version);
    println!(
        "owners ({} of {} must sign): {}",
        s.threshold,
        s.owners.len(),
        s.owners
            .iter()
            .map(hex::encode)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "appends by: {}",
        if s.public_append {
            "anyone"
        } else {
            "owners only"
        }
    );
    println!("entries ({}):", s.entries.len());
    for (k, v) in &s.entries {
        println!("  {} = {}", show_bytes(k), show_bytes(v));
    }
    println!("appended ({}):", r.appends.len());
    for a in &r.appends {
        println!("  {} {}", hex::encode(a.id()), show_bytes(&a.body.value));
    }
}
