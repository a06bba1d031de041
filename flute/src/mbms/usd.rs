//! The User Service Bundle Description (TS 26.346 §5.2.2 and §11.2,
//! namespace `urn:3GPP:metadata:2005:MBMS:userServiceDescription`): the
//! services of a bundle, each with the SDP and APD of its delivery, and
//! its schedule.
//!
//! ```xml
//! <bundleDescription xmlns="urn:3GPP:metadata:2005:MBMS:userServiceDescription"
//!     xmlns:sv="urn:3GPP:metadata:2009:MBMS:schedule">
//!   <userServiceDescription serviceId="urn:dms:session:ab12">
//!     <name lang="en">dms session ab12</name>
//!     <deliveryMethod sessionDescriptionURI="https://o.example/sdp/ab12"
//!         associatedProcedureDescriptionURI="https://o.example/apd/ab12"/>
//!     <sv:schedule><sv:sessionSchedule>
//!       <sv:start>2026-11-24T22:30:00Z</sv:start>
//!     </sv:sessionSchedule></sv:schedule>
//!   </userServiceDescription>
//! </bundleDescription>
//! ```
//!
//! The schedule is given inline, in the shape of the schedule
//! description's `sessionSchedule` (`start`, `stop` as xs:dateTime).
//! Unknown elements and attributes are skipped.

use std::fmt::Write;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::xml::{self, Element};
use super::{DescriptionError, escape};

/// The namespace of the User Service Description.
pub const NAMESPACE: &str = "urn:3GPP:metadata:2005:MBMS:userServiceDescription";

/// The namespace of the schedule elements.
pub const SCHEDULE_NAMESPACE: &str = "urn:3GPP:metadata:2009:MBMS:schedule";

/// Its MIME type.
pub const CONTENT_TYPE: &str = "application/mbms-user-service-description+xml";

/// Most services and delivery methods kept.
pub const MAX_ITEMS: usize = 64;

/// When a service is on the air, Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Start.
    pub start: u64,
    /// Stop (none: open-ended).
    pub stop: Option<u64>,
}

/// One `deliveryMethod`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryMethod {
    /// `sessionDescriptionURI`: the SDP.
    pub session_description_uri: String,
    /// `associatedProcedureDescriptionURI`: the APD, if any.
    pub associated_procedure_description_uri: Option<String>,
}

/// One `userServiceDescription`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserServiceDescription {
    /// `serviceId`.
    pub service_id: String,
    /// The first `name`, if any.
    pub name: Option<String>,
    /// Its delivery methods (at least one).
    pub delivery_methods: Vec<DeliveryMethod>,
    /// Its schedule, if given.
    pub schedule: Option<Schedule>,
}

/// A `bundleDescription`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UserServiceBundle {
    /// The services (at least one).
    pub services: Vec<UserServiceDescription>,
}

fn datetime(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".into())
}

fn parse_datetime(e: &Element) -> Result<u64, DescriptionError> {
    OffsetDateTime::parse(&e.text, &Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .ok_or_else(|| {
            DescriptionError::new(
                e.line,
                format!(
                    "{}: {:?} is not an xs:dateTime after 1970",
                    e.name,
                    e.text.chars().take(40).collect::<String>()
                ),
            )
        })
}

impl UserServiceBundle {
    /// The XML document.
    pub fn to_xml(&self) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            s,
            "<bundleDescription xmlns=\"{NAMESPACE}\" xmlns:sv=\"{SCHEDULE_NAMESPACE}\">"
        );
        for service in &self.services {
            let _ = writeln!(
                s,
                "  <userServiceDescription serviceId=\"{}\">",
                escape(&service.service_id)
            );
            if let Some(name) = &service.name {
                let _ = writeln!(s, "    <name lang=\"en\">{}</name>", escape(name));
            }
            for d in &service.delivery_methods {
                let _ = write!(
                    s,
                    "    <deliveryMethod sessionDescriptionURI=\"{}\"",
                    escape(&d.session_description_uri)
                );
                if let Some(apd) = &d.associated_procedure_description_uri {
                    let _ = write!(s, " associatedProcedureDescriptionURI=\"{}\"", escape(apd));
                }
                s.push_str("/>\n");
            }
            if let Some(schedule) = &service.schedule {
                let _ = writeln!(
                    s,
                    "    <sv:schedule>\n      <sv:sessionSchedule>\n        <sv:start>{}</sv:start>",
                    datetime(schedule.start)
                );
                if let Some(stop) = schedule.stop {
                    let _ = writeln!(s, "        <sv:stop>{}</sv:stop>", datetime(stop));
                }
                s.push_str("      </sv:sessionSchedule>\n    </sv:schedule>\n");
            }
            s.push_str("  </userServiceDescription>\n");
        }
        s.push_str("</bundleDescription>\n");
        s
    }

    /// Parses a `bundleDescription` document (or a bare
    /// `userServiceDescription`).
    pub fn parse(data: &[u8]) -> Result<UserServiceBundle, DescriptionError> {
        let root = xml::parse(data)?;
        if root.ns != NAMESPACE
            || (root.name != "bundleDescription" && root.name != "userServiceDescription")
        {
            return Err(DescriptionError::new(
                root.line,
                format!(
                    "root element is {:?} in {:?}, not bundleDescription in {NAMESPACE}",
                    root.name, root.ns
                ),
            ));
        }
        let mut bundle = UserServiceBundle::default();
        if root.name == "userServiceDescription" {
            bundle.services.push(service(&root)?);
        } else {
            for e in root
                .children(NAMESPACE, "userServiceDescription")
                .take(MAX_ITEMS)
            {
                bundle.services.push(service(e)?);
            }
        }
        if bundle.services.is_empty() {
            return Err(DescriptionError::new(
                root.line,
                "no userServiceDescription",
            ));
        }
        Ok(bundle)
    }
}

fn service(e: &Element) -> Result<UserServiceDescription, DescriptionError> {
    let service_id = e
        .attribute("serviceId")
        .ok_or_else(|| DescriptionError::new(e.line, "userServiceDescription without serviceId"))?
        .to_string();
    let mut delivery_methods = Vec::new();
    for d in e.children(NAMESPACE, "deliveryMethod").take(MAX_ITEMS) {
        let sdp = d.attribute("sessionDescriptionURI").ok_or_else(|| {
            DescriptionError::new(d.line, "deliveryMethod without sessionDescriptionURI")
        })?;
        delivery_methods.push(DeliveryMethod {
            session_description_uri: sdp.to_string(),
            associated_procedure_description_uri: d
                .attribute("associatedProcedureDescriptionURI")
                .map(str::to_string),
        });
    }
    if delivery_methods.is_empty() {
        return Err(DescriptionError::new(
            e.line,
            format!("userServiceDescription {service_id:?} has no deliveryMethod"),
        ));
    }
    let mut schedule = None;
    if let Some(session) = e
        .children(SCHEDULE_NAMESPACE, "schedule")
        .flat_map(|s| s.children(SCHEDULE_NAMESPACE, "sessionSchedule"))
        .next()
    {
        let start = session
            .children(SCHEDULE_NAMESPACE, "start")
            .next()
            .ok_or_else(|| DescriptionError::new(session.line, "sessionSchedule without start"))?;
        let stop = session.children(SCHEDULE_NAMESPACE, "stop").next();
        schedule = Some(Schedule {
            start: parse_datetime(start)?,
            stop: stop.map(parse_datetime).transpose()?,
        });
    }
    Ok(UserServiceDescription {
        service_id,
        name: e.children(NAMESPACE, "name").next().map(|n| n.text.clone()),
        delivery_methods,
        schedule,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn example() -> UserServiceBundle {
        UserServiceBundle {
            services: vec![UserServiceDescription {
                service_id: "urn:dms:session:ab12".into(),
                name: Some("dms session <ab12>".into()),
                delivery_methods: vec![DeliveryMethod {
                    session_description_uri: "https://o.example/sdp/ab12".into(),
                    associated_procedure_description_uri: Some(
                        "https://o.example/apd/ab12?a=1&b=2".into(),
                    ),
                }],
                schedule: Some(Schedule {
                    start: 1_795_559_400,
                    stop: Some(1_795_563_000),
                }),
            }],
        }
    }

    #[test]
    fn round_trips() {
        let usd = example();
        let xml = usd.to_xml();
        assert!(
            xml.contains("<sv:start>2026-11-24T22:30:00Z</sv:start>"),
            "{xml}"
        );
        assert_eq!(UserServiceBundle::parse(xml.as_bytes()).unwrap(), usd);
        let mut bare = example();
        bare.services[0].schedule = None;
        bare.services[0].name = None;
        bare.services[0].delivery_methods[0].associated_procedure_description_uri = None;
        assert_eq!(
            UserServiceBundle::parse(bare.to_xml().as_bytes()).unwrap(),
            bare
        );
    }

    #[test]
    fn bad_documents_name_the_line() {
        let xml = example()
            .to_xml()
            .replace(" sessionDescriptionURI", " sdpURI");
        assert_eq!(
            UserServiceBundle::parse(xml.as_bytes()).unwrap_err().line,
            5
        );
        let xml = example().to_xml().replace("2026-11-24T22:30:00Z", "soon");
        assert_eq!(
            UserServiceBundle::parse(xml.as_bytes()).unwrap_err().line,
            8
        );
        let xml = example().to_xml().replace(NAMESPACE, "urn:x");
        assert_eq!(
            UserServiceBundle::parse(xml.as_bytes()).unwrap_err().line,
            2
        );
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let xml = example().to_xml();
        let bytes = xml.as_bytes();
        for cut in 0..bytes.len() {
            let _ = UserServiceBundle::parse(&bytes[..cut]);
        }
        for i in 0..bytes.len() {
            for b in [0u8, b'<', b'>', b'&', b'"', b':', 0xc3] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let _ = UserServiceBundle::parse(&m);
            }
        }
    }
}
