//! `safe gateway` and `safe open`: the network in an ordinary browser.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use safe_client::Home;
use safe_gateway::grants::{
    Grant, Grants, MAX_GRANT_WRITES, SITE_BYTES_PER_DAY, SITE_WRITES_PER_DAY, check_site,
};
use safe_gateway::{Gateway, Options};

use crate::args::{Network, Peers};
use crate::show;

/// `safe gateway`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct GatewayArgs {
    #[command(subcommand)]
    command: Option<GrantCommand>,
    /// Where to listen (loopback by default: the sites are served to this
    /// machine only).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// MiB of verified chunks kept in memory, so repeat visits are served
    /// without asking the network.
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u64).range(0..=4096))]
    cache_mib: u64,
    /// Serve other hosts, read-only: no account is used, apps cannot
    /// write, and each client gets a limited request rate. Give --listen
    /// 0.0.0.0:PORT (or an address of this machine) to be reachable.
    #[arg(long)]
    public: bool,
    /// Also serve sites as subdomains of DOMAIN (<service>.<name>.DOMAIN),
    /// for a public gateway with its own wildcard DNS name.
    #[arg(long, value_name = "DOMAIN")]
    domain: Vec<String>,
    #[command(flatten)]
    net: Peers,
}

/// `safe open`.
#[derive(clap::Args)]
pub(crate) struct OpenArgs {
    /// A safe:// URL (a name or an address, with a path).
    url: String,
    /// The gateway's port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

/// What sites may do: `safe gateway grant|revoke|grants`.
#[derive(clap::Subcommand)]
pub(crate) enum GrantCommand {
    /// Let a site do more than its daily quota, or sign with one of your
    /// keys (the gateway's consent page does the same).
    Grant {
        /// The site: www.name, service.name, or a safe://d… address.
        site: String,
        /// Writes a day allowed on top of the default quota.
        #[arg(long, default_value_t = 0)]
        writes: u64,
        /// MiB a day allowed on top of the default quota.
        #[arg(long, default_value_t = 0)]
        mib: u64,
        /// One of your named keys the site may sign with (repeatable).
        #[arg(long = "key", value_name = "NAME")]
        keys: Vec<String>,
    },
    /// Take back everything granted to a site.
    Revoke {
        /// The site.
        site: String,
    },
    /// List what each site was granted.
    Grants,
}

fn grants_command(command: GrantCommand) -> Result<()> {
    let home = Home::from_env();
    let grants = Grants::in_dir(home.dir());
    match command {
        GrantCommand::Grant {
            site,
            writes,
            mib,
            keys,
        } => {
            let site = check_site(&site)?;
            for k in &keys {
                safe_client::keys::check_key_name(k)?;
            }
            if !keys.is_empty() {
                // A grant of a key the account lacks would come into force,
                // unseen, when a key of that name is made.
                let account = home.session().load()?.ok_or_else(|| {
                    anyhow::anyhow!("log in first: keys are granted from your account")
                })?;
                if let Some(k) = keys.iter().find(|k| !account.known_keys().contains(k)) {
                    anyhow::bail!("your account has no key {k:?} (see `safe keys list`)");
                }
            }
            if writes == 0 && mib == 0 && keys.is_empty() {
                anyhow::bail!("nothing to grant: give --writes N, --mib N or --key NAME");
            }
            let more = Grant {
                extra_writes: writes.min(MAX_GRANT_WRITES),
                extra_bytes: mib.min(1 << 20) << 20,
                keys,
            };
            let now = grants.grant(&site, &more)?;
            println!("{site}: {}", describe(&now));
        }
        GrantCommand::Revoke { site } => {
            let site = check_site(&site)?;
            if grants.revoke(&site)? {
                println!("{site}: revoked; it has its own key and the daily quota only");
            } else {
                println!("{site} had no grant");
            }
        }
        GrantCommand::Grants => {
            let all = grants.all()?;
            if all.is_empty() {
                println!(
                    "no grants: every site has its own key and {} writes, {} KiB a day",
                    SITE_WRITES_PER_DAY,
                    SITE_BYTES_PER_DAY >> 10
                );
            }
            for (site, g) in all {
                println!("{site}: {}", describe(&g));
            }
        }
    }
    Ok(())
}

fn describe(g: &Grant) -> String {
    format!(
        "{} extra writes and {} extra MiB a day; keys: {}",
        g.extra_writes,
        g.extra_bytes >> 20,
        if g.keys.is_empty() {
            "its own only".to_string()
        } else {
            g.keys.join(", ")
        }
    )
}

pub(crate) async fn gateway(args: GatewayArgs, network: Network) -> Result<()> {
    if let Some(command) = args.command {
        return grants_command(command);
    }
    if !args.public && !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "{} is not a loopback address: a gateway that other hosts can reach must be --public (read-only)",
            args.listen
        );
    }
    let client = args.net.connect(network).await?;
    let mut options = Options::new(args.listen);
    options.chunk_cache_bytes = args.cache_mib << 20;
    options.public = args.public;
    let public = args.public;
    options.domains = args.domain;
    let gw = Gateway::start(client.clone(), options)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "gateway {} (sites at http://<name>.localhost:{}/{}; Ctrl-C stops it)",
        gw.url(),
        gw.addr().port(),
        if public { ", public and read-only" } else { "" }
    );
    let _ = tokio::signal::ctrl_c().await;
    gw.stop().await;
    client.shutdown().await;
    eprintln!("gateway stopped");
    Ok(())
}

/// Prints the gateway URL of a `safe://` URL, and opens it with the
/// desktop's opener when there is one.
pub(crate) fn open(args: OpenArgs) -> Result<()> {
    let url = show::parse_url(&args.url)?;
    let http = safe_gateway::url_of(&url, args.port);
    println!("{http}");
    if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        let _ = std::process::Command::new("xdg-open")
            .arg(&http)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    Ok(())
}
