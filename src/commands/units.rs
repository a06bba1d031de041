//! Sizes with units on the command line: `64MiB`, `1.5 GiB`, `4096`.

/// Parses a byte count: a number with an optional unit (`B`, `KiB`, `MiB`,
/// `GiB`, `TiB`, or the decimal `kB`, `MB`, `GB`, `TB`; case-insensitive,
/// a space allowed before the unit).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a size such as 64MiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("{text:?}: unknown unit {other:?} (KiB, MiB, GiB…)")),
    };
    let bytes = number * scale as f64;
    if !(bytes.is_finite() && bytes < u64::MAX as f64) {
        return Err(format!("{text:?}: out of range"));
    }
    if bytes < 1.0 {
        return Err(format!("{text:?}: a size is at least 1 byte"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn units_scale_the_number() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5 GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("2kb").unwrap(), 2000);
        assert_eq!(parse_size("8k").unwrap(), 8192);
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1e400").is_err());
    }
}
