//! `safe mutable …`: owned, signed, versioned records.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use safe_client::mutable::prepare;
use safe_client::{Client, MutableError, NewRecord, prepared};
use safe_protocol::mutable::{Change, MAX_VALUE_LEN, Record, Write};
use safe_protocol::{DataKind, XorName};

use crate::args::{Network, Target, with_client};
use crate::keys::{Signers, parse_owners};
use crate::show::{self, record_address};

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

/// A value given on the command line or read from a file.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Value {
    /// The value (text).
    value: Option<String>,
    /// Read the value from FILE (any bytes, at most 64 KiB).
    #[arg(long, value_name = "FILE")]
    value_file: Option<PathBuf>,
}

impl Value {
    fn bytes(self) -> Result<Vec<u8>> {
        match (self.value, self.value_file) {
            (Some(v), _) => Ok(v.into_bytes()),
            (None, Some(path)) => read_value_file(&path),
            (None, None) => bail!("give a VALUE or --value-file FILE"),
        }
    }
}

fn read_value_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_VALUE_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > MAX_VALUE_LEN {
        bail!(
            "{} is larger than {MAX_VALUE_LEN} bytes, the most a record value holds (store it as a file and set its address)",
            path.display()
        );
    }
    Ok(bytes)
}

#[derive(Subcommand)]
pub(crate) enum MutableCommand {
    /// Claim a record at an address made from NAME and a type tag; prints
    /// its safe:// address. Fails if someone holds it already; if you
    /// created it before, says so and exits with status 3.
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
        target: Target,
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
        #[command(flatten)]
        value: Value,
        #[command(flatten)]
        out: OpOutput,
        #[command(flatten)]
        target: Target,
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
        target: Target,
    },
    /// Append VALUE (anyone, on a --public-append record; else owners).
    Append {
        /// The record's safe:// address.
        address: String,
        #[command(flatten)]
        value: Value,
        #[command(flatten)]
        signers: Signers,
        #[command(flatten)]
        target: Target,
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
        target: Target,
    },
    /// Show a record (version, owners, entries, appends oldest first), or
    /// one entry.
    Get {
        /// The record's safe:// address.
        address: String,
        /// Show only this entry's value.
        key: Option<String>,
        #[command(flatten)]
        target: Target,
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
        target: Target,
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
    /// Send a prepared, signed operation to the network. One the record
    /// already shows is not sent again: it says so and exits with status 3.
    Submit {
        /// The file from `--prepare`, signed by enough owners.
        file: PathBuf,
        #[command(flatten)]
        target: Target,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Parses a safe:// address that must be a mutable record.
fn record_name(text: &str) -> Result<XorName> {
    let address = show::parse_address(text)?;
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
            anyhow::anyhow!("no mutable record at {}", record_address(name))
        }
        other => other.into(),
    }
}

pub(crate) async fn run(command: MutableCommand, network: Network) -> Result<()> {
    match command {
        MutableCommand::Create {
            name,
            tag,
            owners,
            threshold,
            public_append,
            signers,
            target,
            json,
        } => {
            let key = signers.first()?;
            let owners = parse_owners(&owners)?;
            let signer = key.verifying_key().to_bytes();
            if !owners.is_empty() && !owners.contains(&signer) {
                bail!(
                    "the signing key ({}) must be one of the --owners",
                    hex::encode(signer)
                );
            }
            let new = NewRecord {
                name: name.into_bytes(),
                tag,
                owners,
                threshold,
                public_append,
            };
            // Checked before connecting: a bad claim needs no network.
            safe_client::signed_create(&new, &key)
                .map_err(|e| anyhow::anyhow!("cannot create the record: {e}"))?;
            let address = new.address();
            let client = target.client(network, true).await?;
            with_client(client, |client| async move {
                let result = client.create_record(new, &key).await;
                match &result {
                    Ok(_) => print_version(address, 0, json, true),
                    // The address is still the answer; the exit status and
                    // the message say it was there already.
                    Err(MutableError::AlreadyCreated { version, .. }) => {
                        print_version(address, *version, json, true)
                    }
                    Err(_) => {}
                }
                result.map_err(user_error)?;
                Ok(())
            })
            .await
        }
        MutableCommand::Set {
            address,
            key,
            value,
            out,
            target,
        } => {
            let change = Change::Set {
                key: key.into_bytes(),
                value: value.bytes()?,
            };
            owner_op(&address, |_: &Record| Ok(change), out, &target, network).await
        }
        MutableCommand::Remove {
            address,
            key,
            out,
            target,
        } => {
            let change = Change::Remove {
                key: key.into_bytes(),
            };
            owner_op(&address, |_: &Record| Ok(change), out, &target, network).await
        }
        MutableCommand::RemoveAppend {
            address,
            ids,
            out,
            target,
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
            owner_op(&address, |_: &Record| Ok(change), out, &target, network).await
        }
        MutableCommand::Owners {
            address,
            owners,
            threshold,
            out,
            target,
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
            owner_op(&address, change, out, &target, network).await
        }
        MutableCommand::Append {
            address,
            value,
            signers,
            target,
            json,
        } => {
            let name = record_name(&address)?;
            let keys = signers.keys()?;
            let value = value.bytes()?;
            let client = target.client(network, false).await?;
            with_client(client, |client| async move {
                let id = client
                    .append(name, value, &keys)
                    .await
                    .map_err(user_error)?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "address": record_address(name), "id": hex::encode(id) })
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
            target,
            json,
        } => {
            let name = record_name(&address)?;
            let client = target.client(network, false).await?;
            with_client(client, |client| async move {
                let record = client.get_record(name).await.map_err(user_error)?;
                match key {
                    Some(key) => print_entry(&record, &address, &key, json),
                    None => {
                        show::print_record(name, &record, json);
                        Ok(())
                    }
                }
            })
            .await
        }
        MutableCommand::Sign {
            file,
            signers,
            json,
        } => sign(&file, &signers, json),
        MutableCommand::Submit { file, target, json } => {
            let op = prepared::read_op(&file)?;
            let (name, version) = (op.body.address, op.body.replaces + 1);
            let write = Write::Op(op);
            let client = target.client(network, false).await?;
            with_client(client, |client| async move {
                client.submit(&write).await.map_err(user_error)?;
                print_version(name, version, json, false);
                Ok(())
            })
            .await
        }
    }
}

fn print_entry(record: &Record, address: &str, key: &str, json: bool) -> Result<()> {
    let value = record
        .state
        .entries
        .get(key.as_bytes())
        .with_context(|| format!("no entry {key:?} in {address}"))?;
    if json {
        let mut object = serde_json::Map::new();
        object.insert("key".into(), key.into());
        safe_client::json::put_bytes(&mut object, "value", value);
        object.insert("version".into(), record.state.version.into());
        println!("{}", serde_json::Value::Object(object));
    } else {
        println!("{}", show::text(value));
    }
    Ok(())
}

fn sign(file: &Path, signers: &Signers, json: bool) -> Result<()> {
    let mut op = prepared::read_op(file)?;
    eprintln!(
        "signing: {} on {}, replacing version {}",
        describe(&op.body.change),
        record_address(op.body.address),
        op.body.replaces
    );
    let keys = signers.keys()?;
    let count = prepared::sign(file, &mut op, &keys)?;
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

/// Reads, prepares, signs and submits (or saves) an owner operation.
async fn owner_op(
    address: &str,
    change: impl FnOnce(&Record) -> Result<Change>,
    out: OpOutput,
    target: &Target,
    network: Network,
) -> Result<()> {
    let name = record_name(address)?;
    let keys = out.signers.keys()?;
    let client = target.client(network, false).await?;
    with_client(client, |client: Client| async move {
        let record = client.get_record(name).await.map_err(user_error)?;
        let mut op = prepare(&record, change(&record)?)?;
        for key in &keys {
            op.sign(key);
        }
        let version = op.body.replaces + 1;
        let write = Write::Op(op);
        if let Some(path) = &out.prepare {
            prepared::write(path, &write)?;
            let need = record.state.threshold;
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "address": record_address(name),
                        "file": path.display().to_string(),
                        "version": version,
                        "signatures": keys.len(),
                        "threshold": need,
                    })
                );
            } else {
                println!(
                    "prepared in {}: version {version}, {} of {need} signature(s); other owners run `safe mutable sign {}`, then anyone runs `safe mutable submit {}`",
                    path.display(),
                    keys.len(),
                    path.display(),
                    path.display()
                );
            }
            return Ok(());
        }
        client
            .submit_against(Some(&record), &write)
            .await
            .map_err(user_error)?;
        print_version(name, version, out.json, false);
        Ok(())
    })
    .await
}

/// What a successful write prints: the version (or, for a create, the
/// address).
fn print_version(name: XorName, version: u64, json: bool, created: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "address": record_address(name), "version": version })
        );
    } else if created {
        println!("{}", record_address(name));
    } else {
        println!("version {version}");
    }
}

fn describe(change: &Change) -> String {
    match change {
        Change::Set { key, value } => {
            format!("set {:?} = {:?}", show::text(key), show::text(value))
        }
        Change::Remove { key } => format!("remove {:?}", show::text(key)),
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
