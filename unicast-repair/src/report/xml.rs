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
//! attribute or element anywhere names the device. `receptionSuccess` is
//! the file's status code: `1` (the default) received, `0` not.
//!
//! [`ReceptionReport::to_xml`] writes what a UE sends: a
//! `receptionAcknowledgement` for RAck, a `statisticalReport` (with
//! `sessionId`, `sessionType`, `serviceId`, `clientId`) for StaR and
//! StaR-all. Statistics TS 26.346 has no names for — bytes by source and
//! time to complete — go on each `fileURI` as attributes in our own
//! namespace [`DMS_NAMESPACE`] (prefix `dms`: `broadcastBytes`,
//! `peerBytes`, `repairBytes`, `secondsToComplete`), which other parsers
//! skip. So do the UE's repair failovers: three lists of the same length,
//! one entry per failover — `dms:repairFailed` (the URLs that failed),
//! `dms:repairFailReason` (`connect`, `timeout`, `http_503`,
//! `bad_answer`) and `dms:repairServedBy` (the URL that answered instead,
//! `-` for none), each separated by spaces (URLs hold none).

use std::fmt::Write;

use quick_xml::Reader;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;

use super::{BytesBySource, MAX_FAILOVERS, RepairFailover, ReportKind};

/// The namespace of reception reports.
pub const NAMESPACE: &str = "urn:3gpp:metadata:2008:MBMS:receptionreport";

/// Our namespace for the statistics of a `fileURI`.
pub const DMS_NAMESPACE: &str = "urn:dms:receptionreport:2026";

/// The MIME type of a reception report.
pub const CONTENT_TYPE: &str = "application/mbms-reception-report+xml";

/// Most files one XML report may name.
pub const MAX_FILES: usize = 1024;

/// One file a report speaks of.
#[derive(Clone, Debug, PartialEq)]
pub struct FileReport {
    /// The file's URI (its Content-Location).
    pub file_uri: String,
    /// Whether it was received.
    pub success: bool,
    /// RAck or StaR.
    pub kind: ReportKind,
    /// Our statistics (`dms:` attributes), when the report carries them.
    pub statistics: Option<FileStatistics>,
    /// The repair failovers (`dms:repairFailed`…; written on statistical
    /// reports only; the detail is not carried).
    pub failovers: Vec<RepairFailover>,
}

/// What a statistical report says of one file beyond its status.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FileStatistics {
    /// Bytes by source.
    pub bytes: BytesBySource,
    /// Seconds from the start of the reception to the whole file.
    pub seconds_to_complete: Option<f64>,
}

/// A reception report, parsed or to be written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReceptionReport {
    /// The device, when the report names it.
    pub client_id: Option<String>,
    /// `statisticalReport@sessionId`: the delivery session (for FLUTE,
    /// the sender's address and the TSI: `ADDRESS:TSI`).
    pub session_id: Option<String>,
    /// `statisticalReport@serviceId`: the user service (the USD's
    /// `serviceId`).
    pub service_id: Option<String>,
    /// The files reported.
    pub files: Vec<FileReport>,
}

impl ReceptionReport {
    /// The XML document. Files of kind [`ReportKind::Rack`] go in one
    /// `receptionAcknowledgement`, the others in one `statisticalReport`
    /// (a report holds one or the other in TS 26.346; a UE sends one
    /// kind). Elements with no file are left out.
    pub fn to_xml(&self) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            s,
            "<receptionReport xmlns=\"{NAMESPACE}\" xmlns:dms=\"{DMS_NAMESPACE}\">"
        );
        let attr = |s: &mut String, name: &str, value: &Option<String>| {
            if let Some(v) = value {
                let _ = write!(s, " {name}=\"{}\"", escape(v.as_str()));
            }
        };
        let acks: Vec<&FileReport> = self
            .files
            .iter()
            .filter(|f| f.kind == ReportKind::Rack)
            .collect();
        if !acks.is_empty() {
            s.push_str("  <receptionAcknowledgement");
            attr(&mut s, "clientId", &self.client_id);
            s.push_str(">\n");
            for f in acks {
                let _ = writeln!(s, "    <fileURI>{}</fileURI>", escape(f.file_uri.as_str()));
            }
            s.push_str("  </receptionAcknowledgement>\n");
        }
        let stars: Vec<&FileReport> = self
            .files
            .iter()
            .filter(|f| f.kind != ReportKind::Rack)
            .collect();
        if !stars.is_empty() {
            s.push_str("  <statisticalReport");
            attr(&mut s, "sessionId", &self.session_id);
            s.push_str(" sessionType=\"download\"");
            attr(&mut s, "serviceId", &self.service_id);
            attr(&mut s, "clientId", &self.client_id);
            s.push_str(">\n");
            for f in stars {
                let _ = write!(
                    s,
                    "    <fileURI receptionSuccess=\"{}\"",
                    u8::from(f.success)
                );
                if let Some(st) = &f.statistics {
                    let _ = write!(
                        s,
                        " dms:broadcastBytes=\"{}\" dms:peerBytes=\"{}\" dms:repairBytes=\"{}\"",
                        st.bytes.broadcast, st.bytes.peers, st.bytes.repair
                    );
                    if let Some(t) = st.seconds_to_complete.filter(|t| t.is_finite()) {
                        // f64's Display writes whole numbers without a fraction.
                        let _ = write!(s, " dms:secondsToComplete=\"{t}\"");
                    }
                }
                write_failovers(&mut s, &f.failovers);
                let _ = writeln!(s, ">{}</fileURI>", escape(f.file_uri.as_str()));
            }
            s.push_str("  </statisticalReport>\n");
        }
        s.push_str("</receptionReport>\n");
        s
    }
}

/// A list token: no spaces, not empty.
fn token_ok(t: &str) -> bool {
    !t.is_empty() && !t.contains(char::is_whitespace)
}

/// The three failover lists as `dms:` attributes (failovers whose
/// strings would not be one list token are left out).
fn write_failovers(s: &mut String, failovers: &[RepairFailover]) {
    let kept: Vec<&RepairFailover> = failovers
        .iter()
        .filter(|f| {
            token_ok(&f.failed)
                && token_ok(&f.reason)
                && f.served_by
                    .as_deref()
                    .is_none_or(|u| token_ok(u) && u != "-")
        })
        .take(MAX_FAILOVERS)
        .collect();
    if kept.is_empty() {
        return;
    }
    let list = |pick: &dyn Fn(&RepairFailover) -> &str| {
        kept.iter()
            .map(|f| escape(pick(f)).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = write!(
        s,
        " dms:repairFailed=\"{}\" dms:repairFailReason=\"{}\" dms:repairServedBy=\"{}\"",
        list(&|f| f.failed.as_str()),
        list(&|f| f.reason.as_str()),
        list(&|f| f.served_by.as_deref().unwrap_or("-")),
    );
}

/// The failovers of the three lists (as many as `dms:repairFailed`
/// names; a missing reason is `unknown`, a missing or `-` server none).
fn read_failovers(failed: &str, reasons: &str, served: &str) -> Vec<RepairFailover> {
    let mut reasons = reasons.split_whitespace();
    let mut served = served.split_whitespace();
    failed
        .split_whitespace()
        .take(MAX_FAILOVERS)
        .map(|url| RepairFailover {
            failed: url.to_owned(),
            reason: reasons.next().unwrap_or("unknown").to_owned(),
            detail: String::new(),
            served_by: served.next().filter(|s| *s != "-").map(str::to_owned),
        })
        .collect()
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
    // Not trimmed per text event: an entity splits the text into events,
    // and trimming each would drop the spaces beside it. The gathered text
    // is trimmed once, at its element's end.
    reader.config_mut().trim_text(false);
    let mut report = ReceptionReport::default();
    let mut saw_root = false;
    let mut section: Option<ReportKind> = None;
    // The element whose text is being gathered: a fileURI (with its
    // success flag) or a clientId.
    let mut file: Option<OpenFile> = None;
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
                let mut stats: Option<FileStatistics> = None;
                let (mut failed, mut reasons, mut served) = (None, None, None);
                for attr in e.attributes() {
                    let attr = attr.map_err(err)?;
                    let value = attr.unescape_value().map_err(err)?;
                    let count = || value.trim().parse::<u64>().ok();
                    match attr.key.local_name().as_ref() {
                        b"clientId" => report.client_id = Some(value.into_owned()),
                        b"sessionId" => report.session_id = Some(value.into_owned()),
                        b"serviceId" => report.service_id = Some(value.into_owned()),
                        b"receptionSuccess" => success = Some(truthy(&value)),
                        b"repairFailed" => failed = Some(value.into_owned()),
                        b"repairFailReason" => reasons = Some(value.into_owned()),
                        b"repairServedBy" => served = Some(value.into_owned()),
                        // Our statistics; a value that is not a number is
                        // skipped like an unknown attribute.
                        b"broadcastBytes" => {
                            if let Some(n) = count() {
                                stats.get_or_insert_default().bytes.broadcast = n;
                            }
                        }
                        b"peerBytes" => {
                            if let Some(n) = count() {
                                stats.get_or_insert_default().bytes.peers = n;
                            }
                        }
                        b"repairBytes" => {
                            if let Some(n) = count() {
                                stats.get_or_insert_default().bytes.repair = n;
                            }
                        }
                        b"secondsToComplete" => {
                            if let Some(t) = value
                                .trim()
                                .parse::<f64>()
                                .ok()
                                .filter(|t| t.is_finite() && *t >= 0.0)
                            {
                                stats.get_or_insert_default().seconds_to_complete = Some(t);
                            }
                        }
                        _ => {}
                    }
                }
                match name {
                    b"receptionReport" => saw_root = true,
                    b"receptionAcknowledgement" if open => section = Some(ReportKind::Rack),
                    b"statisticalReport" if open => section = Some(ReportKind::Star),
                    b"fileURI" if open && section.is_some() => {
                        // An acknowledgement is a success; StaR defaults to it.
                        let success = section == Some(ReportKind::Rack) || success.unwrap_or(true);
                        let failovers = failed.as_deref().map_or_else(Vec::new, |f| {
                            read_failovers(
                                f,
                                reasons.as_deref().unwrap_or(""),
                                served.as_deref().unwrap_or(""),
                            )
                        });
                        file = Some(OpenFile {
                            uri: String::new(),
                            success,
                            statistics: stats,
                            failovers,
                        });
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
                    if let (Some(open), Some(kind)) = (file.take(), section) {
                        let uri = open.uri.trim().to_owned();
                        if !uri.is_empty() {
                            if report.files.len() >= MAX_FILES {
                                return Err(err(format!("more than {MAX_FILES} files")));
                            }
                            report.files.push(FileReport {
                                file_uri: uri,
                                success: open.success,
                                kind,
                                statistics: open.statistics,
                                failovers: open.failovers,
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

/// A `fileURI` element being read: its text so far and its attributes.
struct OpenFile {
    uri: String,
    success: bool,
    statistics: Option<FileStatistics>,
    failovers: Vec<RepairFailover>,
}

fn push_text(file: &mut Option<OpenFile>, client: &mut Option<String>, text: &str) {
    if let Some(OpenFile { uri, .. }) = file {
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

    fn file(uri: &str, success: bool, kind: ReportKind, stats: bool) -> FileReport {
        FileReport {
            file_uri: uri.into(),
            success,
            kind,
            statistics: stats.then_some(FileStatistics {
                bytes: BytesBySource {
                    broadcast: 10,
                    peers: 2,
                    repair: 3,
                },
                seconds_to_complete: Some(1.5),
            }),
            failovers: Vec::new(),
        }
    }

    #[test]
    fn written_reports_parse_back() {
        let star = ReceptionReport {
            client_id: Some("ue <1>".into()),
            session_id: Some("127.0.0.1:7".into()),
            service_id: Some("urn:dms:session:x".into()),
            files: vec![
                file("https://o/dl/1/a.bin?x=1&y=2", true, ReportKind::Star, true),
                file("https://o/dl/2/b.bin", false, ReportKind::Star, false),
            ],
        };
        let xml = star.to_xml();
        assert!(
            xml.contains(r#"<fileURI receptionSuccess="0">https://o/dl/2/b.bin</fileURI>"#),
            "{xml}"
        );
        assert!(xml.contains("sessionType=\"download\""), "{xml}");
        assert!(!xml.contains("receptionAcknowledgement"), "{xml}");
        assert_eq!(parse(&xml).unwrap(), star);

        let rack = ReceptionReport {
            client_id: Some("ue-2".into()),
            files: vec![file("https://o/dl/1/a.bin", true, ReportKind::Rack, false)],
            ..ReceptionReport::default()
        };
        let xml = rack.to_xml();
        assert!(
            xml.contains("<receptionAcknowledgement clientId=\"ue-2\">"),
            "{xml}"
        );
        assert!(!xml.contains("statisticalReport"), "{xml}");
        assert_eq!(parse(&xml).unwrap(), rack);
    }

    #[test]
    fn failovers_are_written_as_dms_lists_and_parse_back() {
        let failover = |failed: &str, reason: &str, served: Option<&str>| RepairFailover {
            failed: failed.into(),
            reason: reason.into(),
            detail: String::new(),
            served_by: served.map(str::to_owned),
        };
        let mut f = file("https://o/dl/1/a.bin", true, ReportKind::Star, true);
        f.failovers = vec![
            failover(
                "http://r1:1/repair?a=1&b=2",
                "timeout",
                Some("http://r3/repair"),
            ),
            failover("http://r2/repair", "http_503", None),
        ];
        let report = ReceptionReport {
            client_id: Some("ue-1".into()),
            files: vec![f],
            ..ReceptionReport::default()
        };
        let xml = report.to_xml();
        assert!(
            xml.contains(
                r#"dms:repairFailed="http://r1:1/repair?a=1&amp;b=2 http://r2/repair" dms:repairFailReason="timeout http_503" dms:repairServedBy="http://r3/repair -""#
            ),
            "{xml}"
        );
        assert_eq!(parse(&xml).unwrap(), report);
        // The 3GPP part is what it was: the same elements, our attributes
        // in our namespace only.
        assert!(
            xml.contains(r#"<fileURI receptionSuccess="1" dms:broadcastBytes"#),
            "{xml}"
        );
        // A detail is JSON-only; a URL with a space cannot be a list token.
        let mut g = file("u", true, ReportKind::Star, false);
        g.failovers = vec![RepairFailover {
            detail: "refused".into(),
            ..failover("http://bad url/", "connect", None)
        }];
        let xml = ReceptionReport {
            files: vec![g],
            ..ReceptionReport::default()
        }
        .to_xml();
        assert!(!xml.contains("repairFailed"), "{xml}");
        // Lists of different lengths: the failed URLs count.
        let doc = r#"<receptionReport><statisticalReport><fileURI repairFailed="a b" repairFailReason="connect">u</fileURI></statisticalReport></receptionReport>"#;
        let parsed = parse(doc).unwrap();
        assert_eq!(
            parsed.files[0].failovers,
            vec![
                failover("a", "connect", None),
                failover("b", "unknown", None)
            ]
        );
    }

    #[test]
    fn statistics_that_are_not_numbers_are_skipped() {
        let doc = r#"<receptionReport xmlns:dms="urn:dms:receptionreport:2026"><statisticalReport>
            <fileURI dms:repairBytes="-1" dms:peerBytes="7" dms:secondsToComplete="NaN">u</fileURI>
            <fileURI>v</fileURI></statisticalReport></receptionReport>"#;
        let r = parse(doc).unwrap();
        let stats = r.files[0].statistics.unwrap();
        assert_eq!((stats.bytes.repair, stats.bytes.peers), (0, 7));
        assert_eq!(stats.seconds_to_complete, None);
        assert_eq!(r.files[1].statistics, None);
    }

    #[test]
    fn spaces_beside_an_entity_are_kept() {
        let doc = "<receptionReport><receptionAcknowledgement>\n  <fileURI> a&amp; b &quot;c</fileURI>\n\
            <clientId>ue &lt;1&gt;</clientId></receptionAcknowledgement></receptionReport>";
        let r = parse(doc).unwrap();
        assert_eq!(r.files[0].file_uri, "a& b \"c");
        assert_eq!(r.client_id.as_deref(), Some("ue <1>"));
        assert_eq!(parse(&r.to_xml()).unwrap().files[0].file_uri, "a& b \"c");
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
