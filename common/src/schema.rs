//! The `data` schema of each event type, as one table that drives both validation at ingest and
//! the JSON Schema documents that `GET /v1/event-types` returns. Fields not listed pass through.

use serde_json::{json, Map, Value};

use crate::event_type::EventType;
use crate::timestamp::is_rfc3339;

/// The shape a field value must have.
#[derive(Debug)]
pub enum FieldKind {
    /// A string; ids and names must be non-empty.
    Text { non_empty: bool },
    /// One of a fixed set of strings.
    OneOf(&'static [&'static str]),
    /// A string or `null`.
    NullableText,
    /// An RFC 3339 timestamp.
    Timestamp,
    /// A JSON number, with optional inclusive bounds.
    Number { min: Option<f64>, max: Option<f64> },
    /// A whole number, with an optional inclusive lower bound.
    Integer { min: Option<i64> },
    /// An array of non-empty strings.
    TextList,
    /// An array of objects of the given fields.
    ObjectList(&'static [Field]),
    /// An object of the given fields.
    Object(&'static [Field]),
}

/// One documented field of an event's `data`.
#[derive(Debug)]
pub struct Field {
    /// The JSON key.
    pub name: &'static str,
    /// The value's shape.
    pub kind: FieldKind,
    /// Whether the field must be present.
    pub required: bool,
    /// A short description for the schema document.
    pub doc: &'static str,
}

/// A `data` value that breaks its event type's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {rule}")]
pub struct SchemaError {
    /// Path of the offending field, such as `data.criteria[1].score`.
    pub field: String,
    /// The rule it breaks, such as "must be a number between 0 and 100, got \"high\"".
    pub rule: String,
}

const fn required(name: &'static str, kind: FieldKind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        doc,
    }
}

const fn optional(name: &'static str, kind: FieldKind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        doc,
    }
}

const ID: FieldKind = FieldKind::Text { non_empty: true };
const TEXT: FieldKind = FieldKind::Text { non_empty: false };
const ANY_NUMBER: FieldKind = FieldKind::Number {
    min: None,
    max: None,
};
const SCORE: FieldKind = FieldKind::Number {
    min: Some(0.0),
    max: Some(100.0),
};
const UNIT_INTERVAL: FieldKind = FieldKind::Number {
    min: Some(0.0),
    max: Some(1.0),
};
const SENTIMENT: FieldKind = FieldKind::Number {
    min: Some(-1.0),
    max: Some(1.0),
};

const CRITERION: &[Field] = &[
    required("criterion", ID, "Criterion name, such as \"greeting\"."),
    required("score", SCORE, "Criterion score, 0 to 100."),
    optional(
        "weight",
        ANY_NUMBER,
        "Weight of the criterion in the overall score.",
    ),
];

const EVALUATION_COMPLETED: &[Field] = &[
    required("conversation_id", ID, "The scored conversation."),
    required("score", SCORE, "Overall score, 0 to 100."),
    required(
        "rubric_version",
        FieldKind::Integer { min: Some(1) },
        "Version of the rubric used, 1 or more.",
    ),
    required(
        "criteria",
        FieldKind::ObjectList(CRITERION),
        "Per-criterion scores; may be empty.",
    ),
    optional("agent", TEXT, "Agent id."),
    optional("team", TEXT, "Team id."),
    optional("brand", TEXT, "Brand id."),
    optional(
        "evaluated_at",
        FieldKind::Timestamp,
        "When the evaluation ran.",
    ),
];

const CONVERSATION_IMPORTED: &[Field] = &[
    required("conversation_id", ID, "The imported conversation."),
    required(
        "source",
        FieldKind::OneOf(&["connector", "rest"]),
        "How the conversation arrived.",
    ),
    optional("connector", TEXT, "Connector name, such as \"zendesk\"."),
    optional(
        "channel",
        TEXT,
        "Channel, such as \"chat\", \"email\" or \"voice\".",
    ),
    optional(
        "queue_position",
        FieldKind::Integer { min: Some(0) },
        "Position in the evaluation queue, 0 or more.",
    ),
    optional(
        "imported_at",
        FieldKind::Timestamp,
        "When the import finished.",
    ),
];

const SCORE_THRESHOLD_BREACHED: &[Field] = &[
    required(
        "conversation_id",
        ID,
        "The conversation whose score breached.",
    ),
    required(
        "scope",
        FieldKind::OneOf(&["brand", "team", "agent", "global"]),
        "What the threshold applies to.",
    ),
    required(
        "scope_id",
        ID,
        "Id of the brand, team or agent; \"*\" for a global threshold.",
    ),
    required(
        "criterion",
        FieldKind::NullableText,
        "The criterion, or null for the overall score.",
    ),
    required("score", ANY_NUMBER, "The score that breached."),
    required("threshold", ANY_NUMBER, "The threshold it fell below."),
    optional(
        "rubric_version",
        FieldKind::Integer { min: Some(1) },
        "Version of the rubric used.",
    ),
];

const CSAT_RECEIVED: &[Field] = &[
    required("conversation_id", ID, "The rated conversation."),
    required(
        "rating",
        FieldKind::Number {
            min: Some(0.0),
            max: None,
        },
        "The rating, 0 to scale_max.",
    ),
    required(
        "via",
        FieldKind::OneOf(&["api", "webhook"]),
        "How the rating arrived.",
    ),
    optional(
        "scale_max",
        FieldKind::Integer { min: Some(1) },
        "Top of the rating scale, 5 when absent.",
    ),
    optional("comment", TEXT, "The customer's comment."),
    optional(
        "received_at",
        FieldKind::Timestamp,
        "When the rating arrived.",
    ),
];

const INFLECTION_POINT: &[Field] = &[
    required(
        "turn",
        FieldKind::Integer { min: None },
        "Turn of the conversation.",
    ),
    required("from", ANY_NUMBER, "Sentiment before the turn."),
    required("to", ANY_NUMBER, "Sentiment after the turn."),
];

const SENTIMENT_ANALYZED: &[Field] = &[
    required("conversation_id", ID, "The analyzed conversation."),
    required("start", SENTIMENT, "Sentiment at the start, -1 to 1."),
    required("end", SENTIMENT, "Sentiment at the end, -1 to 1."),
    required("delta", ANY_NUMBER, "Change from start to end."),
    required(
        "inflection_points",
        FieldKind::ObjectList(INFLECTION_POINT),
        "Turns where the sentiment changed direction; may be empty.",
    ),
];

const WINDOW: &[Field] = &[
    required("start", FieldKind::Timestamp, "Window start."),
    required("end", FieldKind::Timestamp, "Window end."),
];

const SMART_ALERT_CREATED: &[Field] = &[
    required("alert_id", ID, "The alert."),
    required(
        "kind",
        FieldKind::OneOf(&["score_dip", "volume_spike", "criterion_slipping"]),
        "What the alert detected.",
    ),
    required("summary", TEXT, "One-sentence summary for people."),
    required(
        "conversation_ids",
        FieldKind::TextList,
        "Conversations behind the alert.",
    ),
    optional("metric", TEXT, "The metric watched."),
    optional("baseline", ANY_NUMBER, "The metric's usual value."),
    optional("observed", ANY_NUMBER, "The metric's observed value."),
    optional(
        "window",
        FieldKind::Object(WINDOW),
        "The time window observed.",
    ),
];

const FRUSTRATION_DETECTED: &[Field] = &[
    required("conversation_id", ID, "The conversation."),
    required("level", UNIT_INTERVAL, "Frustration level, 0 to 1."),
    required(
        "threshold",
        UNIT_INTERVAL,
        "Threshold that was crossed, 0 to 1.",
    ),
    optional("agent", TEXT, "Agent id."),
    optional(
        "turn",
        FieldKind::Integer { min: None },
        "Turn where it was detected.",
    ),
];

/// The documented fields of an event type's `data`.
pub fn fields(kind: EventType) -> &'static [Field] {
    match kind {
        EventType::EvaluationCompleted => EVALUATION_COMPLETED,
        EventType::ConversationImported => CONVERSATION_IMPORTED,
        EventType::ScoreThresholdBreached => SCORE_THRESHOLD_BREACHED,
        EventType::CsatReceived => CSAT_RECEIVED,
        EventType::SentimentAnalyzed => SENTIMENT_ANALYZED,
        EventType::SmartAlertCreated => SMART_ALERT_CREATED,
        EventType::FrustrationDetected => FRUSTRATION_DETECTED,
    }
}

/// Validates an event's `data` against its type's schema, returning the first violation.
pub fn validate(kind: EventType, data: &Value) -> Result<(), SchemaError> {
    check_object(fields(kind), data, &Path::Root("data"))?;
    if kind == EventType::CsatReceived {
        check_rating_within_scale(data)?;
    }
    Ok(())
}

fn check_rating_within_scale(data: &Value) -> Result<(), SchemaError> {
    let scale_max = data.get("scale_max").and_then(Value::as_f64).unwrap_or(5.0);
    let rating = data.get("rating").and_then(Value::as_f64).unwrap_or(0.0);
    if rating > scale_max {
        return Err(SchemaError {
            field: "data.rating".to_owned(),
            rule: format!("must not exceed scale_max ({scale_max}), got {rating}"),
        });
    }
    Ok(())
}

/// The path of a value in an event's `data`, written out only for an error.
enum Path<'a> {
    Root(&'static str),
    Field(&'a Path<'a>, &'static str),
    Item(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root(name) => formatter.write_str(name),
            Path::Field(parent, name) => write!(formatter, "{parent}.{name}"),
            Path::Item(parent, index) => write!(formatter, "{parent}[{index}]"),
        }
    }
}

fn check_object(fields: &[Field], value: &Value, path: &Path<'_>) -> Result<(), SchemaError> {
    let Some(object) = value.as_object() else {
        return Err(violation(path, "must be an object", value));
    };
    for field in fields {
        let field_path = Path::Field(path, field.name);
        match object.get(field.name) {
            None if field.required => {
                return Err(SchemaError {
                    field: field_path.to_string(),
                    rule: format!(
                        "is required: add \"{}\" ({})",
                        field.name,
                        field.doc.trim_end_matches('.')
                    ),
                });
            }
            None => {}
            Some(value) => check_value(&field.kind, value, &field_path)?,
        }
    }
    Ok(())
}

fn check_value(kind: &FieldKind, value: &Value, path: &Path<'_>) -> Result<(), SchemaError> {
    match kind {
        FieldKind::Text { non_empty } => match value.as_str() {
            Some("") if *non_empty => Err(violation(path, "must be a non-empty string", value)),
            Some(_) => Ok(()),
            None => Err(violation(path, "must be a string", value)),
        },
        FieldKind::OneOf(choices) => match value.as_str() {
            Some(text) if choices.contains(&text) => Ok(()),
            _ => Err(violation(
                path,
                &format!("must be one of {}", quoted_list(choices)),
                value,
            )),
        },
        FieldKind::NullableText => match value {
            Value::Null | Value::String(_) => Ok(()),
            _ => Err(violation(path, "must be a string or null", value)),
        },
        FieldKind::Timestamp => match value.as_str() {
            Some(text) if is_rfc3339(text) => Ok(()),
            _ => Err(violation(
                path,
                "must be an RFC 3339 timestamp such as \"2026-12-03T14:32:08Z\"",
                value,
            )),
        },
        FieldKind::Number { min, max } => {
            let number = value
                .as_f64()
                .ok_or_else(|| violation(path, &number_rule(*min, *max), value))?;
            let below = min.is_some_and(|min| number < min);
            let above = max.is_some_and(|max| number > max);
            if below || above {
                return Err(violation(path, &number_rule(*min, *max), value));
            }
            Ok(())
        }
        FieldKind::Integer { min } => {
            let rule = || match min {
                Some(min) => format!("must be an integer of at least {min}"),
                None => "must be an integer".to_owned(),
            };
            let number = value
                .as_i64()
                .ok_or_else(|| violation(path, &rule(), value))?;
            if min.is_some_and(|min| number < min) {
                return Err(violation(path, &rule(), value));
            }
            Ok(())
        }
        FieldKind::TextList => {
            let items = value
                .as_array()
                .ok_or_else(|| violation(path, "must be an array of strings", value))?;
            for (index, item) in items.iter().enumerate() {
                check_value(&ID, item, &Path::Item(path, index))?;
            }
            Ok(())
        }
        FieldKind::ObjectList(fields) => {
            let items = value
                .as_array()
                .ok_or_else(|| violation(path, "must be an array of objects", value))?;
            for (index, item) in items.iter().enumerate() {
                check_object(fields, item, &Path::Item(path, index))?;
            }
            Ok(())
        }
        FieldKind::Object(fields) => check_object(fields, value, path),
    }
}

fn number_rule(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("must be a number between {min} and {max}"),
        (Some(min), None) => format!("must be a number of at least {min}"),
        (None, Some(max)) => format!("must be a number of at most {max}"),
        (None, None) => "must be a number".to_owned(),
    }
}

fn quoted_list(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices
        .iter()
        .map(|choice| format!("\"{choice}\""))
        .collect();
    quoted.join(", ")
}

/// Builds a violation that shows the offending value, cut to keep the message short.
fn violation(path: &Path<'_>, rule: &str, value: &Value) -> SchemaError {
    let mut shown = value.to_string();
    if shown.len() > 80 {
        let cut = (0..=80)
            .rev()
            .find(|&at| shown.is_char_boundary(at))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    SchemaError {
        field: path.to_string(),
        rule: format!("{rule}, got {shown}"),
    }
}

/// A JSON Schema (draft 2020-12) document for an event type's `data`.
pub fn json_schema(kind: EventType) -> Value {
    let mut schema = object_schema(fields(kind));
    if let Value::Object(map) = &mut schema {
        map.insert(
            "$schema".to_owned(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        map.insert("title".to_owned(), json!(kind.as_str()));
        map.insert("description".to_owned(), json!(kind.description()));
    }
    schema
}

fn object_schema(fields: &[Field]) -> Value {
    let mut properties = Map::new();
    for field in fields {
        let mut property = kind_schema(&field.kind);
        if let Value::Object(map) = &mut property {
            map.insert("description".to_owned(), json!(field.doc));
        }
        properties.insert(field.name.to_owned(), property);
    }
    let required: Vec<&str> = fields
        .iter()
        .filter(|field| field.required)
        .map(|field| field.name)
        .collect();
    json!({
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": true,
    })
}

fn kind_schema(kind: &FieldKind) -> Value {
    match kind {
        FieldKind::Text { non_empty: true } => json!({"type": "string", "minLength": 1}),
        FieldKind::Text { non_empty: false } => json!({"type": "string"}),
        FieldKind::OneOf(choices) => json!({"type": "string", "enum": choices}),
        FieldKind::NullableText => json!({"type": ["string", "null"]}),
        FieldKind::Timestamp => json!({"type": "string", "format": "date-time"}),
        FieldKind::Number { min, max } => {
            let mut schema = json!({"type": "number"});
            if let Some(min) = min {
                schema["minimum"] = json!(min);
            }
            if let Some(max) = max {
                schema["maximum"] = json!(max);
            }
            schema
        }
        FieldKind::Integer { min } => {
            let mut schema = json!({"type": "integer"});
            if let Some(min) = min {
                schema["minimum"] = json!(min);
            }
            schema
        }
        FieldKind::TextList => {
            json!({"type": "array", "items": {"type": "string", "minLength": 1}})
        }
        FieldKind::ObjectList(fields) => json!({"type": "array", "items": object_schema(fields)}),
        FieldKind::Object(fields) => object_schema(fields),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluation() -> Value {
        json!({
            "conversation_id": "conv_1",
            "score": 94,
            "rubric_version": 7,
            "criteria": [{"criterion": "greeting", "score": 100, "weight": 0.1}],
            "extra": {"kept": true}
        })
    }

    #[test]
    fn valid_evaluation_passes_with_extra_fields() {
        assert_eq!(
            validate(EventType::EvaluationCompleted, &evaluation()),
            Ok(())
        );
    }

    #[test]
    fn missing_field_is_named() {
        let mut data = evaluation();
        data.as_object_mut().unwrap().remove("rubric_version");
        let error = validate(EventType::EvaluationCompleted, &data).unwrap_err();
        assert_eq!(error.field, "data.rubric_version");
        assert!(error.rule.starts_with("is required"), "{}", error.rule);
    }

    #[test]
    fn nested_field_path_and_value_are_named() {
        let mut data = evaluation();
        data["criteria"][0]["score"] = json!("high");
        let error = validate(EventType::EvaluationCompleted, &data).unwrap_err();
        assert_eq!(error.field, "data.criteria[0].score");
        assert_eq!(
            error.rule,
            "must be a number between 0 and 100, got \"high\""
        );
    }

    #[test]
    fn out_of_range_numbers_are_rejected() {
        let cases = [
            (EventType::EvaluationCompleted, "score", json!(101)),
            (EventType::EvaluationCompleted, "rubric_version", json!(0)),
            (EventType::EvaluationCompleted, "rubric_version", json!(1.5)),
            (EventType::FrustrationDetected, "level", json!(1.2)),
            (EventType::SentimentAnalyzed, "start", json!(-1.5)),
        ];
        for (kind, field, value) in cases {
            let mut data = sample(kind);
            data[field] = value.clone();
            let error = validate(kind, &data).unwrap_err();
            assert_eq!(error.field, format!("data.{field}"), "{kind} {value}");
        }
    }

    #[test]
    fn enum_and_timestamp_rules() {
        let mut data = sample(EventType::ConversationImported);
        data["source"] = json!("ftp");
        let error = validate(EventType::ConversationImported, &data).unwrap_err();
        assert!(
            error.rule.contains("\"connector\", \"rest\""),
            "{}",
            error.rule
        );

        let mut data = sample(EventType::ConversationImported);
        data["imported_at"] = json!("yesterday");
        let error = validate(EventType::ConversationImported, &data).unwrap_err();
        assert_eq!(error.field, "data.imported_at");
    }

    #[test]
    fn csat_rating_must_fit_scale() {
        let mut data = sample(EventType::CsatReceived);
        data["rating"] = json!(6);
        let error = validate(EventType::CsatReceived, &data).unwrap_err();
        assert_eq!(error.field, "data.rating");

        data["scale_max"] = json!(10);
        assert_eq!(validate(EventType::CsatReceived, &data), Ok(()));
    }

    #[test]
    fn empty_ids_are_rejected() {
        let mut data = sample(EventType::FrustrationDetected);
        data["conversation_id"] = json!("");
        let error = validate(EventType::FrustrationDetected, &data).unwrap_err();
        assert!(error.rule.starts_with("must be a non-empty string"));
    }

    #[test]
    fn data_must_be_object() {
        let error = validate(EventType::CsatReceived, &json!([1])).unwrap_err();
        assert_eq!(error.field, "data");
    }

    #[test]
    fn schema_documents_list_required_fields() {
        for kind in EventType::ALL {
            let schema = json_schema(kind);
            let required = schema["required"].as_array().unwrap();
            assert!(!required.is_empty(), "{kind}");
            assert_eq!(schema["title"], kind.as_str());
        }
    }

    fn sample(kind: EventType) -> Value {
        match kind {
            EventType::EvaluationCompleted => evaluation(),
            EventType::ConversationImported => json!({
                "conversation_id": "conv_2", "source": "connector", "imported_at": "2026-12-03T14:00:00Z"
            }),
            EventType::ScoreThresholdBreached => json!({
                "conversation_id": "conv_3", "scope": "team", "scope_id": "billing",
                "criterion": null, "score": 41, "threshold": 60
            }),
            EventType::CsatReceived => {
                json!({"conversation_id": "conv_4", "rating": 4, "via": "api"})
            }
            EventType::SentimentAnalyzed => json!({
                "conversation_id": "conv_5", "start": -0.4, "end": 0.3, "delta": 0.7,
                "inflection_points": []
            }),
            EventType::SmartAlertCreated => json!({
                "alert_id": "alrt_1", "kind": "score_dip", "summary": "Scores fell.",
                "conversation_ids": ["conv_6"]
            }),
            EventType::FrustrationDetected => json!({
                "conversation_id": "conv_7", "level": 0.8, "threshold": 0.7
            }),
        }
    }
}
