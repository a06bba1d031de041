//! The sequence of header extensions of one LCT header.

use super::{ContentEncoding, ExtFdt, ExtTime, Extension, Fti, LctError};

/// The header extensions of an LCT header.
///
/// Either a validated wire area borrowed from a received datagram, or a
/// list built by a sender ([`Extensions::from_list`]). Both iterate as
/// [`Extension`] values and compare equal when they hold the same sequence.
#[derive(Debug, Clone, Copy)]
pub struct Extensions<'a>(Repr<'a>);

#[derive(Debug, Clone, Copy)]
enum Repr<'a> {
    Wire { raw: &'a [u8], codepoint: u8 },
    List(&'a [Extension<'a>]),
}

impl Default for Extensions<'_> {
    fn default() -> Self {
        Self::none()
    }
}

impl PartialEq for Extensions<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Extensions<'_> {}

impl<'a> Extensions<'a> {
    /// No extensions.
    pub const fn none() -> Self {
        Extensions(Repr::List(&[]))
    }

    /// Extensions to send, in this order.
    pub const fn from_list(list: &'a [Extension<'a>]) -> Self {
        Extensions(Repr::List(list))
    }

    /// Validates a received extension area (exactly the bytes between the
    /// fixed header and HDR_LEN).
    pub(crate) fn parse(raw: &'a [u8], codepoint: u8) -> Result<Self, LctError> {
        let mut rest = raw;
        while !rest.is_empty() {
            let (_, len) = Extension::read(rest, codepoint)?;
            rest = &rest[len..];
        }
        Ok(Extensions(Repr::Wire { raw, codepoint }))
    }

    /// Iterates over the extensions in order.
    pub fn iter(&self) -> ExtensionIter<'a> {
        match self.0 {
            Repr::Wire { raw, codepoint } => ExtensionIter(IterRepr::Wire { raw, codepoint }),
            Repr::List(list) => ExtensionIter(IterRepr::List(list.iter())),
        }
    }

    /// True if there is no extension.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The first EXT_FDT, if any.
    pub fn fdt(&self) -> Option<ExtFdt> {
        self.iter().find_map(|e| match e {
            Extension::Fdt(f) => Some(f),
            _ => None,
        })
    }

    /// The first EXT_CENC, if any.
    pub fn cenc(&self) -> Option<ContentEncoding> {
        self.iter().find_map(|e| match e {
            Extension::Cenc(c) => Some(c),
            _ => None,
        })
    }

    /// The first EXT_TIME, if any.
    pub fn time(&self) -> Option<ExtTime<'a>> {
        self.iter().find_map(|e| match e {
            Extension::Time(t) => Some(t),
            _ => None,
        })
    }

    /// The first EXT_FTI of a known layout, if any.
    pub fn fti(&self) -> Option<Fti> {
        self.iter().find_map(|e| match e {
            Extension::Fti(f) => Some(f),
            _ => None,
        })
    }

    /// How many extensions are of a type this crate does not interpret.
    pub fn unknown_count(&self) -> usize {
        self.iter().filter(|e| matches!(e, Extension::Unknown(_))).count()
    }

    /// Length on the wire in bytes.
    pub fn encoded_len(&self) -> usize {
        match self.0 {
            Repr::Wire { raw, .. } => raw.len(),
            Repr::List(list) => list.iter().map(Extension::encoded_len).sum(),
        }
    }

    /// Writes all extensions into `out` for a header with `codepoint`.
    pub(crate) fn write(&self, codepoint: u8, out: &mut [u8]) -> Result<usize, LctError> {
        let mut at = 0;
        for ext in self.iter() {
            let rest = out.get_mut(at..).unwrap_or_default();
            at += ext.write(codepoint, rest)?;
        }
        Ok(at)
    }
}

impl<'a> IntoIterator for &Extensions<'a> {
    type Item = Extension<'a>;
    type IntoIter = ExtensionIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`Extensions`]; allocation-free.
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a>(IterRepr<'a>);

#[derive(Debug, Clone)]
enum IterRepr<'a> {
    Wire { raw: &'a [u8], codepoint: u8 },
    List(core::slice::Iter<'a, Extension<'a>>),
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = Extension<'a>;

    fn next(&mut self) -> Option<Extension<'a>> {
        match &mut self.0 {
            IterRepr::List(it) => it.next().copied(),
            IterRepr::Wire { raw, codepoint } => {
                if raw.is_empty() {
                    return None;
                }
                // The area was validated by `Extensions::parse`; should it
                // fail anyway, stop rather than loop or panic.
                match Extension::read(raw, *codepoint) {
                    Ok((ext, len)) => {
                        *raw = raw.get(len..).unwrap_or_default();
                        Some(ext)
                    }
                    Err(_) => {
                        *raw = &[];
                        None
                    }
                }
            }
        }
    }
}
