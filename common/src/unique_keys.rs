//! JSON parsing that rejects an object with a repeated key, at any depth. serde_json keeps the
//! last value of a repeated key, and some other parsers keep the first. An event's `data` with a
//! repeated key could therefore pass validation with one value and reach a receiver with the
//! other.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Length in bytes beyond which the path in a [`ParseError::DuplicateKey`] leaves out its outer
/// segments. The root and the repeated key are always shown, so a long key can exceed it.
const MAX_PATH_LEN: usize = 200;

/// Maximum length of one key shown in a path, in characters.
const MAX_KEY_CHARS: usize = 64;

/// Error of [`parse`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The text is not JSON, or nests deeper than serde_json's recursion limit of 128.
    #[error(transparent)]
    Invalid(serde_json::Error),
    /// An object repeats a key.
    #[error("{path} appears more than once: send each key once")]
    DuplicateKey {
        /// Path of the repeated key, such as `data.criteria[1].score`.
        path: String,
    },
}

/// Parses `text` into a value as `serde_json::from_str` does, but rejects an object that repeats
/// a key. `root` starts the path of a repeated key, such as `data` in `data.rating`.
///
/// Unlike `serde_json::Value`'s own parser with serde_json's `raw_value` feature, this keeps every
/// key as written, so an object whose key is serde_json's private raw-value token stays an object.
pub fn parse(text: &str, root: &str) -> Result<Value, ParseError> {
    let duplicate = RefCell::new(None);
    let seed = UniqueKeysValue {
        duplicate: &duplicate,
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(error) => match duplicate.into_inner() {
            Some(segments) => Err(ParseError::DuplicateKey {
                path: render_path(root, &segments),
            }),
            None => Err(ParseError::Invalid(error)),
        },
    }
}

/// One step of the path to a repeated key.
#[derive(Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A seed that builds a [`Value`] and records the path of the first repeated key it meets.
///
/// The path is recorded on the way out. The object that finds the repeated key stores it, and
/// each enclosing object and array adds its own key or index as the error passes through. A
/// body without a repeated key therefore takes the same allocations as parsing a `Value`.
///
/// NOTE: serde_json's `arbitrary_precision` feature, not enabled here, would pass every number as
/// a map with a private key, which this seed would keep as an object. `values_match_serde_json`
/// fails if that feature is ever enabled.
#[derive(Clone, Copy)]
struct UniqueKeysValue<'a> {
    /// The path of the repeated key, innermost segment first, once one is found.
    duplicate: &'a RefCell<Option<Vec<Segment>>>,
}

impl UniqueKeysValue<'_> {
    /// Adds `segment` to the path when the error passing through is a repeated key.
    fn add_parent(self, segment: Segment) {
        if let Some(segments) = self.duplicate.borrow_mut().as_mut() {
            segments.push(segment);
        }
    }
}

impl<'de> DeserializeSeed<'de> for UniqueKeysValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeysValue<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // As in `Value`, a non-finite number becomes null, though serde_json's parser rejects one
        // before it gets here.
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(error) => {
                    self.add_parent(Segment::Index(items.len()));
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match map.next_value_seed(self) {
                Ok(value) => value,
                Err(error) => {
                    self.add_parent(Segment::Key(key));
                    return Err(error);
                }
            };
            match object.entry(key) {
                Entry::Vacant(entry) => {
                    entry.insert(value);
                }
                Entry::Occupied(entry) => {
                    let key = entry.key().clone();
                    *self.duplicate.borrow_mut() = Some(vec![Segment::Key(key)]);
                    return Err(A::Error::custom("repeated object key"));
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// Renders a path such as `data.criteria[1].score` from its segments, innermost first. A key
/// that is not a plain name is shown as a JSON string in brackets, such as `data["a.b"]`.
fn render_path(root: &str, innermost_first: &[Segment]) -> String {
    let mut kept_segments = Vec::new();
    let mut length = root.len();
    let mut cut = false;
    for segment in innermost_first {
        let rendered = render_segment(segment);
        // The innermost segment is the repeated key, so it is shown whatever its length.
        if !kept_segments.is_empty() && length + rendered.len() > MAX_PATH_LEN {
            cut = true;
            break;
        }
        length += rendered.len();
        kept_segments.push(rendered);
    }

    let mut path = root.to_owned();
    if cut {
        path.push('…');
    }
    for rendered in kept_segments.iter().rev() {
        path.push_str(rendered);
    }
    path
}

fn render_segment(segment: &Segment) -> String {
    match segment {
        Segment::Index(index) => format!("[{index}]"),
        Segment::Key(key) if is_plain_name(key) && key.len() <= MAX_KEY_CHARS => format!(".{key}"),
        Segment::Key(key) => {
            let mut shortened: String = key.chars().take(MAX_KEY_CHARS).collect();
            if shortened.len() < key.len() {
                shortened.push('…');
            }
            let quoted = Value::String(shortened).to_string();
            format!("[{quoted}]")
        }
    }
}

/// Returns whether `key` can follow a dot in a path. Such a key has only ASCII letters, digits
/// and underscores, and does not start with a digit.
fn is_plain_name(key: &str) -> bool {
    let mut chars = key.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|char| char.is_ascii_alphanumeric() || char == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_type::EventType;
    use crate::samples::sample_body;

    fn duplicate_path(text: &str) -> String {
        match parse(text, "data") {
            Err(ParseError::DuplicateKey { path }) => path,
            other => panic!("expected a repeated key in {text}, got {other:?}"),
        }
    }

    #[test]
    fn repeated_key_is_rejected_in_either_order() {
        let first_valid = r#"{"conversation_id":"c","rating":1,"rating":99,"via":"api"}"#;
        let last_valid = r#"{"conversation_id":"c","rating":99,"rating":1,"via":"api"}"#;

        assert_eq!(duplicate_path(first_valid), "data.rating");
        assert_eq!(duplicate_path(last_valid), "data.rating");
    }

    #[test]
    fn repeated_key_with_equal_values_is_rejected() {
        assert_eq!(duplicate_path(r#"{"a":1,"a":1}"#), "data.a");
    }

    #[test]
    fn nested_repeated_key_has_its_path() {
        let cases = [
            (r#"{"a":{"b":{"c":1,"c":2}}}"#, "data.a.b.c"),
            (
                r#"{"criteria":[{"score":1},{"score":2,"score":3}]}"#,
                "data.criteria[1].score",
            ),
            (r#"{"m":[[0],[1,{"k":1,"k":2}]]}"#, "data.m[1][1].k"),
            (
                r#"{"a":1,"b":[{"c":{"d":1,"d":2}}],"a":2}"#,
                "data.b[0].c.d",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(duplicate_path(text), expected, "{text}");
        }
    }

    #[test]
    fn repeated_key_in_top_level_array() {
        let error = parse(r#"[{"a":1},{"a":1,"a":2}]"#, "data").unwrap_err();
        assert_eq!(
            error.to_string(),
            "data[1].a appears more than once: send each key once"
        );
    }

    #[test]
    fn same_key_in_sibling_objects_is_accepted() {
        let text = r#"{"a":{"id":1},"b":{"id":2},"c":[{"id":3},{"id":4}]}"#;
        let value = parse(text, "data").unwrap();
        assert_eq!(value["c"][1]["id"], 4);
    }

    #[test]
    fn escaped_key_repeats_plain_key() {
        assert_eq!(duplicate_path(r#"{"a":1,"\u0061":2}"#), "data.a");
    }

    #[test]
    fn unusual_keys_are_quoted() {
        let cases = [
            (r#"{"a.b":1,"a.b":2}"#, r#"data["a.b"]"#),
            (r#"{"":1,"":2}"#, r#"data[""]"#),
            (r#"{"1st":1,"1st":2}"#, r#"data["1st"]"#),
            (
                r#"{"say \"hi\"":1,"say \"hi\"":2}"#,
                r#"data["say \"hi\""]"#,
            ),
            (r#"{"x\ny":{"_k9":1,"_k9":2}}"#, r#"data["x\ny"]._k9"#),
        ];
        for (text, expected) in cases {
            assert_eq!(duplicate_path(text), expected, "{text}");
        }
    }

    #[test]
    fn long_key_is_shortened() {
        let key = "k".repeat(1_000);
        let text = format!(r#"{{"{key}":1,"{key}":2}}"#);

        let path = duplicate_path(&text);

        let shown = "k".repeat(MAX_KEY_CHARS);
        assert_eq!(path, format!("data[\"{shown}…\"]"));
    }

    #[test]
    fn long_path_keeps_root_and_repeated_key() {
        let key = "k".repeat(40);
        let open = format!(r#"{{"{key}":"#).repeat(100);
        let text = format!(r#"{open}{{"last":1,"last":2}}{}"#, "}".repeat(100));

        let path = duplicate_path(&text);

        assert!(path.starts_with("data…."), "{path}");
        assert!(path.ends_with(".last"), "{path}");
        assert!(path.len() <= MAX_PATH_LEN + '…'.len_utf8(), "{path}");
    }

    #[test]
    fn invalid_json_is_not_a_repeated_key() {
        let cases = [
            r#"{"a":1"#,
            r#"{"a":1,"a":"#,
            r#"{"a":1} x"#,
            "",
            r#"{"a":1e400}"#,
        ];
        for text in cases {
            let error = parse(text, "data").unwrap_err();
            assert!(matches!(error, ParseError::Invalid(_)), "{text}: {error:?}");
        }
    }

    #[test]
    fn nesting_limit_still_applies() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let error = parse(&deep, "data").unwrap_err();
        assert!(matches!(error, ParseError::Invalid(_)), "{error:?}");
    }

    #[test]
    fn values_match_serde_json() {
        let mut texts: Vec<&str> = EventType::ALL.into_iter().map(sample_body).collect();
        texts.extend([
            r#"{"n":null,"t":true,"f":false,"i":-7,"u":18446744073709551615,"x":1.5e3}"#,
            r#"{"s":"é\u0000\ud83d\ude00","e":{},"a":[]}"#,
            r#"[1,"two",[3],{"four":4}]"#,
            "  42  ",
        ]);
        for text in texts {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(parse(text, "data").unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn raw_value_token_stays_a_key() {
        let text = r#"{"$serde_json::private::RawValue":"{\"rating\":1}"}"#;

        let value = parse(text, "data").unwrap();

        assert_eq!(value["$serde_json::private::RawValue"], "{\"rating\":1}");
    }
}
