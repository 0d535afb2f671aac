//! The binary encoding of stored records: one version byte, then the record in bincode 2 with the
//! standard configuration. No other module encodes or decodes records. A record type whose
//! layout changes gets a new version byte, and its older layouts are decoded here through
//! [`Record::decode_older`].
//!
//! A record group keeps several encoded records in one stored value, each under its own id, so
//! that many records cost one store write. It starts with a version byte and the member count
//! (u32 big-endian). One entry per member follows: the id's length as one byte, the id, and the
//! end of its record as a u32 big-endian offset into the records. The records come last, one
//! after another. A reader finds one member by its id without decoding the others.

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
    /// A record group is truncated or has an impossible member entry.
    #[error("corrupt record group: {0}")]
    Group(&'static str),
    /// A stored pointer to a group in the event log has the wrong length.
    #[error("corrupt event log pointer: {found} bytes, expected {expected}")]
    GroupPointer {
        /// The length of the stored value.
        found: usize,
        /// The length of every pointer.
        expected: usize,
    },
}

/// A record type of the store, with the version byte it is written with.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// Version byte written in front of this type's records.
    const VERSION: u8 = FIRST_VERSION;

    /// About how many bytes the record encodes to, so that encoding allocates once. A wrong
    /// guess only costs a reallocation.
    fn encoded_size_hint(&self) -> usize {
        128
    }

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
    let mut bytes = Vec::with_capacity(1 + record.encoded_size_hint());
    bytes.push(T::VERSION);
    bincode::serde::encode_into_writer(record, Append(&mut bytes), bincode::config::standard())?;
    Ok(bytes)
}

/// A bincode writer that appends to a vector, so a record is encoded in place after its version
/// byte.
struct Append<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for Append<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
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

/// Decodes a record body without its version byte as a layout `T` that borrows from it.
pub(crate) fn decode_body_borrowed<'a, T: serde::Deserialize<'a>>(
    body: &'a [u8],
) -> Result<T, CodecError> {
    let (record, _) = bincode::serde::borrow_decode_from_slice(body, bincode::config::standard())?;
    Ok(record)
}

/// Version byte of a record group.
const GROUP_VERSION: u8 = 1;

/// Packs encoded records, each under its id, into one record group. Ids are at most 255 bytes.
pub(crate) fn encode_group<I: AsRef<[u8]>, R: AsRef<[u8]>>(
    members: &[(I, R)],
) -> Result<Vec<u8>, CodecError> {
    let count = u32::try_from(members.len()).map_err(|_| CodecError::Group("too many members"))?;
    let records: usize = members
        .iter()
        .map(|(_, record)| record.as_ref().len())
        .sum();
    let index: usize = members
        .iter()
        .map(|(id, _)| 1 + id.as_ref().len() + 4)
        .sum();
    let mut bytes = Vec::with_capacity(1 + 4 + index + records);
    bytes.push(GROUP_VERSION);
    bytes.extend_from_slice(&count.to_be_bytes());
    let mut end = 0usize;
    for (id, record) in members {
        let id = id.as_ref();
        let length = u8::try_from(id.len()).map_err(|_| CodecError::Group("member id too long"))?;
        end += record.as_ref().len();
        let end_offset = u32::try_from(end).map_err(|_| CodecError::Group("group too large"))?;
        bytes.push(length);
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(&end_offset.to_be_bytes());
    }
    for (_, record) in members {
        bytes.extend_from_slice(record.as_ref());
    }
    Ok(bytes)
}

/// First byte of a stored value that points to a record group in the event log, in place of the
/// group itself. The group's segment (u64), offset (u64), length (u32) and CRC-32 (u32) follow,
/// big-endian. A group itself starts with its version byte, which is never this one.
const LOGGED_GROUP_TAG: u8 = 0x80;

/// Bytes of a stored pointer to a group in the event log.
const LOGGED_GROUP_BYTES: usize = 1 + 8 + 8 + 4 + 4;

/// The location of a record group in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupPointer {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) crc: u32,
}

/// Encodes the stored value that points to a group in the event log.
pub(crate) fn encode_group_pointer(pointer: &GroupPointer) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(LOGGED_GROUP_BYTES);
    bytes.push(LOGGED_GROUP_TAG);
    bytes.extend_from_slice(&pointer.segment.to_be_bytes());
    bytes.extend_from_slice(&pointer.offset.to_be_bytes());
    bytes.extend_from_slice(&pointer.len.to_be_bytes());
    bytes.extend_from_slice(&pointer.crc.to_be_bytes());
    bytes
}

/// Reads the pointer that a stored group value holds, or `None` when the value is the group
/// itself.
pub(crate) fn decode_group_pointer(bytes: &[u8]) -> Result<Option<GroupPointer>, CodecError> {
    if bytes.first() != Some(&LOGGED_GROUP_TAG) {
        return Ok(None);
    }
    let Ok(fields) = <&[u8; LOGGED_GROUP_BYTES]>::try_from(bytes) else {
        return Err(CodecError::GroupPointer {
            found: bytes.len(),
            expected: LOGGED_GROUP_BYTES,
        });
    };
    let u64_at = |at: usize| u64::from_be_bytes(std::array::from_fn(|i| fields[at + i]));
    let u32_at = |at: usize| u32::from_be_bytes(std::array::from_fn(|i| fields[at + i]));
    Ok(Some(GroupPointer {
        segment: u64_at(1),
        offset: u64_at(9),
        len: u32_at(17),
        crc: u32_at(21),
    }))
}

/// A member of a record group: its id and its encoded record.
pub(crate) type GroupMember<'a> = (&'a [u8], &'a [u8]);

/// Lists the members of a record group, in stored order.
pub(crate) fn group_members(bytes: &[u8]) -> Result<Vec<GroupMember<'_>>, CodecError> {
    let index = GroupIndex::read(bytes)?;
    Ok(index
        .members
        .into_iter()
        .map(|(id, record)| (&bytes[id], &bytes[record]))
        .collect())
}

/// The positions of a record group's members in its bytes, read once so that many lookups in the
/// same group are binary searches.
#[derive(Debug)]
pub(crate) struct GroupIndex {
    /// Each member's id and record, as ranges of the group's bytes, in stored order.
    members: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Whether the ids are in ascending order, as every writer stores them.
    sorted: bool,
}

impl GroupIndex {
    /// Reads the member entries of a record group.
    pub(crate) fn read(bytes: &[u8]) -> Result<Self, CodecError> {
        let (count, mut rest) = group_header(bytes)?;
        let mut entries = Vec::with_capacity(count.min(1 << 16) as usize);
        for _ in 0..count {
            let (id, end, after) = take_entry(rest)?;
            // The entry ends with the id and the 4-byte end of its record.
            let id_start = bytes.len() - after.len() - 4 - id.len();
            entries.push((id_start..id_start + id.len(), end));
            rest = after;
        }
        let records_at = bytes.len() - rest.len();
        let mut start = 0;
        let mut members = Vec::with_capacity(entries.len());
        for (id, end) in entries {
            member_record(rest, start, end)?;
            members.push((id, records_at + start..records_at + end));
            start = end;
        }
        let sorted = members
            .windows(2)
            .all(|pair| bytes[pair[0].0.clone()] < bytes[pair[1].0.clone()]);
        Ok(Self { members, sorted })
    }

    /// Lists each member's id and record, as ranges of the group's bytes, in stored order.
    pub(crate) fn members(
        &self,
    ) -> impl Iterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)> + '_ {
        self.members.iter().cloned()
    }

    /// Finds the record of the member `id` in `bytes`, the group this index was read from, as a
    /// range of those bytes.
    pub(crate) fn find(&self, bytes: &[u8], id: &str) -> Option<std::ops::Range<usize>> {
        let id = id.as_bytes();
        let found = if self.sorted {
            self.members
                .binary_search_by(|(member, _)| bytes[member.clone()].cmp(id))
                .ok()
        } else {
            self.members
                .iter()
                .position(|(member, _)| &bytes[member.clone()] == id)
        };
        found.map(|at| self.members[at].1.clone())
    }
}

/// Checks a record group's version byte and returns its member count and what follows it.
fn group_header(bytes: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    let (&version, rest) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != GROUP_VERSION {
        return Err(CodecError::Version {
            found: version,
            expected: GROUP_VERSION,
        });
    }
    take_u32(rest)
}

/// Reads one member entry: its id, the end of its record, and what follows the entry.
///
/// These readers run for every member of every group read, so they build an error only on the
/// way out: an eager `ok_or` builds and drops one per call.
fn take_entry(bytes: &[u8]) -> Result<(&[u8], usize, &[u8]), CodecError> {
    let Some((&length, after)) = bytes.split_first() else {
        return Err(CodecError::Group("truncated"));
    };
    let Some(id) = after.get(..usize::from(length)) else {
        return Err(CodecError::Group("truncated"));
    };
    let (end, after) = take_u32(&after[usize::from(length)..])?;
    Ok((id, end as usize, after))
}

fn member_record(records: &[u8], start: usize, end: usize) -> Result<&[u8], CodecError> {
    match records.get(start..end) {
        Some(record) => Ok(record),
        None => Err(CodecError::Group("member outside the group")),
    }
}

fn take_u32(bytes: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    match bytes.split_first_chunk::<4>() {
        Some((head, rest)) => Ok((u32::from_be_bytes(*head), rest)),
        None => Err(CodecError::Group("truncated")),
    }
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

    #[test]
    fn group_members_are_found_by_id() {
        let first = encode(&sample()).unwrap();
        let second = encode(&Sample {
            name: "other".to_owned(),
            count: 9,
            note: Some("n".to_owned()),
        })
        .unwrap();
        let group = encode_group(&[("evt_a", first.clone()), ("evt_b", second.clone())]).unwrap();
        let member = |id: &str| {
            let index = GroupIndex::read(&group).unwrap();
            index.find(&group, id).map(|record| group[record].to_vec())
        };
        assert_eq!(member("evt_a"), Some(first.clone()));
        assert_eq!(member("evt_b"), Some(second.clone()));
        assert_eq!(member("evt_c"), None);
        assert_eq!(member("evt_0"), None);
        let decoded: Sample = decode(&member("evt_b").unwrap()).unwrap();
        assert_eq!(decoded.count, 9);

        // A group whose ids are out of order is searched one member at a time.
        let unsorted = encode_group(&[("evt_b", second.clone()), ("evt_a", first)]).unwrap();
        let index = GroupIndex::read(&unsorted).unwrap();
        let found = index.find(&unsorted, "evt_b").unwrap();
        assert_eq!(&unsorted[found], &second[..]);
        assert!(index.find(&unsorted, "evt_a").is_some());
        let members = group_members(&group).unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].0, b"evt_a");
    }

    #[test]
    fn cut_group_is_an_error() {
        let group = encode_group(&[("evt_a", encode(&sample()).unwrap())]).unwrap();
        for cut in 0..group.len() {
            assert!(group_members(&group[..cut]).is_err(), "cut at {cut}");
            assert!(GroupIndex::read(&group[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong = group.clone();
        wrong[0] = 7;
        assert!(matches!(
            group_members(&wrong),
            Err(CodecError::Version { found: 7, .. })
        ));
    }
}
