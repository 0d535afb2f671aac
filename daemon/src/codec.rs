//! The binary encoding of stored records: one version byte, then the record in bincode 2 with the
//! standard configuration. This is the only module that knows the encoding, so it can be replaced
//! by bumping the version byte and decoding the old one here.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version byte written in front of every record.
const FORMAT_VERSION: u8 = 1;

/// A stored record that cannot be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The record is empty, so it has no version byte.
    #[error("stored record is empty")]
    Empty,
    /// The record was written by another format version.
    #[error("stored record has format version {0}, expected {FORMAT_VERSION}")]
    Version(u8),
    /// bincode could not encode the record.
    #[error("cannot encode record: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// bincode could not decode the record.
    #[error("cannot decode record: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

/// Encodes a record with its version byte.
pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![FORMAT_VERSION];
    let body = bincode::serde::encode_to_vec(record, bincode::config::standard())?;
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Decodes a record written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::Version(version));
    }
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

    #[test]
    fn round_trip_keeps_fields() {
        let sample = Sample {
            name: "ep".to_owned(),
            count: 7,
            note: None,
        };
        let bytes = encode(&sample).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), sample);
    }

    #[test]
    fn other_version_is_rejected() {
        let mut bytes = encode(&1u32).unwrap();
        bytes[0] = 9;
        assert!(matches!(decode::<u32>(&bytes), Err(CodecError::Version(9))));
        assert!(matches!(decode::<u32>(&[]), Err(CodecError::Empty)));
    }
}
