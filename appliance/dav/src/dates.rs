//! Timestamps as WebDAV wants them: RFC 1123 (getlastmodified, Last-Modified) and RFC 3339
//! (creationdate).

use std::time::{SystemTime, UNIX_EPOCH};

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn rfc1123(t: SystemTime) -> String {
    let mut out = String::with_capacity(29);
    rfc1123_into(&mut out, t);
    out
}

/// [`rfc1123`] appended to `out`. Formatted in a byte buffer: a PROPFIND formats one or two
/// dates for every entry it lists, and `fmt` cost more than the date arithmetic.
pub(crate) fn rfc1123_into(out: &mut String, t: SystemTime) {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let (days, rem) = days_and_seconds(t);
    let (y, m, d) = civil_from_days(days);
    let mut buf = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    buf[..3].copy_from_slice(WEEKDAYS[(days % 7) as usize]); // 1970-01-01 was a Thursday
    put_two(&mut buf[5..7], u64::from(d));
    buf[8..11].copy_from_slice(MONTHS[m as usize - 1]);
    put_two(&mut buf[12..14], y / 100);
    put_two(&mut buf[14..16], y);
    put_time(&mut buf[17..25], rem);
    push_ascii(out, &buf);
}

/// `1994-11-06T08:49:37Z` (UTC, whole seconds) appended to `out`.
pub(crate) fn rfc3339_into(out: &mut String, t: SystemTime) {
    let (days, rem) = days_and_seconds(t);
    let (y, m, d) = civil_from_days(days);
    let mut buf = *b"1970-01-01T00:00:00Z";
    put_two(&mut buf[..2], y / 100);
    put_two(&mut buf[2..4], y);
    put_two(&mut buf[5..7], u64::from(m));
    put_two(&mut buf[8..10], u64::from(d));
    put_time(&mut buf[11..19], rem);
    push_ascii(out, &buf);
}

/// Whole days since 1970-01-01 and the seconds into the last one. Times before 1970 count as
/// its first second and times after 9999 as its last, as HTTP dates cannot say them (a
/// client chooses a file's modification time).
fn days_and_seconds(t: SystemTime) -> (u64, u64) {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = whole_seconds(t).min(LAST);
    (secs / 86_400, secs % 86_400)
}

/// `hh:mm:ss` of `secs` into a day, into `buf[..8]`.
fn put_time(buf: &mut [u8], secs: u64) {
    put_two(&mut buf[..2], secs / 3600);
    put_two(&mut buf[3..5], secs % 3600 / 60);
    put_two(&mut buf[6..8], secs % 60);
}

/// The last two decimal digits of `n`.
fn put_two(buf: &mut [u8], n: u64) {
    let n = (n % 100) as u8;
    buf[0] = b'0' + n / 10;
    buf[1] = b'0' + n % 10;
}

fn push_ascii(out: &mut String, bytes: &[u8]) {
    out.push_str(std::str::from_utf8(bytes).unwrap_or_default());
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y } as u64, m, d)
}

/// Truncates to whole seconds, the resolution of HTTP dates.
pub(crate) fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rfc3339(t: SystemTime) -> String {
        let mut out = String::new();
        rfc3339_into(&mut out, t);
        out
    }

    #[test]
    fn formats_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(rfc1123(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(rfc3339(t), "1994-11-06T08:49:37Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc1123(UNIX_EPOCH - Duration::from_secs(1)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc1123(far), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59Z");
    }

    /// Every day from 1970 to 2200 (leap years, centuries, 2100's missing leap day), at a
    /// time of day that moves through the hours, against the httpdate crate.
    #[test]
    fn http_dates_match_httpdate() {
        for day in 0..84_000u64 {
            let t = UNIX_EPOCH + Duration::from_secs(day * 86_400 + day * 7_919 % 86_400);
            assert_eq!(rfc1123(t), httpdate::fmt_http_date(t), "day {day}");
        }
    }
}
