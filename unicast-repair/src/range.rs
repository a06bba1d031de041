//! The `Range` request header (RFC 9110 §14.2), bytes unit only: a small
//! parser that never panics on outside input (fuzzed by `fuzz/range`).

use std::ops::Range;

/// Most ranges one request may name; a request with more is served whole
/// (RFC 9110 allows ignoring `Range`), which bounds the work per request.
pub const MAX_RANGES: usize = 32;

/// What a `Range` header asks of a representation of a known length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve the whole representation (no usable `Range`: absent, another
    /// unit, malformed, or too many ranges).
    Full,
    /// These byte ranges, in request order, each non-empty and within the
    /// length.
    Ranges(Vec<Range<u64>>),
    /// No range overlaps the representation: 416.
    Unsatisfiable,
}

/// Parses a `Range` header value against a representation of `len` bytes.
pub fn parse_range(value: &str, len: u64) -> RangeRequest {
    let Some(specs) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    let mut ranges = Vec::new();
    let mut count = 0;
    for spec in specs.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            // Empty list elements are allowed by the list syntax.
            continue;
        }
        count += 1;
        if count > MAX_RANGES {
            return RangeRequest::Full;
        }
        let Some(range) = parse_spec(spec) else {
            return RangeRequest::Full;
        };
        if let Some(r) = range.resolve(len) {
            ranges.push(r);
        }
    }
    // Overlapping ranges could make one small request cost many copies of
    // the object: past twice its size, serve it once, whole.
    let total = ranges
        .iter()
        .fold(0u64, |sum, r| sum.saturating_add(r.end - r.start));
    if count == 0 || total > len.saturating_mul(2) {
        RangeRequest::Full
    } else if ranges.is_empty() {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Ranges(ranges)
    }
}

#[derive(Clone, Copy, Debug)]
enum Spec {
    FromTo(u64, u64),
    From(u64),
    Suffix(u64),
}

impl Spec {
    /// The satisfiable part of this spec, if any.
    fn resolve(self, len: u64) -> Option<Range<u64>> {
        match self {
            Spec::FromTo(first, last) if first < len => Some(first..last.min(len - 1) + 1),
            Spec::From(first) if first < len => Some(first..len),
            Spec::Suffix(n) if n > 0 && len > 0 => Some(len - n.min(len)..len),
            _ => None,
        }
    }
}

fn parse_spec(spec: &str) -> Option<Spec> {
    let (first, last) = spec.split_once('-')?;
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(Spec::Suffix(digits(last)?)),
        (false, true) => Some(Spec::From(digits(first)?)),
        (false, false) => {
            let (first, last) = (digits(first)?, digits(last)?);
            (first <= last).then_some(Spec::FromTo(first, last))
        }
    }
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;
    use proptest::prelude::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // a list of one range is meant
    fn forms() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-9", 100), Ranges(vec![0..10]));
        assert_eq!(parse_range("bytes=90-200", 100), Ranges(vec![90..100]));
        assert_eq!(parse_range("bytes=95-", 100), Ranges(vec![95..100]));
        assert_eq!(parse_range("bytes=-5", 100), Ranges(vec![95..100]));
        assert_eq!(parse_range("bytes=-500", 100), Ranges(vec![0..100]));
        assert_eq!(
            parse_range("bytes= 0-0 , -1,,50-59", 100),
            Ranges(vec![0..1, 99..100, 50..60])
        );
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200, 5-4", 100), Full);
        assert_eq!(parse_range("items=0-1", 100), Full);
        assert_eq!(parse_range("bytes=", 100), Full);
        assert_eq!(parse_range("bytes=-", 100), Full);
        assert_eq!(parse_range("bytes=+1-2", 100), Full);
        assert_eq!(parse_range("bytes=99999999999999999999-", 100), Full);
        assert_eq!(parse_range("bytes=0-,0-,0-", 100), Full);
        assert_eq!(
            parse_range("bytes=0-,0-", 100),
            Ranges(vec![0..100, 0..100])
        );
        let many = format!("bytes={}", vec!["0-1"; MAX_RANGES + 1].join(","));
        assert_eq!(parse_range(&many, 100), Full);
    }

    proptest! {
        #[test]
        fn ranges_are_within_length(value in ".{0,60}", len in 0u64..1000) {
            if let RangeRequest::Ranges(ranges) = parse_range(&value, len) {
                prop_assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES);
                for r in ranges {
                    prop_assert!(r.start < r.end && r.end <= len);
                }
            }
        }
    }
}
