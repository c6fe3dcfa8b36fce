//! `safe`: the command-line face of the network.
//!
//! This crate only parses arguments and prints: everything else goes
//! through [`safe_client::Client`] (or, for `node` and `testnet`,
//! [`safe_node`]). Each command group has a module of its own.
//!
//! Errors print as one line on stderr (`error: …`) and exit with status 1;
//! status 2 is a usage error, status 3 means the write was already done
//! (a repeated create or a replayed operation).

use std::io::IsTerminal;

use anyhow::Result;
use clap::{Parser, Subcommand};
use safe_client::MutableError;

mod account;
mod arenas;
mod args;
mod files;
mod fs;
mod gateway;
mod keys;
mod msg;
mod mutable;
mod names;
mod node;
mod show;
mod wallet;

/// Exit status of a write that was already done (see the crate docs).
const EXIT_ALREADY_DONE: i32 = 3;

const ENVIRONMENT: &str = "\
Environment:
  SAFE_HOME    data directory (keys, contacts, default testnet); default
               $XDG_DATA_HOME/safe or ~/.local/share/safe
  SAFE_PEERS   comma-separated peers to bootstrap from, when --peer is not given
  SAFE_LOG     log filter, e.g. debug or safe_node=debug (default: warn)
  SAFE_MIN_NODE_AGE
               seconds a node must have been in its close group's routing
               tables before its receipts and \"not found\" answers count
               toward a majority (default 0: off)
  SAFE_ANONYMOUS
               1: go through 3-hop relay circuits, as --anonymous
               (everything but logging in, which is refused; never
               done directly instead)";

#[derive(Parser)]
#[command(
    name = "safe",
    version,
    about = "SAFE network: store and fetch self-encrypted data",
    after_help = ENVIRONMENT
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    network: args::Network,
}

#[derive(Subcommand)]
enum Command {
    /// Self-encrypt a file (or standard input) into chunks, or a directory
    /// into a snapshot, and print its safe:// address.
    Put(files::PutArgs),
    /// Fetch a file (or part of it), a directory snapshot, or show a
    /// record, by its safe:// address.
    Get(files::GetArgs),
    /// List a directory snapshot (safe://d…[/path]).
    Ls(files::LsArgs),
    /// Run a node.
    Node {
        #[command(subcommand)]
        command: node::NodeCommand,
    },
    /// A local network for trying things out.
    Testnet {
        #[command(subcommand)]
        command: node::TestnetCommand,
    },
    /// Your account: log in from anywhere with a username and password.
    Account {
        #[command(subcommand)]
        command: account::AccountCommand,
    },
    /// Public names: safe://[service.]name points at your data.
    Name {
        #[command(subcommand)]
        command: names::NameCommand,
    },
    /// Publish a directory as a website under a name (registered if free).
    Publish(names::PublishArgs),
    /// Serve the network to an ordinary browser: http://<name>.localhost:PORT/.
    Gateway(gateway::GatewayArgs),
    /// Print (and open) the gateway URL of a safe:// URL.
    Open(gateway::OpenArgs),
    /// Your own filesystem (private, versioned), after `safe account login`.
    Fs {
        #[command(subcommand)]
        command: fs::FsCommand,
    },
    /// Your signing keys (for owning mutable data; kept in your account
    /// while you are logged in).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Mutable records: owned, signed, versioned data at a name you claim.
    Mutable {
        #[command(subcommand)]
        command: mutable::MutableCommand,
    },
    /// Coins: your wallet's address and balance, sending, receiving and
    /// pricing (where the network charges for storage).
    Wallet {
        #[command(subcommand)]
        command: wallet::WalletCommand,
    },
    /// Private messages: send to a public name, read your inbox (after
    /// `safe account login`).
    #[command(after_long_help = msg::about())]
    Msg {
        #[command(subcommand)]
        command: msg::MsgCommand,
    },
}

async fn run(cli: Cli) -> Result<()> {
    let network = cli.network;
    match cli.command {
        Command::Put(args) => interruptible(files::put(args, network)).await,
        Command::Get(args) => interruptible(files::get(args, network)).await,
        Command::Ls(args) => interruptible(files::ls(args, network)).await,
        Command::Node { command } => node::node(command, network).await,
        Command::Testnet { command } => node::testnet(command, network).await,
        Command::Account { command } => {
            interruptible_with(
                account::run(command, network),
                "interrupted; run the same command again to finish it",
            )
            .await
        }
        Command::Keys { command } => interruptible(keys::run(command, network)).await,
        Command::Fs { command } => interruptible(fs::run(command, network)).await,
        Command::Name { command } => interruptible(names::run(command, network)).await,
        Command::Publish(args) => interruptible(names::publish(args, network)).await,
        Command::Gateway(args) => gateway::gateway(args, network).await,
        Command::Open(args) => gateway::open(args),
        Command::Mutable { command } => interruptible(mutable::run(command, network)).await,
        Command::Msg { command } => interruptible(msg::run(command, network)).await,
        Command::Wallet { command } => interruptible(wallet::run(command, network)).await,
    }
}

/// Runs a client command until it ends or Ctrl-C comes. On Ctrl-C the
/// command is dropped, so what it was writing (a temporary file or
/// directory beside the output) is removed, and the program exits with
/// status 130, as a shell reports an interrupted command.
async fn interruptible(command: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    interruptible_with(command, "interrupted: nothing was left half-written").await
}

/// [`interruptible`], saying `message` when interrupted.
async fn interruptible_with(
    command: impl std::future::Future<Output = Result<()>>,
    message: &str,
) -> Result<()> {
    tokio::select! {
        result = command => return result,
        _ = tokio::signal::ctrl_c() => {}
    }
    // The command's future is dropped by now, and with it its temporary
    // files.
    eprintln!("{message}");
    std::process::exit(130);
}

fn main() {
    let cli = Cli::parse();
    let stderr = std::io::stderr();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(stderr.is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SAFE_LOG")
                // Kademlia warns when a lone first node has no one to
                // bootstrap from; that is normal, not a warning to users.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,libp2p_kad=error")),
        )
        .init();
    if matches!(
        cli.command,
        Command::Node {
            command: node::NodeCommand::Run { .. }
        }
    ) {
        arenas::limit_for_nodes();
    }
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
        eprintln!("error: {}", one_line(&e));
        std::process::exit(exit_status(&e));
    }
}

/// 3 for a write that was already done, else 1.
fn exit_status(e: &anyhow::Error) -> i32 {
    let done = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<MutableError>(),
            Some(MutableError::AlreadyCreated { .. } | MutableError::AlreadyApplied { .. })
        )
    });
    if done { EXIT_ALREADY_DONE } else { 1 }
}

/// The error and its causes on one line, skipping a cause whose text an
/// outer error already includes.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // Some libp2p errors print as ": cause" around an empty message.
        let text = text.trim().trim_start_matches(':').trim_start();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn causes_are_not_repeated() {
        let e = anyhow::Error::new(std::io::Error::other("disk on fire"))
            .context("writing x: disk on fire");
        assert_eq!(one_line(&e), "writing x: disk on fire");
        let e = anyhow::Error::new(std::io::Error::other("inner")).context("outer");
        assert_eq!(one_line(&e), "outer: inner");
        let e = anyhow::Error::new(std::io::Error::other("")).context("outer");
        assert_eq!(one_line(&e), "outer");
        let e = anyhow::Error::new(std::io::Error::other(": refused")).context("outer");
        assert_eq!(one_line(&e), "outer: refused");
    }
}
