//! LwM2M Firmware Update (Object 5) results posted to `/notify/{id}`: a
//! device (or the DM server that read them from it) reports its Update
//! Result `/5/0/5` and State `/5/0/3`, as SenML JSON (what an LwM2M
//! Read or Notify of the object carries, `application/senml+json`) or as
//! plain `PATH=VALUE` lines (`/5/0/5=1`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An Object 5 report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lwm2mUpdate {
    /// `/5/0/5` Update Result (0–9, LwM2M 1.0/1.1).
    pub update_result: u8,
    /// What the Update Result means.
    pub update_result_text: String,
    /// `/5/0/3` State (0 Idle, 1 Downloading, 2 Downloaded, 3 Updating),
    /// when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<u8>,
}

/// Where a device's update stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Installed (`900 Success`, Update Result 1).
    Succeeded,
    /// Failed (any other 9xx status, Update Result 2–9).
    Failed,
    /// Downloaded, not yet installed (State 2 with Update Result 0).
    Downloaded,
    /// Downloading or updating (State 1 or 3 with Update Result 0).
    InProgress,
    /// Nothing to tell yet (Update Result 0, State 0 or unknown).
    Idle,
}

/// The meaning of an Update Result value.
pub fn update_result_text(result: u8) -> Option<&'static str> {
    Some(match result {
        0 => "Initial value",
        1 => "Firmware updated successfully",
        2 => "Not enough flash memory for the new firmware package",
        3 => "Out of RAM during downloading process",
        4 => "Connection lost during downloading process",
        5 => "Integrity check failure for new downloaded package",
        6 => "Unsupported package type",
        7 => "Invalid URI",
        8 => "Firmware update failed",
        9 => "Unsupported protocol",
        _ => return None,
    })
}

impl Lwm2mUpdate {
    /// Where the device's update stands.
    pub fn outcome(&self) -> Outcome {
        match (self.update_result, self.state) {
            (1, _) => Outcome::Succeeded,
            (2..=9, _) => Outcome::Failed,
            (_, Some(2)) => Outcome::Downloaded,
            (_, Some(1 | 3)) => Outcome::InProgress,
            _ => Outcome::Idle,
        }
    }

    /// A one-line summary (the notification's `text`).
    pub fn summary(&self) -> String {
        match self.state {
            Some(s) => format!(
                "LwM2M /5/0/5={} ({}), /5/0/3={s}",
                self.update_result, self.update_result_text
            ),
            None => format!(
                "LwM2M /5/0/5={} ({})",
                self.update_result, self.update_result_text
            ),
        }
    }
}

/// The outcome of a DL-OTA 9xx status code.
pub fn outcome_of_status(code: u16) -> Outcome {
    if code == 900 {
        Outcome::Succeeded
    } else {
        Outcome::Failed
    }
}

/// True when `body` looks like an Object 5 report rather than a 9xx line.
pub fn is_report(body: &str) -> bool {
    let t = body.trim_start();
    t.starts_with('[') || t.starts_with("/5/") || t.starts_with("5/")
}

fn resource(name: &str) -> Option<u8> {
    match name.trim_start_matches('/') {
        "5/0/5" => Some(5),
        "5/0/3" => Some(3),
        _ => None,
    }
}

fn small(value: f64, what: &str) -> Result<u8, String> {
    if value.fract() == 0.0 && (0.0..=255.0).contains(&value) {
        Ok(value as u8)
    } else {
        Err(format!("{what} must be an integer 0 to 255"))
    }
}

/// Parses a report: SenML JSON (`[{"bn":"/5/0/","n":"5","v":1}, …]`) or
/// `PATH=VALUE` lines. The Update Result must be there and known.
pub fn parse_report(body: &str) -> Result<Lwm2mUpdate, String> {
    let mut result = None;
    let mut state = None;
    let mut set = |name: &str, value: f64| -> Result<(), String> {
        match resource(name) {
            Some(5) => result = Some(small(value, "/5/0/5")?),
            Some(_) => state = Some(small(value, "/5/0/3")?),
            None => {} // other resources (package name, version…) are not kept
        }
        Ok(())
    };
    if body.trim_start().starts_with('[') {
        let records: Vec<serde_json::Value> =
            serde_json::from_str(body).map_err(|e| format!("SenML JSON: {e}"))?;
        let mut base = String::new();
        for r in &records {
            if let Some(bn) = r.get("bn").and_then(|v| v.as_str()) {
                base = bn.to_owned();
            }
            let name = format!(
                "{base}{}",
                r.get("n").and_then(|v| v.as_str()).unwrap_or("")
            );
            if let Some(v) = r.get("v").and_then(serde_json::Value::as_f64) {
                set(&name, v)?;
            }
        }
    } else {
        for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| format!("expected PATH=VALUE, got {line:?}"))?;
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{name}: not a number"))?;
            set(name.trim(), value)?;
        }
    }
    let update_result = result.ok_or("no /5/0/5 (Update Result) in the report")?;
    let text = update_result_text(update_result)
        .ok_or_else(|| format!("/5/0/5={update_result} is not an Update Result (0 to 9)"))?;
    if state.is_some_and(|s| s > 3) {
        return Err("/5/0/3 (State) must be 0 to 3".into());
    }
    Ok(Lwm2mUpdate {
        update_result,
        update_result_text: text.to_owned(),
        state,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn senml_and_lines_parse() {
        let r =
            parse_report(r#"[{"bn":"/5/0/","n":"3","v":0},{"n":"5","v":1},{"n":"7","vs":"fw"}]"#)
                .unwrap();
        assert_eq!((r.update_result, r.state), (1, Some(0)));
        assert_eq!(r.outcome(), Outcome::Succeeded);
        let r = parse_report("/5/0/3=2\n/5/0/5=0\n").unwrap();
        assert_eq!(r.outcome(), Outcome::Downloaded);
        assert_eq!(parse_report("5/0/5=5").unwrap().outcome(), Outcome::Failed);
        assert_eq!(
            parse_report("/5/0/5=0\n/5/0/3=1").unwrap().outcome(),
            Outcome::InProgress
        );
        for bad in [
            "/5/0/3=1",
            "/5/0/5=10",
            "/5/0/5=1.5",
            "/5/0/5",
            "[{",
            "/5/0/5=1\n/5/0/3=7",
        ] {
            assert!(parse_report(bad).is_err(), "{bad}");
        }
        assert!(is_report("[{}]") && is_report("/5/0/5=1") && !is_report("900 Success"));
    }
}
