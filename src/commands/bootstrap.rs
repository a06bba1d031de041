//! `dms receive --usd URL` / `--sdp FILE|URL`: the session a 3GPP MBMS
//! client would join, learned from its descriptions instead of flags. The
//! documents are parsed by [`dms_flute::mbms`]; this module only fetches
//! them and turns them into the agent's settings.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use dms_flute::mbms::{
    AssociatedProcedures, MAX_DESCRIPTION_LEN, ReportType, SessionDescription, UserServiceBundle,
};
use dms_repair::client::backoff::Backoff;
use dms_repair::client::{ClientConfig, RepairClient};

/// What the descriptions say about a session.
#[derive(Debug)]
pub struct Bootstrap {
    /// The SDP.
    pub sdp: SessionDescription,
    /// The APD, when the USD names one.
    pub procedures: Option<AssociatedProcedures>,
    /// The USD's `serviceId`, when the session came from one.
    pub service_id: Option<String>,
}

/// Reads `source`: an `http(s)://` URL (fetched) or a file.
fn read(
    source: &str,
    client: &RepairClient,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Vec<u8>> {
    if source.starts_with("https://") || source.starts_with("http://") {
        let body = rt
            .block_on(client.fetch(source, MAX_DESCRIPTION_LEN))
            .with_context(|| format!("fetching {source}"))?;
        Ok(body.to_vec())
    } else {
        std::fs::read(source).with_context(|| format!("reading {source}"))
    }
}

/// Fetches and parses the USD at `usd` (then its SDP and APD) or the SDP
/// alone at `sdp`; errors name the document and its line.
pub fn load(
    usd: Option<&str>,
    sdp: Option<&str>,
    roots: rustls::RootCertStore,
) -> anyhow::Result<Bootstrap> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = RepairClient::new(ClientConfig {
        roots,
        ..ClientConfig::default()
    })?;
    let (sdp_source, apd_source, service_id) = match (usd, sdp) {
        (Some(usd), _) => {
            let bundle = UserServiceBundle::parse(&read(usd, &client, &rt)?)
                .with_context(|| format!("USD {usd}"))?;
            let service = bundle.services.first();
            let method = service
                .and_then(|s| s.delivery_methods.first())
                .with_context(|| format!("USD {usd}: no deliveryMethod"))?;
            (
                method.session_description_uri.clone(),
                method.associated_procedure_description_uri.clone(),
                service.map(|s| s.service_id.clone()),
            )
        }
        (None, Some(sdp)) => (sdp.to_string(), None, None),
        (None, None) => bail!("neither --usd nor --sdp"),
    };
    let sdp = SessionDescription::parse(&read(&sdp_source, &client, &rt)?)
        .with_context(|| format!("SDP {sdp_source}"))?;
    let procedures = match apd_source {
        Some(apd) => Some(
            AssociatedProcedures::parse(&read(&apd, &client, &rt)?)
                .with_context(|| format!("APD {apd}"))?,
        ),
        None => None,
    };
    Ok(Bootstrap {
        sdp,
        procedures,
        service_id,
    })
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Bootstrap {
    /// The group and port to join.
    pub fn group(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.sdp.group), self.sdp.port)
    }

    /// How long to wait for the scheduled start (`t=`); an error when the
    /// session already ended.
    pub fn wait(&self) -> anyhow::Result<Duration> {
        let now = unix_now();
        if let Some(stop) = self.sdp.stop
            && stop <= now
        {
            bail!(
                "SDP: t=: the session ended {} s ago (at Unix time {stop})",
                now - stop
            );
        }
        Ok(Duration::from_secs(
            self.sdp.start.map_or(0, |s| s.saturating_sub(now)),
        ))
    }

    /// The repair servers of the APD (none without one).
    pub fn repair_uris(&self) -> Vec<String> {
        self.procedures
            .as_ref()
            .and_then(|p| p.file_repair.as_ref())
            .map(|r| r.service_uris.clone())
            .unwrap_or_default()
    }

    /// The repair back-off of the APD.
    pub fn backoff(&self) -> Option<Backoff> {
        let repair = self.procedures.as_ref()?.file_repair.as_ref()?;
        Some(Backoff {
            offset: Duration::from_secs(repair.offset_time),
            random_period: Duration::from_secs(repair.random_time_period),
        })
    }

    /// The report back-off of the APD.
    pub fn report_backoff(&self) -> Option<Backoff> {
        let report = self.procedures.as_ref()?.reception_report.as_ref()?;
        Some(Backoff {
            offset: Duration::from_secs(report.offset_time),
            random_period: Duration::from_secs(report.random_time_period),
        })
    }

    /// The delivery session as a statistical report names it: the
    /// sender's address (the SDP's first source, else its `o=` address)
    /// and the TSI, `ADDRESS:TSI`.
    pub fn session_id(&self) -> String {
        match self.sdp.sources.first() {
            Some(source) => format!("{source}:{}", self.sdp.tsi),
            None => format!("{}:{}", self.sdp.origin, self.sdp.tsi),
        }
    }

    /// Where and what to report: `None` when the APD has no reporting or
    /// this device is not in the `samplePercentage` (drawn from `unit`,
    /// uniform in [0, 1)).
    pub fn reporting(&self, unit: f64) -> Option<(String, ReportType)> {
        let report = self.procedures.as_ref()?.reception_report.as_ref()?;
        if unit * 100.0 >= report.sample_percentage {
            return None;
        }
        let uri = report.service_uris.first()?.clone();
        Some((uri, report.report_type))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;
    use dms_flute::mbms::ReceptionReporting;

    fn with_sample(p: f64) -> Bootstrap {
        let text = "v=0\r\nc=IN IP4 239.255.1.1/1\r\nt=0 0\r\na=flute-tsi:1\r\nm=application 5000 FLUTE/UDP 0\r\n";
        Bootstrap {
            sdp: SessionDescription::parse(text.as_bytes()).unwrap(),
            procedures: Some(AssociatedProcedures {
                file_repair: None,
                reception_report: Some(ReceptionReporting {
                    offset_time: 0,
                    random_time_period: 0,
                    sample_percentage: p,
                    report_type: ReportType::RAck,
                    service_uris: vec!["https://o/report".into()],
                }),
            }),
            service_id: None,
        }
    }

    #[test]
    fn sample_percentage_decides_who_reports() {
        assert!(with_sample(0.0).reporting(0.0).is_none());
        assert!(with_sample(100.0).reporting(0.999).is_some());
        assert!(with_sample(25.0).reporting(0.2).is_some());
        assert!(with_sample(25.0).reporting(0.3).is_none());
        let b = with_sample(100.0);
        assert_eq!(b.group().to_string(), "239.255.1.1:5000");
        assert_eq!(b.wait().unwrap(), Duration::ZERO);
    }
}
