//! Just enough DER reading to tell a certificate's issuer and expiry (for the admin page and
//! for deciding when to renew), without an X.509 parser dependency.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the admin page shows about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// The issuer's common name (or the whole issuer when it has none).
    pub issuer: String,
    pub not_after: SystemTime,
}

/// The issuer and expiry of a DER certificate; `None` when it cannot be read.
pub fn cert_facts(der: &[u8]) -> Option<CertFacts> {
    let (cert, _) = element(der, 0x30)?;
    let (tbs, _) = element(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = skip(rest)?; // [0] version
    }
    rest = skip(rest)?; // serial
    rest = skip(rest)?; // signature algorithm
    let (issuer, rest) = element(rest, 0x30)?;
    let (validity, _) = element(rest, 0x30)?;
    let after_not_before = skip(validity)?;
    let tag = *after_not_before.first()?;
    let (time, _) = element(after_not_before, tag)?;
    Some(CertFacts {
        issuer: common_name(issuer).unwrap_or_else(|| "unknown issuer".to_owned()),
        not_after: parse_time(tag, time)?,
    })
}

/// Splits a TLV with tag `tag` off `input`: (contents, rest).
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut len = 0usize;
        for byte in input.get(2..2 + count)? {
            len = (len << 8) | usize::from(*byte);
        }
        (len, 2 + count)
    };
    let end = header.checked_add(len)?;
    Some((input.get(header..end)?, input.get(end..)?))
}

fn skip(input: &[u8]) -> Option<&[u8]> {
    element(input, *input.first()?).map(|(_, rest)| rest)
}

/// The CN of a Name: SEQUENCE OF SET OF SEQUENCE { OID, value }.
fn common_name(mut name: &[u8]) -> Option<String> {
    const CN: [u8; 3] = [0x55, 0x04, 0x03];
    while !name.is_empty() {
        let (set, rest) = element(name, 0x31)?;
        name = rest;
        let (attr, _) = element(set, 0x30)?;
        let (oid, value) = element(attr, 0x06)?;
        if oid == CN {
            let (text, _) = element(value, *value.first()?)?;
            return String::from_utf8(text.to_vec()).ok();
        }
    }
    None
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn parse_time(tag: u8, bytes: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('Z')?;
    let num = |s: &str| s.parse::<i32>().ok();
    let (year, rest) = match tag {
        0x17 => {
            let yy = num(text.get(0..2)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (num(text.get(0..4)?)?, text.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| num(rest.get(i..i + 2)?);
    let month = time::Month::try_from(u8::try_from(field(0)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(field(2)?).ok()?).ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(field(4)?).ok()?,
        u8::try_from(field(6)?).ok()?,
        u8::try_from(field(8)?).ok()?,
    )
    .ok()?;
    let secs = date.with_time(clock).assume_utc().unix_timestamp();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_issuer_and_expiry_of_an_rcgen_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["box.example".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test Issuer");
        params.not_after = time::OffsetDateTime::from_unix_timestamp(4_102_444_800).expect("2100");
        let cert = params.clone().self_signed(&key).expect("cert");
        let facts = cert_facts(cert.der()).expect("facts");
        assert_eq!(facts.issuer, "Test Issuer");
        assert_eq!(
            facts.not_after,
            UNIX_EPOCH + Duration::from_secs(4_102_444_800)
        );

        params.not_after = time::OffsetDateTime::from_unix_timestamp(1_893_456_000).expect("2030");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(
            cert_facts(cert.der()).expect("facts").not_after,
            UNIX_EPOCH + Duration::from_secs(1_893_456_000)
        );
        assert_eq!(cert_facts(b"\x30\x03\x02\x01"), None);
    }
}
