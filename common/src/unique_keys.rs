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

/// Property tests that compare [`parse`] with `serde_json::from_str::<Value>` on generated texts.
#[cfg(test)]
mod properties {
    use std::fmt::Write as _;

    use proptest::prelude::*;
    use proptest::sample::Index;
    use proptest::test_runner::{Config, TestCaseError};
    use serde_json::{Map, Number, Value};

    use super::{parse, ParseError, MAX_PATH_LEN};

    /// A member of an object as the test writes it: key, value, and the escape mask of the key.
    type Member = (String, Value, u64);

    /// Returns a config of 256 cases per property, which keeps a debug test run short. A failure
    /// prints its minimal input and writes no regression file beside the source.
    fn config() -> Config {
        Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        }
    }

    /// Generates a character of a key or string, biased toward characters that JSON escapes and
    /// characters beyond ASCII.
    fn json_char() -> impl Strategy<Value = char> {
        let special = vec![
            '"', '\\', '/', '\0', '\n', '\u{1f}', '\u{7f}', 'é', '\u{2028}', '\u{ffff}', '😀',
        ];
        prop_oneof![
            4 => proptest::char::range('a', 'z'),
            1 => prop::sample::select(special),
            1 => any::<char>(),
        ]
    }

    /// Generates an object key of at most 8 characters. It is therefore never serde_json's
    /// private raw-value token, which `parse` keeps as a key and `Value` does not.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z_][A-Za-z0-9_]{0,7}",
            prop::collection::vec(json_char(), 0..=8).prop_map(String::from_iter),
        ]
    }

    fn string() -> impl Strategy<Value = String> {
        prop::collection::vec(json_char(), 0..16).prop_map(String::from_iter)
    }

    /// Generates an integer from the whole i64 and u64 range, with the edges of both and of the
    /// integers that an f64 represents exactly (up to 2^53).
    fn integer() -> impl Strategy<Value = Value> {
        let exact_max = 1_i64 << 53;
        let edges: Vec<Value> = vec![
            0.into(),
            (-1).into(),
            (exact_max - 1).into(),
            exact_max.into(),
            (exact_max + 1).into(),
            (-exact_max - 1).into(),
            i64::MIN.into(),
            i64::MAX.into(),
            (i64::MAX as u64 + 1).into(),
            u64::MAX.into(),
        ];
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1_000_i64..1_000).prop_map(Value::from),
            prop::sample::select(edges),
        ]
    }

    fn float() -> impl Strategy<Value = Value> {
        prop_oneof![any::<f64>(), -1.0e6..1.0e6_f64]
            .prop_filter_map("JSON has no NaN or infinity", |number| {
                Number::from_f64(number).map(Value::Number)
            })
    }

    /// Generates any JSON value with up to 3 levels of arrays and objects, each of at most 5
    /// items.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            integer(),
            float(),
            string().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key(), inner, 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn json_object() -> impl Strategy<Value = Value> {
        prop::collection::btree_map(key(), json_value(), 0..6)
            .prop_map(|members| Value::Object(members.into_iter().collect()))
    }

    /// Generates a mask of the characters of a string to write as `\u` escapes. Bit `i` escapes
    /// character `i`, and characters after the 64th are written as serde_json writes them.
    fn escape_mask() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0), Just(u64::MAX), any::<u64>()]
    }

    /// Text layout of a generated value.
    #[derive(Clone, Copy, Debug)]
    enum Layout {
        Compact,
        Pretty,
        /// Compact, with the characters of every key and string that the mask picks as `\u`
        /// escapes.
        Escaped(u64),
    }

    fn layout() -> impl Strategy<Value = Layout> {
        prop_oneof![
            Just(Layout::Compact),
            Just(Layout::Pretty),
            escape_mask().prop_map(Layout::Escaped),
        ]
    }

    fn to_text(value: &Value, layout: Layout) -> String {
        match layout {
            Layout::Compact => serde_json::to_string(value).unwrap(),
            Layout::Pretty => serde_json::to_string_pretty(value).unwrap(),
            Layout::Escaped(escape_mask) => {
                let mut text = String::new();
                write_value(&mut text, value, escape_mask);
                text
            }
        }
    }

    /// Writes `text` as a JSON string. The characters that `escape_mask` picks become `\u`
    /// escapes, as a surrogate pair beyond U+FFFF and in upper case hex at odd positions. The
    /// others are written as serde_json writes them.
    fn write_string(out: &mut String, text: &str, escape_mask: u64) {
        out.push('"');
        for (position, char) in text.chars().enumerate() {
            let escaped = position < 64 && (escape_mask >> position) & 1 == 1;
            if escaped {
                let mut units = [0; 2];
                for unit in char.encode_utf16(&mut units) {
                    if position % 2 == 0 {
                        write!(out, "\\u{unit:04x}").unwrap();
                    } else {
                        write!(out, "\\u{unit:04X}").unwrap();
                    }
                }
            } else {
                let quoted = Value::String(char.to_string()).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
        }
        out.push('"');
    }

    /// Writes `value` as compact JSON, with every key and string spelled by [`write_string`].
    fn write_value(out: &mut String, value: &Value, escape_mask: u64) {
        match value {
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    write_value(out, item, escape_mask);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (index, (key, member)) in map.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    write_string(out, key, escape_mask);
                    out.push(':');
                    write_value(out, member, escape_mask);
                }
                out.push('}');
            }
            Value::String(text) => write_string(out, text, escape_mask),
            scalar => out.push_str(&scalar.to_string()),
        }
    }

    /// A key written twice into one object of a generated value.
    #[derive(Clone, Debug)]
    struct Repeat {
        /// The object that gets the repeated key, among the value's objects in depth-first order.
        object: Index,
        /// Whether to repeat a key that the object has, if it has any, rather than `new_key`.
        reuse: bool,
        reused_key: Index,
        new_key: String,
        /// Value of the first member with `new_key`.
        new_value: Value,
        /// Value of the added member, or `None` for the value of the member that it repeats.
        other_value: Option<Value>,
        /// Positions of the added members among the object's members.
        positions: (Index, Index),
        /// Escape masks of the key in the first and the added member.
        escape_masks: (u64, u64),
    }

    prop_compose! {
        fn repeat()(
            object in any::<Index>(),
            reuse in any::<bool>(),
            reused_key in any::<Index>(),
            new_key in key(),
            new_value in json_value(),
            other_value in prop::option::of(json_value()),
            positions in any::<(Index, Index)>(),
            escape_masks in (escape_mask(), escape_mask()),
        ) -> Repeat {
            Repeat {
                object,
                reuse,
                reused_key,
                new_key,
                new_value,
                other_value,
                positions,
                escape_masks,
            }
        }
    }

    /// Adds to `paths` the path of each object in `value`, depth first. A path is the position of
    /// the child to take at each level, starting from `prefix`.
    fn collect_object_paths(value: &Value, prefix: &mut Vec<usize>, paths: &mut Vec<Vec<usize>>) {
        let children: Vec<&Value> = match value {
            Value::Object(map) => {
                paths.push(prefix.clone());
                map.values().collect()
            }
            Value::Array(items) => items.iter().collect(),
            _ => return,
        };
        for (position, child) in children.into_iter().enumerate() {
            prefix.push(position);
            collect_object_paths(child, prefix, paths);
            prefix.pop();
        }
    }

    /// Returns the object at `target` in `value`, and its path as `parse` renders it with the root
    /// `data`.
    fn find_object<'a>(value: &'a Value, target: &[usize]) -> (&'a Map<String, Value>, String) {
        let mut path = String::from("data");
        let mut current = value;
        for &position in target {
            current = match current {
                Value::Object(map) => {
                    let (key, member) = map.iter().nth(position).unwrap();
                    path.push_str(&key_segment(key));
                    member
                }
                Value::Array(items) => {
                    write!(path, "[{position}]").unwrap();
                    &items[position]
                }
                scalar => panic!("the path to an object passes through {scalar}"),
            };
        }
        match current {
            Value::Object(map) => (map, path),
            other => panic!("the path leads to {other}, not an object"),
        }
    }

    /// Renders `key` in a path: `.key` for a key of ASCII letters, digits and underscores that
    /// does not start with a digit, and otherwise the key as a JSON string in brackets.
    fn key_segment(key: &str) -> String {
        let starts_plain = key.starts_with(|char: char| char.is_ascii_alphabetic() || char == '_');
        let plain = key
            .chars()
            .all(|char| char.is_ascii_alphanumeric() || char == '_');
        if starts_plain && plain {
            format!(".{key}")
        } else {
            format!("[{}]", Value::from(key))
        }
    }

    /// Returns the repeated key and the members of `object` with the key written twice.
    fn repeated_members(object: &Map<String, Value>, repeat: &Repeat) -> (String, Vec<Member>) {
        let mut members: Vec<Member> = object
            .iter()
            .map(|(key, value)| (key.clone(), value.clone(), 0))
            .collect();
        let existing = if repeat.reuse && !members.is_empty() {
            Some(repeat.reused_key.index(members.len()))
        } else {
            members.iter().position(|(key, ..)| *key == repeat.new_key)
        };

        let (key, first_value) = match existing {
            Some(position) => {
                let member = &mut members[position];
                member.2 = repeat.escape_masks.0;
                (member.0.clone(), member.1.clone())
            }
            None => {
                let position = repeat.positions.0.index(members.len() + 1);
                let member = (
                    repeat.new_key.clone(),
                    repeat.new_value.clone(),
                    repeat.escape_masks.0,
                );
                members.insert(position, member);
                (repeat.new_key.clone(), repeat.new_value.clone())
            }
        };

        let other_value = repeat.other_value.clone().unwrap_or(first_value);
        let position = repeat.positions.1.index(members.len() + 1);
        members.insert(position, (key.clone(), other_value, repeat.escape_masks.1));
        (key, members)
    }

    /// Writes `value` as compact JSON, with `members` in place of the members of the object at
    /// `target`.
    fn write_with_members(out: &mut String, value: &Value, target: &[usize], members: &[Member]) {
        let Some((&position, rest)) = target.split_first() else {
            out.push('{');
            for (index, (key, member, escape_mask)) in members.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(out, key, *escape_mask);
                out.push(':');
                write_value(out, member, 0);
            }
            out.push('}');
            return;
        };

        match value {
            Value::Object(map) => {
                out.push('{');
                for (index, (key, member)) in map.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    write_string(out, key, 0);
                    out.push(':');
                    if index == position {
                        write_with_members(out, member, rest, members);
                    } else {
                        write_value(out, member, 0);
                    }
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    if index == position {
                        write_with_members(out, item, rest, members);
                    } else {
                        write_value(out, item, 0);
                    }
                }
                out.push(']');
            }
            scalar => panic!("the path to an object passes through {scalar}"),
        }
    }

    /// A compact JSON text of a generated object with one key written twice.
    #[derive(Debug)]
    struct RepeatedKeyText {
        text: String,
        /// The repeated key as the last segment of a path, such as `.a` or `["a.b"]`.
        key_segment: String,
        /// The whole path of the repeated key with the root `data`, before `parse` shortens it.
        path: String,
    }

    fn write_repeated_key(object: &Value, repeat: &Repeat) -> RepeatedKeyText {
        let mut paths = Vec::new();
        collect_object_paths(object, &mut Vec::new(), &mut paths);
        let target = repeat.object.get(&paths);
        let (map, object_path) = find_object(object, target);
        let (key, members) = repeated_members(map, repeat);

        let mut text = String::new();
        write_with_members(&mut text, object, target, &members);
        let key_segment = key_segment(&key);
        let path = format!("{object_path}{key_segment}");
        RepeatedKeyText {
            text,
            key_segment,
            path,
        }
    }

    /// Generates a JSON text to mutate, either a generated value in any layout or a generated
    /// object with a repeated key.
    fn valid_text() -> impl Strategy<Value = String> {
        prop_oneof![
            (json_value(), layout()).prop_map(|(value, layout)| to_text(&value, layout)),
            (json_object(), repeat())
                .prop_map(|(object, repeat)| write_repeated_key(&object, &repeat).text),
        ]
    }

    /// An edit of a JSON text, at positions counted in characters.
    #[derive(Clone, Debug)]
    enum Mutation {
        Delete {
            at: Index,
            count: usize,
        },
        Insert {
            at: Index,
            char: char,
        },
        Replace {
            at: Index,
            char: char,
        },
        /// A copy of `count` characters from `from`, inserted at `to`, which can repeat a member.
        Copy {
            from: Index,
            count: usize,
            to: Index,
        },
        Truncate {
            at: Index,
        },
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let syntax: Vec<char> = "{}[]\":,\\ \n.-+eE0123456789tfnul".chars().collect();
        let char = prop_oneof![
            3 => prop::sample::select(syntax),
            1 => json_char(),
        ];
        prop_oneof![
            (any::<Index>(), 1..4_usize).prop_map(|(at, count)| Mutation::Delete { at, count }),
            (any::<Index>(), char.clone()).prop_map(|(at, char)| Mutation::Insert { at, char }),
            (any::<Index>(), char).prop_map(|(at, char)| Mutation::Replace { at, char }),
            (any::<Index>(), 1..16_usize, any::<Index>())
                .prop_map(|(from, count, to)| Mutation::Copy { from, count, to }),
            any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        ]
    }

    impl Mutation {
        fn apply(&self, chars: &mut Vec<char>) {
            let len = chars.len();
            if len == 0 {
                if let Mutation::Insert { char, .. } = *self {
                    chars.push(char);
                }
                return;
            }
            match *self {
                Mutation::Delete { at, count } => {
                    let start = at.index(len);
                    chars.drain(start..len.min(start + count));
                }
                Mutation::Insert { at, char } => chars.insert(at.index(len + 1), char),
                Mutation::Replace { at, char } => chars[at.index(len)] = char,
                Mutation::Copy { from, count, to } => {
                    let start = from.index(len);
                    let copy = chars[start..len.min(start + count)].to_vec();
                    let position = to.index(len + 1);
                    chars.splice(position..position, copy);
                }
                Mutation::Truncate { at } => chars.truncate(at.index(len)),
            }
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn generated_values_match_serde_json(value in json_value(), layout in layout()) {
            let text = to_text(&value, layout);
            let expected: Value = serde_json::from_str(&text).unwrap();

            let parsed = parse(&text, "data");

            prop_assert!(parsed.is_ok(), "{text}: {parsed:?}");
            prop_assert_eq!(parsed.unwrap(), expected, "{}", text);
        }

        #[test]
        fn injected_repeat_names_its_key(object in json_object(), repeat in repeat()) {
            let RepeatedKeyText { text, key_segment, path: expected } =
                write_repeated_key(&object, &repeat);

            let accepted = serde_json::from_str::<Value>(&text);
            let parsed = parse(&text, "data");

            prop_assert!(accepted.is_ok(), "serde_json rejects {text}: {accepted:?}");
            let path = match parsed {
                Err(ParseError::DuplicateKey { path }) => path,
                other => {
                    let message = format!("expected a repeated key in {text}, got {other:?}");
                    return Err(TestCaseError::fail(message));
                }
            };
            prop_assert!(path.ends_with(&key_segment), "{path} in {text}");
            if expected.len() <= MAX_PATH_LEN {
                prop_assert_eq!(path, expected, "{}", text);
            } else {
                prop_assert!(path.starts_with("data…"), "{path} in {text}");
            }
        }

        #[test]
        fn mutated_text_agrees_with_serde_json(
            original in valid_text(),
            mutations in prop::collection::vec(mutation(), 1..4),
        ) {
            let mut chars: Vec<char> = original.chars().collect();
            for mutation in &mutations {
                mutation.apply(&mut chars);
            }
            let text = String::from_iter(chars);

            let expected = serde_json::from_str::<Value>(&text);
            let parsed = parse(&text, "data");

            match (expected, parsed) {
                (Ok(expected), Ok(parsed)) => prop_assert_eq!(parsed, expected, "{}", text),
                (Ok(_), Err(ParseError::DuplicateKey { .. })) | (Err(_), Err(_)) => {}
                (Ok(_), Err(error @ ParseError::Invalid(_))) => {
                    let message =
                        format!("serde_json accepts {text}, but parse returns {error:?}");
                    return Err(TestCaseError::fail(message));
                }
                (Err(error), Ok(parsed)) => {
                    let message = format!(
                        "serde_json rejects {text} with {error}, but parse returns {parsed}"
                    );
                    return Err(TestCaseError::fail(message));
                }
            }
        }
    }
}
