//! Writing an FDT-Instance.
//!
//! The FDT namespace is the default namespace and elements are unprefixed,
//! which is what every FLUTE receiver we know of reads (some ignore
//! namespaces altogether and match plain element and attribute names).

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use quick_xml::escape::escape;

use super::{DMS_NAMESPACE, FDT_NAMESPACE, FdtFile, FdtInstance, FecOti};

/// Appends ` name="value"` with the value escaped. Tab, line feed and
/// carriage return become character references, so that attribute-value
/// normalization in the reader gives them back unchanged. (Other control
/// characters cannot appear in XML 1.0 at all; they are written as they are.)
fn attr(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let value = value.to_string();
    let escaped = escape(value.as_str())
        .replace('\t', "&#9;")
        .replace('\n', "&#10;")
        .replace('\r', "&#13;");
    // Writing into a String cannot fail.
    let _ = write!(out, " {name}=\"{escaped}\"");
}

fn opt_attr(out: &mut String, name: &str, value: Option<impl std::fmt::Display>) {
    if let Some(v) = value {
        attr(out, name, v);
    }
}

fn fec_oti_attrs(out: &mut String, oti: &FecOti) {
    opt_attr(out, "FEC-OTI-FEC-Encoding-ID", oti.fec_encoding_id);
    opt_attr(out, "FEC-OTI-FEC-Instance-ID", oti.fec_instance_id);
    opt_attr(
        out,
        "FEC-OTI-Maximum-Source-Block-Length",
        oti.maximum_source_block_length,
    );
    opt_attr(
        out,
        "FEC-OTI-Encoding-Symbol-Length",
        oti.encoding_symbol_length,
    );
    opt_attr(
        out,
        "FEC-OTI-Max-Number-of-Encoding-Symbols",
        oti.max_number_of_encoding_symbols,
    );
    opt_attr(
        out,
        "FEC-OTI-Scheme-Specific-Info",
        oti.scheme_specific_info
            .as_ref()
            .map(|b| STANDARD.encode(b)),
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn file(out: &mut String, f: &FdtFile) {
    out.push_str("  <File");
    attr(out, "Content-Location", &f.content_location);
    attr(out, "TOI", f.toi);
    opt_attr(out, "Content-Length", f.content_length);
    opt_attr(out, "Transfer-Length", f.transfer_length);
    opt_attr(out, "Content-Type", f.content_type.as_ref());
    opt_attr(out, "Content-Encoding", f.content_encoding.as_ref());
    opt_attr(
        out,
        "Content-MD5",
        f.content_md5.map(|m| STANDARD.encode(m)),
    );
    fec_oti_attrs(out, &f.fec_oti);
    opt_attr(out, "dms:SHA-256", f.sha256.map(|h| hex(&h)));
    opt_attr(out, "dms:Manifest", f.manifest.as_ref());
    if let Some(d) = &f.delta {
        attr(out, "dms:Delta-Base", hex(&d.base_sha256));
        attr(out, "dms:Delta-Target", hex(&d.target_sha256));
        opt_attr(out, "dms:Target-Manifest", d.target_manifest.as_ref());
    }
    out.push_str("/>\n");
}

pub(super) fn write(fdt: &FdtInstance) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<FDT-Instance");
    attr(&mut out, "xmlns", FDT_NAMESPACE);
    if fdt
        .files
        .iter()
        .any(|f| f.sha256.is_some() || f.manifest.is_some() || f.delta.is_some())
    {
        attr(&mut out, "xmlns:dms", DMS_NAMESPACE);
    }
    attr(&mut out, "Expires", fdt.expires);
    opt_attr(&mut out, "Complete", fdt.complete);
    opt_attr(&mut out, "Content-Type", fdt.content_type.as_ref());
    opt_attr(&mut out, "Content-Encoding", fdt.content_encoding.as_ref());
    fec_oti_attrs(&mut out, &fdt.fec_oti);
    out.push_str(">\n");
    for f in &fdt.files {
        file(&mut out, f);
    }
    out.push_str("</FDT-Instance>\n");
    out
}
