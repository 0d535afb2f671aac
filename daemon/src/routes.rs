//! Route tables: each listener lists its routes as method, path and handler, and its router is
//! built from that list. The OpenAPI test reads the same lists, so it fails when a route is
//! served but not documented, or documented but not served.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{self, MethodRouter};
use axum::Router;

use crate::api_error::{method_not_allowed, route_not_found};
use crate::state::AppState;

/// One route: a method on a path, and its handler.
pub(crate) struct Route {
    /// The method, which the handler's method router already filters on. Only the OpenAPI test
    /// reads it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) method: Method,
    /// The path in axum's syntax, which is also OpenAPI's: `/v1/endpoints/{id}`.
    pub(crate) path: &'static str,
    handler: MethodRouter<AppState>,
}

impl Route {
    /// Builds a `GET` route, which axum also serves for `HEAD`.
    pub(crate) fn get<H, T>(path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self {
            method: Method::GET,
            path,
            handler: routing::get(handler),
        }
    }

    /// Builds a `POST` route.
    pub(crate) fn post<H, T>(path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self {
            method: Method::POST,
            path,
            handler: routing::post(handler),
        }
    }

    /// Builds a `PATCH` route.
    pub(crate) fn patch<H, T>(path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self {
            method: Method::PATCH,
            path,
            handler: routing::patch(handler),
        }
    }

    /// Builds a `DELETE` route.
    pub(crate) fn delete<H, T>(path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self {
            method: Method::DELETE,
            path,
            handler: routing::delete(handler),
        }
    }
}

/// Returns whether `path` matches a route path in axum's syntax, where a `{name}` segment
/// matches any one segment.
pub(crate) fn path_matches(pattern: &str, path: &str) -> bool {
    let mut patterns = pattern.split('/');
    let mut segments = path.split('/');
    loop {
        match (patterns.next(), segments.next()) {
            (None, None) => return true,
            (Some(expected), Some(segment)) => {
                let any = expected.starts_with('{') && expected.ends_with('}');
                if !any && expected != segment {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Builds a router from a route table. Unknown paths get a JSON 404 and known paths with another
/// method a JSON 405.
pub(crate) fn router(routes: Vec<Route>, state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes {
        // axum merges the method routers of routes that share a path.
        router = router.route(route.path, route.handler);
    }
    router
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matches_segments() {
        assert!(path_matches("/v1/endpoints", "/v1/endpoints"));
        assert!(path_matches(
            "/v1/endpoints/{id}/pause",
            "/v1/endpoints/ep_1/pause"
        ));
        assert!(!path_matches("/v1/endpoints/{id}", "/v1/endpoints"));
        assert!(!path_matches("/v1/endpoints", "/v1/endpointless"));
        assert!(!path_matches(
            "/v1/endpoints/{id}",
            "/v1/endpoints/ep_1/pause"
        ));
    }
}
