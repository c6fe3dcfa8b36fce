//! `safe account …`: create an account, log in and out, change or recover
//! the password. The design is docs/DESIGN-accounts.md.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use safe_client::account::{Account, AccountError};
use safe_client::keys::DEFAULT_KEY;
use safe_client::{Client, Home};
use zeroize::Zeroizing;

use crate::args::{Network, Peers, with_client};

#[derive(Subcommand)]
pub(crate) enum AccountCommand {
    /// Create an account: asks for a password twice, prints the recovery
    /// phrase once, and logs in.
    Create {
        /// The username (case matters).
        username: String,
        #[command(flatten)]
        input: Input,
        /// Print JSON (username, address, recovery_phrase).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// Log in: from any machine, the username and password give back every
    /// key and the filesystem.
    Login {
        /// The username.
        username: String,
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        net: Peers,
    },
    /// Log out: erase the session from this machine.
    Logout,
    /// Who is logged in here.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the password (asks for the current one, then the new one
    /// twice). The root secret stays: anyone who knew the old password may
    /// still hold it.
    Password {
        /// The username (default: the one logged in).
        username: Option<String>,
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        net: Peers,
    },
    /// Set a new password with the recovery phrase (asked for, or the first
    /// line of standard input with --password-stdin, the new password
    /// being the second).
    Recover {
        /// The username.
        username: String,
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        net: Peers,
    },
}

/// How secrets are read.
#[derive(clap::Args)]
pub(crate) struct Input {
    /// Read the password from standard input (one line; for `password`,
    /// the current then the new one; for `recover`, the phrase then the new
    /// password), for scripts.
    #[arg(long)]
    password_stdin: bool,
}

/// Secrets from a terminal (without echo) or from standard input, one per
/// line.
struct Secrets {
    stdin: Option<std::io::Lines<std::io::StdinLock<'static>>>,
}

impl Secrets {
    fn new(input: &Input) -> Result<Self> {
        if input.password_stdin {
            return Ok(Secrets {
                stdin: Some(std::io::stdin().lock().lines()),
            });
        }
        if !std::io::stdin().is_terminal() {
            bail!("no terminal to ask for the password on; pass it with --password-stdin");
        }
        Ok(Secrets { stdin: None })
    }

    /// One secret: the next line of input, or asked for on the terminal.
    fn ask(&mut self, prompt: &str) -> Result<Zeroizing<String>> {
        match &mut self.stdin {
            Some(lines) => {
                let line = Zeroizing::new(
                    lines
                        .next()
                        .context("standard input ended before the password")?
                        .context("cannot read standard input")?,
                );
                Ok(Zeroizing::new(line.trim_end_matches('\r').to_string()))
            }
            None => Ok(Zeroizing::new(
                rpassword::prompt_password(prompt).context("cannot read the password")?,
            )),
        }
    }

    /// A new password: asked twice on a terminal (they must match), read
    /// once from standard input.
    fn new_password(&mut self) -> Result<Zeroizing<String>> {
        let first = self.ask("New password: ")?;
        if self.stdin.is_none() {
            let again = self.ask("Again: ")?;
            if *again != *first {
                bail!("the passwords do not match; nothing was changed");
            }
        }
        safe_client::account::check_password(&first, true)?;
        Ok(first)
    }
}

pub(crate) async fn run(command: AccountCommand, network: Network) -> Result<()> {
    let home = Home::from_env();
    let session = home.session();
    match command {
        AccountCommand::Create {
            username,
            input,
            json,
            net,
        } => {
            let username = safe_client::account::check_username(&username)?;
            let mut secrets = Secrets::new(&input)?;
            let password = secrets.new_password()?;
            let client = net.connect(network).await?;
            // Kept until the account is whole: running the same create
            // again after a failure or Ctrl-C finishes it.
            let pending = home.pending_create();
            let root = pending.root_for(&username)?;
            with_client(client, |client| async move {
                let terminal = std::io::stdout().is_terminal();
                let mut shown = None;
                let created = client
                    .create_account(&username, &password, root, |root| {
                        let phrase = root.phrase();
                        if !json {
                            if terminal {
                                eprintln!(
                                    "Your recovery phrase (write it down; it is shown only this once, and it alone can reset your password):"
                                );
                            }
                            println!("{}", *phrase);
                        }
                        shown = Some(phrase);
                    })
                    .await;
                let finished = match created {
                    Ok(mut account) => finish_login(&client, &mut account)
                        .await
                        .map(|()| account),
                    Err(e) => Err(e),
                };
                let account = match finished {
                    Ok(account) => account,
                    Err(e) => {
                        if matches!(e, AccountError::Taken(_)) {
                            pending.clear();
                        } else if let (true, Some(phrase)) = (json, &shown) {
                            // The name is claimed: the phrase must not be
                            // lost with the error.
                            eprintln!("recovery phrase: {}", **phrase);
                        }
                        return Err(e.into());
                    }
                };
                session.save(&account)?;
                pending.clear();
                move_coins_in(&client).await;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "username": account.username(),
                            "address": account.address().to_string(),
                            "recovery_phrase": shown.as_deref().map(|p| p.as_str()),
                        })
                    );
                } else {
                    eprintln!("created account {:?}; logged in", account.username());
                }
                Ok(())
            })
            .await
        }
        AccountCommand::Login {
            username,
            input,
            net,
        } => {
            let mut secrets = Secrets::new(&input)?;
            let password = secrets.ask("Password: ")?;
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let mut account = client.login(&username, &password).await?;
                finish_login(&client, &mut account).await?;
                session.save(&account)?;
                eprintln!("logged in as {:?}", account.username());
                move_coins_in(&client).await;
                Ok(())
            })
            .await
        }
        AccountCommand::Logout => {
            if session.erase()? {
                eprintln!("logged out");
            } else {
                eprintln!("not logged in");
            }
            Ok(())
        }
        AccountCommand::Status { json } => {
            let account = session.load()?;
            match (account, json) {
                (Some(a), true) => println!(
                    "{}",
                    serde_json::json!({
                        "logged_in": true,
                        "username": a.username(),
                        "address": a.address().to_string(),
                        "keys": a.known_keys(),
                    })
                ),
                (None, true) => println!("{}", serde_json::json!({ "logged_in": false })),
                (Some(a), false) => {
                    println!("logged in as {:?}", a.username());
                    println!("account record: {}", a.address());
                    println!("keys: {}", a.known_keys().join(", "));
                }
                (None, false) => println!("not logged in"),
            }
            Ok(())
        }
        AccountCommand::Password {
            username,
            input,
            net,
        } => {
            let current = session.load()?;
            let username = match (username, &current) {
                (Some(u), _) => u,
                (None, Some(a)) => a.username().to_string(),
                (None, None) => bail!("give the username, or log in first"),
            };
            let mut secrets = Secrets::new(&input)?;
            let old = secrets.ask("Current password: ")?;
            let new = secrets.new_password()?;
            let client = net.connect(network).await?;
            let replaces_session = current.is_some_and(|a| a.username() != username);
            with_client(client, |client| async move {
                let mut account = client.change_password(&username, &old, &new).await?;
                finish_login(&client, &mut account).await?;
                if replaces_session {
                    eprintln!("(still logged in as before: the session is unchanged)");
                } else {
                    session.save(&account)?;
                }
                eprintln!(
                    "password changed; logged in as {:?}. Note: this does not revoke anything: whoever knew the old password may have kept the account's root secret",
                    account.username()
                );
                Ok(())
            })
            .await
        }
        AccountCommand::Recover {
            username,
            input,
            net,
        } => {
            let mut secrets = Secrets::new(&input)?;
            let phrase = secrets.ask("Recovery phrase: ")?;
            safe_client::account::RootSecret::from_phrase(&phrase)?;
            let new = secrets.new_password()?;
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let mut account = client.recover_account(&username, &phrase, &new).await?;
                finish_login(&client, &mut account).await?;
                session.save(&account)?;
                eprintln!("new password set; logged in as {:?}", account.username());
                move_coins_in(&client).await;
                Ok(())
            })
            .await
        }
    }
}

/// After logging in: the coins of this data directory's own wallet move
/// into the account's wallet (which every machine of the account shares).
/// A failure leaves them where they are, says so, and is tried again at
/// the next login; the login stands.
async fn move_coins_in(client: &Client) {
    let home = Home::from_env();
    match safe_client::account_wallet::move_in(client, &home).await {
        Ok(0) => {}
        Ok(nanos) => eprintln!(
            "moved {} coins from this data directory's wallet into the account's wallet",
            safe_protocol::coin::format_amount(nanos)
        ),
        Err(e) => eprintln!(
            "moving this data directory's coins into the account's wallet is not finished ({e}); the next login finishes it"
        ),
    }
}

/// After a login: the account has a default key, and the session knows
/// the names of its keys.
async fn finish_login(client: &Client, account: &mut Account) -> Result<(), AccountError> {
    let mut names = client.account_keys(account).await?;
    if !names.iter().any(|n| n == DEFAULT_KEY) {
        client.add_account_key(account, DEFAULT_KEY).await?;
        names.push(DEFAULT_KEY.to_string());
        names.sort();
    }
    account.set_known_keys(names);
    Ok(())
}
