//! The TLS listeners: `https` (the HTTP router over HTTP/2 or HTTP/1.1, chosen by ALPN),
//! `tcp-tls` (the line protocol) and `stomp-tls` (STOMP). Each serves exactly what its plain
//! twin serves, over the stream `listen::tls` hands over after the handshake.

use super::{bind, router, BoundAddrs, Shared, StartError};
use crate::config::{LineConfig, ServerConfig};
use crate::drivers::stomp::Broker;
use crate::drivers::Context;
use crate::listen::tls::{Tls, ALPN_HTTP};
use crate::listen::{self, ByteStream, Peer};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

/// The TLS listeners, bound, and the certificate they share.
pub(super) struct Listeners {
    tls: Tls,
    https: Option<TcpListener>,
    tcp: Option<TcpListener>,
    stomp: Option<TcpListener>,
}

impl Listeners {
    /// Binds the TLS listeners that are on and loads the certificate; `None` when none is on.
    pub(super) fn bind(config: &ServerConfig) -> Result<Option<Listeners>, StartError> {
        if !config.tls_listeners() {
            return Ok(None);
        }
        let tls = Tls::new(&config.tls)?;
        Ok(Some(Listeners {
            tls,
            https: bind("https", config.https)?,
            tcp: bind("tcp-tls", config.tcp_tls)?,
            stomp: bind("stomp-tls", config.stomp_tls)?,
        }))
    }

    /// Fills in the addresses really bound (port 0 resolved).
    pub(super) fn addrs(&self, addrs: &mut BoundAddrs) {
        let local = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
        addrs.https = local(&self.https);
        addrs.tcp_tls = local(&self.tcp);
        addrs.stomp_tls = local(&self.stomp);
    }

    /// Starts the accept loops; returns the certificate handle, for reloads.
    pub(super) fn spawn(
        self,
        shared: &Arc<Shared>,
        ctx: &Context,
        line: LineConfig,
        broker: Arc<Broker>,
        admission: &dyn Fn(bool) -> listen::Admission,
    ) -> Result<Tls, StartError> {
        let (shutdown, tasks) = (ctx.shutdown.clone(), ctx.tasks.clone());
        if let Some(l) = self.https {
            let acceptor = self.tls.acceptor(ALPN_HTTP)?;
            let shared = shared.clone();
            let serve = move |tcp, peer| {
                let shared = shared.clone();
                acceptor
                    .clone()
                    .then(tcp, peer, move |s, peer| serve_https(s, peer, shared))
            };
            tokio::spawn(listen::accept_loop(
                l,
                "https",
                admission(true),
                shutdown.clone(),
                tasks.clone(),
                serve,
            ));
        }
        if let Some(l) = self.tcp {
            let acceptor = self.tls.acceptor(&[])?;
            let ctx = ctx.clone();
            let serve = move |tcp, peer| {
                let ctx = ctx.clone();
                acceptor.clone().then(tcp, peer, move |s, peer| {
                    crate::drivers::line::serve(s, peer, ctx, line)
                })
            };
            tokio::spawn(listen::accept_loop(
                l,
                "tcp-tls",
                admission(false),
                shutdown.clone(),
                tasks.clone(),
                serve,
            ));
        }
        if let Some(l) = self.stomp {
            let acceptor = self.tls.acceptor(&[])?;
            let serve = move |tcp, peer| {
                let broker = broker.clone();
                acceptor
                    .clone()
                    .then(tcp, peer, move |s, peer| broker.serve_stream(s, peer))
            };
            let admit = admission(false);
            tokio::spawn(listen::accept_loop(
                l,
                "stomp-tls",
                admit,
                shutdown,
                tasks,
                serve,
            ));
        }
        Ok(self.tls)
    }
}

/// hyper's executor for HTTP/2 streams: each stream's task joins the server's tracker, so
/// shutdown waits for it as for any connection.
#[derive(Clone)]
struct Tracked(TaskTracker);

impl<F> hyper::rt::Executor<F> for Tracked
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(tracing::Instrument::in_current_span(fut));
    }
}

/// Serves one HTTPS connection: HTTP/2 (with RFC 8441 extended CONNECT, so WebSockets ride
/// on HTTP/2 streams) or HTTP/1.1 with upgrades, whichever the client speaks (ALPN chose,
/// hyper checks the preface), through the same router as the plain HTTP listener.
async fn serve_https(stream: impl ByteStream, peer: Peer, shared: Arc<Shared>) {
    let shutdown = shared.shutdown.clone();
    let mut builder = hyper_util::server::conn::auto::Builder::new(Tracked(shared.tasks.clone()));
    builder
        .http1()
        .max_buf_size(64 * 1024)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(shared.handshake_timeout);
    builder
        .http2()
        .enable_connect_protocol()
        // Streams at once on one connection: a browser tab's SSE streams, polls and
        // WebSockets share it; each stream is a task with its own window.
        .max_concurrent_streams(256);
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer);
        req.extensions_mut().insert(super::admin::OverTls);
        router::route(req, shared.clone())
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            // HTTP/1.1: finish the request in flight; HTTP/2: GOAWAY, then the open streams
            // end (feeds end when the hub shuts down; WebSockets say their own goodbye).
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
