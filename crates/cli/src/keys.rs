//! `safe keys …`: the signing keys that own mutable records.

use anyhow::{Result, bail};
use clap::Subcommand;
use safe_client::keys::DEFAULT_KEY;
use safe_client::{Home, KeyError, KeyStore};

use crate::args::{Network, Peers, with_client};
use safe_protocol::mutable::{PublicKey, SigningKey};

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a new signing key pair and print its public key: in your
    /// account while you are logged in (derived from its root secret, so
    /// every machine you log in from has it), else in the data directory
    /// (mode 0600).
    Create {
        /// The key's name.
        #[arg(default_value = DEFAULT_KEY)]
        name: String,
        /// Print JSON (name, public_key).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// List your keys and their public keys (the account's, read from the
    /// network, while you are logged in; and this machine's).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
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

pub(crate) async fn run(command: KeysCommand, network: Network) -> Result<()> {
    let home = Home::from_env();
    let store = home.keys();
    let session = home.session();
    match command {
        KeysCommand::Create { name, json, net } => {
            let (key, place) = match session.load()? {
                Some(mut account) => {
                    if store.get(&name).is_ok() {
                        bail!("a key named {name:?} exists on this machine; pick another name");
                    }
                    let client = net.connect(network).await?;
                    let name = name.clone();
                    with_client(client, |client| async move {
                        if client.account_keys(&account).await?.contains(&name) {
                            bail!("a key named {name:?} already exists in your account");
                        }
                        let key = client.add_account_key(&account, &name).await?;
                        let names = client.account_keys(&account).await?;
                        account.set_known_keys(names);
                        session.save_if_current(&account)?;
                        Ok((key, format!("your account {:?}", account.username())))
                    })
                    .await?
                }
                None => {
                    let key = store.create(&name)?;
                    let path = store.dir().join(format!("{name}.key"));
                    (key, path.display().to_string())
                }
            };
            let pk = hex::encode(key.verifying_key().to_bytes());
            if json {
                println!("{}", serde_json::json!({ "name": name, "public_key": pk }));
            } else {
                println!("{pk}");
                eprintln!("key {name:?} saved in {place}");
            }
        }
        KeysCommand::List { json, net } => {
            let mut list: Vec<(String, PublicKey, &str)> = Vec::new();
            if let Some(mut account) = session.load()? {
                let client = net.connect(network).await?;
                let names = with_client(client, |client| {
                    let account = account.clone();
                    async move { Ok(client.account_keys(&account).await?) }
                })
                .await?;
                for n in &names {
                    let pk = account.root().named_key(n).verifying_key().to_bytes();
                    list.push((n.clone(), pk, "account"));
                }
                account.set_known_keys(names);
                session.save_if_current(&account)?;
            }
            for (n, pk) in store.list()? {
                list.push((n, pk, "local"));
            }
            if json {
                let items: Vec<_> = list
                    .iter()
                    .map(|(n, pk, w)| {
                        serde_json::json!({ "name": n, "public_key": hex::encode(pk), "kept": w })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else if list.is_empty() {
                eprintln!("no keys yet: make one with `safe keys create`");
            } else {
                for (name, pk, kept) in list {
                    println!("{name}\t{}\t{kept}", hex::encode(pk));
                }
            }
        }
    }
    Ok(())
}

impl Signers {
    /// The first signing key named (or the default): the one that signs
    /// a create.
    pub(crate) fn first(&self) -> Result<SigningKey> {
        use anyhow::Context;
        self.keys()?.into_iter().next().context("no signing key")
    }

    /// The signing keys named, or the default key (made if missing, and
    /// said so). While logged in, names are looked up in the account
    /// first (as last read: `safe keys list` reads it again), and the
    /// default is the account's.
    pub(crate) fn keys(&self) -> Result<Vec<SigningKey>> {
        let home = Home::from_env();
        let store = home.keys();
        if let Some(account) = home.session().load()? {
            let known = account.known_keys();
            let pick = |name: &str| -> Result<SigningKey> {
                if known.iter().any(|n| n == name) {
                    return Ok(account.root().named_key(name));
                }
                store.get(name).map_err(|e| match e {
                    KeyError::NotFound(_) => anyhow::anyhow!(
                        "no key named {name:?} in your account or on this machine (make one with `safe keys create {name}`)"
                    ),
                    e => e.into(),
                })
            };
            if self.keys.is_empty() {
                return Ok(vec![pick(DEFAULT_KEY)?]);
            }
            return self.keys.iter().map(|n| pick(n)).collect();
        }
        if self.keys.is_empty() {
            let (key, made) = store.default_key()?;
            if made {
                eprintln!(
                    "made your first key, {DEFAULT_KEY:?}: {}",
                    hex::encode(key.verifying_key().to_bytes())
                );
            }
            return Ok(vec![key]);
        }
        self.keys
            .iter()
            .map(|n| store.get(n).map_err(Into::into))
            .collect()
    }
}

/// Public keys given as 64 hex characters or as names of the user's keys.
pub(crate) fn parse_owners(list: &[String]) -> Result<Vec<PublicKey>> {
    let home = Home::from_env();
    let store = home.keys();
    let account = home.session().load()?;
    list.iter()
        .map(|o| match account
            .as_ref()
            .filter(|a| a.known_keys().iter().any(|n| n == o.trim()))
        {
            Some(a) => Ok(a.root().named_key(o.trim()).verifying_key().to_bytes()),
            None => match store.public_key_of(o.trim()) {
            Err(KeyError::NotFound(_) | KeyError::BadName(_)) => Err(anyhow::anyhow!(
                "{o:?} is neither a public key (64 hex characters) nor the name of one of your keys"
            )),
            other => Ok(other?),
            },
        })
        .collect()
}
