//! The TS 26.346 symbol-based repair request (§9.3), sans-IO:
//!
//! ```text
//! query    = "fileURI=" uri *( "&" sbn-info ) [ "&more=" more ]
//! sbn-info = "SBN=" sbn [ "-" sbn / ";ESI=" esi-list ]
//! esi-list = esi [ "-" esi ] *( "," esi [ "-" esi ] )
//! more     = sbn ":" count [ ":" first-esi ]     ; ours: n fresh repair symbols
//! ```
//!
//! `fileURI` alone asks for the whole file; `SBN=m` or `SBN=m-p` for whole
//! blocks; `SBN=n;ESI=...` for symbols of one block. `more=b:n[:e]` (ours,
//! may repeat) asks for `n` repair symbols of block `b` with ESIs from `e`
//! (default K), so a client asking several servers can give each its own
//! ESI range. Values are percent-decoded; unknown keys are ignored.

use percent_encoding::percent_decode_str;

/// Most items (SBN, ESI ranges, `more`) one query may hold.
pub const MAX_ITEMS: usize = 4096;

/// An inclusive range of encoding symbol ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EsiRange {
    /// First ESI.
    pub first: u32,
    /// Last ESI (inclusive, ≥ `first`).
    pub last: u32,
}

/// One thing a repair request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairItem {
    /// Every source symbol of blocks `first..=last`.
    Blocks {
        /// First SBN.
        first: u32,
        /// Last SBN (inclusive).
        last: u32,
    },
    /// These symbols of block `sbn`.
    Symbols {
        /// The block.
        sbn: u32,
        /// The ESI ranges, as asked.
        esis: Vec<EsiRange>,
    },
    /// `count` fresh repair symbols of block `sbn` (ours).
    More {
        /// The block.
        sbn: u32,
        /// How many.
        count: u32,
        /// First ESI (default: K, the first repair ESI).
        first_esi: Option<u32>,
    },
}

/// A parsed repair request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairQuery {
    /// The object's Content-Location.
    pub file_uri: String,
    /// What is asked; empty = the whole file.
    pub items: Vec<RepairItem>,
}

/// Why a repair query is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// No `fileURI`.
    #[error("missing fileURI")]
    MissingFileUri,
    /// Two `fileURI`s.
    #[error("more than one fileURI")]
    DuplicateFileUri,
    /// A value is not valid percent-encoded UTF-8.
    #[error("{0} is not valid UTF-8 once percent-decoded")]
    Encoding(&'static str),
    /// A malformed `SBN=` item.
    #[error("malformed SBN item {0:?}")]
    Sbn(String),
    /// A malformed `more=` item.
    #[error("malformed more item {0:?} (expected SBN:COUNT[:FIRST_ESI])")]
    More(String),
    /// A range whose end is before its start.
    #[error("range {first}-{last} ends before it starts")]
    Reversed {
        /// Start.
        first: u32,
        /// End.
        last: u32,
    },
    /// Too many items.
    #[error("more than {MAX_ITEMS} items in one request")]
    TooManyItems,
}

/// Parses a repair query string (the part after `?`, or a POST body).
pub fn parse_query(query: &str) -> Result<RepairQuery, QueryError> {
    let mut file_uri = None;
    let mut items = Vec::new();
    let mut count = 0usize;
    for pair in query.trim().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "fileURI" => {
                if file_uri.is_some() {
                    return Err(QueryError::DuplicateFileUri);
                }
                let uri = percent_decode_str(value)
                    .decode_utf8()
                    .map_err(|_| QueryError::Encoding("fileURI"))?;
                file_uri = Some(uri.into_owned());
            }
            "SBN" => {
                let value = decode(value, "SBN")?;
                let item = parse_sbn(&value)?;
                count += match &item {
                    RepairItem::Symbols { esis, .. } => esis.len(),
                    _ => 1,
                };
                items.push(item);
            }
            "more" => {
                let value = decode(value, "more")?;
                items.push(parse_more(&value)?);
                count += 1;
            }
            _ => {}
        }
        if count > MAX_ITEMS {
            return Err(QueryError::TooManyItems);
        }
    }
    let file_uri = file_uri
        .filter(|u| !u.is_empty())
        .ok_or(QueryError::MissingFileUri)?;
    Ok(RepairQuery { file_uri, items })
}

fn decode(value: &str, what: &'static str) -> Result<String, QueryError> {
    percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| QueryError::Encoding(what))
}

fn number(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn range(s: &str) -> Option<Result<(u32, u32), QueryError>> {
    match s.split_once('-') {
        None => number(s).map(|n| Ok((n, n))),
        Some((a, b)) => {
            let (first, last) = (number(a)?, number(b)?);
            Some(if first <= last {
                Ok((first, last))
            } else {
                Err(QueryError::Reversed { first, last })
            })
        }
    }
}

fn parse_sbn(value: &str) -> Result<RepairItem, QueryError> {
    let bad = || QueryError::Sbn(value.chars().take(64).collect());
    match value.split_once(';') {
        None => {
            let (first, last) = range(value).ok_or_else(bad)??;
            Ok(RepairItem::Blocks { first, last })
        }
        Some((sbn, esis)) => {
            let sbn = number(sbn).ok_or_else(bad)?;
            let list = esis.trim().strip_prefix("ESI=").ok_or_else(bad)?;
            let mut out = Vec::new();
            for part in list.split(',') {
                let (first, last) = range(part).ok_or_else(bad)??;
                out.push(EsiRange { first, last });
                if out.len() > MAX_ITEMS {
                    return Err(QueryError::TooManyItems);
                }
            }
            Ok(RepairItem::Symbols { sbn, esis: out })
        }
    }
}

fn parse_more(value: &str) -> Result<RepairItem, QueryError> {
    let bad = || QueryError::More(value.chars().take(64).collect());
    let mut fields = value.split(':');
    let sbn = fields.next().and_then(number).ok_or_else(bad)?;
    let count = fields.next().and_then(number).ok_or_else(bad)?;
    let first_esi = match fields.next() {
        None => None,
        Some(f) => Some(number(f).ok_or_else(bad)?),
    };
    if fields.next().is_some() {
        return Err(bad());
    }
    Ok(RepairItem::More {
        sbn,
        count,
        first_esi,
    })
}

/// Writes a query string for `query` (the inverse of [`parse_query`]).
pub fn format_query(query: &RepairQuery) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let mut out = format!(
        "fileURI={}",
        utf8_percent_encode(&query.file_uri, NON_ALPHANUMERIC)
    );
    for item in &query.items {
        match item {
            RepairItem::Blocks { first, last } if first == last => {
                out.push_str(&format!("&SBN={first}"));
            }
            RepairItem::Blocks { first, last } => out.push_str(&format!("&SBN={first}-{last}")),
            RepairItem::Symbols { sbn, esis } => {
                out.push_str(&format!("&SBN={sbn};ESI="));
                for (i, r) in esis.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if r.first == r.last {
                        out.push_str(&r.first.to_string());
                    } else {
                        out.push_str(&format!("{}-{}", r.first, r.last));
                    }
                }
            }
            RepairItem::More {
                sbn,
                count,
                first_esi,
            } => {
                out.push_str(&format!("&more={sbn}:{count}"));
                if let Some(e) = first_esi {
                    out.push_str(&format!(":{e}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_26346_forms() {
        let q = parse_query(
            "fileURI=http%3A%2F%2Fa.example%2Fx.bin&SBN=1;ESI=3,5-7&SBN=4-6&SBN=9&more=2:10:900",
        )
        .unwrap();
        assert_eq!(q.file_uri, "http://a.example/x.bin");
        assert_eq!(
            q.items,
            vec![
                RepairItem::Symbols {
                    sbn: 1,
                    esis: vec![
                        EsiRange { first: 3, last: 3 },
                        EsiRange { first: 5, last: 7 }
                    ]
                },
                RepairItem::Blocks { first: 4, last: 6 },
                RepairItem::Blocks { first: 9, last: 9 },
                RepairItem::More {
                    sbn: 2,
                    count: 10,
                    first_esi: Some(900)
                },
            ]
        );
        assert_eq!(parse_query(&format_query(&q)).unwrap(), q);
        // Unencoded URIs are accepted too; fileURI alone is the whole file.
        let q = parse_query("fileURI=http://a/b.bin").unwrap();
        assert!(q.items.is_empty());
    }

    #[test]
    fn errors() {
        assert_eq!(parse_query("SBN=1"), Err(QueryError::MissingFileUri));
        assert_eq!(
            parse_query("fileURI=a&fileURI=b"),
            Err(QueryError::DuplicateFileUri)
        );
        assert!(matches!(
            parse_query("fileURI=a&SBN=x"),
            Err(QueryError::Sbn(_))
        ));
        assert!(matches!(
            parse_query("fileURI=a&SBN=1;ESI="),
            Err(QueryError::Sbn(_))
        ));
        assert!(matches!(
            parse_query("fileURI=a&SBN=1;EXI=2"),
            Err(QueryError::Sbn(_))
        ));
        assert_eq!(
            parse_query("fileURI=a&SBN=1;ESI=7-5"),
            Err(QueryError::Reversed { first: 7, last: 5 })
        );
        assert!(matches!(
            parse_query("fileURI=a&SBN=99999999999"),
            Err(QueryError::Sbn(_))
        ));
        assert!(matches!(
            parse_query("fileURI=a&more=1"),
            Err(QueryError::More(_))
        ));
        assert!(matches!(
            parse_query("fileURI=a&more=1:2:3:4"),
            Err(QueryError::More(_))
        ));
        assert_eq!(
            parse_query("fileURI=%FF"),
            Err(QueryError::Encoding("fileURI"))
        );
        let long = format!("fileURI=a&SBN=1;ESI={}", vec!["1"; MAX_ITEMS + 2].join(","));
        assert_eq!(parse_query(&long), Err(QueryError::TooManyItems));
    }

    proptest! {
        #[test]
        fn never_panics(s in "[fileURISBNEmor=&;,:0-9%-]{0,80}") {
            let _ = parse_query(&s);
        }
    }
}
