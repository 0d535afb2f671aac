//! The binary encoding of stored records: one version byte, then the record in bincode 2 with the
//! standard configuration. No other module encodes or decodes records. A record type whose
//! layout changes gets a new version byte, and its older layouts are decoded here through
//! [`Record::decode_older`].

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version byte of every record type whose layout never changed.
pub(crate) const FIRST_VERSION: u8 = 1;

/// A stored record that cannot be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The record is empty, so it has no version byte.
    #[error("stored record is empty")]
    Empty,
    /// The record has a version byte that this build does not read.
    #[error("stored record has format version {found}, expected {expected}")]
    Version {
        /// The version byte of the record.
        found: u8,
        /// The newest version byte of its type.
        expected: u8,
    },
    /// bincode could not encode the record.
    #[error("cannot encode record: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// bincode could not decode the record.
    #[error("cannot decode record: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

/// A record type of the store, with the version byte it is written with.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// Version byte written in front of this type's records.
    const VERSION: u8 = FIRST_VERSION;

    /// Decodes `body` written with an older version byte of this type. Types that never
    /// changed layout reject every other version.
    fn decode_older(version: u8, body: &[u8]) -> Result<Self, CodecError> {
        let _ = body;
        Err(CodecError::Version {
            found: version,
            expected: Self::VERSION,
        })
    }
}

/// Encodes a record with its version byte.
pub(crate) fn encode<T: Record>(record: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![T::VERSION];
    let body = bincode::serde::encode_to_vec(record, bincode::config::standard())?;
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Decodes a record written by [`encode`], by this build or by an older one.
pub(crate) fn decode<T: Record>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version == T::VERSION {
        decode_body(body)
    } else {
        T::decode_older(version, body)
    }
}

/// Decodes a record body without its version byte, as any layout `T`.
pub(crate) fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (record, _) = bincode::serde::decode_from_slice(body, bincode::config::standard())?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        name: String,
        count: u32,
        note: Option<String>,
    }

    impl Record for Sample {}

    /// `Sample` with one more field, read from old records with that field empty.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct SampleV2 {
        name: String,
        count: u32,
        note: Option<String>,
        extra: Option<u64>,
    }

    impl Record for SampleV2 {
        const VERSION: u8 = 2;

        fn decode_older(version: u8, body: &[u8]) -> Result<Self, CodecError> {
            if version != FIRST_VERSION {
                return Err(CodecError::Version {
                    found: version,
                    expected: Self::VERSION,
                });
            }
            let old: Sample = decode_body(body)?;
            Ok(Self {
                name: old.name,
                count: old.count,
                note: old.note,
                extra: None,
            })
        }
    }

    fn sample() -> Sample {
        Sample {
            name: "ep".to_owned(),
            count: 7,
            note: None,
        }
    }

    #[test]
    fn round_trip_keeps_fields() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(bytes[0], FIRST_VERSION);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), sample());
    }

    #[test]
    fn other_version_is_rejected() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[0] = 9;
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(CodecError::Version {
                found: 9,
                expected: 1
            })
        ));
        assert!(matches!(decode::<Sample>(&[]), Err(CodecError::Empty)));
    }

    #[test]
    fn older_layout_is_upgraded() {
        let old = encode(&sample()).unwrap();
        let upgraded: SampleV2 = decode(&old).unwrap();
        assert_eq!(upgraded.name, "ep");
        assert_eq!(upgraded.extra, None);

        let new = SampleV2 {
            extra: Some(3),
            ..upgraded
        };
        let bytes = encode(&new).unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(decode::<SampleV2>(&bytes).unwrap(), new);
        assert!(
            decode::<Sample>(&bytes).is_err(),
            "an older build rejects the new layout"
        );
    }
}
