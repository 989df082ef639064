//! The sending transports: `xhr_send` (JSON array body, 204) and `jsonp_send` (form field
//! `d=` or a raw JSON body, 200 "ok"). Errors are the ones SockJS specifies: 404 for an
//! unknown session, 500 "Payload expected." and 500 "Broken JSON encoding.".

use serde_json::Value;

/// Why a send body was refused (each maps to SockJS's status and text).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendError {
    PayloadExpected,
    BrokenJson,
}

impl SendError {
    pub(crate) fn text(&self) -> &'static str {
        match self {
            SendError::PayloadExpected => "Payload expected.",
            SendError::BrokenJson => "Broken JSON encoding.",
        }
    }
}

/// The messages in an `xhr_send` body: a JSON array of strings (or one string).
pub(crate) fn xhr_body(body: &[u8]) -> Result<Vec<String>, SendError> {
    if body.is_empty() {
        return Err(SendError::PayloadExpected);
    }
    parse(body)
}

/// The messages in a `jsonp_send` body: the form field `d`, or the raw body.
pub(crate) fn jsonp_body(body: &[u8], form: bool) -> Result<Vec<String>, SendError> {
    let payload: Vec<u8> = if form {
        form_urlencoded::parse(body)
            .find(|(k, _)| k == "d")
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default()
    } else {
        body.to_vec()
    };
    if payload.is_empty() {
        return Err(SendError::PayloadExpected);
    }
    parse(&payload)
}

fn parse(json: &[u8]) -> Result<Vec<String>, SendError> {
    match serde_json::from_slice::<Value>(json) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Ok(other.to_string()),
            })
            .collect(),
        Ok(Value::String(s)) => Ok(vec![s]),
        _ => Err(SendError::BrokenJson),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_as_sockjs_specifies() {
        assert_eq!(xhr_body(br#"["a","b"]"#).unwrap(), ["a", "b"]);
        assert_eq!(xhr_body(b""), Err(SendError::PayloadExpected));
        assert_eq!(xhr_body(b"[\"x"), Err(SendError::BrokenJson));
        assert_eq!(jsonp_body(b"d=%5B%22x%22%5D", true).unwrap(), ["x"]);
        assert_eq!(jsonp_body(b"d=", true), Err(SendError::PayloadExpected));
        assert_eq!(jsonp_body(br#"["y"]"#, false).unwrap(), ["y"]);
    }
}
