//! A one-pass check of an event's `data` that builds no value and, on valid data, allocates
//! nothing. It returns `true` only for text that
//! [`unique_keys::parse`](crate::unique_keys::parse) parses and
//! [`schema::validate`](crate::schema::validate) accepts. For anything else it returns `false`,
//! and the caller runs those two for the verdict and the error message.
//!
//! Two kinds of valid data get `false` on purpose, because checking them here would cost
//! allocations: an object key written with an escape such as `\u0061`, whose text differs from
//! the key it means, and an object of more than [`MAX_KEYS`] keys.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::event_type::EventType;
use crate::schema::{fields, Field, FieldKind};
use crate::timestamp::is_rfc3339;

/// Maximum number of keys in one object. The check gives up on larger objects.
pub const MAX_KEYS: usize = 32;

/// Maximum number of fields in one schema object, because each needs a bit in a `u64`.
const MAX_FIELDS: usize = 64;

/// The top of a `csat.received` rating scale when `scale_max` is absent, as the schema documents it.
const DEFAULT_SCALE_MAX: f64 = 5.0;

/// Checks whether `raw_data`, the text of an event's `data`, is certainly valid for `kind`: a
/// JSON object that repeats no key at any depth and matches the type's schema. `false` means
/// that the caller must run the full check, not that the data is invalid.
pub fn passes(kind: EventType, raw_data: &str) -> bool {
    let mut deserializer = serde_json::Deserializer::from_str(raw_data);
    let mut numbers = TopNumbers::default();
    let seed = ObjectSeed {
        fields: fields(kind),
        top: Some(&mut numbers),
    };
    let checked = seed.deserialize(&mut deserializer).is_ok() && deserializer.end().is_ok();
    if !checked {
        return false;
    }
    // Mirrors the schema's one rule across fields: a rating may not exceed its scale.
    kind != EventType::CsatReceived
        || numbers.rating.unwrap_or(0.0) <= numbers.scale_max.unwrap_or(DEFAULT_SCALE_MAX)
}

/// The numeric values of the top-level keys that a rule across fields reads.
#[derive(Default)]
struct TopNumbers {
    rating: Option<f64>,
    scale_max: Option<f64>,
}

/// Returns the error every visitor gives up with; the caller sees only `false`.
fn give_up<E: serde::de::Error>() -> E {
    E::custom("not certainly valid")
}

/// An object key as written in the text, so that two keys compare as their meaning does. A key
/// with an escape arrives decoded into a buffer and is rejected.
struct PlainKey;

impl<'de> Visitor<'de> for PlainKey {
    type Value = &'de str;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a key without escapes")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, key: &'de str) -> Result<&'de str, E> {
        Ok(key)
    }
}

impl<'de> DeserializeSeed<'de> for PlainKey {
    type Value = &'de str;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<&'de str, D::Error> {
        deserializer.deserialize_str(self)
    }
}

/// The keys of one object seen so far.
struct SeenKeys<'de> {
    keys: [&'de str; MAX_KEYS],
    len: usize,
}

impl<'de> SeenKeys<'de> {
    fn new() -> Self {
        Self {
            keys: [""; MAX_KEYS],
            len: 0,
        }
    }

    /// Reads the next key, and gives up on a repeated key or on one past [`MAX_KEYS`].
    fn next<A: MapAccess<'de>>(&mut self, map: &mut A) -> Result<Option<&'de str>, A::Error> {
        let Some(key) = map.next_key_seed(PlainKey)? else {
            return Ok(None);
        };
        if self.len == MAX_KEYS || self.keys[..self.len].contains(&key) {
            return Err(give_up());
        }
        self.keys[self.len] = key;
        self.len += 1;
        Ok(Some(key))
    }
}

/// Any JSON value whose objects repeat no key. Returns the number, when the value is one.
struct AnySeed;

impl<'de> DeserializeSeed<'de> for AnySeed {
    type Value = Option<f64>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<f64>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnySeed {
    type Value = Option<f64>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Option<f64>, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, number: i64) -> Result<Option<f64>, E> {
        Ok(Some(number as f64))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Option<f64>, E> {
        Ok(Some(number as f64))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Option<f64>, E> {
        Ok(Some(number))
    }

    fn visit_str<E>(self, _: &str) -> Result<Option<f64>, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Option<f64>, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<f64>, A::Error> {
        while seq.next_element_seed(AnySeed)?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<f64>, A::Error> {
        let mut seen = SeenKeys::new();
        while seen.next(&mut map)?.is_some() {
            map.next_value_seed(AnySeed)?;
        }
        Ok(None)
    }
}

/// An object with the given schema fields, whose other keys may hold any value.
struct ObjectSeed<'n> {
    fields: &'static [Field],
    /// The record of the numbers that a rule across fields reads, for the top-level object only.
    top: Option<&'n mut TopNumbers>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        if self.fields.len() > MAX_FIELDS {
            return Err(give_up());
        }
        let mut seen = SeenKeys::new();
        let mut present = 0u64;
        while let Some(key) = seen.next(&mut map)? {
            let number = match self.fields.iter().position(|field| field.name == key) {
                Some(index) => {
                    present |= 1 << index;
                    map.next_value_seed(FieldSeed(&self.fields[index].kind))?
                }
                None => map.next_value_seed(AnySeed)?,
            };
            if let Some(top) = self.top.as_deref_mut() {
                match key {
                    "rating" => top.rating = number,
                    "scale_max" => top.scale_max = number,
                    _ => {}
                }
            }
        }
        let all_required = self
            .fields
            .iter()
            .enumerate()
            .all(|(index, field)| !field.required || present & (1 << index) != 0);
        if all_required {
            Ok(())
        } else {
            Err(give_up())
        }
    }
}

/// A value of one schema field. Returns the number, when the value is one.
struct FieldSeed(&'static FieldKind);

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Option<f64>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<f64>, D::Error> {
        match self.0 {
            FieldKind::Object(fields) => ObjectSeed { fields, top: None }
                .deserialize(deserializer)
                .map(|()| None),
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl FieldSeed {
    fn number<E: serde::de::Error>(&self, number: f64) -> Result<Option<f64>, E> {
        let FieldKind::Number { min, max } = self.0 else {
            return Err(give_up());
        };
        let below = min.is_some_and(|min| number < min);
        let above = max.is_some_and(|max| number > max);
        if below || above {
            return Err(give_up());
        }
        Ok(Some(number))
    }

    fn integer<E: serde::de::Error>(&self, number: i64) -> Result<Option<f64>, E> {
        match self.0 {
            FieldKind::Integer { min } if !min.is_some_and(|min| number < min) => {
                Ok(Some(number as f64))
            }
            FieldKind::Integer { .. } => Err(give_up()),
            _ => self.number(number as f64),
        }
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Option<f64>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "a value of {:?}", self.0)
    }

    fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Option<f64>, E> {
        self.integer(number)
    }

    fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Option<f64>, E> {
        match i64::try_from(number) {
            Ok(number) => self.integer(number),
            // Too large for an integer field, but still a number.
            Err(_) => self.number(number as f64),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<Option<f64>, E> {
        self.number(number)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Option<f64>, E> {
        let valid = match self.0 {
            FieldKind::Text { non_empty } => !(*non_empty && text.is_empty()),
            FieldKind::OneOf(choices) => choices.contains(&text),
            FieldKind::NullableText => true,
            FieldKind::Timestamp => is_rfc3339(text),
            _ => false,
        };
        if valid {
            Ok(None)
        } else {
            Err(give_up())
        }
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Option<f64>, E> {
        match self.0 {
            FieldKind::NullableText => Ok(None),
            _ => Err(give_up()),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<f64>, A::Error> {
        match self.0 {
            FieldKind::TextList => {
                const ID: FieldKind = FieldKind::Text { non_empty: true };
                while seq.next_element_seed(FieldSeed(&ID))?.is_some() {}
            }
            FieldKind::ObjectList(fields) => {
                while seq
                    .next_element_seed(ObjectSeed { fields, top: None })?
                    .is_some()
                {}
            }
            _ => return Err(give_up()),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::Config;
    use serde_json::{json, Map, Value};

    use super::{passes, MAX_KEYS};
    use crate::event_type::EventType;
    use crate::samples::sample_body;
    use crate::schema::{fields, validate};
    use crate::unique_keys;

    /// Returns the verdict of the full check: parse without repeated keys, then the schema.
    fn full_check(kind: EventType, text: &str) -> bool {
        unique_keys::parse(text, "data").is_ok_and(|data| validate(kind, &data).is_ok())
    }

    fn sample_data(kind: EventType) -> Map<String, Value> {
        let body: Value = serde_json::from_str(sample_body(kind)).unwrap();
        body["data"].as_object().unwrap().clone()
    }

    fn with(kind: EventType, key: &str, value: Value) -> String {
        let mut data = sample_data(kind);
        data.insert(key.to_owned(), value);
        Value::Object(data).to_string()
    }

    #[test]
    fn samples_pass() {
        for kind in EventType::ALL {
            let text = Value::Object(sample_data(kind)).to_string();
            assert!(passes(kind, &text), "{kind}: {text}");
        }
    }

    #[test]
    fn invalid_data_does_not_pass() {
        let csat = EventType::CsatReceived;
        let evaluation = EventType::EvaluationCompleted;
        let mut missing = sample_data(csat);
        missing.remove("via");
        let cases = [
            (csat, Value::Object(missing).to_string()),
            (csat, with(csat, "rating", json!("4"))),
            (csat, with(csat, "rating", json!(-1))),
            (csat, with(csat, "rating", json!(6))),
            (csat, with(csat, "scale_max", json!(0))),
            (csat, with(csat, "scale_max", json!(2.0))),
            (csat, with(csat, "scale_max", json!(u64::MAX))),
            (csat, with(csat, "via", json!("email"))),
            (csat, with(csat, "conversation_id", json!(""))),
            (csat, with(csat, "received_at", json!("yesterday"))),
            (csat, with(csat, "comment", Value::Null)),
            (
                csat,
                with(csat, "extra", json!({"a": 1, "c": {"d": [1, 2]}})).replace("\"c\"", "\"a\""),
            ),
            (
                evaluation,
                with(evaluation, "criteria", json!([{"criterion": "greeting"}])),
            ),
            (
                evaluation,
                with(
                    evaluation,
                    "criteria",
                    json!({"criterion": "greeting", "score": 1}),
                ),
            ),
            (evaluation, with(evaluation, "rubric_version", json!(1.5))),
            (
                EventType::SmartAlertCreated,
                with(
                    EventType::SmartAlertCreated,
                    "conversation_ids",
                    json!(["a", ""]),
                ),
            ),
            (
                EventType::SmartAlertCreated,
                with(
                    EventType::SmartAlertCreated,
                    "window",
                    json!({"start": "2026-12-03T14:32:08Z"}),
                ),
            ),
            (
                EventType::ScoreThresholdBreached,
                with(EventType::ScoreThresholdBreached, "criterion", json!(3)),
            ),
            (
                csat,
                r#"{"conversation_id":"c","rating":4,"via":"api","via":"webhook"}"#.to_owned(),
            ),
            (
                csat,
                r#"{"conversation_id":"c","rating":4,"via":"api"} x"#.to_owned(),
            ),
            (csat, "[1]".to_owned()),
            (csat, "{".to_owned()),
        ];
        for (kind, text) in cases {
            assert!(!full_check(kind, &text), "the case itself is valid: {text}");
            assert!(!passes(kind, &text), "{kind}: {text}");
        }
    }

    #[test]
    fn escaped_and_large_objects_fall_back() {
        let kind = EventType::CsatReceived;
        let escaped = r#"{"conversation_id":"c","rating":4,"\u0076ia":"api"}"#;
        let mut large = sample_data(kind);
        for index in 0..MAX_KEYS {
            large.insert(format!("extra_{index}"), json!(index));
        }
        let large = Value::Object(large).to_string();
        for text in [escaped, &large] {
            assert!(full_check(kind, text), "{text}");
            assert!(!passes(kind, text), "{text}");
        }
    }

    /// Generates a value of the shapes the schemas name, valid or not for any given field.
    fn field_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop::sample::select(vec![
                json!(0),
                json!(1),
                json!(-1),
                json!(5),
                json!(100),
                json!(101),
                json!(0.5),
                json!(1.0),
                json!(-0.5),
                json!(i64::MAX),
                json!(u64::MAX),
                json!(i64::MIN),
                json!(1e300),
            ]),
            prop::sample::select(vec![
                "",
                "a",
                "api",
                "webhook",
                "rest",
                "connector",
                "brand",
                "global",
                "score_dip",
                "2026-12-03T14:32:08Z",
                "2026-12-03 14:32",
                "2026-13-03T14:32:08Z",
            ])
            .prop_map(|text| Value::String(text.to_owned())),
        ];
        let nested = leaf.clone().prop_recursive(2, 24, 4, |inner| {
            let key = prop::sample::select(vec![
                "criterion",
                "score",
                "weight",
                "turn",
                "from",
                "to",
                "start",
                "end",
                "x",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key.prop_map(str::to_owned), inner, 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        });
        prop_oneof![3 => leaf, 1 => nested]
    }

    /// A change to a sample's data.
    #[derive(Debug, Clone)]
    enum Change {
        /// Sets the field with this index in the schema, or an extra key past the end.
        Set(usize, Value),
        /// Removes the field with this index in the schema.
        Remove(usize),
        /// Writes the field with this index a second time, with this value.
        Repeat(usize, Value),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            4 => (0..8_usize, field_value()).prop_map(|(index, value)| Change::Set(index, value)),
            1 => (0..8_usize).prop_map(Change::Remove),
            1 => (0..8_usize, field_value()).prop_map(|(index, value)| Change::Repeat(index, value)),
        ]
    }

    fn apply(kind: EventType, changes: &[Change]) -> String {
        let names: Vec<&str> = fields(kind).iter().map(|field| field.name).collect();
        let name = |index: usize| names.get(index).copied().unwrap_or("extra");
        let mut data = sample_data(kind);
        let mut repeated = String::new();
        for change in changes {
            match change {
                Change::Set(index, value) => {
                    data.insert(name(*index).to_owned(), value.clone());
                }
                Change::Remove(index) => {
                    data.remove(name(*index));
                }
                Change::Repeat(index, value) => {
                    repeated.push_str(&format!(",{}:{value}", Value::from(name(*index))));
                }
            }
        }
        let mut text = Value::Object(data).to_string();
        if !repeated.is_empty() && text.len() > 2 {
            text.insert_str(text.len() - 1, &repeated);
        }
        text
    }

    proptest! {
        #![proptest_config(Config { cases: 4096, failure_persistence: None, ..Config::default() })]

        /// Without escaped keys and within the key limit, the quick check agrees with the full
        /// check both ways. It never accepts what the full check rejects, and it sends nothing
        /// valid to the slower path.
        #[test]
        fn agrees_with_the_full_check(
            kind in prop::sample::select(EventType::ALL.to_vec()),
            changes in prop::collection::vec(change(), 0..4),
        ) {
            let text = apply(kind, &changes);
            prop_assert_eq!(passes(kind, &text), full_check(kind, &text), "{}", text);
        }
    }
}
