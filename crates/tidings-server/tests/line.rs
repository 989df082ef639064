//! The TCP line protocol over real sockets: resume, auth and permissions, the shutdown goodbye.

use tidings_core::{RightsConfig, UserConfig};
use tidings_server::{Server, ServerConfig};
use tidings_testkit::line::Line;

/// The server under test, TCP only.
async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    tidings_testkit::server().tcp().with(f).start().await
}

#[tokio::test]
async fn resume_with_since_and_epoch_replays_exactly_the_missed_messages() {
    let server = server_with(|c| c.hub.history.max_messages = 5).await;
    let mut publisher = Line::open(server.addrs().tcp.unwrap()).await;
    for i in 1..=8 {
        assert_eq!(
            publisher.ask(&format!("PUB news item{i}")).await,
            format!("+OK PUB news {i}")
        );
    }
    let mut sub = Line::open(server.addrs().tcp.unwrap()).await;
    let ok = sub.ask("SUB news 6").await;
    assert!(ok.starts_with("+OK SUB news epoch="), "{ok}");
    let epoch = ok
        .split("epoch=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(sub.read().await, "MSG news 7 item7");
    assert_eq!(sub.read().await, "MSG news 8 item8");
    // Too far back for a 5-message window: told plainly, connection stays.
    let err = sub.ask("SUB news 1").await;
    assert!(
        err.starts_with("-ERR SUB news: cannot resume") && err.contains("4..=8"),
        "{err}"
    );
    let err = sub.ask("SUB news 7 not-the-epoch").await;
    assert!(err.contains("epoch changed"), "{err}");
    let ok = sub.ask(&format!("SUB news 7 {epoch}")).await;
    assert!(ok.contains("replayed=1"), "{ok}");
    assert_eq!(sub.read().await, "MSG news 8 item8");
    server.shutdown().await;
}

#[tokio::test]
async fn auth_and_per_topic_rights_apply() {
    let server = server_with(|c| {
        c.hub.auth.users.push(UserConfig {
            name: "alice".into(),
            password: Some("pw".into()),
            password_hash: None,
            rights: RightsConfig {
                publish: vec!["chat.>".into()],
                subscribe: vec!["chat.>".into()],
            },
        });
        c.hub.auth.anonymous = RightsConfig {
            publish: vec![],
            subscribe: vec!["public.*".into()],
        };
    })
    .await;
    let mut l = Line::open(server.addrs().tcp.unwrap()).await;
    assert!(l
        .ask("PUB chat.x hi")
        .await
        .starts_with("-ERR PUB chat.x: - may not publish"));
    assert!(l.ask("SUB public.news").await.starts_with("+OK SUB"));
    assert!(l
        .ask("AUTH alice wrong")
        .await
        .starts_with("-ERR AUTH: unknown user or wrong password"));
    assert_eq!(l.ask("AUTH alice pw").await, "+OK AUTH alice");
    assert!(l
        .ask("SUB >")
        .await
        .starts_with("-ERR SUB >: alice may not subscribe"));
    assert!(l.ask("SUB chat.*").await.starts_with("+OK SUB chat.*"));
    l.send("PUB chat.x hi").await;
    let mut got = vec![l.read().await, l.read().await];
    got.sort();
    assert_eq!(got, ["+OK PUB chat.x 1", "MSG chat.x 1 hi"]);
    server.shutdown().await;
}

#[tokio::test]
async fn presence_events_and_who() {
    let server = server_with(|_| {}).await;
    let mut a = Line::open(server.addrs().tcp.unwrap()).await;
    a.ask("SUB room").await;
    let mut b = Line::open(server.addrs().tcp.unwrap()).await;
    b.ask("SUB room").await;
    assert!(a.read().await.starts_with("JOIN room c2 -"));
    assert!(b
        .ask("WHO room")
        .await
        .starts_with("+OK WHO room 2 c1=- c2=-"));
    assert_eq!(b.ask("QUIT").await, "+OK BYE");
    assert!(a.read().await.starts_with("LEAVE room c2 -"));
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_flushes_then_says_goodbye() {
    let server = server_with(|_| {}).await;
    let mut l = Line::open(server.addrs().tcp.unwrap()).await;
    l.ask("SUB t").await;
    server
        .hub()
        .publish(
            &server.hub().access().anonymous(),
            "t",
            tidings_core::PayloadKind::Text,
            "last".into(),
            vec![],
            0,
        )
        .unwrap();
    let left = server.shutdown().await;
    assert_eq!(l.read().await, "MSG t 1 last");
    assert_eq!(l.read().await, "-ERR server shutting down; closing");
    assert_eq!(l.read().await, "", "then EOF");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_session_knows_its_protocol_peer_and_who_logged_in() {
    let server = server_with(|c| {
        c.hub.auth.users.push(UserConfig {
            name: "alice".into(),
            password: Some("pw".into()),
            password_hash: None,
            rights: RightsConfig {
                publish: vec!["chat.>".into()],
                subscribe: vec!["chat.>".into()],
            },
        });
    })
    .await;
    let mut l = Line::open(server.addrs().tcp.unwrap()).await;
    let local = l.local_addr();
    let mine = |server: &Server| {
        server
            .hub()
            .sessions()
            .into_iter()
            .find(|s| s.meta.peer == Some(local))
            .expect("the hub lists this connection's session with its peer address")
    };
    let before = mine(&server);
    assert_eq!(before.meta.protocol, "line");
    assert_eq!(before.identity.user, None, "anonymous until AUTH");
    assert_eq!(before.identity.method, tidings_core::AuthMethod::Anonymous);
    assert_eq!(l.ask("AUTH alice pw").await, "+OK AUTH alice");
    assert!(l.ask("SUB chat.*").await.starts_with("+OK SUB chat.*"));
    let after = mine(&server);
    assert_eq!(after.identity.user.as_deref(), Some("alice"));
    assert_eq!(after.identity.method, tidings_core::AuthMethod::Password);
    assert_eq!(after.subscriptions, 1);
    // The rights travel with the identity: what alice may do is decided from it alone.
    assert!(after.identity.can_publish("chat.x").is_ok());
    assert!(after.identity.can_publish("news.x").is_err());
    server.shutdown().await;
}
