//! The 3GPP reception report (TS 26.346 §9.4, namespace
//! `urn:3gpp:metadata:2008:MBMS:receptionreport`):
//!
//! ```xml
//! <receptionReport xmlns="urn:3gpp:metadata:2008:MBMS:receptionreport">
//!   <receptionAcknowledgement>             <!-- RAck -->
//!     <fileURI>http://…/fw.bin</fileURI>
//!   </receptionAcknowledgement>
//!   <statisticalReport>                    <!-- StaR, StaR-all -->
//!     <fileURI receptionSuccess="false">http://…/other.bin</fileURI>
//!   </statisticalReport>
//! </receptionReport>
//! ```
//!
//! Parsing is by local names and tolerant: unknown elements and attributes
//! (later 3GPP releases, vendor extensions) are skipped. A `clientId`
//! attribute or element anywhere names the device.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

use super::ReportKind;

/// The namespace of reception reports.
pub const NAMESPACE: &str = "urn:3gpp:metadata:2008:MBMS:receptionreport";

/// Most files one XML report may name.
pub const MAX_FILES: usize = 1024;

/// One file a report speaks of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// The file's URI (its Content-Location).
    pub file_uri: String,
    /// Whether it was received.
    pub success: bool,
    /// RAck or StaR.
    pub kind: ReportKind,
}

/// A parsed reception report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceptionReport {
    /// The device, when the report names it.
    pub client_id: Option<String>,
    /// The files reported.
    pub files: Vec<FileReport>,
}

fn err(e: impl std::fmt::Display) -> super::ReportError {
    super::ReportError::Xml(e.to_string())
}

fn truthy(value: &str) -> bool {
    matches!(value.trim(), "true" | "1")
}

/// Parses a `receptionReport` document.
pub fn parse(text: &str) -> Result<ReceptionReport, super::ReportError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut report = ReceptionReport::default();
    let mut saw_root = false;
    let mut section: Option<ReportKind> = None;
    // The element whose text is being gathered: a fileURI (with its
    // success flag) or a clientId.
    let mut file: Option<(String, bool)> = None;
    let mut client_text: Option<String> = None;
    loop {
        let event = reader.read_event().map_err(err)?;
        // A self-closing element has no text and no end event.
        let open = matches!(event, Event::Start(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                let mut success = None;
                for attr in e.attributes() {
                    let attr = attr.map_err(err)?;
                    let value = attr.unescape_value().map_err(err)?;
                    match attr.key.local_name().as_ref() {
                        b"clientId" => report.client_id = Some(value.into_owned()),
                        b"receptionSuccess" => success = Some(truthy(&value)),
                        _ => {}
                    }
                }
                match name {
                    b"receptionReport" => saw_root = true,
                    b"receptionAcknowledgement" if open => section = Some(ReportKind::Rack),
                    b"statisticalReport" if open => section = Some(ReportKind::Star),
                    b"fileURI" if open && section.is_some() => {
                        // An acknowledgement is a success; StaR defaults to it.
                        file = Some((String::new(), success.unwrap_or(true)));
                    }
                    b"clientId" if open => client_text = Some(String::new()),
                    _ => {}
                }
            }
            Event::Text(t) => {
                let t = t.decode().map_err(err)?;
                push_text(&mut file, &mut client_text, &t);
            }
            Event::CData(t) => {
                let t = t.decode().map_err(err)?;
                push_text(&mut file, &mut client_text, &t);
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(err)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(err)?;
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| err(format!("unknown entity &{name};")))?
                            .to_owned()
                    }
                };
                push_text(&mut file, &mut client_text, &resolved);
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"fileURI" => {
                    if let (Some((uri, success)), Some(kind)) = (file.take(), section) {
                        let uri = uri.trim().to_owned();
                        if !uri.is_empty() {
                            if report.files.len() >= MAX_FILES {
                                return Err(err(format!("more than {MAX_FILES} files")));
                            }
                            report.files.push(FileReport {
                                file_uri: uri,
                                success,
                                kind,
                            });
                        }
                    }
                }
                b"clientId" => {
                    if let Some(id) = client_text.take() {
                        report.client_id = Some(id.trim().to_owned());
                    }
                }
                b"receptionAcknowledgement" | b"statisticalReport" => section = None,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err(err("no receptionReport element"));
    }
    Ok(report)
}

fn push_text(file: &mut Option<(String, bool)>, client: &mut Option<String>, text: &str) {
    if let Some((uri, _)) = file {
        uri.push_str(text);
    } else if let Some(id) = client {
        id.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    #[test]
    fn rack_and_star() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<r:receptionReport xmlns:r="urn:3gpp:metadata:2008:MBMS:receptionreport" xmlns:x="urn:other">
  <r:receptionAcknowledgement>
    <r:fileURI>http://a.example/dl/1/fw.bin?x=1&amp;y=2</r:fileURI>
  </r:receptionAcknowledgement>
  <r:statisticalReport x:vendor="v" clientId="dev-7">
    <x:unknown><r:fileURI>ignored? no: inside a section</r:fileURI></x:unknown>
    <r:fileURI receptionSuccess="false">http://a.example/dl/2/b.bin</r:fileURI>
    <r:fileURI receptionSuccess="1"> http://a.example/dl/3/c.bin </r:fileURI>
  </r:statisticalReport>
</r:receptionReport>"#;
        let r = parse(doc).unwrap();
        assert_eq!(r.client_id.as_deref(), Some("dev-7"));
        let files: Vec<_> = r
            .files
            .iter()
            .map(|f| (f.file_uri.as_str(), f.success, f.kind))
            .collect();
        assert_eq!(
            files,
            vec![
                (
                    "http://a.example/dl/1/fw.bin?x=1&y=2",
                    true,
                    ReportKind::Rack
                ),
                ("ignored? no: inside a section", true, ReportKind::Star),
                ("http://a.example/dl/2/b.bin", false, ReportKind::Star),
                ("http://a.example/dl/3/c.bin", true, ReportKind::Star),
            ]
        );
    }

    #[test]
    fn malformed() {
        assert!(parse("").is_err());
        assert!(parse("<other/>").is_err());
        assert!(parse("<receptionReport><statisticalReport>").is_ok());
        assert!(parse("<receptionReport>&bogus;</receptionReport>").is_err());
        assert!(parse("<receptionReport><a></b></receptionReport>").is_err());
    }
}
