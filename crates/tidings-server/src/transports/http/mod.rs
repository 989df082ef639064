//! What every HTTP answer of the server is made of: one boxed body type (whole or streamed)
//! and small constructors for the common responses.

pub(crate) mod origin;
pub(crate) mod streamed;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{Response, StatusCode};
use std::convert::Infallible;

/// Every response body: whole (`Full`) or streamed (SSE, `/stream`), boxed to one type.
pub type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn text(status: StatusCode, body: &str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(body.to_owned()),
    )
}

pub(crate) fn json_bytes(status: StatusCode, body: Bytes) -> Response<Body> {
    respond(status, "application/json", body)
}

pub(crate) fn json(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "application/json", Bytes::from(body))
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

/// What an HTTP connection the listener refuses is told, written before its request is
/// read: `503` with the reason, then the connection closes.
pub(crate) fn refusal(reason: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 5\r\nconnection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    )
    .into_bytes()
}
