//! Byte ranges as people and HTTP write them: `START-END` (inclusive),
//! `START-` (to the end) and `-N` (the last N bytes).
//!
//! A range is resolved against the size of what is read: it must start
//! before the end (so an empty file has no range to read, as in HTTP's
//! 416), and an END past the end is cut to it.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// A byte range before the size it applies to is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// Bytes START to END inclusive.
    FromTo(u64, u64),
    /// Bytes START to the end.
    From(u64),
    /// The last N bytes.
    Last(u64),
}

/// Why a range is not valid, or cannot be read from data of a given size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// The text is not a range.
    #[error("invalid range {0:?}: expected START-END, START- or -LAST (bytes, END inclusive)")]
    Syntax(String),
    /// END before START.
    #[error("invalid range {0:?}: END is before START")]
    Backwards(String),
    /// `-0`: no bytes.
    #[error("invalid range \"-0\": the last 0 bytes are nothing")]
    Empty,
    /// The range starts at or after the end of the data.
    #[error("range {range} starts past the end: the data has {size} byte(s)")]
    PastEnd {
        /// The range.
        range: ByteRange,
        /// The data's size.
        size: u64,
    },
}

impl FromStr for ByteRange {
    type Err = RangeError;

    fn from_str(text: &str) -> Result<Self, RangeError> {
        let bad = || RangeError::Syntax(text.to_string());
        let number = |s: &str| -> Result<u64, RangeError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        let (start, end) = text.trim().split_once('-').ok_or_else(bad)?;
        match (start.trim(), end.trim()) {
            ("", "") => Err(bad()),
            ("", last) => match number(last)? {
                0 => Err(RangeError::Empty),
                n => Ok(ByteRange::Last(n)),
            },
            (start, "") => Ok(ByteRange::From(number(start)?)),
            (start, end) => {
                let (start, end) = (number(start)?, number(end)?);
                if end < start {
                    return Err(RangeError::Backwards(text.to_string()));
                }
                Ok(ByteRange::FromTo(start, end))
            }
        }
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ByteRange::FromTo(s, e) => write!(f, "{s}-{e}"),
            ByteRange::From(s) => write!(f, "{s}-"),
            ByteRange::Last(n) => write!(f, "-{n}"),
        }
    }
}

impl ByteRange {
    /// The half-open range of bytes this is in data of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<Range<u64>, RangeError> {
        let range = match self {
            ByteRange::FromTo(s, e) => s..e.saturating_add(1).min(size),
            ByteRange::From(s) => s..size,
            ByteRange::Last(n) => size.saturating_sub(n)..size,
        };
        if range.start >= size {
            return Err(RangeError::PastEnd { range: self, size });
        }
        Ok(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<ByteRange, RangeError> {
        s.parse()
    }

    #[test]
    fn forms() {
        assert_eq!(parse("0-0").unwrap().resolve(10).unwrap(), 0..1);
        assert_eq!(parse("10-19").unwrap().resolve(100).unwrap(), 10..20);
        assert_eq!(parse("5-").unwrap().resolve(100).unwrap(), 5..100);
        assert_eq!(parse("-10").unwrap().resolve(100).unwrap(), 90..100);
        assert_eq!(parse("-500").unwrap().resolve(100).unwrap(), 0..100);
        assert_eq!(parse("90-500").unwrap().resolve(100).unwrap(), 90..100);
        assert!(matches!(parse("9-3"), Err(RangeError::Backwards(_))));
        assert!(matches!(parse("abc"), Err(RangeError::Syntax(_))));
        assert!(matches!(parse("-"), Err(RangeError::Syntax(_))));
        assert!(matches!(parse("+1-2"), Err(RangeError::Syntax(_))));
        assert_eq!(parse("-0"), Err(RangeError::Empty));
    }

    #[test]
    fn empty_data_has_no_range_whatever_its_form() {
        for r in ["0-10", "0-", "5-", "-1", "0-0"] {
            let err = parse(r).unwrap().resolve(0).unwrap_err();
            assert!(matches!(err, RangeError::PastEnd { size: 0, .. }), "{r}");
        }
    }

    proptest! {
        #[test]
        fn resolved_ranges_lie_inside_the_data(size in 0u64..10_000, a in 0u64..12_000, b in 0u64..12_000) {
            for r in [ByteRange::FromTo(a.min(b), a.max(b)), ByteRange::From(a), ByteRange::Last(a.max(1))] {
                prop_assert_eq!(parse(&r.to_string()).unwrap(), r);
                match r.resolve(size) {
                    Ok(range) => {
                        prop_assert!(range.start < range.end);
                        prop_assert!(range.end <= size);
                    }
                    Err(RangeError::PastEnd { .. }) => {
                        prop_assert!(size == 0 || matches!(r, ByteRange::FromTo(s, _) | ByteRange::From(s) if s >= size));
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
        }
    }
}
