//! The 48-byte NTP packet (RFC 5905 §7.3) as an SNTP client uses it (RFC 4330): a request
//! that carries nothing but a random nonce in its transmit timestamp (so it reveals nothing
//! of our clock, and the reply's originate timestamp proves it answers us), and the checks a
//! reply must pass before its time is believed.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an NTP packet without extension fields or MAC.
pub const PACKET_LEN: usize = 48;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_TO_UNIX: i128 = 2_208_988_800;
/// Seconds in one NTP era (the 32-bit seconds field wraps in 2036).
const ERA: i128 = 1 << 32;
const NANOS: i128 = 1_000_000_000;

/// No server that answers this is right: earlier than any percloud release (2025-01-01).
/// It also keeps a reply from stepping the clock back before certificates were made.
pub const EARLIEST_PLAUSIBLE_UNIX: i64 = 1_735_689_600;

/// An NTP timestamp: 32 bits of seconds since 1900 (modulo eras) and 32 bits of fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Nanoseconds since the Unix epoch. The era is chosen as RFC 4330 §3 says: seconds with
    /// the top bit set are 1968-2036 (era 0), the rest 2036-2104 (era 1).
    pub fn unix_nanos(self) -> i128 {
        let seconds = i128::from(self.0 >> 32);
        let era = if seconds >= 1 << 31 { 0 } else { ERA };
        let fraction = i128::from(self.0 & 0xffff_ffff);
        (seconds + era - NTP_TO_UNIX) * NANOS + ((fraction * NANOS) >> 32)
    }

    /// The timestamp of `unix_nanos` nanoseconds since the Unix epoch.
    pub fn from_unix_nanos(unix_nanos: i128) -> Timestamp {
        let ntp_nanos = unix_nanos + NTP_TO_UNIX * NANOS;
        let seconds = ntp_nanos.div_euclid(NANOS).rem_euclid(ERA);
        let fraction = (ntp_nanos.rem_euclid(NANOS) << 32) / NANOS;
        // Both parts are below 2^32 after the modulo and the scaling above.
        Timestamp(((seconds as u64) << 32) | fraction as u64)
    }
}

/// Nanoseconds since the Unix epoch of a system time (negative before 1970).
pub fn unix_nanos(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// An SNTP request (version 4, mode 3 "client") whose transmit timestamp is `nonce`.
pub fn request(nonce: u64) -> [u8; PACKET_LEN] {
    let mut packet = [0u8; PACKET_LEN];
    packet[0] = (4 << 3) | 3; // LI 0, VN 4, mode 3
    packet[40..48].copy_from_slice(&nonce.to_be_bytes());
    packet
}

/// A server's reply, decoded; nothing in it is trusted before [`Reply::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub leap: u8,
    pub version: u8,
    pub mode: u8,
    pub stratum: u8,
    /// The reference id: for stratum 0 ("kiss-o'-death") four ASCII letters such as `RATE`.
    pub reference_id: [u8; 4],
    pub originate: Timestamp,
    pub receive: Timestamp,
    pub transmit: Timestamp,
}

/// Why a reply is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    #[error("reply of {len} bytes, shorter than an NTP packet ({PACKET_LEN})")]
    TooShort { len: usize },
    #[error("not a server reply (mode {mode})")]
    NotServer { mode: u8 },
    #[error("unsupported NTP version {version}")]
    Version { version: u8 },
    #[error("the server's clock is not synchronised (leap indicator 3)")]
    Unsynchronised,
    #[error("the server sent a kiss-o'-death ({code}): ask another one")]
    KissOfDeath { code: String },
    #[error("stratum {stratum} is not 1-15")]
    Stratum { stratum: u8 },
    #[error("the reply's transmit or receive timestamp is zero")]
    ZeroTimestamp,
    #[error("the reply does not answer our request (originate timestamp differs)")]
    NotOurs,
    #[error("the server's time is before {EARLIEST_PLAUSIBLE_UNIX} (Unix seconds)")]
    Implausible,
}

impl Reply {
    /// Decodes the fixed header; extension fields and a MAC after it are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Reply, PacketError> {
        if bytes.len() < PACKET_LEN {
            return Err(PacketError::TooShort { len: bytes.len() });
        }
        let timestamp = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            Timestamp(u64::from_be_bytes(word))
        };
        Ok(Reply {
            leap: bytes[0] >> 6,
            version: (bytes[0] >> 3) & 0b111,
            mode: bytes[0] & 0b111,
            stratum: bytes[1],
            reference_id: [bytes[12], bytes[13], bytes[14], bytes[15]],
            originate: timestamp(24),
            receive: timestamp(32),
            transmit: timestamp(40),
        })
    }

    /// The sanity checks of RFC 4330 §5 for the reply to the request carrying `nonce`.
    pub fn check(&self, nonce: u64) -> Result<(), PacketError> {
        if self.originate != Timestamp(nonce) {
            return Err(PacketError::NotOurs);
        }
        if self.mode != 4 {
            return Err(PacketError::NotServer { mode: self.mode });
        }
        if !(3..=4).contains(&self.version) {
            return Err(PacketError::Version {
                version: self.version,
            });
        }
        if self.stratum == 0 {
            let code = self.reference_id.iter().map(|&b| b as char).collect();
            return Err(PacketError::KissOfDeath { code });
        }
        if self.leap == 3 {
            return Err(PacketError::Unsynchronised);
        }
        if self.stratum > 15 {
            return Err(PacketError::Stratum {
                stratum: self.stratum,
            });
        }
        if self.transmit.0 == 0 || self.receive.0 == 0 {
            return Err(PacketError::ZeroTimestamp);
        }
        if self.transmit.unix_nanos() < i128::from(EARLIEST_PLAUSIBLE_UNIX) * NANOS {
            return Err(PacketError::Implausible);
        }
        Ok(())
    }
}

/// A signed difference between two clocks, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offset(pub i128);

impl Offset {
    /// The size of the difference, whatever its sign.
    pub fn magnitude(self) -> Duration {
        let nanos = self.0.unsigned_abs();
        Duration::new(
            u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX),
            (nanos % 1_000_000_000) as u32,
        )
    }

    /// `time` moved by this offset; `None` if that is not a representable time.
    pub fn apply(self, time: SystemTime) -> Option<SystemTime> {
        if self.0 >= 0 {
            time.checked_add(self.magnitude())
        } else {
            time.checked_sub(self.magnitude())
        }
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let nanos = self.0.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:03} s",
            nanos / 1_000_000_000,
            (nanos % 1_000_000_000) / 1_000_000
        )
    }
}

/// What one exchange says about our clock (RFC 5905 §8), from our send time `t1`, the
/// server's receive `t2` and transmit `t3` times, and our receive time `t4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// How far the server's clock is ahead of ours.
    pub offset: Offset,
    /// The round trip, less the time the server held the request.
    pub delay: Offset,
}

impl Measurement {
    /// `t1` and `t4` in nanoseconds since the Unix epoch on our clock.
    pub fn new(t1: i128, reply: &Reply, t4: i128) -> Measurement {
        let (t2, t3) = (reply.receive.unix_nanos(), reply.transmit.unix_nanos());
        Measurement {
            offset: Offset(((t2 - t1) + (t3 - t4)) / 2),
            delay: Offset((t4 - t1) - (t3 - t2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_UNIX: i128 = 1_795_000_000; // November 2026
    const NONCE: u64 = 0x0123_4567_89ab_cdef;

    fn at(unix_seconds: i128) -> Timestamp {
        Timestamp::from_unix_nanos(unix_seconds * NANOS)
    }

    /// A well-formed reply to NONCE from a stratum-2 server, as a server would send it.
    fn reply_bytes() -> [u8; PACKET_LEN] {
        let mut b = [0u8; PACKET_LEN];
        b[0] = (4 << 3) | 4; // LI 0, VN 4, mode 4
        b[1] = 2;
        b[12..16].copy_from_slice(&[192, 0, 2, 1]);
        b[24..32].copy_from_slice(&NONCE.to_be_bytes());
        b[32..40].copy_from_slice(&at(NOW_UNIX).0.to_be_bytes());
        b[40..48].copy_from_slice(&at(NOW_UNIX).0.to_be_bytes());
        b
    }

    fn checked(edit: impl FnOnce(&mut [u8; PACKET_LEN])) -> Result<(), PacketError> {
        let mut b = reply_bytes();
        edit(&mut b);
        Reply::parse(&b)?.check(NONCE)
    }

    #[test]
    fn request_is_a_v4_client_packet_carrying_only_the_nonce() {
        let packet = request(NONCE);
        assert_eq!(packet[0], 0x23, "LI 0, version 4, mode 3");
        assert_eq!(&packet[40..48], &NONCE.to_be_bytes());
        assert!(
            packet[1..40].iter().all(|&b| b == 0),
            "nothing else is sent"
        );
    }

    #[test]
    fn timestamps_round_trip_and_cross_the_2036_era() {
        let t = at(NOW_UNIX);
        assert_eq!(t.unix_nanos(), NOW_UNIX * NANOS);
        assert_eq!(t.0 >> 32, (NOW_UNIX + NTP_TO_UNIX) as u64);
        // 2036-02-07T06:28:16Z is NTP second 2^32: era 1 starts again at 0.
        let era_one = 2_085_978_496;
        assert_eq!(at(era_one).0 >> 32, 0);
        assert_eq!(at(era_one + 1).unix_nanos(), (era_one + 1) * NANOS);
        let half = Timestamp::from_unix_nanos(NOW_UNIX * NANOS + 500_000_000);
        assert_eq!(half.0 & 0xffff_ffff, 1 << 31, "half a second of fraction");
        assert_eq!(half.unix_nanos(), NOW_UNIX * NANOS + 500_000_000);
    }

    #[test]
    fn parses_a_good_reply() {
        let reply = Reply::parse(&reply_bytes()).expect("parse");
        assert_eq!((reply.leap, reply.version, reply.mode), (0, 4, 4));
        assert_eq!(reply.stratum, 2);
        assert_eq!(reply.originate, Timestamp(NONCE));
        assert_eq!(reply.transmit.unix_nanos(), NOW_UNIX * NANOS);
        assert_eq!(reply.check(NONCE), Ok(()));
        let mut longer = reply_bytes().to_vec();
        longer.extend_from_slice(&[0u8; 20]); // a MAC after the header is ignored
        assert_eq!(Reply::parse(&longer).expect("parse"), reply);
    }

    #[test]
    fn rejects_replies_that_fail_the_sanity_checks() {
        assert_eq!(
            Reply::parse(&[0u8; 47]),
            Err(PacketError::TooShort { len: 47 })
        );
        assert_eq!(
            checked(|b| b[0] |= 3 << 6),
            Err(PacketError::Unsynchronised)
        );
        assert_eq!(
            checked(|b| {
                b[1] = 0;
                b[12..16].copy_from_slice(b"RATE");
            }),
            Err(PacketError::KissOfDeath {
                code: "RATE".into()
            })
        );
        assert_eq!(
            checked(|b| b[1] = 16),
            Err(PacketError::Stratum { stratum: 16 })
        );
        assert_eq!(checked(|b| b[1] = 1), Ok(()));
        assert_eq!(checked(|b| b[1] = 15), Ok(()));
        assert_eq!(
            checked(|b| b[40..48].fill(0)),
            Err(PacketError::ZeroTimestamp)
        );
        assert_eq!(checked(|b| b[31] ^= 1), Err(PacketError::NotOurs));
        assert_eq!(
            checked(|b| b[0] = (4 << 3) | 3),
            Err(PacketError::NotServer { mode: 3 })
        );
        assert_eq!(
            checked(|b| b[0] = (2 << 3) | 4),
            Err(PacketError::Version { version: 2 })
        );
        assert_eq!(
            checked(|b| b[40..48].copy_from_slice(&at(1_000_000_000).0.to_be_bytes())),
            Err(PacketError::Implausible)
        );
    }

    #[test]
    fn offset_and_delay_follow_rfc_5905() {
        // Our clock is 100 s behind; 20 ms each way; the server holds the request 1 ms.
        let ms = 1_000_000;
        let server = NOW_UNIX * NANOS;
        let t1 = server - 100_000 * ms - 20 * ms;
        let mut b = reply_bytes();
        b[32..40].copy_from_slice(&Timestamp::from_unix_nanos(server).0.to_be_bytes());
        b[40..48].copy_from_slice(&Timestamp::from_unix_nanos(server + ms).0.to_be_bytes());
        let reply = Reply::parse(&b).expect("parse");
        let t4 = t1 + 41 * ms;
        let m = Measurement::new(t1, &reply, t4);
        // Timestamps carry 2^-32 s: allow a nanosecond of rounding.
        assert!((m.offset.0 - 100_000 * ms).abs() <= 1, "{}", m.offset);
        assert!((m.delay.0 - 40 * ms).abs() <= 1, "{}", m.delay);
        assert_eq!(Offset(-1_500_000_000).to_string(), "-1.500 s");
        assert_eq!(
            Offset(-1_500_000_000).magnitude(),
            Duration::from_millis(1500)
        );
        let base = UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(
            Offset(-1_500_000_000).apply(base),
            Some(UNIX_EPOCH + Duration::from_millis(8500))
        );
    }
}
