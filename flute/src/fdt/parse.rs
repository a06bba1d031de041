//! Reading an FDT-Instance with quick-xml's namespace-aware pull parser.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;

use super::{DMS_NAMESPACE, FDT_NAMESPACE, FdtError, FdtFile, FdtInstance, FecOti};

/// The namespace of the profiled FDT schema of 3GPP TS 26.346 clause L.6.1
/// (Release 17): the same elements and attributes as RFC 6726's, read alike.
const FDT_NAMESPACE_3GPP_L6: &str = "urn:3GPP:metadata:2022:FLUTE:FDT";

const INSTANCE: &str = "FDT-Instance";
const FILE: &str = "File";

/// Where an element or attribute name belongs, for our purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    /// The FDT namespace (RFC 6726's or the TS 26.346 L.6.1 profile's), or
    /// none (unprefixed attributes; documents that forget the default
    /// namespace declaration).
    Fdt,
    /// Our own namespace.
    Dms,
    /// Anything else: ignored.
    Other,
}

fn classify(r: &ResolveResult<'_>) -> Ns {
    match r {
        ResolveResult::Unbound => Ns::Fdt,
        ResolveResult::Bound(Namespace(ns))
            if *ns == FDT_NAMESPACE.as_bytes() || *ns == FDT_NAMESPACE_3GPP_L6.as_bytes() =>
        {
            Ns::Fdt
        }
        ResolveResult::Bound(Namespace(ns)) if *ns == DMS_NAMESPACE.as_bytes() => Ns::Dms,
        _ => Ns::Other,
    }
}

fn xml_error(reader: &NsReader<&[u8]>, e: impl std::fmt::Display) -> FdtError {
    FdtError::Xml {
        position: reader.error_position(),
        message: e.to_string(),
    }
}

pub(super) fn parse(xml: &[u8], max_len: usize) -> Result<FdtInstance, FdtError> {
    if xml.len() > max_len {
        return Err(FdtError::TooLarge {
            len: xml.len(),
            limit: max_len,
        });
    }
    let text = std::str::from_utf8(xml).map_err(|_| FdtError::NotUtf8)?;
    let mut reader = NsReader::from_str(text);
    let mut instance: Option<FdtInstance> = None;
    // Depth of open elements; the root is depth 1.
    let mut depth = 0usize;
    loop {
        let read = reader
            .read_resolved_event()
            .map(|(ns, event)| (classify(&ns), event));
        let (ns, event) = match read {
            Ok(r) => r,
            Err(e) => return Err(xml_error(&reader, e)),
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let local = e.local_name();
                if depth == 0 {
                    if instance.is_some() {
                        // A second root element is not well-formed XML.
                        return Err(FdtError::Xml {
                            position: reader.buffer_position(),
                            message: "more than one root element".into(),
                        });
                    }
                    if ns != Ns::Fdt || local.as_ref() != INSTANCE.as_bytes() {
                        let qname = e.name();
                        let name = String::from_utf8_lossy(qname.as_ref());
                        return Err(FdtError::UnexpectedRoot(truncate(&name)));
                    }
                    instance = Some(read_instance(&reader, e)?);
                } else if depth == 1 && ns == Ns::Fdt && local.as_ref() == FILE.as_bytes() {
                    let file = read_file(&reader, e)?;
                    if let Some(i) = instance.as_mut() {
                        i.files.push(file);
                    }
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            // Text, CDATA, comments, processing instructions, declarations.
            _ => {}
        }
    }
    if depth != 0 {
        return Err(FdtError::MissingRoot);
    }
    instance.ok_or(FdtError::MissingRoot)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Calls `f` with (namespace, local name, unescaped value) for each attribute.
fn for_each_attribute(
    reader: &NsReader<&[u8]>,
    e: &BytesStart<'_>,
    mut f: impl FnMut(Ns, &str, String) -> Result<(), FdtError>,
) -> Result<(), FdtError> {
    for attr in e.attributes() {
        let attr = attr.map_err(|err| xml_error(reader, err))?;
        let (ns, local) = reader.resolve_attribute(attr.key);
        let ns = classify(&ns);
        // Namespace declarations resolve to the xmlns namespace: skip them,
        // and anything in other namespaces, before unescaping.
        if ns == Ns::Other || attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let Ok(name) = std::str::from_utf8(local.as_ref()) else {
            continue;
        };
        let value = attr
            .decode_and_unescape_value(reader.decoder())
            .map_err(|err| xml_error(reader, err))?;
        f(ns, name, value.into_owned())?;
    }
    Ok(())
}

fn invalid(element: &'static str, attribute: &'static str, value: &str) -> FdtError {
    FdtError::InvalidAttribute {
        element,
        attribute,
        value: truncate(value),
    }
}

/// Parses an XML Schema integer (surrounding whitespace and a leading `+`
/// allowed).
fn number<T: std::str::FromStr>(
    element: &'static str,
    attribute: &'static str,
    value: &str,
) -> Result<T, FdtError> {
    let v = value.trim();
    let v = v.strip_prefix('+').unwrap_or(v);
    if v.starts_with(['-', '+']) {
        return Err(invalid(element, attribute, value));
    }
    v.parse().map_err(|_| invalid(element, attribute, value))
}

fn boolean(element: &'static str, attribute: &'static str, value: &str) -> Result<bool, FdtError> {
    match value.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(invalid(element, attribute, value)),
    }
}

fn base64(
    element: &'static str,
    attribute: &'static str,
    value: &str,
) -> Result<Vec<u8>, FdtError> {
    // xs:base64Binary allows whitespace inside.
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|_| invalid(element, attribute, value))
}

fn hex32(
    element: &'static str,
    attribute: &'static str,
    value: &str,
) -> Result<[u8; 32], FdtError> {
    let v = value.trim().as_bytes();
    let mut out = [0u8; 32];
    if v.len() != 64 {
        return Err(invalid(element, attribute, value));
    }
    for (o, pair) in out.iter_mut().zip(v.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            // Both digits are < 16, so the byte cannot overflow.
            (Some(h), Some(l)) => *o = (h * 16 + l) as u8,
            _ => return Err(invalid(element, attribute, value)),
        }
    }
    Ok(out)
}

/// Reads a `FEC-OTI-*` attribute into `oti`; false if `name` is not one.
fn fec_oti_attribute(
    oti: &mut FecOti,
    element: &'static str,
    name: &str,
    value: &str,
) -> Result<bool, FdtError> {
    match name {
        "FEC-OTI-FEC-Encoding-ID" => {
            oti.fec_encoding_id = Some(number(element, "FEC-OTI-FEC-Encoding-ID", value)?)
        }
        "FEC-OTI-FEC-Instance-ID" => {
            oti.fec_instance_id = Some(number(element, "FEC-OTI-FEC-Instance-ID", value)?)
        }
        "FEC-OTI-Maximum-Source-Block-Length" => {
            oti.maximum_source_block_length = Some(number(
                element,
                "FEC-OTI-Maximum-Source-Block-Length",
                value,
            )?)
        }
        "FEC-OTI-Encoding-Symbol-Length" => {
            oti.encoding_symbol_length =
                Some(number(element, "FEC-OTI-Encoding-Symbol-Length", value)?)
        }
        "FEC-OTI-Max-Number-of-Encoding-Symbols" => {
            oti.max_number_of_encoding_symbols = Some(number(
                element,
                "FEC-OTI-Max-Number-of-Encoding-Symbols",
                value,
            )?)
        }
        "FEC-OTI-Scheme-Specific-Info" => {
            oti.scheme_specific_info = Some(base64(element, "FEC-OTI-Scheme-Specific-Info", value)?)
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn read_instance(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<FdtInstance, FdtError> {
    let mut expires = None;
    let mut inst = FdtInstance::new(0);
    for_each_attribute(reader, e, |ns, name, value| {
        if ns != Ns::Fdt || fec_oti_attribute(&mut inst.fec_oti, INSTANCE, name, &value)? {
            return Ok(());
        }
        match name {
            "Expires" => expires = Some(number(INSTANCE, "Expires", &value)?),
            "Complete" => inst.complete = Some(boolean(INSTANCE, "Complete", &value)?),
            "Content-Type" => inst.content_type = Some(value),
            "Content-Encoding" => inst.content_encoding = Some(value),
            _ => {}
        }
        Ok(())
    })?;
    inst.expires = expires.ok_or(FdtError::MissingAttribute {
        element: INSTANCE,
        attribute: "Expires",
    })?;
    Ok(inst)
}

fn read_file(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<FdtFile, FdtError> {
    let mut location = None;
    let mut toi = None;
    let mut file = FdtFile::new(String::new(), 0);
    let (mut delta_base, mut delta_target, mut target_manifest) = (None, None, None);
    for_each_attribute(reader, e, |ns, name, value| {
        if ns == Ns::Dms {
            match name {
                "SHA-256" => file.sha256 = Some(hex32(FILE, "dms:SHA-256", &value)?),
                "Manifest" => file.manifest = Some(value),
                "Delta-Base" => delta_base = Some(hex32(FILE, "dms:Delta-Base", &value)?),
                "Delta-Target" => delta_target = Some(hex32(FILE, "dms:Delta-Target", &value)?),
                "Target-Manifest" => target_manifest = Some(value),
                _ => {}
            }
            return Ok(());
        }
        if fec_oti_attribute(&mut file.fec_oti, FILE, name, &value)? {
            return Ok(());
        }
        match name {
            "Content-Location" => location = Some(value),
            "TOI" => {
                let t: u128 = number(FILE, "TOI", &value)?;
                if t == 0 {
                    return Err(invalid(FILE, "TOI", &value));
                }
                toi = Some(t);
            }
            "Content-Length" => file.content_length = Some(number(FILE, "Content-Length", &value)?),
            "Transfer-Length" => {
                file.transfer_length = Some(number(FILE, "Transfer-Length", &value)?)
            }
            "Content-Type" => file.content_type = Some(value),
            "Content-Encoding" => file.content_encoding = Some(value),
            "Content-MD5" => {
                let md5 = base64(FILE, "Content-MD5", &value)?;
                file.content_md5 = Some(
                    md5.try_into()
                        .map_err(|_| invalid(FILE, "Content-MD5", &value))?,
                );
            }
            _ => {}
        }
        Ok(())
    })?;
    file.content_location = location.ok_or(FdtError::MissingAttribute {
        element: FILE,
        attribute: "Content-Location",
    })?;
    file.toi = toi.ok_or(FdtError::MissingAttribute {
        element: FILE,
        attribute: "TOI",
    })?;
    if let (Some(base_sha256), Some(target_sha256)) = (delta_base, delta_target) {
        file.delta = Some(super::FdtDelta {
            base_sha256,
            target_sha256,
            target_manifest,
        });
    }
    Ok(file)
}
