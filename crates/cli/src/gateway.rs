//! `safe gateway` and `safe open`: the network in an ordinary browser.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use safe_gateway::{Gateway, Options};

use crate::args::{Network, Peers};
use crate::show;

/// `safe gateway`.
#[derive(clap::Args)]
pub(crate) struct GatewayArgs {
    /// Where to listen (loopback by default: the sites are served to this
    /// machine only).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// MiB of verified chunks kept in memory, so repeat visits are served
    /// without asking the network.
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u64).range(0..=4096))]
    cache_mib: u64,
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

pub(crate) async fn gateway(args: GatewayArgs, network: Network) -> Result<()> {
    let client = args.net.connect(network).await?;
    let mut options = Options::new(args.listen);
    options.chunk_cache_bytes = args.cache_mib << 20;
    let gw = Gateway::start(client.clone(), options)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "gateway {} (sites at http://<name>.localhost:{}/; Ctrl-C stops it)",
        gw.url(),
        gw.addr().port()
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
