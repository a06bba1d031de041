//! File names from `Content-Location`s: the last path segment,
//! percent-decoded, and only if it is safe to create inside the output
//! directory.

use percent_encoding::percent_decode_str;

/// Longest file name accepted, in bytes (the usual file-system limit).
const MAX_NAME_LEN: usize = 255;

/// The file name an object is written under: the last path segment of its
/// `Content-Location` (`file:///name`, `http://host/dir/name?query`, or a
/// bare relative reference), percent-decoded. `None` when that segment is
/// not a safe single file name (empty, `.`, `..`, a `/` or `\` after
/// decoding, NUL or other control characters, invalid UTF-8, too long).
pub fn file_name(content_location: &str) -> Option<String> {
    let path = strip_authority(content_location);
    // Query and fragment are not part of the path.
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segment = path.rsplit('/').next().unwrap_or_default();
    let decoded = percent_decode_str(segment).decode_utf8().ok()?;
    is_safe(&decoded).then(|| decoded.into_owned())
}

/// The file name for object `toi`: from its `Content-Location` when that
/// gives a safe one, else `toi-<TOI>`.
pub fn file_name_or_toi(content_location: Option<&str>, toi: u128) -> String {
    content_location
        .and_then(file_name)
        .unwrap_or_else(|| format!("toi-{toi}"))
}

/// The part of a URI after `scheme://authority`, or the whole reference
/// when it has no authority.
fn strip_authority(uri: &str) -> &str {
    match uri.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            rest.find('/').map_or("", |i| &rest[i..])
        }
        _ => uri,
    }
}

fn is_safe(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= MAX_NAME_LEN
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn names_come_from_the_last_path_segment() {
        assert_eq!(
            file_name("file:///firmware.bin").as_deref(),
            Some("firmware.bin")
        );
        assert_eq!(
            file_name("http://example.com/a/b/os%20patch.img?v=2#x").as_deref(),
            Some("os patch.img")
        );
        assert_eq!(
            file_name("https://host/dir/cfg.json").as_deref(),
            Some("cfg.json")
        );
        assert_eq!(file_name("relative/name.txt").as_deref(), Some("name.txt"));
        assert_eq!(file_name("plain").as_deref(), Some("plain"));
        assert_eq!(file_name("file:///../x").as_deref(), Some("x"));
    }

    #[test]
    fn unsafe_names_are_refused() {
        for location in [
            "",
            "file:///",
            "file:///a/..",
            "file:///a/.",
            "http://host",
            "http://host/",
            "file:///a%2Fb",
            "file:///%2e%2e",
            "file:///a%5Cb",
            "file:///a%00b",
            "file:///a%0Ab",
            "file:///%FF",
        ] {
            assert_eq!(file_name(location), None, "{location:?}");
        }
        assert_eq!(file_name(&format!("file:///{}", "a".repeat(300))), None);
    }

    #[test]
    fn unusable_names_fall_back_to_the_toi() {
        assert_eq!(file_name_or_toi(Some("file:///a/.."), 7), "toi-7");
        assert_eq!(file_name_or_toi(None, 3), "toi-3");
        assert_eq!(file_name_or_toi(Some("file:///ok"), 3), "ok");
    }
}
