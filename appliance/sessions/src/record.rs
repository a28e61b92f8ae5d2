//! The on-disk records (sessions here, app passwords in `app_passwords`): one format-version
//! byte, then postcard. Old versions stay readable; unknown ones are refused rather than
//! guessed at.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Session, SessionError};

/// The record format this build writes.
const FORMAT_V1: u8 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: u64,
    pub token_hash: [u8; 32],
    pub user_id: u64,
    pub user_name: String,
    pub created: u64,
    pub last_seen: u64,
    pub address: String,
    pub user_agent: String,
    pub csrf: String,
}

impl Record {
    pub fn encode(&self) -> Result<Vec<u8>, SessionError> {
        encode_record(FORMAT_V1, self, "session")
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, SessionError> {
        decode_record(bytes, FORMAT_V1, "session")
    }

    pub fn into_session(self) -> Session {
        Session {
            id: self.id,
            user_id: self.user_id,
            user_name: self.user_name,
            created: self.created,
            last_seen: self.last_seen,
            address: self.address,
            user_agent: self.user_agent,
            csrf: self.csrf,
        }
    }
}

/// `value` as a record of format `version`: the version byte, then postcard. `what` names
/// the kind of record in errors.
pub(crate) fn encode_record<T: Serialize>(
    version: u8,
    value: &T,
    what: &str,
) -> Result<Vec<u8>, SessionError> {
    let mut bytes = vec![version];
    let body = postcard::to_stdvec(value).map_err(|e| SessionError::Corrupt {
        detail: format!("encoding {what}: {e}"),
    })?;
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// A record [`encode_record`] wrote with format `version`; any other version is refused.
pub(crate) fn decode_record<T: DeserializeOwned>(
    bytes: &[u8],
    version: u8,
    what: &str,
) -> Result<T, SessionError> {
    match bytes.split_first() {
        Some((&found, body)) if found == version => {
            postcard::from_bytes(body).map_err(|e| SessionError::Corrupt {
                detail: format!("{what}: {e}"),
            })
        }
        Some((&found, _)) => Err(SessionError::UnsupportedFormat {
            found,
            supported: version,
        }),
        None => Err(SessionError::Corrupt {
            detail: format!("empty {what} record"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1 record as this build first wrote it: must stay readable by every later build.
    const V1_FIXTURE: &[u8] = &[
        1, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
        24, 25, 26, 27, 28, 29, 30, 31, 32, 3, 5, b'a', b'l', b'i', b'c', b'e', 100, 200, 1, 9,
        b'1', b'2', b'7', b'.', b'0', b'.', b'0', b'.', b'1', 2, b'u', b'a', 4, b'c', b's', b'r',
        b'f',
    ];

    fn sample() -> Record {
        let mut token_hash = [0u8; 32];
        for (i, b) in token_hash.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        Record {
            id: 7,
            token_hash,
            user_id: 3,
            user_name: "alice".into(),
            created: 100,
            last_seen: 200,
            address: "127.0.0.1".into(),
            user_agent: "ua".into(),
            csrf: "csrf".into(),
        }
    }

    #[test]
    fn reads_the_v1_fixture() {
        let record = Record::decode(V1_FIXTURE).expect("v1 decodes");
        assert_eq!(record.encode().expect("encode"), V1_FIXTURE);
        assert_eq!(record.into_session(), sample().into_session());
    }

    #[test]
    fn refuses_unknown_versions_and_garbage() {
        let mut bytes = sample().encode().expect("encode");
        bytes[0] = 2;
        assert!(matches!(
            Record::decode(&bytes),
            Err(SessionError::UnsupportedFormat { found: 2, .. })
        ));
        assert!(matches!(
            Record::decode(&[]),
            Err(SessionError::Corrupt { .. })
        ));
        assert!(matches!(
            Record::decode(&[1, 0xff]),
            Err(SessionError::Corrupt { .. })
        ));
    }
}
