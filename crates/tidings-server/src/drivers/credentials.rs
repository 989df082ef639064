//! Where HTTP requests carry a token: `Authorization: Bearer <jwt>` (RFC 6750) or, for
//! clients that cannot set headers (EventSource, a browser's WebSocket), `?token=<jwt>`.

use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;

/// The token of an `Authorization: Bearer` header (scheme case-insensitive).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    tidings_proto::bearer::bearer_token(headers.get(AUTHORIZATION)?.to_str().ok()?)
}

/// The `token` query parameter, percent-decoded.
pub(crate) fn query_token(uri: &hyper::Uri) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// A request's token: the header first, then the query.
pub(crate) fn of_request<B>(req: &hyper::Request<B>) -> Option<String> {
    bearer(req.headers())
        .map(str::to_owned)
        .or_else(|| query_token(req.uri()))
}
