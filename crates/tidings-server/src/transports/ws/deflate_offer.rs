//! Choosing one permessage-deflate offer (RFC 7692 section 5).
//!
//! A client may list several offers in `Sec-WebSocket-Extensions`, most preferred first
//! (`permessage-deflate; server_max_window_bits=9, permessage-deflate`). The server accepts at
//! most one. yawc negotiates a single offer, so the seam picks the first offer we can honour and
//! hands yawc only that one.

/// The first acceptable permessage-deflate offer in a `Sec-WebSocket-Extensions` value, or
/// `None` when there is none (then the connection goes uncompressed).
pub(crate) fn first_acceptable(header: &str) -> Option<&str> {
    header
        .split(',')
        .map(str::trim)
        .find(|offer| acceptable(offer))
}

fn acceptable(offer: &str) -> bool {
    let mut parts = offer.split(';').map(str::trim);
    if parts.next() != Some("permessage-deflate") {
        return false;
    }
    let mut seen: Vec<&str> = Vec::new();
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        if seen.contains(&name) {
            return false; // RFC 7692 5.1: a repeated parameter invalidates the offer
        }
        seen.push(name);
        let ok = match (name, value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => true,
            // zlib cannot make an 8-bit window; decline such an offer rather than lie.
            ("server_max_window_bits", Some(v)) => {
                v.parse::<u8>().is_ok_and(|b| (9..=15).contains(&b))
            }
            ("client_max_window_bits", None) => true,
            ("client_max_window_bits", Some(v)) => {
                v.parse::<u8>().is_ok_and(|b| (8..=15).contains(&b))
            }
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::first_acceptable;

    #[test]
    fn picks_the_first_offer_we_can_honour() {
        let h = "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=9, permessage-deflate; client_no_context_takeover";
        assert_eq!(
            first_acceptable(h),
            Some("permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=9")
        );
        assert_eq!(
            first_acceptable("permessage-deflate; server_max_window_bits=8, permessage-deflate"),
            Some("permessage-deflate")
        );
        assert_eq!(first_acceptable("x-webkit-deflate-frame"), None);
        assert_eq!(
            first_acceptable("permessage-deflate; server_max_window_bits=16"),
            None
        );
        assert_eq!(first_acceptable("permessage-deflate; foo"), None);
        assert_eq!(
            first_acceptable(
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
            ),
            None
        );
    }
}
