//! A load generator (issue 15): many clients at once, each with its own
//! connection, doing a mix of small and large file puts, file gets and
//! record updates for a set time; every get is checked against what was
//! put. Used by `scripts/load.sh` (100 clients, 5 minutes, node processes)
//! through the `load` example, and by a short test in CI.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use safe_client::{Address, Client, Connection, NewRecord, SigningKey};
use safe_network::libp2p::Multiaddr;

use crate::{K, Rng, bytes_for};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Clients at once, each with its own connection.
    pub clients: usize,
    /// How long they run.
    pub duration: Duration,
    /// How far above 1 MiB a large put may go, in bytes (small puts are
    /// up to 64 KiB).
    pub large_max: usize,
    /// When set, puts draw their contents from a fixed pool of this many
    /// small files (and a twentieth as many large ones), so once the pool
    /// is stored every put is a re-put and the nodes' stores stop growing:
    /// a long run then shows whether memory follows load or stored data.
    pub distinct: Option<u64>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            clients: 100,
            duration: Duration::from_secs(300),
            large_max: 2 << 20,
            distinct: None,
        }
    }
}

/// The operations timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A put of up to 64 KiB.
    SmallPut,
    /// A put of 1 MiB to 1 MiB + [`LoadConfig::large_max`].
    LargePut,
    /// A get of a file some client put (checked byte for byte).
    Get,
    /// A record update (an entry set; read, signed, written to the group).
    RecordUpdate,
}

const OPS: [Op; 4] = [Op::SmallPut, Op::LargePut, Op::Get, Op::RecordUpdate];

/// Latencies and failures of one kind of operation.
#[derive(Clone, Debug, Default)]
pub struct OpReport {
    /// Successful operations.
    pub ok: usize,
    /// Failed operations (an error, or a get that read back wrong bytes).
    pub failed: usize,
    /// Median latency of the successful ones.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Per operation, in the order of [`Op`]'s variants.
    pub ops: Vec<(Op, OpReport)>,
    /// Bytes put.
    pub bytes_put: u64,
    /// The first few failures, for the log.
    pub errors: Vec<String>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Failed operations of every kind.
    pub fn failures(&self) -> usize {
        self.ops.iter().map(|(_, r)| r.failed).sum()
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        for (op, r) in &self.ops {
            writeln!(
                f,
                "{:<13} {:>7} ok {:>4} failed   p50 {:>8.1} ms   p99 {:>8.1} ms   max {:>8.1} ms",
                format!("{op:?}"),
                r.ok,
                r.failed,
                ms(r.p50),
                ms(r.p99),
                ms(r.max)
            )?;
        }
        write!(
            f,
            "{} MB put in {:.0} s; {} failures",
            self.bytes_put / 1_000_000,
            self.elapsed.as_secs_f64(),
            self.failures()
        )
    }
}

/// Kept by each run: files put (for gets), samples and errors.
#[derive(Default)]
struct Shared {
    files: Vec<(Address, u64, usize)>,
    samples: Vec<(Op, Option<Duration>)>,
    bytes_put: u64,
    errors: Vec<String>,
}

/// Most files remembered for gets (the newest replace the oldest).
const MAX_FILES: usize = 10_000;
/// Most errors kept for the report.
const MAX_ERRORS: usize = 20;

impl Shared {
    fn note(&mut self, op: Op, took: Result<Duration, String>) {
        match took {
            Ok(d) => self.samples.push((op, Some(d))),
            Err(e) => {
                self.samples.push((op, None));
                if self.errors.len() < MAX_ERRORS {
                    self.errors.push(format!("{op:?}: {e}"));
                }
            }
        }
    }
}

async fn one_client(id: usize, client: Client, shared: Arc<Mutex<Shared>>, config: LoadConfig) {
    let deadline = Instant::now() + config.duration;
    let mut rng = Rng(id as u64 + 1);
    let key = SigningKey::from_bytes(&{
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(id as u64 + 1).to_le_bytes());
        k[8] = 0x10;
        k
    });
    let new = NewRecord::named(format!("load {id} {}", std::process::id()));
    let record = new.address();
    let created = client.create_record(new, &key).await;
    let mut serial = 0u64;
    while Instant::now() < deadline {
        serial += 1;
        let roll = rng.below(100);
        let op = match roll {
            0..40 => Op::SmallPut,
            40..42 => Op::LargePut,
            42..80 => Op::Get,
            _ => Op::RecordUpdate,
        };
        let start = Instant::now();
        let result: Result<(), String> = match op {
            Op::SmallPut | Op::LargePut => {
                let large = op == Op::LargePut;
                let seed = match config.distinct {
                    // Pool contents: the seed alone fixes the bytes and length.
                    Some(n) if large => 1 << 62 | rng.below((n / 20).max(1)),
                    Some(n) => 1 << 61 | rng.below(n),
                    None => (id as u64) << 40 | serial,
                };
                let mut sizes = Rng(seed);
                let len = if large {
                    (1 << 20) + sizes.index(config.large_max.max(1 << 20))
                } else {
                    1 + sizes.index(64 << 10)
                };
                match client.put_bytes(bytes_for(seed, len)).await {
                    Ok(report) => {
                        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                        s.bytes_put += len as u64;
                        if s.files.len() >= MAX_FILES {
                            let i = rng.index(s.files.len());
                            s.files.swap_remove(i);
                        }
                        s.files.push((report.address, seed, len));
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Op::Get => {
                let pick = {
                    let s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    (!s.files.is_empty()).then(|| s.files[rng.index(s.files.len())])
                };
                let Some((address, seed, len)) = pick else {
                    continue;
                };
                match client.get_bytes(&address, 1 << 30).await {
                    Ok(bytes) if bytes == bytes_for(seed, len) => Ok(()),
                    Ok(_) => Err(format!("{address} read back wrong bytes")),
                    Err(e) => Err(e.to_string()),
                }
            }
            Op::RecordUpdate => {
                if let Err(e) = &created {
                    Err(format!("the client's record was not created: {e}"))
                } else {
                    client
                        .set_entry(record, "n", serial.to_string(), std::slice::from_ref(&key))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            }
        };
        let took = result.map(|()| start.elapsed());
        shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note(op, took);
    }
}

/// Runs `config.clients` clients of the network reached through
/// `contacts` for `config.duration`.
pub async fn run(contacts: &[Multiaddr], config: &LoadConfig) -> LoadReport {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut clients = Vec::with_capacity(config.clients);
    for _ in 0..config.clients {
        let c = Connection::connect_to(contacts, K)
            .await
            .expect("a load client connects");
        clients.push(Client::from(c));
    }
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(id, c)| tokio::spawn(one_client(id, c, shared.clone(), config.clone())))
        .collect();
    for t in tasks {
        t.await.expect("a load client task");
    }
    let elapsed = start.elapsed();
    let s = std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner()));
    let ops = OPS
        .iter()
        .map(|&op| {
            let mut ok: Vec<Duration> = s
                .samples
                .iter()
                .filter(|(o, _)| *o == op)
                .filter_map(|(_, d)| *d)
                .collect();
            let failed = s
                .samples
                .iter()
                .filter(|(o, d)| *o == op && d.is_none())
                .count();
            ok.sort();
            let at = |q: usize| ok.get((ok.len() * q / 100).min(ok.len().saturating_sub(1)));
            let report = OpReport {
                ok: ok.len(),
                failed,
                p50: at(50).copied().unwrap_or_default(),
                p99: at(99).copied().unwrap_or_default(),
                max: ok.last().copied().unwrap_or_default(),
            };
            (op, report)
        })
        .collect();
    LoadReport {
        ops,
        bytes_put: s.bytes_put,
        errors: s.errors,
        elapsed,
    }
}
