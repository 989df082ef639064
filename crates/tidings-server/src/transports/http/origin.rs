//! The one origin policy (`websocket.allowed_origins`) that every browser-facing path applies:
//! WebSocket upgrades (`ws::upgrade`), SockJS, SSE/poll/stream and the HTTP API.
//!
//! - A request without `Origin` is not from a browser page: allowed.
//! - With an allow-list, only the listed origins (exact `scheme://host[:port]`).
//! - Without one, any origin may read (SockJS and CORS need that), but a request that
//!   changes state and carries credentials the browser adds by itself (HTTP Basic, cookies)
//!   from another site is refused: that is cross-site request forgery, and a page that
//!   should do it can be put on the allow-list.

use hyper::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use hyper::Request;

/// The request's `Origin`, if it has one that is text.
pub(crate) fn of<B>(req: &Request<B>) -> Option<&str> {
    req.headers().get(ORIGIN).and_then(|o| o.to_str().ok())
}

/// Whether a page from `origin` may use the server under `allowed`.
pub(crate) fn allowed(origin: &str, allowed: &[String]) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a == origin)
}

/// A state-changing request with ambient credentials from another site that the allow-list
/// does not name (see the module docs).
pub(crate) fn forged<B>(req: &Request<B>, allow_list: &[String]) -> bool {
    let Some(origin) = of(req) else {
        return false;
    };
    let ambient = req.headers().contains_key(AUTHORIZATION) || req.headers().contains_key(COOKIE);
    if !ambient || same_site(req, origin) {
        return false;
    }
    allow_list.is_empty() || !allowed(origin, allow_list)
}

/// `origin`'s `host[:port]` is the request's host: its `Host` header, or over HTTP/2 (where
/// browsers send none) the `:authority` in its URI.
fn same_site<B>(req: &Request<B>, origin: &str) -> bool {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::post("/api/publish/t");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn only_credentialed_cross_site_requests_are_forgeries() {
        let none: &[String] = &[];
        let basic = ("authorization", "Basic YTpi");
        let host = ("host", "tidings.example:7070");
        assert!(
            !forged(&req(&[basic, host]), none),
            "no Origin: not a browser page"
        );
        assert!(!forged(
            &req(&[basic, host, ("origin", "http://tidings.example:7070")]),
            none
        ));
        assert!(forged(
            &req(&[basic, host, ("origin", "http://evil.example")]),
            none
        ));
        assert!(
            !forged(&req(&[host, ("origin", "http://evil.example")]), none),
            "no credentials"
        );
        let listed = vec!["https://app.example".to_owned()];
        assert!(!forged(
            &req(&[basic, host, ("origin", "https://app.example")]),
            &listed
        ));
        assert!(forged(
            &req(&[("cookie", "a=b"), host, ("origin", "http://evil.example")]),
            &listed
        ));
    }
}
