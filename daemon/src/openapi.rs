//! The OpenAPI 3.1 document of the ingest and control APIs, generated from the handlers'
//! `#[utoipa::path]` annotations and the contract types' schemas, and served at
//! `GET /v1/openapi.json` on both listeners. `docs/openapi.json` is a checked-in copy.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

use crate::control::{deliveries, endpoints, ingest_token, rules, stream};
use crate::{ingest, metrics};

/// Name of the bearer token scheme that `POST /v1/events` refers to.
const BEARER_SCHEME: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "belterd",
        description = "The HTTP APIs of belterd, the Belter Outbound webhook delivery daemon. \
                       The ingest listener (TCP, 127.0.0.1:7700 by default) serves \
                       POST /v1/events and /v1/events/batch with a bearer token, /healthz, \
                       /metrics and this document. The control socket (HTTP on a Unix socket, \
                       mode 0600) serves every other route, /healthz, this document, and both \
                       event routes without a token. docs/api.md describes each route with examples."
    ),
    paths(
        ingest::ingest_with_token,
        ingest::ingest_batch_with_token,
        ingest::health,
        metrics::scrape,
        serve,
        deliveries::event_types,
        endpoints::list,
        endpoints::create,
        endpoints::show,
        endpoints::update,
        endpoints::remove,
        endpoints::pause,
        endpoints::resume,
        endpoints::secret,
        endpoints::rotate_secret,
        deliveries::list,
        deliveries::show,
        deliveries::replay_one,
        deliveries::replay_many,
        rules::list,
        rules::create,
        rules::remove,
        deliveries::stats,
        stream::stream,
        ingest_token::rotate,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "events", description = "Posting events and the event type catalogue"),
        (name = "endpoints", description = "Subscribed endpoints and their secrets"),
        (name = "deliveries", description = "The delivery log, replays, totals and live stream"),
        (name = "rules", description = "Rules that derive score.threshold_breached events"),
        (name = "daemon", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

/// Adds the bearer token scheme of the ingest listener.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, document: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The ingest token: ingest_token from the config, BELTER_INGEST_TOKEN, or the \
                 ingest.token file that belterd generates in its data directory",
            ))
            .build();
        document
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER_SCHEME, SecurityScheme::Http(scheme));
    }
}

/// Builds the document.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /v1/openapi.json` on both listeners.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "daemon",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub(crate) async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::control;

    /// Methods that an OpenAPI path item may have.
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// The method and path of every operation in the document.
    fn documented_routes() -> BTreeSet<(String, String)> {
        let document = serde_json::to_value(document()).unwrap();
        let mut routes = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in METHODS {
                if item.get(method).is_some() {
                    routes.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        routes
    }

    /// The method and path of every route that either listener serves.
    fn served_routes() -> BTreeSet<(String, String)> {
        ingest::routes()
            .into_iter()
            .chain(control::routes())
            .map(|route| (route.method.to_string(), route.path.to_owned()))
            .collect()
    }

    #[test]
    fn document_lists_served_routes() {
        let documented = documented_routes();
        let served = served_routes();

        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from the document: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "documented routes no listener serves: {unserved:?}"
        );
    }

    #[test]
    fn ingest_requires_bearer_or_control_socket() {
        let document = serde_json::to_value(document()).unwrap();
        let security = &document["paths"]["/v1/events"]["post"]["security"];
        assert_eq!(security, &serde_json::json!([{ "bearer": [] }, {}]));
        let scheme = &document["components"]["securitySchemes"][BEARER_SCHEME];
        assert_eq!(scheme["scheme"], "bearer");
    }

    #[test]
    fn schemas_use_wire_names() {
        let document = serde_json::to_value(document()).unwrap();
        let schemas = &document["components"]["schemas"];
        let statuses = schemas["DeliveryStatus"]["enum"].as_array().unwrap();
        assert!(
            statuses.contains(&serde_json::json!("in_flight")),
            "{statuses:?}"
        );
        let kinds = schemas["EventType"]["enum"].as_array().unwrap();
        assert!(
            kinds.contains(&serde_json::json!("csat.received")),
            "{kinds:?}"
        );
        assert_eq!(schemas["Timestamp"]["format"], "date-time");
    }
}
