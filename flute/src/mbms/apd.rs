//! The Associated Procedure Description (TS 26.346 §9.5, namespace
//! `urn:3GPP:metadata:2005:MBMS:associatedProcedure`):
//!
//! ```xml
//! <associatedProcedureDescription xmlns="urn:3GPP:metadata:2005:MBMS:associatedProcedure">
//!   <postFileRepair offsetTime="0" randomTimePeriod="1">
//!     <serviceURI>https://origin.example/repair</serviceURI>
//!   </postFileRepair>
//!   <postReceptionReport offsetTime="0" randomTimePeriod="1"
//!       samplePercentage="100" reportType="StaR-all">
//!     <serviceURI>https://origin.example/report</serviceURI>
//!   </postReceptionReport>
//! </associatedProcedureDescription>
//! ```
//!
//! Times are whole seconds. Unknown elements and attributes (later
//! releases, vendors) are skipped.

use std::fmt::Write;

use super::xml::{self, Element};
use super::{DescriptionError, escape};

/// The namespace of the Associated Procedure Description.
pub const NAMESPACE: &str = "urn:3GPP:metadata:2005:MBMS:associatedProcedure";

/// Its MIME type.
pub const CONTENT_TYPE: &str = "application/mbms-associated-procedure-description+xml";

/// Most `serviceURI` elements kept per procedure.
pub const MAX_SERVICE_URIS: usize = 64;

/// Longest `serviceURI` accepted, characters.
pub const MAX_URI_LEN: usize = 2048;

/// Which reception reports a device sends (`reportType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReportType {
    /// Reception acknowledgement: a report for each file received, no
    /// statistics (the TS 26.346 default).
    #[default]
    RAck,
    /// Statistical report of each file received.
    StaR,
    /// Statistical report of every file, received or not.
    StaRAll,
}

impl ReportType {
    /// The `reportType` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportType::RAck => "RAck",
            ReportType::StaR => "StaR",
            ReportType::StaRAll => "StaR-all",
        }
    }

    /// Whether a file that was not received is reported.
    pub fn reports_failures(self) -> bool {
        self == ReportType::StaRAll
    }

    /// Whether reports carry statistics (bytes by source, time).
    pub fn has_statistics(self) -> bool {
        self != ReportType::RAck
    }
}

impl std::str::FromStr for ReportType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "RAck" => Ok(ReportType::RAck),
            "StaR" => Ok(ReportType::StaR),
            "StaR-all" => Ok(ReportType::StaRAll),
            other => Err(format!(
                "{:?}: not RAck, StaR or StaR-all",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

impl std::fmt::Display for ReportType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `postFileRepair`: where and when to ask for missing symbols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRepair {
    /// `offsetTime`: seconds to wait after the session ends.
    pub offset_time: u64,
    /// `randomTimePeriod`: width of the uniform random wait added, seconds.
    pub random_time_period: u64,
    /// `serviceURI`: the repair servers, one chosen at random.
    pub service_uris: Vec<String>,
}

/// `postReceptionReport`: whether, when and where to report.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceptionReporting {
    /// `offsetTime`, seconds.
    pub offset_time: u64,
    /// `randomTimePeriod`, seconds.
    pub random_time_period: u64,
    /// `samplePercentage`: the share of devices that report, 0 to 100.
    pub sample_percentage: f64,
    /// `reportType`.
    pub report_type: ReportType,
    /// `serviceURI`: where reports go.
    pub service_uris: Vec<String>,
}

/// An `associatedProcedureDescription`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AssociatedProcedures {
    /// `postFileRepair`, if given.
    pub file_repair: Option<FileRepair>,
    /// `postReceptionReport`, if given.
    pub reception_report: Option<ReceptionReporting>,
}

fn uri_elements(out: &mut String, uris: &[String]) {
    for uri in uris {
        let _ = writeln!(out, "    <serviceURI>{}</serviceURI>", escape(uri));
    }
}

/// A percentage as written: whole numbers without a fraction.
fn percent_text(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}")
    }
}

impl AssociatedProcedures {
    /// The XML document.
    pub fn to_xml(&self) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(s, "<associatedProcedureDescription xmlns=\"{NAMESPACE}\">");
        if let Some(r) = &self.file_repair {
            let _ = writeln!(
                s,
                "  <postFileRepair offsetTime=\"{}\" randomTimePeriod=\"{}\">",
                r.offset_time, r.random_time_period
            );
            uri_elements(&mut s, &r.service_uris);
            s.push_str("  </postFileRepair>\n");
        }
        if let Some(r) = &self.reception_report {
            let _ = writeln!(
                s,
                "  <postReceptionReport offsetTime=\"{}\" randomTimePeriod=\"{}\" samplePercentage=\"{}\" reportType=\"{}\">",
                r.offset_time,
                r.random_time_period,
                percent_text(r.sample_percentage),
                r.report_type
            );
            uri_elements(&mut s, &r.service_uris);
            s.push_str("  </postReceptionReport>\n");
        }
        s.push_str("</associatedProcedureDescription>\n");
        s
    }

    /// Parses an `associatedProcedureDescription` document.
    pub fn parse(data: &[u8]) -> Result<AssociatedProcedures, DescriptionError> {
        let root = xml::parse(data)?;
        if root.ns != NAMESPACE || root.name != "associatedProcedureDescription" {
            return Err(DescriptionError::new(
                root.line,
                format!(
                    "root element is {:?} in {:?}, not associatedProcedureDescription in {NAMESPACE}",
                    root.name, root.ns
                ),
            ));
        }
        let mut apd = AssociatedProcedures::default();
        if let Some(e) = root.children(NAMESPACE, "postFileRepair").next() {
            apd.file_repair = Some(FileRepair {
                offset_time: e.parsed("offsetTime")?.unwrap_or(0),
                random_time_period: e.parsed("randomTimePeriod")?.unwrap_or(0),
                service_uris: service_uris(e)?,
            });
        }
        if let Some(e) = root.children(NAMESPACE, "postReceptionReport").next() {
            let sample_percentage: f64 = e.parsed("samplePercentage")?.unwrap_or(100.0);
            if !(0.0..=100.0).contains(&sample_percentage) {
                return Err(DescriptionError::new(
                    e.line,
                    format!(
                        "postReceptionReport@samplePercentage: {sample_percentage} is not 0 to 100"
                    ),
                ));
            }
            let report_type = match e.attribute("reportType") {
                None => ReportType::default(),
                Some(t) => t.trim().parse().map_err(|m: String| {
                    DescriptionError::new(e.line, format!("postReceptionReport@reportType: {m}"))
                })?,
            };
            apd.reception_report = Some(ReceptionReporting {
                offset_time: e.parsed("offsetTime")?.unwrap_or(0),
                random_time_period: e.parsed("randomTimePeriod")?.unwrap_or(0),
                sample_percentage,
                report_type,
                service_uris: service_uris(e)?,
            });
        }
        Ok(apd)
    }
}

fn service_uris(e: &Element) -> Result<Vec<String>, DescriptionError> {
    let mut uris = Vec::new();
    for u in e.children(NAMESPACE, "serviceURI") {
        if u.text.is_empty() || u.text.len() > MAX_URI_LEN {
            return Err(DescriptionError::new(
                u.line,
                format!("serviceURI: empty or longer than {MAX_URI_LEN} characters"),
            ));
        }
        if uris.len() < MAX_SERVICE_URIS {
            uris.push(u.text.clone());
        }
    }
    Ok(uris)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn example() -> AssociatedProcedures {
        AssociatedProcedures {
            file_repair: Some(FileRepair {
                offset_time: 5,
                random_time_period: 10,
                service_uris: vec![
                    "https://a.example/repair".into(),
                    "https://b.example/repair?x=1&y=2".into(),
                ],
            }),
            reception_report: Some(ReceptionReporting {
                offset_time: 0,
                random_time_period: 1,
                sample_percentage: 12.5,
                report_type: ReportType::StaR,
                service_uris: vec!["https://a.example/report".into()],
            }),
        }
    }

    #[test]
    fn round_trips() {
        let apd = example();
        let xml = apd.to_xml();
        assert!(xml.contains("&amp;y=2"), "{xml}");
        assert_eq!(AssociatedProcedures::parse(xml.as_bytes()).unwrap(), apd);
        let empty = AssociatedProcedures::default();
        assert_eq!(
            AssociatedProcedures::parse(empty.to_xml().as_bytes()).unwrap(),
            empty
        );
    }

    #[test]
    fn prefixed_documents_with_extensions_parse_and_defaults_apply() {
        let xml = format!(
            "<a:associatedProcedureDescription xmlns:a=\"{NAMESPACE}\" xmlns:v=\"urn:vendor\">\n\
             <v:thing/>\n<a:postFileRepair randomTimePeriod=\"3\" v:x=\"1\">\n\
             <a:serviceURI>http://r/</a:serviceURI><v:serviceURI>http://no/</v:serviceURI>\n\
             </a:postFileRepair><a:postReceptionReport><a:serviceURI>http://rep/</a:serviceURI>\
             </a:postReceptionReport></a:associatedProcedureDescription>"
        );
        let apd = AssociatedProcedures::parse(xml.as_bytes()).unwrap();
        let repair = apd.file_repair.unwrap();
        assert_eq!((repair.offset_time, repair.random_time_period), (0, 3));
        assert_eq!(repair.service_uris, vec!["http://r/".to_string()]);
        let report = apd.reception_report.unwrap();
        assert_eq!(report.report_type, ReportType::RAck);
        assert_eq!(report.sample_percentage, 100.0);
    }

    #[test]
    fn bad_documents_name_the_line() {
        let xml = example()
            .to_xml()
            .replace("reportType=\"StaR\"", "reportType=\"Everything\"");
        let e = AssociatedProcedures::parse(xml.as_bytes()).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        let xml = example()
            .to_xml()
            .replace("offsetTime=\"5\"", "offsetTime=\"-5\"");
        assert_eq!(
            AssociatedProcedures::parse(xml.as_bytes())
                .unwrap_err()
                .line,
            3
        );
        let xml = example().to_xml().replace("12.5", "101");
        assert_eq!(
            AssociatedProcedures::parse(xml.as_bytes())
                .unwrap_err()
                .line,
            7
        );
        let xml = example().to_xml().replace(NAMESPACE, "urn:other");
        assert_eq!(
            AssociatedProcedures::parse(xml.as_bytes())
                .unwrap_err()
                .line,
            2
        );
        let xml = example().to_xml().replace("</postFileRepair>", "");
        assert!(AssociatedProcedures::parse(xml.as_bytes()).is_err());
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let xml = example().to_xml();
        let bytes = xml.as_bytes();
        for cut in 0..bytes.len() {
            let _ = AssociatedProcedures::parse(&bytes[..cut]);
        }
        for i in 0..bytes.len() {
            for b in [0u8, b'<', b'>', b'&', b'"', b'/', 0xc3] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let _ = AssociatedProcedures::parse(&m);
            }
        }
        let deep = format!(
            "<associatedProcedureDescription xmlns=\"{NAMESPACE}\">{}",
            "<a>".repeat(10_000)
        );
        assert!(AssociatedProcedures::parse(deep.as_bytes()).is_err());
    }
}
