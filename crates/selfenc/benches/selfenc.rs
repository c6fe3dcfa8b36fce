//! Self-encryption throughput on incompressible and text-like data.
//!
//! `cargo bench -p safe-selfenc` — results are recorded in docs/BENCHMARKS.md.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use safe_protocol::{Chunk, XorName};
use safe_selfenc::{Config, FetchError, decrypt_range, encrypt_bytes};

const SIZE: usize = 64 * 1024 * 1024;

fn random(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Service log lines: timestamps, levels, a few message templates with
/// numbers and ids. Compresses about 5:1 with zstd level 1, like typical logs,
/// JSON or generated HTML.
fn logs(len: usize) -> Vec<u8> {
    const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
    const MESSAGES: &[&str] = &[
        "stored chunk",
        "served chunk to peer",
        "replicated record to close group member",
        "peer joined routing table",
        "request timed out, retrying with next member",
        "GET /index.html 200",
    ];
    let mut x = 0x1234_5678_9ABC_DEF1u64;
    let mut t = 1_764_000_000_000u64;
    let mut out = Vec::with_capacity(len + 256);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t += x % 50;
        let line = format!(
            "{t} {} node{} {} name={:016x} bytes={}\n",
            LEVELS[(x % 6) as usize],
            x % 10,
            MESSAGES[((x >> 8) % 6) as usize],
            x >> 3,
            (x >> 20) % 1_048_576
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

/// Words drawn uniformly from a small vocabulary: about 4:1 with zstd level 1
/// but slow to compress (many short matches); a worst case for prose.
fn words(len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "network",
        "of",
        "and",
        "data",
        "to",
        "a",
        "is",
        "node",
        "chunk",
        "in",
        "that",
        "safe",
        "store",
        "for",
        "with",
        "file",
        "it",
        "as",
        "on",
        "be",
        "by",
        "client",
        "this",
        "are",
        "owner",
        "from",
        "or",
        "encrypted",
        "an",
        "<div class=\"item\">",
        "</div>\n",
        "address",
        "which",
        "key",
        "can",
        "version",
        "record",
        "not",
        "all",
        "will",
        "replica",
        "close",
        "group",
        "hash",
        "name",
        "public",
        "private",
        "self-encryption",
        "map",
        ".\n",
    ];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("selfenc");
    g.sample_size(10);
    let mut inputs = vec![
        ("random".to_string(), random(SIZE)),
        ("logs".to_string(), logs(SIZE)),
        ("words".to_string(), words(SIZE)),
    ];
    // SAFE_BENCH_TEXT=FILE adds a real corpus (its first 64 MiB).
    if let Ok(path) = std::env::var("SAFE_BENCH_TEXT") {
        let mut corpus = std::fs::read(&path).expect("read SAFE_BENCH_TEXT");
        corpus.truncate(SIZE);
        inputs.push(("corpus".to_string(), corpus));
    }
    for (label, data) in inputs {
        let config = Config::default();
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(format!("encrypt_{label}"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                let mut sink = |c: Chunk| {
                    n += c.len();
                    Ok(())
                };
                encrypt_bytes(&data, &config, &mut sink).unwrap()
            })
        });
        let store = Mutex::new(HashMap::new());
        let mut sink = |c: Chunk| {
            store.lock().unwrap().insert(*c.name(), c.into_bytes());
            Ok(())
        };
        let map = encrypt_bytes(&data, &config, &mut sink).unwrap();
        let store = store.into_inner().unwrap();
        let fetch = |n: &XorName| -> Result<Bytes, FetchError> {
            store.get(n).cloned().ok_or(FetchError::NotFound)
        };
        g.bench_function(format!("decrypt_{label}"), |b| {
            b.iter(|| {
                let mut out = std::io::sink();
                decrypt_range(&map, 0..map.size(), None, &fetch, &mut out).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
