//! JSON views of what the network holds, for every front end that prints
//! or serves JSON (the CLI's `--json`, the gateway, apps), so they agree.
//!
//! Byte strings are a JSON string when they are UTF-8 (`"value"`), and a
//! base64 string under a `_base64` name when they are not
//! (`"value_base64"`): a reader always knows which it got, and no value
//! is escaped in a Rust-specific way.

use data_encoding::BASE64;
use safe_protocol::mutable::Record;
use safe_protocol::{Address, DataKind, XorName};
use serde_json::{Map, Value};

use safe_protocol::name::name_address;

use crate::mutable::{append_time, appends_in_order};
use crate::names::NameInfo;

/// Adds `bytes` to `object` as `name` (a string, when UTF-8) or
/// `name_base64` (when not).
pub fn put_bytes(object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => object.insert(name.to_string(), s.into()),
        Err(_) => object.insert(format!("{name}_base64"), BASE64.encode(bytes).into()),
    };
}

/// An object of byte fields, each as [`put_bytes`] writes it.
pub fn bytes_object(fields: &[(&str, &[u8])]) -> Value {
    let mut object = Map::new();
    for (name, bytes) in fields {
        put_bytes(&mut object, name, bytes);
    }
    object.into()
}

/// A record at `name`: address, version, owners (hex), threshold,
/// public_append, entries (a list of `{key, value}`) and appends (a list of
/// `{id, value, signers, time_unix_ms}`, oldest first; `signers` are
/// the hex public keys that signed the append).
pub fn record(name: XorName, r: &Record) -> Value {
    let entries: Vec<Value> = r
        .state
        .entries
        .iter()
        .map(|(k, v)| bytes_object(&[("key", k), ("value", v)]))
        .collect();
    let appends: Vec<Value> = appends_in_order(r)
        .into_iter()
        .map(|a| {
            let mut v = bytes_object(&[("value", &a.body.value)]);
            v["id"] = hex::encode(a.id()).into();
            v["signers"] = a
                .sigs
                .iter()
                .map(|s| hex::encode(s.key))
                .collect::<Vec<_>>()
                .into();
            if let Some(t) = append_time(&a.body)
                && let Ok(since) = t.duration_since(std::time::UNIX_EPOCH)
            {
                v["time_unix_ms"] = (since.as_millis() as u64).into();
            }
            v
        })
        .collect();
    serde_json::json!({
        "address": Address::new(DataKind::Mutable, name).to_string(),
        "version": r.state.version,
        "owners": r.state.owners.iter().map(hex::encode).collect::<Vec<_>>(),
        "threshold": r.state.threshold,
        "public_append": r.state.public_append,
        "entries": entries,
        "appends": appends,
    })
}

/// A name: its address, owners (hex), threshold, latest version number
/// and every version kept (number, time, services to `safe://` targets).
pub fn name_info(info: &NameInfo) -> Value {
    let versions: Vec<Value> = info
        .versions
        .iter()
        .map(|v| {
            let services: Map<String, Value> = v
                .services
                .iter()
                .map(|(s, a)| (s.clone(), a.to_string().into()))
                .collect();
            serde_json::json!({ "version": v.number, "time": v.time, "services": services })
        })
        .collect();
    serde_json::json!({
        "name": info.name,
        "address": Address::new(DataKind::Mutable, name_address(&info.name)).to_string(),
        "owners": info.record.state.owners.iter().map(hex::encode).collect::<Vec<_>>(),
        "threshold": info.record.state.threshold,
        "version": info.latest().number,
        "versions": versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_strings_or_explicit_base64() {
        let v = bytes_object(&[("key", b"k"), ("value", b"\x1b[31mred")]);
        assert_eq!(v["value"], "\u{1b}[31mred");
        let v = bytes_object(&[("key", b"k"), ("value", &[0xff, 0x00])]);
        assert_eq!(v["value_base64"], "/wA=");
        assert!(v.get("value").is_none());
    }
}
