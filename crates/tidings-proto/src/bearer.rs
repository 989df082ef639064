//! The token of an `Authorization: Bearer <token>` value (RFC 6750), as HTTP requests and
//! STOMP CONNECT frames carry it: one reading for both, so an empty token is "no token"
//! everywhere (and a login with `login`/`passcode` is then used instead).

/// The token of an `Authorization` value with the `Bearer` scheme (case-insensitive);
/// `None` for another scheme or an empty token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn a_bearer_token_is_read_and_an_empty_one_is_none() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Basic YTpi"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
