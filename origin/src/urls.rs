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
    /// `(scheme, base)` of each CoAP transport served (`coap://host:port`).
    packages: Vec<(String, String)>,
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
            packages: Vec::new(),
        })
    }

    /// Adds the public bases of the CoAP transports, `(scheme, base)` with
    /// `base` = `scheme://host[:port]` (no path: the CoAP server serves
    /// `/dl/` at its root). Refuses one so long that a package URI with a
    /// 32-character name would pass 255 characters (LwM2M `/5/0/1`).
    pub fn with_package_bases(mut self, bases: Vec<(String, String)>) -> Result<Self, String> {
        for (scheme, base) in &bases {
            let rest = base
                .strip_prefix(scheme.as_str())
                .and_then(|r| r.strip_prefix("://"))
                .ok_or_else(|| format!("{scheme} base {base:?} must start with {scheme}://"))?;
            if rest.is_empty() || rest.contains('/') {
                return Err(format!(
                    "{scheme} base {base:?} must be {scheme}://host[:port], without a path"
                ));
            }
            if let Some(c) = base
                .chars()
                .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#' | '\\'))
            {
                return Err(format!("{scheme} base {base:?} contains {c:?}"));
            }
            let longest = base.len() + "/dl/".len() + ID_LEN + 1 + MIN_NAME_ROOM;
            if longest > MAX_URI_LEN {
                return Err(format!(
                    "{scheme} base {base:?} is {} characters: its package URIs would pass \
                     {MAX_URI_LEN} (LwM2M Package URI); at most {} leave room for a \
                     {MIN_NAME_ROOM}-character name",
                    base.len(),
                    MAX_URI_LEN - (longest - base.len())
                ));
            }
        }
        self.packages = bases;
        Ok(self)
    }

    /// The longest base given out (HTTPS or CoAP).
    fn longest_base(&self) -> usize {
        self.packages
            .iter()
            .map(|(_, b)| b.len())
            .fold(self.base.len(), usize::max)
    }

    /// The Package URI of the object for each transport, keyed by scheme
    /// (`https`, `coap`, `coap+tcp`, `coaps+tcp`, `coaps`): what a DM server writes
    /// to LwM2M `/5/0/1`. Each is at most 255 characters
    /// ([`Urls::check_name_fits`] refused longer names at publication).
    pub fn package_uris(&self, id: &str, name: &str) -> std::collections::BTreeMap<String, String> {
        let path = format!("/dl/{id}/{}", file_name(name));
        let scheme = self.base.split_once("://").map_or("https", |(s, _)| s);
        let mut out = std::collections::BTreeMap::new();
        out.insert(scheme.to_owned(), format!("{}{path}", self.base));
        for (scheme, base) in &self.packages {
            out.insert(scheme.clone(), format!("{base}{path}"));
        }
        out
    }

    /// The base URL (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Checks that the download URI of an object named `name`, and each of
    /// its package URIs, fits.
    pub fn check_name_fits(&self, name: &str) -> Result<(), String> {
        let len = self.longest_base() + "/dl/".len() + ID_LEN + 1 + file_name(name).len();
        if len > MAX_URI_LEN {
            return Err(format!(
                "name too long for the base URLs: its longest URI would be {len} characters (max {MAX_URI_LEN})"
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

/// The host part of a base URL (for the self-signed certificate's names).
pub fn host_of(base: &str) -> Option<String> {
    let rest = base.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_owned())
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
    fn package_uris_are_keyed_by_scheme_and_fit_in_255() {
        let urls = Urls::new("https://dms.example:8443")
            .unwrap()
            .with_package_bases(vec![
                ("coap".into(), "coap://dms.example:5683".into()),
                ("coaps+tcp".into(), "coaps+tcp://dms.example:5684".into()),
            ])
            .unwrap();
        let uris = urls.package_uris("0123456789abcdef0123456789abcdef", "fw v1.bin");
        assert_eq!(uris.len(), 3);
        assert_eq!(
            uris["https"],
            "https://dms.example:8443/dl/0123456789abcdef0123456789abcdef/fw_v1.bin"
        );
        assert_eq!(
            uris["coap"],
            "coap://dms.example:5683/dl/0123456789abcdef0123456789abcdef/fw_v1.bin"
        );
        assert!(uris["coaps+tcp"].starts_with("coaps+tcp://dms.example:5684/dl/"));
        // A long CoAP base is refused, saying why; names are checked
        // against the longest base.
        let long = format!("coap://{}", "h".repeat(190));
        let err = Urls::new("https://h")
            .unwrap()
            .with_package_bases(vec![("coap".into(), long)])
            .unwrap_err();
        assert!(err.contains("255") && err.contains("coap base"), "{err}");
        let near = format!("coap://{}", "h".repeat(170));
        let urls = Urls::new("https://h")
            .unwrap()
            .with_package_bases(vec![("coap".into(), near)])
            .unwrap();
        assert!(urls.check_name_fits(&"n".repeat(32)).is_ok());
        assert!(urls.check_name_fits(&"n".repeat(60)).is_err());
        assert!(
            Urls::new("https://h")
                .unwrap()
                .check_name_fits(&"n".repeat(60))
                .is_ok()
        );
        for bad in ["coap://", "coap://h/path", "http://h"] {
            assert!(
                Urls::new("https://h")
                    .unwrap()
                    .with_package_bases(vec![("coap".into(), bad.into())])
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_come_back_from_locations() {
        let urls = Urls::new("https://h").unwrap();
        assert_eq!(urls.id_of_location("https://h/dl/abc/fw.bin"), Some("abc"));
        assert_eq!(urls.id_of_location("https://other/dl/abc/fw.bin"), None);
    }
}
