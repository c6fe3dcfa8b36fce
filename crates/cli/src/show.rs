//! How the CLI shows things: addresses, values, records, in text or JSON.

use anyhow::{Context, Result};
use data_encoding::BASE64;
use safe_client::mutable::appends_in_order;
use safe_protocol::mutable::Record;
use safe_protocol::{Address, DataKind, XorName};

/// Parses a safe:// address, naming it in the error.
pub(crate) fn parse_address(text: &str) -> Result<Address> {
    text.parse()
        .with_context(|| format!("invalid address {text:?}"))
}

/// Parses a safe:// URL (an address, and a path inside a snapshot).
pub(crate) fn parse_url(text: &str) -> Result<safe_protocol::SafeUrl> {
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

/// Prints a record, as text or JSON.
pub(crate) fn print_record(name: XorName, r: &Record, json: bool) {
    if json {
        println!("{}", safe_client::json::record(name, r));
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
    fn text_is_safe_on_a_terminal() {
        assert_eq!(text(&[0xff, 0x00]), "base64:/wA=");
        assert_eq!(text(b"a\nb"), "a\\nb");
        assert_eq!(text(b"plain"), "plain");
    }
}

/// Seconds since the Unix epoch as a UTC date and time,
/// `2026-11-30 14:05:09`.
pub(crate) fn time(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn dates() {
        assert_eq!(super::time(0), "1970-01-01 00:00:00");
        assert_eq!(super::time(1_796_047_509), "2026-11-30 14:05:09");
        assert_eq!(super::time(951_782_400), "2000-02-29 00:00:00");
    }
}
