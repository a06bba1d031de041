//! Why a request could not be made, said for a person: the whole chain of
//! causes (not only the outermost "client error (Connect)"), and when the
//! cause is a server certificate that TLS refused, what is wrong with it
//! (unknown issuer, expired, issued for another name) and what to do
//! (`--cacert FILE`). Every client of ours — the UE agent, `dms publish`,
//! `dms session`, `dms objects` — describes transport errors with
//! [`describe`].

use std::error::Error;
use std::time::{Duration, UNIX_EPOCH};

use rustls::CertificateError;

/// The rustls error somewhere in `error`'s chain of causes.
///
/// `std::io::Error::source` skips the error it wraps (it returns that
/// error's source), and hyper-rustls and reqwest hand TLS errors up
/// inside `io::Error`s: so each `io::Error` is looked into as well.
pub fn tls_error<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            current = Some(inner);
            continue;
        }
        current = e.source();
    }
    None
}

/// What is wrong with a refused server certificate, and the fix.
fn certificate_advice(e: &CertificateError) -> String {
    let date = |t: &rustls::pki_types::UnixTime| {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t.as_secs()))
    };
    let cacert = "give --cacert FILE with the CA certificate that signed it \
                  (for a dms origin's own certificate: DATA/tls/cert.pem)";
    match e {
        CertificateError::UnknownIssuer => format!(
            "the server's TLS certificate is not trusted: unknown issuer (self-signed, or \
             signed by a CA this client was not given); {cacert}"
        ),
        CertificateError::BadSignature => format!(
            "the server's TLS certificate is not trusted: its signature does not verify \
             against the CA given; {cacert}"
        ),
        CertificateError::Expired => "the server's TLS certificate has expired: renew it on \
                                      the server (or check this machine's clock)"
            .to_owned(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "the server's TLS certificate expired on {} (it is now {}): renew it on the \
             server (or check this machine's clock)",
            date(not_after),
            date(time)
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's TLS certificate is not valid yet: check this machine's clock".to_owned()
        }
        CertificateError::NotValidForName => "the server's TLS certificate was issued for \
                                              another name: use the host name it names in \
                                              the URL, or reissue it for this one"
            .to_owned(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "the server's TLS certificate was issued for {} and not for {}: use one of those \
             names in the URL, or reissue the certificate for this one",
            if presented.is_empty() {
                "no name".to_owned()
            } else {
                presented
                    .iter()
                    .map(|p| presented_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            expected.to_str()
        ),
        other => format!("the server's TLS certificate is not trusted ({other}); {cacert}"),
    }
}

/// A name as rustls reports a certificate's names (`DnsName("a.example")`,
/// `IpAddress(V4(Ipv4Addr([127, 0, 0, 1])))`), as a person writes it.
fn presented_name(presented: &str) -> String {
    if let Some(dns) = presented
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
    {
        return dns.to_owned();
    }
    if let Some(v4) = presented.strip_prefix("IpAddress(V4(Ipv4Addr([")
        && let Some(octets) = v4.strip_suffix("])))")
    {
        return octets
            .split(',')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(".");
    }
    presented.to_owned()
}

/// `error` and its causes, for a person: the chain of messages (each
/// said once), or, when TLS refused the server's certificate, what is
/// wrong with it and how to fix it.
pub fn describe(error: &(dyn Error + 'static)) -> String {
    if let Some(tls) = tls_error(error) {
        return match tls {
            rustls::Error::InvalidCertificate(e) => certificate_advice(e),
            other => format!("TLS: {other}"),
        };
    }
    let mut out = String::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let message = e.to_string();
        if !out.contains(&message) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&message);
        }
        current = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Outer(#[source] std::io::Error);

    fn wrapped(e: rustls::Error) -> Outer {
        Outer(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn a_refused_certificate_names_its_cause_and_the_fix() {
        let unknown = wrapped(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        let text = describe(&unknown);
        assert!(
            text.contains("unknown issuer") && text.contains("--cacert"),
            "{text}"
        );
        let name = wrapped(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("dms.example").unwrap(),
                presented: vec![
                    "DnsName(\"localhost\")".to_owned(),
                    "IpAddress(V4(Ipv4Addr([127, 0, 0, 1])))".to_owned(),
                ],
            },
        ));
        let text = describe(&name);
        assert!(
            text.contains("issued for localhost, 127.0.0.1 and not for dms.example"),
            "{text}"
        );
        let expired = wrapped(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert!(describe(&expired).contains("expired"));
    }

    #[test]
    fn other_errors_keep_their_whole_chain() {
        let refused = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        ));
        assert_eq!(
            describe(&refused),
            "client error (Connect): Connection refused (os error 111)"
        );
    }
}
