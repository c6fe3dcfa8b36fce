//! `safe wallet …`: coins to pay for storage with (issue 17,
//! `docs/DESIGN-currency.md`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use safe_client::pay::receipt;
use safe_client::wallet::Wallet;
use safe_client::{Client, Home, PutOptions};
use safe_protocol::XorName;
use safe_protocol::coin::{WalletAddress, format_amount, parse_amount};

use crate::args::{Network, Peers, with_client};

#[derive(Subcommand)]
pub(crate) enum WalletCommand {
    /// Print this data directory's wallet address (safe://w…), where
    /// others send coins. The same on every network.
    Address,
    /// How many coins the wallet holds on the network, after taking in
    /// what notices say was sent to it.
    Balance {
        /// Print JSON (address, nanos, coins, noticed_nanos: taken in
        /// from notices just now).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// Send coins to a wallet address, and leave its owner a notice (its
    /// next `safe wallet balance` takes them in); prints the receipt too
    /// (`safe wallet receive`).
    Send {
        /// The recipient's address (safe://w…, as `safe wallet address`
        /// prints it).
        #[arg(value_parser = parse_address)]
        address: Box<WalletAddress>,
        /// How many coins (e.g. 1, 0.5, 0.000000001).
        #[arg(value_parser = parse_amount)]
        amount: u64,
        /// Print JSON (receipt, nanos, notice: whether one was left,
        /// paid_nanos: what leaving it cost).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// Take in coins sent to this wallet, given the receipts the sender's
    /// `safe wallet send` printed (or `safe node earnings` lists).
    Receive {
        /// The receipts (64 hex digits each).
        #[arg(value_parser = parse_receipt, required = true, num_args = 1..)]
        receipts: Vec<XorName>,
        #[command(flatten)]
        net: Peers,
    },
    /// What the wallet received, paid and sent, oldest first.
    History {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// What storing a file would cost now, without storing or paying.
    Quote {
        /// The file.
        path: PathBuf,
        /// Print JSON (nanos, coins).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: Peers,
    },
    /// Draw 100 coins from the testnet faucet (on a testnet only).
    Faucet {
        #[command(flatten)]
        net: Peers,
    },
}

fn parse_address(text: &str) -> Result<Box<WalletAddress>, String> {
    text.trim()
        .parse()
        .map(Box::new)
        .map_err(|e: safe_protocol::coin::WalletAddressError| e.to_string())
}

fn parse_receipt(text: &str) -> Result<XorName, String> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(XorName)
        .ok_or_else(|| "a receipt is 64 hex digits, as `safe wallet send` prints it".into())
}

/// The wallet of `client`'s network; an error on a free one.
async fn wallet_of(client: &Client) -> Result<Wallet> {
    let conn = connection(client)?;
    Ok(client
        .payer()
        .open_wallet(conn)
        .await?
        .ok_or(safe_client::pay::PayError::Free)?)
}

fn connection(client: &Client) -> Result<&safe_client::Connection> {
    client
        .connection()
        .context("the wallet needs the network directly (not --anonymous)")
}

pub(crate) async fn run(command: WalletCommand, network: Network) -> Result<()> {
    match command {
        WalletCommand::Address => {
            let keys = safe_client::pay::Payer::new(Home::from_env()).keys()?;
            println!("{}", keys.address());
            Ok(())
        }
        WalletCommand::Balance { json, net } => {
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                // Coins sent while this wallet was away, first.
                let found = client.payer().read_notices(&client).await;
                let wallet = wallet_of(&client).await?;
                match &found {
                    Ok(f) if f.taken > 0 => eprintln!(
                        "took in {} coins from {} notice{}",
                        format_amount(f.nanos),
                        f.taken,
                        if f.taken == 1 { "" } else { "s" }
                    ),
                    Ok(_) => {}
                    Err(e) => eprintln!("notices not read: {e}"),
                }
                let nanos = wallet.balance();
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "address": wallet.address().to_string(),
                            "nanos": nanos,
                            "coins": format_amount(nanos),
                            "noticed_nanos": found.as_ref().map_or(0, |f| f.nanos),
                        })
                    );
                } else {
                    println!("{} coins", format_amount(nanos));
                }
                Ok(())
            })
            .await
        }
        WalletCommand::Send {
            address,
            amount,
            json,
            net,
        } => {
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let conn = connection(&client)?;
                let spend = match client.payer().send(conn, &address, amount).await {
                    Ok(spend) => spend,
                    Err(safe_client::pay::PayError::FinishedEarlier(late)) => {
                        // Those recipients are told now.
                        for l in &late {
                            if let Err(e) = client.leave_notice(&l.to, &l.receipt, l.amount).await {
                                eprintln!(
                                    "no notice could be left for {} ({e}): give them the receipt {}",
                                    l.to,
                                    l.receipt.to_hex()
                                );
                            }
                        }
                        return Err(safe_client::pay::PayError::FinishedEarlier(late).into());
                    }
                    Err(e) => return Err(e.into()),
                };
                let receipt = receipt(&spend).context("a spend has an input")?;
                // The receipt first: whatever happens next, it is out.
                if !json {
                    println!("{}", receipt.to_hex());
                }
                let noticed = client.leave_notice(&address, &receipt, amount).await;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "receipt": receipt.to_hex(),
                            "nanos": amount,
                            "notice": noticed.is_ok(),
                            // What leaving the notice (a record) cost.
                            "paid_nanos": client.payer().paid(),
                        })
                    );
                }
                match noticed {
                    Ok(_) => eprintln!(
                        "sent {} coins; the recipient's wallet finds them on its next `safe wallet balance` (or: safe wallet receive {})",
                        format_amount(amount),
                        receipt.to_hex()
                    ),
                    Err(e) => eprintln!(
                        "sent {} coins, but no notice could be left ({e}): give the recipient the receipt for `safe wallet receive {}`",
                        format_amount(amount),
                        receipt.to_hex()
                    ),
                }
                Ok(())
            })
            .await
        }
        WalletCommand::Receive { receipts, net } => {
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let conn = connection(&client)?;
                let mut got: u64 = 0;
                let mut paying = 0usize;
                let mut failed = Vec::new();
                for receipt in &receipts {
                    match client.payer().receive(conn, receipt).await {
                        Ok(n) => {
                            if n > 0 {
                                paying += 1;
                            }
                            got = got.saturating_add(n);
                        }
                        // One bad receipt does not lose what the others gave.
                        Err(e) if receipts.len() > 1 => failed.push(format!("{}: {e}", receipt.to_hex())),
                        Err(e) => return Err(e.into()),
                    }
                }
                for f in &failed {
                    eprintln!("not taken in: {f}");
                }
                let wallet = wallet_of(&client).await?;
                if got == 0 {
                    bail!(
                        "{} pays this wallet nothing new (sent elsewhere, or taken in already); the wallet holds {} coins",
                        if receipts.len() == 1 { "that spend" } else { "none of those spends" },
                        format_amount(wallet.balance())
                    );
                }
                let from = if receipts.len() == 1 {
                    String::new()
                } else {
                    format!(" from {paying} of {} receipts", receipts.len())
                };
                println!(
                    "received {} coins{from}; the wallet holds {}",
                    format_amount(got),
                    format_amount(wallet.balance())
                );
                Ok(())
            })
            .await
        }
        WalletCommand::History { json, net } => {
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let lines = wallet_of(&client).await?.history();
                if json {
                    println!("{}", serde_json::to_string(&lines)?);
                } else {
                    for l in lines {
                        let sign = if l.nanos < 0 { "-" } else { "+" };
                        let nanos = u64::try_from(l.nanos.unsigned_abs()).unwrap_or(u64::MAX);
                        println!(
                            "{}  {sign}{}  {}  (spend {})",
                            crate::show::time(i64::try_from(l.when).unwrap_or(i64::MAX)),
                            format_amount(nanos),
                            l.what,
                            l.spend
                        );
                    }
                }
                Ok(())
            })
            .await
        }
        WalletCommand::Quote { path, json, net } => {
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if !meta.is_file() {
                bail!("{} is not a file", path.display());
            }
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let nanos = client.quote_file(&path, &PutOptions::default()).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "nanos": nanos, "coins": format_amount(nanos) })
                    );
                } else {
                    println!("{} coins", format_amount(nanos));
                }
                Ok(())
            })
            .await
        }
        WalletCommand::Faucet { net } => {
            let client = net.connect(network).await?;
            with_client(client, |client| async move {
                let conn = connection(&client)?;
                let (wallet, got) = client.payer().draw(conn).await?;
                println!(
                    "drew {} coins from the testnet faucet; the wallet holds {}",
                    format_amount(got),
                    format_amount(wallet.balance())
                );
                Ok(())
            })
            .await
        }
    }
}
