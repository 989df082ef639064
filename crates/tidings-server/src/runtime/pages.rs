//! The web pages served at `/`: the landing page, the chat and ticker demos, their scripts,
//! the browser bundles of the third-party clients they use (SockJS, Socket.IO, STOMP), and
//! tidings' own JavaScript client at `/client/tidings.js` (from `clients/js/`).
//!
//! Everything is compiled into the binary from `web/` and `clients/js/`, so the pages work with no file next to
//! the binary and no internet. Plain ES modules: no build step.

/// One embedded file and the URL path it answers.
pub(super) struct Page {
    pub(super) content_type: &'static str,
    pub(super) body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! web {
    ($file:literal) => {
        include_bytes!(concat!("../../../../web/", $file))
    };
}

macro_rules! client {
    ($file:literal) => {
        include_bytes!(concat!("../../../../clients/js/", $file))
    };
}

/// URL path, content type, bytes.
const PAGES: &[(&str, &str, &[u8])] = &[
    ("/", HTML, web!("index.html")),
    ("/chat", HTML, web!("chat.html")),
    ("/ticker", HTML, web!("ticker.html")),
    ("/demo/demo.css", CSS, web!("demo.css")),
    // The router answers 404 for /admin while `[admin]` is off.
    ("/admin", HTML, web!("admin.html")),
    ("/admin/admin.js", JS, web!("admin.js")),
    ("/client/tidings.js", JS, client!("tidings.js")),
    (
        "/client/tidings.d.ts",
        "application/typescript; charset=utf-8",
        client!("tidings.d.ts"),
    ),
    ("/demo/chat.js", JS, web!("chat.js")),
    ("/demo/transports.js", JS, web!("transports.js")),
    ("/demo/ticker.js", JS, web!("ticker.js")),
    ("/vendor/sockjs.min.js", JS, web!("vendor/sockjs.min.js")),
    (
        "/vendor/socket.io.min.js",
        JS,
        web!("vendor/socket.io.min.js"),
    ),
    (
        "/vendor/stomp.umd.min.js",
        JS,
        web!("vendor/stomp.umd.min.js"),
    ),
    (
        "/vendor/LICENSES.md",
        "text/markdown; charset=utf-8",
        web!("vendor/LICENSES.md"),
    ),
];

/// The embedded file at `path`, if any.
pub(super) fn find(path: &str) -> Option<Page> {
    PAGES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|&(_, content_type, body)| Page { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_is_there_with_its_type() {
        assert!(find("/chat").unwrap().content_type.starts_with("text/html"));
        assert!(find("/demo/chat.js")
            .unwrap()
            .content_type
            .starts_with("text/javascript"));
        assert!(find("/nope").is_none());
        for (path, _, body) in PAGES {
            assert!(!body.is_empty(), "{path} is empty");
        }
    }
}
