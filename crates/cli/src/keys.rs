//! `safe keys …`: the signing keys that own mutable records.

use anyhow::Result;
use clap::Subcommand;
use safe_client::keys::DEFAULT_KEY;
use safe_client::{Home, KeyError, KeyStore};
use safe_protocol::mutable::{PublicKey, SigningKey};

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

pub(crate) fn run(command: KeysCommand) -> Result<()> {
    let store = Home::from_env().keys();
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

impl Signers {
    /// The signing keys named, or the default key (made if missing, and
    /// said so).
    pub(crate) fn keys(&self) -> Result<Vec<SigningKey>> {
        let store = Home::from_env().keys();
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
    let store = Home::from_env().keys();
    list.iter()
        .map(|o| match store.public_key_of(o.trim()) {
            Err(KeyError::NotFound(_) | KeyError::BadName(_)) => Err(anyhow::anyhow!(
                "{o:?} is neither a public key (64 hex characters) nor the name of one of your keys"
            )),
            other => Ok(other?),
        })
        .collect()
}
