//! How the CLI shows things: addresses, values, records, in text or JSON.

use anyhow::{Context, Result};
use data_encoding::BASE64;
use safe_client::mutable::{append_time, appends_in_order};
use safe_protocol::mutable::Record;
use safe_protocol::{Address, DataKind, XorName};

/// Parses a safe:// address, naming it in the error.
pub(crate) fn parse_address(text: &str) -> Result<Address> {
    text.parse()
        .with_context(|| format!("invalid address {text:?}"))
}

/// A record's address as users see it.
pub(crate) fn record_address(name: XorName) -> String {
    Address::new(DataKind::Mutable, name).to_string()
}

/// Text for a value from the network, safe to print on a terminal: itself
/// if UTF-8 (control characters escaped, so it cannot drive the terminal
/// or break lines), else `base64:` and its base64.
pub(crate) fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.chars().any(char::is_control) => s
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Ok(s) => s.to_string(),
        Err(_) => format!("base64:{}", BASE64.encode(bytes)),
    }
}

/// Adds `bytes` to a JSON object as `NAME` (a string, when UTF-8) or
/// `NAME_base64` (when not): a reader always knows which it got.
pub(crate) fn put_bytes(
    object: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
    bytes: &[u8],
) {
    match std::str::from_utf8(bytes) {
        Ok(s) => object.insert(name.to_string(), s.into()),
        Err(_) => object.insert(format!("{name}_base64"), BASE64.encode(bytes).into()),
    };
}

fn entry_json(pairs: &[(&str, &[u8])]) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for (name, bytes) in pairs {
        put_bytes(&mut object, name, bytes);
    }
    object.into()
}

/// A record as JSON: entries and appends are lists of objects whose
/// byte fields are strings, or `…_base64` when not UTF-8.
pub(crate) fn record_json(name: XorName, r: &Record) -> serde_json::Value {
    let entries: Vec<_> = r
        .state
        .entries
        .iter()
        .map(|(k, v)| entry_json(&[("key", k), ("value", v)]))
        .collect();
    let appends: Vec<_> = appends_in_order(r)
        .into_iter()
        .map(|a| {
            let mut v = entry_json(&[("value", &a.body.value)]);
            v["id"] = hex::encode(a.id()).into();
            if let Some(t) = append_time(&a.body)
                && let Ok(since) = t.duration_since(std::time::UNIX_EPOCH)
            {
                v["time_unix_ms"] = (since.as_millis() as u64).into();
            }
            v
        })
        .collect();
    serde_json::json!({
        "address": record_address(name),
        "version": r.state.version,
        "owners": r.state.owners.iter().map(hex::encode).collect::<Vec<_>>(),
        "threshold": r.state.threshold,
        "public_append": r.state.public_append,
        "entries": entries,
        "appends": appends,
    })
}

/// Prints a record, as text or JSON.
pub(crate) fn print_record(name: XorName, r: &Record, json: bool) {
    if json {
        println!("{}", record_json(name, r));
        return;
    }
    let s = &r.state;
    println!("{}", record_address(name));
    println!("version: {}", s.version);
    println!(
        "owners ({} of {} must sign): {}",
        s.threshold,
        s.owners.len(),
        s.owners
            .iter()
            .map(hex::encode)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "appends by: {}",
        if s.public_append {
            "anyone"
        } else {
            "owners only"
        }
    );
    println!("entries ({}):", s.entries.len());
    for (k, v) in &s.entries {
        println!("  {} = {}", text(k), text(v));
    }
    println!("appended ({}, oldest first):", r.appends.len());
    for a in appends_in_order(r) {
        println!("  {} {}", hex::encode(a.id()), text(&a.body.value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_strings_or_explicit_base64() {
        let v = entry_json(&[("key", b"k"), ("value", b"\x1b[31mred")]);
        assert_eq!(v["value"], "\u{1b}[31mred");
        let v = entry_json(&[("key", b"k"), ("value", &[0xff, 0x00])]);
        assert_eq!(v["value_base64"], "/wA=");
        assert!(v.get("value").is_none());
        assert_eq!(text(&[0xff, 0x00]), "base64:/wA=");
        assert_eq!(text(b"a\nb"), "a\\nb");
    }
}
