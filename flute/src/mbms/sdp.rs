//! The SDP of a FLUTE session (RFC 4566, RFC 4570, TS 26.346 §7.3):
//!
//! ```text
//! v=0
//! o=- 1234 1 IN IP4 127.0.0.1
//! s=dms session 1234
//! c=IN IP4 239.255.1.1/1
//! t=3973000000 0
//! a=source-filter: incl IN IP4 239.255.1.1 127.0.0.1
//! a=flute-tsi:7
//! a=flute-ch:1
//! a=FEC-declaration:0 encoding-id=6
//! m=application 5000 FLUTE/UDP 0
//! b=AS:10000
//! a=FEC:0
//! ```
//!
//! The parser takes what a receiver needs from the first
//! `m=application PORT FLUTE/UDP` section and the session level, skips
//! lines it does not know, and refuses (naming the line) what it cannot
//! use: IPv6 groups, a missing or zero port, an unknown FEC encoding ID.

use std::net::Ipv4Addr;

use dms_fec::FecScheme;

use super::{DescriptionError, NTP_UNIX_OFFSET, checked_text};

/// Most sources one `a=source-filter` line may list.
pub const MAX_SOURCES: usize = 64;

/// Largest TSI (LCT allows 48 bits).
const MAX_TSI: u64 = (1 << 48) - 1;

/// What a receiver needs to join one FLUTE session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version.
    pub session_version: u64,
    /// `o=` unicast address of the originator (as written).
    pub origin: String,
    /// `s=` session name.
    pub name: String,
    /// `c=` multicast group.
    pub group: Ipv4Addr,
    /// `c=` TTL.
    pub ttl: u8,
    /// `m=` UDP port.
    pub port: u16,
    /// `a=source-filter: incl` sources for the group (empty: any source).
    pub sources: Vec<Ipv4Addr>,
    /// `a=flute-tsi`: the Transport Session Identifier.
    pub tsi: u64,
    /// `a=flute-ch`: number of channels (1 unless said).
    pub channels: u32,
    /// The FEC scheme of `a=FEC-declaration` (Compact No-Code when there
    /// is none).
    pub fec: FecScheme,
    /// `instance-id` of the FEC declaration.
    pub fec_instance_id: Option<u16>,
    /// `b=AS`: bandwidth, kbit/s.
    pub bandwidth_kbps: Option<u64>,
    /// `t=` start, Unix seconds (`None`: `0`, unbounded).
    pub start: Option<u64>,
    /// `t=` stop, Unix seconds (`None`: `0`, unbounded).
    pub stop: Option<u64>,
}

impl SessionDescription {
    /// The SDP text (CRLF line ends, as RFC 4566 asks).
    pub fn to_sdp(&self) -> String {
        use std::fmt::Write;
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        let addrtype = if self.origin.contains(':') {
            "IP6"
        } else {
            "IP4"
        };
        let ntp = |t: Option<u64>| t.map_or(0, |t| t.saturating_add(NTP_UNIX_OFFSET));
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = write!(
            s,
            "v=0\r\no=- {} {} IN {addrtype} {}\r\ns={}\r\nc=IN IP4 {}/{}\r\nt={} {}\r\n",
            self.session_id,
            self.session_version,
            clean(&self.origin).replace(' ', "-"),
            clean(&self.name),
            self.group,
            self.ttl,
            ntp(self.start),
            ntp(self.stop),
        );
        if !self.sources.is_empty() {
            let _ = write!(s, "a=source-filter: incl IN IP4 {}", self.group);
            for src in &self.sources {
                let _ = write!(s, " {src}");
            }
            s.push_str("\r\n");
        }
        let _ = write!(
            s,
            "a=flute-tsi:{}\r\na=flute-ch:{}\r\na=FEC-declaration:0 encoding-id={}",
            self.tsi,
            self.channels,
            self.fec.encoding_id()
        );
        if let Some(id) = self.fec_instance_id {
            let _ = write!(s, "; instance-id={id}");
        }
        let _ = write!(s, "\r\nm=application {} FLUTE/UDP 0\r\n", self.port);
        if let Some(kbps) = self.bandwidth_kbps {
            let _ = write!(s, "b=AS:{kbps}\r\n");
        }
        s.push_str("a=FEC:0\r\n");
        s
    }

    /// Parses an SDP document; see the module documentation for what is
    /// taken and what is refused.
    pub fn parse(data: &[u8]) -> Result<SessionDescription, DescriptionError> {
        Parser::default().run(checked_text(data)?)
    }
}

/// A FEC declaration: its reference, scheme and instance id, and its line.
#[derive(Clone, Debug)]
struct FecDeclaration {
    reference: String,
    scheme: Result<FecScheme, String>,
    instance_id: Option<u16>,
    line: usize,
}

#[derive(Default)]
struct Parser {
    origin: Option<(u64, u64, String)>,
    name: Option<String>,
    session_c: Option<(Ipv4Addr, u8)>,
    media_c: Option<(Ipv4Addr, u8)>,
    time: Option<(Option<u64>, Option<u64>)>,
    /// `(dest or "*", sources, line)` of each `incl` filter.
    filters: Vec<(Option<Ipv4Addr>, Vec<Ipv4Addr>)>,
    tsi: Option<u64>,
    channels: Option<u32>,
    declarations: Vec<FecDeclaration>,
    fec_ref: Option<(String, usize)>,
    bandwidth: Option<u64>,
    /// The port once the FLUTE media section has begun.
    port: Option<u16>,
    /// Whether the lines now read belong to the FLUTE media section.
    in_flute: bool,
    /// Whether the lines now read belong to another media section, or
    /// follow ours (they are skipped).
    skipping: bool,
}

fn number<T: std::str::FromStr>(
    line: usize,
    what: &str,
    text: &str,
) -> Result<T, DescriptionError> {
    text.trim().parse().map_err(|_| {
        DescriptionError::new(
            line,
            format!("{what}: {:?} is not a valid number", short(text)),
        )
    })
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// `IN IP4 addr[/ttl[/count]]` of a `c=` line.
fn connection(line: usize, value: &str) -> Result<(Ipv4Addr, u8), DescriptionError> {
    let mut parts = value.split_ascii_whitespace();
    let (nettype, addrtype, addr) = (parts.next(), parts.next(), parts.next());
    if nettype != Some("IN") {
        return Err(DescriptionError::new(line, "c=: network type is not IN"));
    }
    match addrtype {
        Some("IP4") => {}
        Some("IP6") => {
            return Err(DescriptionError::new(
                line,
                "c=: an IPv6 group; dms receives IPv4 multicast only",
            ));
        }
        _ => return Err(DescriptionError::new(line, "c=: address type is not IP4")),
    }
    let addr = addr.ok_or_else(|| DescriptionError::new(line, "c=: no address"))?;
    let mut fields = addr.split('/');
    let ip: Ipv4Addr = fields.next().unwrap_or_default().parse().map_err(|_| {
        DescriptionError::new(
            line,
            format!("c=: {:?} is not an IPv4 address", short(addr)),
        )
    })?;
    if !ip.is_multicast() {
        return Err(DescriptionError::new(
            line,
            format!("c=: {ip} is not a multicast group"),
        ));
    }
    let ttl = match fields.next() {
        Some(t) => number(line, "c= TTL", t)?,
        None => 1,
    };
    Ok((ip, ttl))
}

/// NTP seconds of `t=` to Unix seconds (`0`: none).
fn ntp_time(line: usize, text: &str) -> Result<Option<u64>, DescriptionError> {
    let ntp: u64 = number(line, "t=", text)?;
    if ntp == 0 {
        return Ok(None);
    }
    ntp.checked_sub(NTP_UNIX_OFFSET)
        .map(Some)
        .ok_or_else(|| DescriptionError::new(line, format!("t=: NTP time {ntp} is before 1970")))
}

impl Parser {
    fn run(mut self, text: &str) -> Result<SessionDescription, DescriptionError> {
        let mut lines = text
            .split('\n')
            .enumerate()
            .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)));
        match lines.next() {
            Some((_, "v=0")) => {}
            Some((n, _)) => {
                return Err(DescriptionError::new(
                    n,
                    "not SDP: the first line must be v=0",
                ));
            }
            None => return Err(DescriptionError::new(0, "empty")),
        }
        let mut media_line = 0;
        for (n, raw) in lines {
            if raw.trim().is_empty() {
                continue;
            }
            let Some((kind, value)) = raw.split_once('=') else {
                return Err(DescriptionError::new(
                    n,
                    format!("{:?} is not TYPE=VALUE", short(raw)),
                ));
            };
            if kind.len() != 1 {
                return Err(DescriptionError::new(
                    n,
                    format!("{:?} is not a one-letter SDP type", short(kind)),
                ));
            }
            if kind == "m" {
                self.in_flute = false;
                self.skipping = true;
                if self.port.is_some() {
                    // A section after ours: ours is complete.
                    continue;
                }
                let mut f = value.split_ascii_whitespace();
                let (media, port, proto) = (f.next(), f.next(), f.next());
                if media == Some("application")
                    && proto.is_some_and(|p| p.eq_ignore_ascii_case("FLUTE/UDP"))
                {
                    let port = port.ok_or_else(|| DescriptionError::new(n, "m=: no port"))?;
                    let port: u16 =
                        number(n, "m= port", port.split('/').next().unwrap_or_default())?;
                    if port == 0 {
                        return Err(DescriptionError::new(n, "m=: port 0"));
                    }
                    self.port = Some(port);
                    self.in_flute = true;
                    self.skipping = false;
                    media_line = n;
                }
                continue;
            }
            if !self.skipping {
                self.line(n, kind, value)?;
            }
        }
        self.finish(media_line)
    }

    fn line(&mut self, n: usize, kind: &str, value: &str) -> Result<(), DescriptionError> {
        let media = self.in_flute;
        match kind {
            "o" => {
                let f: Vec<&str> = value.split_ascii_whitespace().collect();
                if f.len() != 6 {
                    return Err(DescriptionError::new(
                        n,
                        "o=: not USERNAME SESS-ID SESS-VERSION IN IP4|IP6 ADDRESS",
                    ));
                }
                self.origin = Some((
                    number(n, "o= session id", f[1])?,
                    number(n, "o= version", f[2])?,
                    f[5].to_string(),
                ));
            }
            // A bare CR inside the line is text to us but a line end to
            // others: kept as the writer writes it (a space).
            "s" => self.name = Some(value.replace('\r', " ")),
            "c" => {
                let c = connection(n, value)?;
                if media {
                    self.media_c = Some(c);
                } else {
                    self.session_c = Some(c);
                }
            }
            "t" if self.time.is_none() => {
                let mut f = value.split_ascii_whitespace();
                let (start, stop) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
                self.time = Some((ntp_time(n, start)?, ntp_time(n, stop)?));
            }
            "b" => {
                if let Some(kbps) = value.strip_prefix("AS:") {
                    let kbps = number(n, "b=AS", kbps)?;
                    if media || self.bandwidth.is_none() {
                        self.bandwidth = Some(kbps);
                    }
                }
            }
            "a" => self.attribute(n, value)?,
            _ => {}
        }
        Ok(())
    }

    fn attribute(&mut self, n: usize, value: &str) -> Result<(), DescriptionError> {
        let (name, rest) = value.split_once(':').unwrap_or((value, ""));
        match name {
            "source-filter" => {
                let f: Vec<&str> = rest.split_ascii_whitespace().collect();
                if f.len() < 5 {
                    return Err(DescriptionError::new(
                        n,
                        "a=source-filter: not incl|excl IN IP4 DEST SOURCE…",
                    ));
                }
                if f[0] != "incl" {
                    // Exclusion filters only narrow what any-source
                    // reception takes; they are not needed to join.
                    return Ok(());
                }
                match f[2] {
                    "IP4" => {}
                    "IP6" => {
                        return Err(DescriptionError::new(
                            n,
                            "a=source-filter: IPv6; dms receives IPv4 multicast only",
                        ));
                    }
                    other => {
                        return Err(DescriptionError::new(
                            n,
                            format!("a=source-filter: address type {:?}", short(other)),
                        ));
                    }
                }
                let dest = if f[3] == "*" {
                    None
                } else {
                    Some(f[3].parse().map_err(|_| {
                        DescriptionError::new(
                            n,
                            format!("a=source-filter: {:?} is not an IPv4 address", short(f[3])),
                        )
                    })?)
                };
                if f.len() - 4 > MAX_SOURCES {
                    return Err(DescriptionError::new(
                        n,
                        format!("a=source-filter: more than {MAX_SOURCES} sources"),
                    ));
                }
                let mut sources = Vec::new();
                for s in &f[4..] {
                    let ip: Ipv4Addr = s.parse().map_err(|_| {
                        DescriptionError::new(
                            n,
                            format!("a=source-filter: {:?} is not an IPv4 address", short(s)),
                        )
                    })?;
                    if !sources.contains(&ip) {
                        sources.push(ip);
                    }
                }
                self.filters.push((dest, sources));
            }
            "flute-tsi" => {
                let tsi: u64 = number(n, "a=flute-tsi", rest)?;
                if tsi > MAX_TSI {
                    return Err(DescriptionError::new(n, "a=flute-tsi: more than 48 bits"));
                }
                self.tsi = Some(tsi);
            }
            "flute-ch" => self.channels = Some(number(n, "a=flute-ch", rest)?),
            "FEC-declaration" => {
                let (reference, params) = rest
                    .trim_start()
                    .split_once(' ')
                    .unwrap_or((rest.trim(), ""));
                let mut scheme = Err("a=FEC-declaration: no encoding-id".to_string());
                let mut instance_id = None;
                for param in params.split(';') {
                    let Some((key, v)) = param.split_once('=') else {
                        continue;
                    };
                    match key.trim() {
                        "encoding-id" => {
                            let id: u8 = number(n, "a=FEC-declaration encoding-id", v)?;
                            scheme = FecScheme::from_encoding_id(id).map_err(|_| {
                                format!("a=FEC-declaration: unknown FEC encoding ID {id}")
                            });
                        }
                        "instance-id" => {
                            instance_id = Some(number(n, "a=FEC-declaration instance-id", v)?)
                        }
                        _ => {}
                    }
                }
                if self.declarations.len() < 16 {
                    self.declarations.push(FecDeclaration {
                        reference: reference.to_string(),
                        scheme,
                        instance_id,
                        line: n,
                    });
                }
            }
            "FEC" if self.in_flute || self.fec_ref.is_none() => {
                self.fec_ref = Some((rest.trim().to_string(), n));
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self, media_line: usize) -> Result<SessionDescription, DescriptionError> {
        let port = self.port.ok_or_else(|| {
            DescriptionError::new(0, "no m=application PORT FLUTE/UDP line: no port to join")
        })?;
        let (group, ttl) = self
            .media_c
            .or(self.session_c)
            .ok_or_else(|| DescriptionError::new(media_line, "no c= line: no group to join"))?;
        let tsi = self
            .tsi
            .ok_or_else(|| DescriptionError::new(media_line, "no a=flute-tsi line"))?;
        let (session_id, session_version, origin) = self.origin.unwrap_or((0, 0, "-".into()));
        let declaration = match &self.fec_ref {
            Some((reference, line)) => Some(
                self.declarations
                    .iter()
                    .find(|d| &d.reference == reference)
                    .ok_or_else(|| {
                        DescriptionError::new(
                            *line,
                            format!("a=FEC:{} names no a=FEC-declaration", short(reference)),
                        )
                    })?,
            ),
            None => self.declarations.first(),
        };
        let (fec, fec_instance_id) = match declaration {
            None => (FecScheme::NoCode, None),
            Some(d) => (
                d.scheme
                    .clone()
                    .map_err(|m| DescriptionError::new(d.line, m))?,
                d.instance_id,
            ),
        };
        let mut sources = Vec::new();
        for (dest, list) in &self.filters {
            if dest.is_none_or(|d| d == group) {
                for s in list {
                    if !sources.contains(s) && sources.len() < MAX_SOURCES {
                        sources.push(*s);
                    }
                }
            }
        }
        let (start, stop) = self.time.unwrap_or((None, None));
        Ok(SessionDescription {
            session_id,
            session_version,
            origin,
            name: self.name.unwrap_or_default(),
            group,
            ttl,
            port,
            sources,
            tsi,
            channels: self.channels.unwrap_or(1),
            fec,
            fec_instance_id,
            bandwidth_kbps: self.bandwidth,
            start,
            stop,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn example() -> SessionDescription {
        SessionDescription {
            session_id: 1234,
            session_version: 1,
            origin: "127.0.0.1".into(),
            name: "dms session 1234".into(),
            group: Ipv4Addr::new(239, 255, 1, 1),
            ttl: 1,
            port: 5000,
            sources: vec![Ipv4Addr::LOCALHOST],
            tsi: 7,
            channels: 1,
            fec: FecScheme::RaptorQ,
            fec_instance_id: None,
            bandwidth_kbps: Some(10_000),
            start: Some(1_795_559_400),
            stop: None,
        }
    }

    #[test]
    fn round_trips() {
        let sdp = example();
        let text = sdp.to_sdp();
        assert!(
            text.contains("m=application 5000 FLUTE/UDP 0\r\n"),
            "{text}"
        );
        assert!(text.contains("t=4004548200 0\r\n"), "{text}");
        assert_eq!(SessionDescription::parse(text.as_bytes()).unwrap(), sdp);
        let mut other = example();
        other.fec = FecScheme::NoCode;
        other.fec_instance_id = Some(3);
        other.sources.clear();
        other.bandwidth_kbps = None;
        other.start = None;
        assert_eq!(
            SessionDescription::parse(other.to_sdp().as_bytes()).unwrap(),
            other
        );
    }

    #[test]
    fn a_3gpp_style_description_parses() {
        let text = "v=0\no=user123 2890844526 2890842807 IN IP6 2201:056D::112E:144A:1E24\n\
s=File delivery session example\ni=More information\nt=2873397496 2873404696\n\
a=mbms-mode:broadcast 123869108302929 1\na=FEC-declaration:0 encoding-id=1\n\
a=FEC-declaration:1 encoding-id=6; instance-id=2\n\
a=source-filter: incl IN IP4 * 192.0.2.9\na=flute-tsi:3\n\
m=audio 4000 RTP/AVP 0\nc=IN IP4 224.1.2.4/127\n\
m=application 12345 FLUTE/UDP 0\nc=IN IP4 233.252.0.1/127\nb=64\nb=AS:384\na=lang:EN\na=FEC:1\n";
        let sdp = SessionDescription::parse(text.as_bytes()).unwrap();
        assert_eq!(sdp.group, Ipv4Addr::new(233, 252, 0, 1));
        assert_eq!((sdp.port, sdp.ttl, sdp.tsi), (12345, 127, 3));
        assert_eq!(sdp.sources, vec![Ipv4Addr::new(192, 0, 2, 9)]);
        assert_eq!(sdp.fec, FecScheme::RaptorQ);
        assert_eq!(sdp.fec_instance_id, Some(2));
        assert_eq!(sdp.bandwidth_kbps, Some(384));
        assert_eq!(sdp.start, Some(2_873_397_496 - NTP_UNIX_OFFSET));
        assert_eq!(sdp.origin, "2201:056D::112E:144A:1E24");
    }

    fn error_of(text: &str) -> DescriptionError {
        SessionDescription::parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn unusable_descriptions_name_the_line() {
        let base = example().to_sdp();
        let ipv6 = base.replace("c=IN IP4 239.255.1.1/1", "c=IN IP6 ff0e::1");
        let e = error_of(&ipv6);
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("IPv6"), "{e}");
        let fec = base.replace("encoding-id=6", "encoding-id=99");
        let e = error_of(&fec);
        assert_eq!(e.line, 9, "{e}");
        assert!(
            e.to_string().starts_with("line 9: ") && e.message.contains("99"),
            "{e}"
        );
        let e = error_of(&base.replace("m=application 5000", "m=application 0"));
        assert_eq!(e.line, 10, "{e}");
        let e = error_of(&base.replace("m=application 5000 FLUTE/UDP 0", "m=application"));
        assert!(e.message.contains("no port"), "{e}");
        let e = error_of(&base.replace("a=flute-tsi:7", "a=flute-tsi:x"));
        assert_eq!(e.line, 7, "{e}");
        let e = error_of(&base.replace("a=flute-tsi:7\r\n", ""));
        assert!(e.message.contains("flute-tsi"), "{e}");
        let e = error_of(&base.replace("239.255.1.1/1", "10.0.0.1/1"));
        assert_eq!(e.line, 4, "{e}");
        assert_eq!(error_of("v=1\n").line, 1);
        assert_eq!(error_of("").line, 1);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let base = example().to_sdp();
        let bytes = base.as_bytes();
        for cut in 0..bytes.len() {
            let _ = SessionDescription::parse(&bytes[..cut]);
        }
        for i in 0..bytes.len() {
            for b in [0u8, b'=', b':', b'/', b' ', b'\n', 0xff, b'9'] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let _ = SessionDescription::parse(&m);
            }
        }
        let _ = SessionDescription::parse(&vec![b'a'; MAX_DESCRIPTION_LEN_PLUS]);
    }

    const MAX_DESCRIPTION_LEN_PLUS: usize = super::super::MAX_DESCRIPTION_LEN + 1;
}
