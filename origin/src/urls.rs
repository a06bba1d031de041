//! Every URI the origin gives out, built from the configured public base
//! URL (see the shared URL layout). Each must fit in 255 characters (the
//! LwM2M Package URI limit).

use crate::model::{ObjectRecord, file_name};

/// The longest URI handed out.
pub const MAX_URI_LEN: usize = 255;
/// Length of an object id (128 bits in hex).
pub const ID_LEN: usize = 32;
/// Names at least this long must always fit after the base URL.
const MIN_NAME_ROOM: usize = 32;

/// Builds URIs from the public base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Urls {
    base: String,
}

impl Urls {
    /// Checks and keeps a base URL (`http(s)://host[:port][/path]`, no
    /// query or fragment; a trailing `/` is dropped). Refuses one so long
    /// that a download URI with a 32-character name would pass 255
    /// characters.
    pub fn new(base: &str) -> Result<Self, String> {
        let base = base.trim_end_matches('/');
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| format!("base URL {base:?} must start with https:// or http://"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("base URL {base:?} has no host"));
        }
        if let Some(c) = base
            .chars()
            .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#' | '\\'))
        {
            return Err(format!("base URL {base:?} contains {c:?}"));
        }
        let longest = base.len() + "/dl/".len() + ID_LEN + 1 + MIN_NAME_ROOM;
        if longest > MAX_URI_LEN {
            return Err(format!(
                "base URL is {} characters: at most {} leave room for URIs of {MAX_URI_LEN}",
                base.len(),
                MAX_URI_LEN - (longest - base.len())
            ));
        }
        Ok(Self {
            base: base.to_owned(),
        })
    }

    /// The base URL (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Checks that the download URI of an object named `name` fits.
    pub fn check_name_fits(&self, name: &str) -> Result<(), String> {
        let len = self.base.len() + "/dl/".len() + ID_LEN + 1 + file_name(name).len();
        if len > MAX_URI_LEN {
            return Err(format!(
                "name too long for this base URL: its URI would be {len} characters (max {MAX_URI_LEN})"
            ));
        }
        Ok(())
    }

    /// `{base}/dl/{id}/{file_name}`: the unicast download URI, also the
    /// object's broadcast Content-Location.
    pub fn uri(&self, r: &ObjectRecord) -> String {
        format!("{}/dl/{}/{}", self.base, r.id, file_name(&r.name))
    }

    /// `{base}/dd/{id}`.
    pub fn dd_uri(&self, id: &str) -> String {
        format!("{}/dd/{id}", self.base)
    }

    /// `{base}/manifest/{id}`.
    pub fn manifest_uri(&self, id: &str) -> String {
        format!("{}/manifest/{id}", self.base)
    }

    /// `{base}/notify/{id}` (installNotifyURI).
    pub fn notify_uri(&self, id: &str) -> String {
        format!("{}/notify/{id}", self.base)
    }

    /// `{base}/repair`.
    pub fn repair_uri(&self) -> String {
        format!("{}/repair", self.base)
    }

    /// `{base}/report`.
    pub fn report_uri(&self) -> String {
        format!("{}/report", self.base)
    }

    /// The id in a Content-Location made by [`Urls::uri`].
    pub fn id_of_location<'a>(&self, location: &'a str) -> Option<&'a str> {
        let rest = location.strip_prefix(&self.base)?.strip_prefix("/dl/")?;
        rest.split_once('/').map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            Urls::new("https://dms.example:8443/").unwrap().base(),
            "https://dms.example:8443"
        );
        assert!(Urls::new("ftp://x").is_err());
        assert!(Urls::new("https://").is_err());
        assert!(Urls::new("https://x/a?b").is_err());
        let long = format!("https://{}", "a".repeat(200));
        assert!(Urls::new(&long).is_err());
        let urls = Urls::new(&format!("https://{}", "a".repeat(170))).unwrap();
        assert!(urls.check_name_fits(&"n".repeat(32)).is_ok());
        assert!(urls.check_name_fits(&"n".repeat(128)).is_err());
    }

    #[test]
    fn ids_come_back_from_locations() {
        let urls = Urls::new("https://h").unwrap();
        assert_eq!(urls.id_of_location("https://h/dl/abc/fw.bin"), Some("abc"));
        assert_eq!(urls.id_of_location("https://other/dl/abc/fw.bin"), None);
    }
}
