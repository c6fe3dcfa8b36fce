//! `safe name …` and `safe publish`: public names pointing at data.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use safe_client::names::NameInfo;
use safe_client::tree::TreeOptions;
use safe_client::{Home, MutableError};
use safe_protocol::DataKind;
use safe_protocol::mutable::Change;
use safe_protocol::name::{DEFAULT_SERVICE, follows};

use crate::args::{Network, Target, with_client};
use crate::files::tree_progress;
use crate::keys::{Signers, parse_owners};
use crate::show;

#[derive(Subcommand)]
pub(crate) enum NameCommand {
    /// Register a name: the first registration wins. Lowercase letters,
    /// digits and '-', 1 to 63 characters.
    Register {
        /// The name.
        name: String,
        /// Owners: public keys (hex) or names of your keys, comma-separated
        /// (default: the signing key). The signing key must be one.
        #[arg(long, value_delimiter = ',', value_name = "PK,...")]
        owners: Vec<String>,
        /// Owner signatures each change needs.
        #[arg(long, default_value_t = 1, value_name = "M")]
        threshold: u8,
        #[command(flatten)]
        signers: Signers,
        #[command(flatten)]
        target: Target,
    },
    /// Point a service of a name (www, blog, …) at a safe:// address (a
    /// directory, file or record); a new version of the name.
    Set {
        /// The name.
        name: String,
        /// The service.
        service: String,
        /// The target (safe://d…, safe://f…, safe://m…), or `none` to
        /// remove the service. A record with a `target` entry (as `safe fs
        /// publish` keeps) is followed: the name serves wherever it points
        /// now.
        target_address: String,
        /// Pin the target as it is now: a followed record is replaced by
        /// the directory or file it points at (d… and f… are always
        /// pinned: they never change).
        #[arg(long)]
        pin: bool,
        #[command(flatten)]
        signers: Signers,
        #[command(flatten)]
        target: Target,
    },
    /// Owners, services and versions of a name.
    Show {
        /// The name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// The names your account registered (log in first), and whether it
    /// still owns them.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Transfer a name, or share it: new owners and threshold.
    Transfer {
        /// The name.
        name: String,
        /// The new owners (public keys or names of your keys).
        #[arg(long, value_delimiter = ',', value_name = "PK,...", required = true)]
        to: Vec<String>,
        /// Owner signatures each change will need.
        #[arg(long, default_value_t = 1, value_name = "M")]
        threshold: u8,
        #[command(flatten)]
        signers: Signers,
        #[command(flatten)]
        target: Target,
    },
}

/// `safe publish DIR --name NAME`.
#[derive(clap::Args)]
pub(crate) struct PublishArgs {
    /// The directory (a website: index.html at its top).
    dir: PathBuf,
    /// The name to point at it (registered now if it is free).
    #[arg(long)]
    name: String,
    /// The service.
    #[arg(long, default_value = DEFAULT_SERVICE)]
    service: String,
    #[command(flatten)]
    signers: Signers,
    #[command(flatten)]
    target: Target,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) async fn run(command: NameCommand, network: Network) -> Result<()> {
    match command {
        NameCommand::Register {
            name,
            owners,
            threshold,
            signers,
            target,
        } => {
            let name = safe_protocol::name::check_label(&name)?;
            let key = signers.first()?;
            let owners = parse_owners(&owners)?;
            let client = target.client(network, true).await?;
            with_client(client, |client| async move {
                client.register_name(&name, owners, threshold, &key).await?;
                remember(&client, &name).await;
                println!("safe://{name}");
                eprintln!("registered {name:?}; point it at data with `safe name set {name} www safe://d…`");
                Ok(())
            })
            .await
        }
        NameCommand::Set {
            name,
            service,
            target_address,
            pin,
            signers,
            target,
        } => {
            let to = match target_address.as_str() {
                "none" => None,
                text => Some(show::parse_address(text)?),
            };
            let keys = signers.keys()?;
            let client = target.client(network, false).await?;
            with_client(client, |client| async move {
                let to = match to {
                    Some(a) if pin && a.kind == DataKind::Mutable => {
                        let record = client.get_record(a.name).await?;
                        let now = follows(&record).with_context(|| {
                            format!("{a} has no `target` entry to pin (a record itself has no fixed version)")
                        })?;
                        eprintln!("pinned to {now}");
                        Some(now)
                    }
                    to => to,
                };
                let v = client
                    .set_service(&name, &service, to, &keys, now())
                    .await?;
                eprintln!("{name}: version {}", v.number);
                Ok(())
            })
            .await
        }
        NameCommand::Show { name, json, target } => {
            let client = target.client(network, false).await?;
            with_client(client, |client| async move {
                let info = client.name_info(&name).await?;
                print_info(&info, json);
                Ok(())
            })
            .await
        }
        NameCommand::List { json, target } => {
            let account = Home::from_env().session().require()?;
            let client = target.client(network, false).await?;
            with_client(client, |client| async move {
                let names = client.account_names(&account).await?;
                let mine: Vec<[u8; 32]> = account
                    .known_keys()
                    .iter()
                    .map(|k| account.root().named_key(k).verifying_key().to_bytes())
                    .collect();
                let mut rows = Vec::new();
                for name in names {
                    let (owned, services) = match client.name_info(&name).await {
                        Ok(info) => (
                            info.record.state.owners.iter().any(|o| mine.contains(o)),
                            info.latest()
                                .services
                                .iter()
                                .map(|(s, a)| (s.clone(), a.to_string()))
                                .collect::<Vec<_>>(),
                        ),
                        Err(_) => (false, Vec::new()),
                    };
                    rows.push((name, owned, services));
                }
                if json {
                    let list: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|(n, owned, services)| {
                            serde_json::json!({
                                "name": n,
                                "owned": owned,
                                "services": services
                                    .iter()
                                    .map(|(s, a)| (s.clone(), serde_json::Value::from(a.as_str())))
                                    .collect::<serde_json::Map<String, serde_json::Value>>(),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::Value::from(list));
                    return Ok(());
                }
                if rows.is_empty() {
                    eprintln!(
                        "no names yet: `safe name register NAME` or `safe publish DIR --name NAME`"
                    );
                }
                for (n, owned, services) in rows {
                    let services: Vec<String> = services
                        .iter()
                        .map(|(s, a)| format!("{s} -> {a}"))
                        .collect();
                    println!(
                        "{n}{}  {}",
                        if owned { "" } else { " (no longer yours)" },
                        services.join(", ")
                    );
                }
                Ok(())
            })
            .await
        }
        NameCommand::Transfer {
            name,
            to,
            threshold,
            signers,
            target,
        } => {
            let mut owners = parse_owners(&to)?;
            owners.sort();
            owners.dedup();
            let keys = signers.keys()?;
            let client = target.client(network, false).await?;
            with_client(client, |client| async move {
                let name = safe_protocol::name::check_label(&name)?;
                let address = safe_protocol::name::name_address(&name);
                let change = Change::Owners { owners, threshold };
                client
                    .update_record(address, change, &keys)
                    .await
                    .map_err(|e| match e {
                        MutableError::NotFound(_) => {
                            anyhow::anyhow!("no name {name:?} is registered")
                        }
                        e => e.into(),
                    })?;
                eprintln!("{name}: new owners set");
                Ok(())
            })
            .await
        }
    }
}

/// `safe publish`: the directory as a snapshot, and the name pointed at it.
pub(crate) async fn publish(args: PublishArgs, network: Network) -> Result<()> {
    let name = safe_protocol::name::check_label(&args.name)?;
    let service = safe_protocol::name::check_label(&args.service)?;
    if !args.dir.is_dir() {
        bail!("{} is not a directory", args.dir.display());
    }
    let keys = args.signers.keys()?;
    let client = args.target.client(network, true).await?;
    with_client(client, |client| async move {
        let (bar, progress) = tree_progress();
        let options = TreeOptions {
            progress,
            cache: Some(Home::from_env().put_cache()),
            secret: None,
        };
        let report = client.put_tree(&args.dir, &options).await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let report = report?;
        point(&client, &name, &service, report.address, &keys).await?;
        Ok(())
    })
    .await
}

fn print_info(info: &NameInfo, json: bool) {
    let latest = info.latest();
    let owners: Vec<String> = info.record.state.owners.iter().map(hex::encode).collect();
    if json {
        println!("{}", safe_client::json::name_info(info));
        return;
    }
    println!("name: {}", info.name);
    println!(
        "owners: {} ({} must sign)",
        owners.join(", "),
        info.record.state.threshold
    );
    println!("version: {}", latest.number);
    for (service, target) in &latest.services {
        println!("{service}.{}  ->  {target}", info.name);
    }
    for v in &info.versions {
        println!(
            "  version {:>3}  {}  {} service(s)",
            v.number,
            show::time(v.time),
            v.services.len()
        );
    }
}

/// Registers `name` if it is free (remembered in the account when logged
/// in), points `service` at `target` and says where to open it.
pub(crate) async fn point(
    client: &safe_client::Client,
    name: &str,
    service: &str,
    target: safe_protocol::Address,
    keys: &[safe_client::SigningKey],
) -> Result<()> {
    let key = keys.first().context("no signing key")?;
    match client.register_name(name, Vec::new(), 1, key).await {
        Ok(_) => {
            eprintln!("registered {name:?}");
            remember(client, name).await;
        }
        // Ours already (or a co-owner's): fine.
        Err(safe_client::names::NameOpError::Mutable(MutableError::AlreadyCreated { .. })) => {}
        Err(safe_client::names::NameOpError::Taken(n)) => {
            // Taken: ours only if our key may change it; the set says.
            eprintln!("{n:?} is registered already; updating it");
        }
        Err(e) => return Err(e.into()),
    }
    let v = client
        .set_service(name, service, Some(target), keys, now())
        .await?;
    eprintln!("{service}.{name}: version {} -> {target}", v.number);
    println!("safe://{service}.{name}");
    eprintln!("open it at http://{service}.{name}.localhost:8080/ while `safe gateway` runs");
    Ok(())
}

/// Keeps a newly registered name in the logged-in account's list
/// (`safe name list`); a failure is said, not fatal: the name is
/// registered either way.
async fn remember(client: &safe_client::Client, name: &str) {
    let Ok(Some(account)) = Home::from_env().session().load() else {
        return;
    };
    if let Err(e) = client.add_account_name(&account, name).await {
        eprintln!("warning: {name:?} is registered but not listed in your account: {e}");
    }
}
