//! OpenAPI schemas of the types whose wire form the derive cannot see: ids, event types,
//! timestamps and event selections, which serialize through text. Compiled with the `openapi`
//! feature only.

use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::event_type::EventType;
use crate::ids::{DeliveryId, EndpointId, EventId, RuleId};
use crate::records::EventSelection;
use crate::timestamp::Timestamp;

/// Crockford base32 characters of a ULID, as a regular expression.
const ULID_PATTERN: &str = "[0-9A-HJKMNP-TV-Z]{26}";

/// Builds the schema of an event type name.
fn event_type_names() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(EventType::names()))
}

impl PartialSchema for EventType {
    fn schema() -> RefOr<Schema> {
        event_type_names()
            .description(Some("An event type, such as csat.received."))
            .into()
    }
}

impl ToSchema for EventType {}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "RFC 3339 in UTC with milliseconds. Query parameters also take Unix milliseconds.",
            ))
            .examples(["2026-12-04T15:13:40.468Z"])
            .into()
    }
}

impl ToSchema for Timestamp {}

/// Implements the schemas of an id type: its prefix followed by a ULID.
macro_rules! id_schema {
    ($name:ident, $what:literal) => {
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(format!("^{}{ULID_PATTERN}$", $name::PREFIX)))
                    .description(Some(format!(
                        "Id of {}: {} followed by a ULID, so ids sort by creation time.",
                        $what,
                        $name::PREFIX
                    )))
                    .examples([format!("{}01M90SWGKNH6SD5V8D8TBQKW2W", $name::PREFIX)])
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

id_schema!(EventId, "an event");
id_schema!(DeliveryId, "a delivery");
id_schema!(EndpointId, "an endpoint");
id_schema!(RuleId, "a threshold rule");

impl PartialSchema for EventSelection {
    fn schema() -> RefOr<Schema> {
        let name = || {
            event_type_names().enum_values(Some(
                EventType::names().into_iter().chain(std::iter::once("*")),
            ))
        };
        let list = ArrayBuilder::new().items(name()).min_items(Some(1));
        OneOfBuilder::new()
            .item(list)
            .item(name())
            .description(Some(
                "Event types an endpoint receives: a list of names, where \"*\" selects every \
                 type. A request may also send one name as a string. Responses always send a \
                 list.",
            ))
            .into()
    }
}

impl ToSchema for EventSelection {}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of<T: PartialSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    #[test]
    fn id_pattern_matches_prefix() {
        let schema = json_of::<DeliveryId>();
        assert_eq!(schema["pattern"], "^del_[0-9A-HJKMNP-TV-Z]{26}$");
        assert_eq!(schema["type"], "string");
    }

    #[test]
    fn event_type_lists_wire_names() {
        let schema = json_of::<EventType>();
        let names: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|name| name.as_str())
            .collect();
        assert_eq!(names, EventType::names());
    }

    #[test]
    fn selection_accepts_star() {
        let schema = json_of::<EventSelection>();
        let list = &schema["oneOf"][0];
        assert_eq!(list["type"], "array");
        let names = list["items"]["enum"].as_array().unwrap();
        assert!(names.contains(&serde_json::json!("*")), "{schema}");
    }
}
