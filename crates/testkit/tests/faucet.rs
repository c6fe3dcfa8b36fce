//! The testnet faucet on an in-process network of real nodes on
//! 127.0.0.1 (issue 17, `docs/DESIGN-currency.md`, "Testnets"): drawers
//! racing for the faucet's coin each get their drip, one after another,
//! and nothing is created or lost on the way.

use safe_client::faucet::{DRIP, testnet_genesis};
use safe_client::pay::Coin;
use safe_protocol::coin::{GENESIS_AMOUNT, WalletKeys};
use safe_testkit::{client, start, testnet_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_drawers_each_get_their_drip_and_the_faucet_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = testnet_config(dir.path(), 12);
    config.node.genesis = Some(testnet_genesis());
    let net = start(config).await;
    let c = client(&net).await;
    let wallets: Vec<WalletKeys> = (1..=3u8)
        .map(|i| WalletKeys::from_secret(&[i; 32]))
        .collect();

    // Three at once: every one is paid, by a different spend.
    let addresses: Vec<_> = wallets.iter().map(|w| w.address()).collect();
    let draws =
        futures::future::join_all(addresses.iter().map(|a| c.draw_from_faucet(a, None))).await;
    let mut hashes = Vec::new();
    for (w, draw) in wallets.iter().zip(draws) {
        let spend = draw.expect("drawn");
        let coins = Coin::found(&spend, w);
        assert_eq!(coins.len(), 1);
        assert_eq!(coins[0].amount(), DRIP);
        hashes.push(spend.spend.spend.hash());
    }
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 3, "three draws, three spends");

    // A fourth draw walking from the start, a fifth from the fourth: the
    // faucet keeps exactly what was not drawn.
    let fourth = c
        .draw_from_faucet(&wallets[0].address(), None)
        .await
        .expect("drawn a fourth time");
    let fifth = c
        .draw_from_faucet(&wallets[1].address(), Some(&fourth))
        .await
        .expect("drawn a fifth time");
    let kept: u64 = fifth
        .spend
        .spend
        .outputs
        .iter()
        .map(|o| o.amount)
        .sum::<u64>()
        - DRIP;
    assert_eq!(kept, GENESIS_AMOUNT - 5 * DRIP);
    c.shutdown().await;
    net.down().await;
}
