//! `safe msg …`: private messages between accounts
//! (docs/DESIGN-messaging.md).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use safe_client::Home;
use safe_client::msg::{Body, MAX_MESSAGE, Message, MsgKeys, Sender};
use safe_client::output::OutputFile;

use crate::args::{Network, Peers, with_client};
use crate::keys::Signers;
use crate::show;

const NOT_PRIVATE: &str = "\
Messages are sealed to the recipient (HPKE) and signed by the sender inside
the seal: only the recipient can read them, and only the recipient learns
who wrote them. What this does not hide: the recipient's inbox is public,
so anyone sees how many envelopes arrive, when, and their size in 1 KiB
steps; the nodes that keep an inbox see the IP address of whoever appends
to it or reads it; there is no forward secrecy (whoever learns your
account's secret can open every message ever sent to you) and no
deniability (a letter's signature proves to anyone that its sender wrote it).";

#[derive(Subcommand)]
pub(crate) enum MsgCommand {
    /// Make (or update) your inbox and profile; with --name, point a name
    /// you own at your profile so others can write to NAME.
    Setup {
        /// A public name you own: its `profile` service will point at your
        /// profile (safe://profile.NAME).
        #[arg(long)]
        name: Option<String>,
        /// Proof of work (leading zero bits, 16 to 28) a sender must do per
        /// message; each bit doubles a sender's cost. Default 18 (well under
        /// a second on a laptop).
        #[arg(long, value_name = "BITS")]
        work: Option<u8>,
        #[command(flatten)]
        signers: Signers,
        #[command(flatten)]
        net: Peers,
    },
    /// Send a message to a public name or a profile address (safe://m…).
    Send {
        /// The recipient: a public name (its `profile` service) or a
        /// profile address.
        to: String,
        /// The message text (or use --file).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        message: Option<String>,
        /// Send this file's contents instead (`-`: standard input). Up to
        /// 64 MiB; over 3 KiB it is stored as a private self-encrypted file
        /// only the recipient can open.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// A public name of yours to show as the sender (it must point at
        /// your profile, or the recipient sees it as unverified).
        #[arg(long, value_name = "NAME")]
        from_name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// The messages in your inbox, oldest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// Print a message (its id, or the start of it), checking its sender.
    Read {
        /// The message id (or its first characters).
        id: String,
        /// Write the body to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print JSON (body as text, if it is UTF-8).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// Delete a message (or an unreadable append) from your inbox.
    Delete {
        /// The id (or its first characters) as `safe msg list` shows it.
        #[arg(required_unless_present = "unreadable")]
        id: Option<String>,
        /// Delete every append that is not a message you can read.
        #[arg(long, conflicts_with = "id")]
        unreadable: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// Block a sender: their messages are deleted unread from now on. WHO
    /// is the id of a message they sent (blocks the key that signed it),
    /// their key (64 hex digits), a public name or a profile address.
    Block {
        /// The sender.
        who: String,
        #[command(flatten)]
        net: Peers,
    },
    /// Unblock a sender blocked before.
    Unblock {
        /// The sender.
        who: String,
        #[command(flatten)]
        net: Peers,
    },
}

/// The long help of `safe msg`: what is and is not private.
pub(crate) fn about() -> &'static str {
    NOT_PRIVATE
}

fn sender_text(m: &Message) -> String {
    let profile = show::record_address(m.letter.from);
    // The key that signed it is the one fact a sender cannot choose; the
    // name and profile are claims until checked. (Names are checked to be
    // plain labels when the letter is opened; shown escaped regardless.)
    let key = &hex::encode(m.letter.sign)[..16];
    let who = match &m.letter.from_name {
        Some(n) => format!("{} ({profile}, key {key}…)", show::text(n.as_bytes())),
        None => format!("{profile} (key {key}…)"),
    };
    match &m.sender {
        Sender::Verified => format!("{who}, verified"),
        Sender::Unchecked => format!("{who}, not checked yet"),
        Sender::Unverified(why) => format!("{who}, UNVERIFIED: {why}"),
    }
}

fn preview(m: &Message) -> String {
    match &m.letter.body {
        Body::Inline(b) => {
            let t = show::text(b);
            let line = t.lines().next().unwrap_or("");
            let mut cut: String = line.chars().take(40).collect();
            if cut.len() < line.len() || t.lines().count() > 1 {
                cut.push('…');
            }
            cut
        }
        Body::File { .. } => "(attached as a file: `safe msg read` fetches it)".into(),
    }
}

fn message_json(m: &Message) -> serde_json::Value {
    let (verified, why) = match &m.sender {
        Sender::Verified => (Some(true), None),
        Sender::Unchecked => (None, None),
        Sender::Unverified(w) => (Some(false), Some(w.clone())),
    };
    serde_json::json!({
        "id": m.id,
        "time": m.letter.time,
        "from_profile": show::record_address(m.letter.from),
        "from_name": m.letter.from_name,
        "from_key": hex::encode(m.letter.sign),
        "verified": verified,
        "unverified_because": why,
        "size": m.size,
        "as_file": matches!(m.letter.body, Body::File { .. }),
    })
}

fn read_body(message: Option<String>, file: Option<PathBuf>) -> Result<Vec<u8>> {
    if let Some(m) = message {
        return Ok(m.into_bytes());
    }
    let Some(path) = file else {
        bail!("give a message or --file FILE");
    };
    let mut out = Vec::new();
    let limit = MAX_MESSAGE + 1;
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut out)
            .context("reading standard input")?;
    } else {
        std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?
            .take(limit)
            .read_to_end(&mut out)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    if out.len() as u64 > MAX_MESSAGE {
        bail!("a message is at most {MAX_MESSAGE} bytes (64 MiB)");
    }
    Ok(out)
}

pub(crate) async fn run(command: MsgCommand, network: Network) -> Result<()> {
    let home = Home::from_env();
    let account = home
        .session()
        .load()?
        .context("messages belong to an account: log in first (`safe account login`)")?;
    match command {
        MsgCommand::Setup {
            name,
            work,
            signers,
            net,
        } => {
            let key = match &name {
                Some(n) => {
                    safe_protocol::name::check_label(n)?;
                    Some(signers.first()?)
                }
                None => None,
            };
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let (address, profile) = client.msg_setup(&account, work).await?;
                if let (Some(n), Some(key)) = (&name, &key) {
                    client.msg_link_name(&account, n, key).await?;
                    eprintln!("safe://profile.{n} now points at your profile");
                }
                println!("{}", show::record_address(address));
                eprintln!(
                    "inbox {} (senders do {} bits of work per message); others write to you with `safe msg send {} …`",
                    show::record_address(profile.inbox),
                    profile.work,
                    name.as_deref().unwrap_or("<this address>")
                );
                Ok(())
            })
            .await
        }
        MsgCommand::Send {
            to,
            message,
            file,
            from_name,
            json,
            net,
        } => {
            let body = read_body(message, file)?;
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let sent = client.msg_send(&account, &to, body, from_name).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": sent.id,
                            "to_profile": show::record_address(sent.to),
                            "inbox": show::record_address(sent.inbox),
                            "size": sent.size,
                            "as_file": sent.as_file,
                            "work_bits": sent.work,
                        })
                    );
                } else {
                    println!("{}", sent.id);
                    eprintln!(
                        "sent {} bytes to {to}{}",
                        sent.size,
                        if sent.as_file {
                            " (as a private file)"
                        } else {
                            ""
                        }
                    );
                }
                Ok(())
            })
            .await
        }
        MsgCommand::List { json, net } => {
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let view = client.msg_list(&account).await?;
                if json {
                    let messages: Vec<_> = view.messages.iter().map(message_json).collect();
                    let unreadable: Vec<_> = view
                        .unreadable
                        .iter()
                        .map(|u| serde_json::json!({"id": u.id, "reason": u.reason}))
                        .collect();
                    println!(
                        "{}",
                        serde_json::json!({
                            "inbox": show::record_address(view.inbox),
                            "messages": messages,
                            "unreadable": unreadable,
                            "removed_blocked": view.removed_blocked,
                            "warnings": view.warnings,
                        })
                    );
                    return Ok(());
                }
                if view.messages.is_empty() {
                    eprintln!("no messages");
                }
                for m in &view.messages {
                    let time = i64::try_from(m.letter.time).unwrap_or(i64::MAX);
                    println!(
                        "{}  {}  {:>8} B  {}",
                        &m.id[..12],
                        show::time(time),
                        m.size,
                        preview(m)
                    );
                    println!("    from {}", sender_text(m));
                }
                for u in &view.unreadable {
                    println!("{}  unreadable: {}", &u.id[..12], u.reason);
                }
                for w in &view.warnings {
                    eprintln!("warning: {w}");
                }
                if view.removed_blocked > 0 {
                    eprintln!(
                        "deleted {} message(s) from blocked senders",
                        view.removed_blocked
                    );
                }
                Ok(())
            })
            .await
        }
        MsgCommand::Read { id, out, json, net } => {
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let (m, body) = client.msg_read(&account, &id).await?;
                if json {
                    let mut v = message_json(&m);
                    v["body"] = match std::str::from_utf8(&body) {
                        Ok(t) => serde_json::Value::String(t.into()),
                        Err(_) => serde_json::Value::Null,
                    };
                    println!("{v}");
                } else {
                    let time = i64::try_from(m.letter.time).unwrap_or(i64::MAX);
                    eprintln!("from {}", sender_text(&m));
                    eprintln!("sent {}  id {}", show::time(time), m.id);
                    match out {
                        Some(path) => {
                            // Written whole, or not at all.
                            let mut file = OutputFile::create(&path)?;
                            file.writer()
                                .write_all(&body)
                                .with_context(|| format!("cannot write {}", path.display()))?;
                            file.finish()?;
                            eprintln!("wrote {} bytes to {}", body.len(), path.display());
                        }
                        None => {
                            use std::io::Write;
                            std::io::stdout().write_all(&body)?;
                        }
                    }
                }
                Ok(())
            })
            .await
        }
        MsgCommand::Delete {
            id,
            unreadable,
            net,
        } => {
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                if unreadable {
                    let n = client.msg_delete_unreadable(&account).await?;
                    eprintln!("deleted {n} unreadable append(s)");
                } else {
                    let id = id.unwrap_or_default();
                    let full = client.msg_delete(&account, &id).await?;
                    eprintln!("deleted {full}");
                }
                Ok(())
            })
            .await
        }
        MsgCommand::Block { who, net } | MsgCommand::Unblock { who, net }
            if who.trim().is_empty() =>
        {
            drop(net);
            bail!("say whom: a sender key, a public name or a profile address")
        }
        MsgCommand::Block { who, net } => {
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let key = client.msg_block(&account, &who, false).await?;
                if key == hex::encode(MsgKeys::of(&account).sign_key()) {
                    eprintln!("note: that is your own key");
                }
                eprintln!("blocked {key}");
                Ok(())
            })
            .await
        }
        MsgCommand::Unblock { who, net } => {
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let key = client.msg_block(&account, &who, true).await?;
                eprintln!("unblocked {key}");
                Ok(())
            })
            .await
        }
    }
}
