//! The UDP endpoint: publish with one datagram, subscribe with a lease, one message per
//! datagram. Unordered, may lose or duplicate; every message carries topic, offset and epoch.
//!
//! ```text
//!  recvmmsg/GRO ─> rate limit (per source) ─> decode ─> PUBLISH ────────> Hub::publish
//!                                                  SUBSCRIBE/RENEW/UNSUBSCRIBE
//!                                                    no valid cookie ─> CHALLENGE
//!                                                    valid cookie ────> Peers (session, lease)
//!  Hub ─> peer's Outbox ─wake─> Ready queue ─> sender task ─> MESSAGE datagrams: what is
//!                                   queued for one peer goes as GSO sends (many per syscall)
//! ```
//!
//! Abuse resistance, because source addresses can be forged:
//! - an address becomes a subscriber only by echoing a cookie (`cookie.rs`), so messages
//!   only ever go to addresses that proved they receive there;
//! - a reply to an address that holds no lease is never longer than the datagram it answers
//!   (`reply`): a forged request cannot make the server amplify traffic at a victim;
//! - leases expire; every source address is rate limited (`rate.rs`); tables are bounded.
//!
//! Two tasks: this one receives and answers (replies use `try_send_to`, so a full send
//! buffer never stalls receiving), and `sender.rs` drains outboxes.

mod cookie;
mod peers;
mod rate;
mod receiver;
mod sender;
pub(crate) mod stats;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tidings_core::HubError;
use tidings_proto::udp::{self, ErrorCode, Reply, Request};
use tokio::net::UdpSocket;

use super::Context;
use crate::config::DatagramConfig;
use cookie::Cookies;
use peers::{Peers, Ready, SubscribeError};
use rate::RateLimiter;
use stats::UdpStats;

/// Binds the UDP socket and sizes its kernel buffers.
pub(crate) async fn bind(addr: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr).await?;
    let sock = socket2::SockRef::from(&socket);
    // The kernel caps these at net.core.{r,w}mem_max; a smaller buffer only means bursts
    // are lost sooner, which UDP's semantics allow.
    let _ = sock.set_recv_buffer_size(buffer);
    let _ = sock.set_send_buffer_size(buffer);
    Ok(socket)
}

/// State of the endpoint shared by the receiver and the sender.
pub(crate) struct Endpoint {
    socket: UdpSocket,
    ctx: Context,
    cfg: DatagramConfig,
    /// Counters, read by `/metrics`.
    stats: Arc<UdpStats>,
    /// Subscriber addresses; locked briefly by the receiver (subscribe, renew), the sender
    /// (find an outbox) and the lease sweep. Taken before the hub's lock, never after.
    peers: Mutex<Peers>,
    ready: Arc<Ready>,
    cookies: Cookies,
    limits: udp::Limits,
    lease_ms: u64,
    /// GSO support of the kernel (`sender::gso_state`); `None`: one `sendto` per datagram.
    gso: Option<quinn_udp::UdpSocketState>,
}

/// Runs the endpoint until shutdown.
pub(crate) fn spawn(
    socket: UdpSocket,
    ctx: Context,
    cfg: DatagramConfig,
    stats: Arc<UdpStats>,
) -> std::io::Result<()> {
    let gso = sender::gso_state(cfg.gso, socket.local_addr()?);
    tracing::debug!("udp: GSO {}", if gso.is_some() { "on" } else { "off" });
    let endpoint = Arc::new(Endpoint {
        socket,
        gso,
        peers: Mutex::new(Peers::new(
            cfg.max_subscribers,
            cfg.max_subscriptions,
            cfg.lease_secs * 1000,
        )),
        ready: Arc::new(Ready::default()),
        cookies: Cookies::new(cfg.cookie_secs)?,
        limits: udp::Limits {
            max_datagram: cfg.max_payload,
        },
        lease_ms: cfg.lease_secs * 1000,
        ctx: ctx.clone(),
        cfg,
        stats,
    });
    ctx.tasks.spawn(receive_loop(endpoint.clone()));
    ctx.tasks.spawn(sender::run(endpoint));
    Ok(())
}

impl Endpoint {
    fn stats(&self) -> &UdpStats {
        &self.stats
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, Peers> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a reply, unless `to` holds no lease and the reply is longer than the request
    /// (the anti-amplification rule: an unvalidated address never gets more than it sent).
    fn reply(&self, to: SocketAddr, reply: &[u8], request_len: usize) {
        if reply.len() > request_len && !self.peers().is_validated(to) {
            UdpStats::bump(&self.stats().replies_withheld);
            return;
        }
        if self.socket.try_send_to(reply, to).is_err() {
            UdpStats::bump(&self.stats().send_errors);
        }
    }

    /// Sends to an address its cookie just validated (no size rule), counting failures.
    fn send_validated(&self, datagram: &[u8], to: SocketAddr) {
        if self.socket.try_send_to(datagram, to).is_err() {
            UdpStats::bump(&self.stats().send_errors);
        }
    }

    fn error(&self, to: SocketAddr, id: u32, code: ErrorCode, message: &str, request_len: usize) {
        let budget = match self.peers().is_validated(to) {
            true => self.limits.max_datagram,
            false => request_len,
        };
        let mut out = Vec::new();
        if udp::encode_error(id, code, message, budget, &mut out) {
            self.reply(to, &out, request_len);
        } else {
            UdpStats::bump(&self.stats().replies_withheld);
        }
    }

    fn challenge(&self, to: SocketAddr, id: u32, request_len: usize, now: u64) {
        UdpStats::bump(&self.stats().challenges);
        let cookie = self.cookies.mint(to, now);
        let mut out = Vec::new();
        udp::encode_reply(
            &Reply::Challenge {
                id,
                cookie: &cookie,
            },
            &mut out,
        );
        self.reply(to, &out, request_len);
    }

    /// Handles one datagram from `from`.
    fn handle(self: &Arc<Self>, datagram: &[u8], from: SocketAddr, now: u64) {
        let len = datagram.len();
        let request = match udp::decode_request(datagram, self.limits) {
            Ok(request) => request,
            Err(e) => {
                UdpStats::bump(&self.stats().bad);
                tracing::debug!("udp: bad datagram from {from}: {e}");
                if !e.is_foreign() {
                    if let Some(id) = udp::peek_request_id(datagram).filter(|&id| id != 0) {
                        self.error(from, id, ErrorCode::BadRequest, &e.to_string(), len);
                    }
                }
                return;
            }
        };
        let hub = &self.ctx.hub;
        match request {
            Request::Publish {
                id,
                kind,
                topic,
                payload,
            } => {
                let kind = crate::drivers::core_kind(kind);
                let payload = Bytes::copy_from_slice(payload);
                let anon = self.ctx.auth.anonymous();
                // Answered (when the request has an id) once the publish is numbered, here or
                // by Redis; a failure is counted either way, since a datagram without an id
                // hears nothing.
                let endpoint = self.clone();
                let name = topic.to_owned();
                let done = move |r: Result<tidings_core::Published, HubError>| match r {
                    Ok(p) if id != 0 => {
                        let mut out = Vec::new();
                        let reply = Reply::Published {
                            id,
                            offset: p.offset,
                            epoch: &p.epoch,
                        };
                        udp::encode_reply(&reply, &mut out);
                        endpoint.reply(from, &out, len);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        UdpStats::bump(&endpoint.stats().publish_failures);
                        if id != 0 {
                            let text = format!("PUBLISH {name}: {e}");
                            endpoint.error(from, id, code_of(&e), &text, len);
                        }
                    }
                };
                match &self.ctx.remote {
                    Some(remote) => {
                        remote.publish(&anon, topic, kind, payload, Vec::new(), now, Box::new(done))
                    }
                    None => done(hub.publish(&anon, topic, kind, payload, Vec::new(), now)),
                }
            }
            Request::Subscribe {
                id,
                cookie,
                pattern,
            } => {
                let valid = cookie.is_some_and(|c| self.cookies.check(from, c, now).is_ok());
                if !valid {
                    return self.challenge(from, id, len, now);
                }
                let result = self.peers().subscribe(hub, &self.ready, from, pattern, now);
                self.count_subscribers();
                match result {
                    Ok(info) => {
                        let cookie = self.cookies.mint(from, now);
                        let reply = Reply::Subscribed {
                            id,
                            lease_ms: self.lease_ms as u32,
                            last_offset: info.last_offset,
                            epoch: info.epoch.as_deref().unwrap_or(""),
                            cookie: &cookie,
                        };
                        let mut out = Vec::new();
                        udp::encode_reply(&reply, &mut out);
                        // The cookie validated the address: no size limit on this reply.
                        self.send_validated(&out, from);
                    }
                    Err(e) => {
                        let (code, text) = match e {
                            SubscribeError::Hub(e) => (code_of(&e), e.to_string()),
                            SubscribeError::TooManySubscribers => (
                                ErrorCode::Busy,
                                "too many UDP subscribers; try later".to_owned(),
                            ),
                            SubscribeError::TooManySubscriptions => (
                                ErrorCode::TooManySubscriptions,
                                "too many subscriptions for this address".to_owned(),
                            ),
                        };
                        // Validated by its cookie, so the whole message may go.
                        let mut out = Vec::new();
                        let text = format!("SUBSCRIBE {pattern}: {text}");
                        udp::encode_error(id, code, &text, self.limits.max_datagram, &mut out);
                        self.send_validated(&out, from);
                    }
                }
            }
            Request::Renew { id, cookie } => {
                if self.cookies.check(from, cookie, now).is_err() {
                    return self.challenge(from, id, len, now);
                }
                let count = self.peers().renew(from, now);
                let cookie = self.cookies.mint(from, now);
                let reply = Reply::Renewed {
                    id,
                    lease_ms: self.lease_ms as u32,
                    subscriptions: count.min(u16::MAX as usize) as u16,
                    cookie: &cookie,
                };
                let mut out = Vec::new();
                udp::encode_reply(&reply, &mut out);
                self.send_validated(&out, from);
            }
            Request::Unsubscribe {
                id,
                cookie,
                pattern,
            } => {
                if self.cookies.check(from, cookie, now).is_err() {
                    return self.challenge(from, id, len, now);
                }
                let removed = self.peers().unsubscribe(hub, from, pattern);
                self.count_subscribers();
                let mut out = Vec::new();
                let reply = Reply::Unsubscribed {
                    id,
                    removed: removed.min(u16::MAX as usize) as u16,
                };
                udp::encode_reply(&reply, &mut out);
                self.send_validated(&out, from);
            }
        }
    }

    fn count_subscribers(&self) {
        let n = self.peers().len() as u64;
        self.stats()
            .subscribers
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }
}

fn code_of(e: &HubError) -> ErrorCode {
    match e {
        HubError::Topic(_) | HubError::ResumeNeedsExactTopic(_) => ErrorCode::BadRequest,
        HubError::Denied(_) => ErrorCode::Forbidden,
        HubError::NotSubscribed(_) => ErrorCode::NotFound,
        HubError::TooManySubscriptions(_) => ErrorCode::TooManySubscriptions,
        HubError::TooManyTopics(_) => ErrorCode::Busy,
        HubError::ShuttingDown => ErrorCode::ShuttingDown,
        _ => ErrorCode::BadRequest,
    }
}

/// Receives and answers datagrams until shutdown, many per system call (`receiver.rs`); once
/// a second expires leases and forgets idle rate-limit entries.
async fn receive_loop(endpoint: Arc<Endpoint>) {
    let cfg = endpoint.cfg;
    let mut rate = RateLimiter::new(cfg.rate_per_sec, cfg.rate_burst, cfg.max_sources);
    let mut batch = receiver::Batch::new(&endpoint.socket, cfg.gso, cfg.max_payload);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let shutdown = endpoint.ctx.shutdown.clone();
    loop {
        tokio::select! {
            r = endpoint.socket.readable() => if r.is_err() { continue },
            _ = tick.tick() => {
                let now = crate::clock::now_ms();
                rate.sweep(now);
                let expired = endpoint.peers().expire(now);
                UdpStats::add(&endpoint.stats().leases_expired, expired as u64);
                endpoint.count_subscribers();
                continue;
            }
            _ = shutdown.cancelled() => return,
        };
        let now = crate::clock::now_ms();
        let received = batch.receive(&endpoint.socket, |datagram, from| {
            let stats = endpoint.stats();
            UdpStats::bump(&stats.received);
            let pass = match rate.check(from, now) {
                rate::Verdict::Allow => true,
                rate::Verdict::Limited => false,
                // A spoofed flood filled the table: peers with a lease still get through.
                rate::Verdict::TableFull => endpoint.peers().is_validated(from),
            };
            if !pass {
                UdpStats::bump(&stats.rate_limited);
                return;
            }
            endpoint.handle(datagram, from, now);
        });
        // WouldBlock: the readiness was stale. Other errors: ICMP errors of earlier sends
        // surface here on some systems; not fatal.
        if received.is_ok() {
            UdpStats::bump(&endpoint.stats().receive_calls);
        }
    }
}
