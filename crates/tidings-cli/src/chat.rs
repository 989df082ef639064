//! `tidings chat ROOM --nick NAME`: a terminal chat on the topic `chat.ROOM`, over the TCP
//! line protocol or WebSocket (tidings-client), meeting the web chat page and any other client.
//!
//! On join it prints the room's recent history, then messages and presence (who joined, who
//! left) as they come; each line read from stdin is sent as `{"nick":..,"text":..}`. The nick
//! is the login name (any name is accepted when the server has no users configured), so
//! presence shows it everywhere. Plain stdin/stdout: it works in a pipe as well as a terminal.

use clap::Args;
use std::io::Write;
use tidings_client::{Client, ClientConfig, ClientError, Event, Payload};
use tokio::io::AsyncBufReadExt;

#[derive(Args, Debug)]
pub(crate) struct ChatArgs {
    /// The room: the chat happens on the topic chat.ROOM.
    room: String,
    /// Your name in the room (also the login name).
    #[arg(long)]
    nick: String,
    /// Password for the nick, when the server has users configured.
    /// (Any password is accepted when the server has no users; the protocols need one.)
    #[arg(long, env = "TIDINGS_PASSWORD", default_value = "-")]
    password: String,
    /// Server: tcp://HOST:PORT (line protocol), HOST:PORT (the same) or ws://HOST:PORT/ws.
    #[arg(
        long,
        short,
        alias = "url",
        env = "TIDINGS_SERVER",
        default_value = "tcp://127.0.0.1:7071"
    )]
    server: String,
    /// How many earlier messages to show on join.
    #[arg(long, default_value_t = 20)]
    history: u64,
}

pub(crate) async fn run(args: ChatArgs) -> Result<(), String> {
    let topic = format!("chat.{}", args.room);
    let server = match args.server.contains("://") {
        true => args.server.clone(),
        false => format!("tcp://{}", args.server),
    };
    let mut cfg = ClientConfig::new(server.clone());
    cfg.credentials = Some((args.nick.clone(), args.password.clone()));
    let (client, mut events) = Client::connect(cfg)
        .await
        .map_err(|e| format!("cannot connect to {server}: {e}"))?;
    let replayed = join(&client, &topic).await?;
    let mut skip = replayed.saturating_sub(args.history);
    say(&format!(
        "-- #{} ({topic}) as {} on {server}: {} earlier messages; type to chat, Ctrl-D to leave --",
        args.room,
        args.nick,
        replayed - skip
    ));

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => break,
                Some(Event::Message(m)) if skip > 0 && m.topic == topic => skip -= 1,
                Some(event) => show(&event),
            },
            line = lines.next_line() => match line {
                Ok(Some(text)) => {
                    let text = text.trim();
                    if text == "/quit" {
                        break;
                    }
                    if !text.is_empty() {
                        send(&client, &topic, &args.nick, text).await;
                    }
                }
                Ok(None) | Err(_) => break,
            },
        }
    }
    client.close().await;
    Ok(())
}

/// Subscribes from the oldest message history holds; returns how many it replays.
async fn join(client: &Client, topic: &str) -> Result<u64, String> {
    match client.subscribe_since(topic, 0, None).await {
        Ok(s) => Ok(s.replayed),
        Err(ClientError::ResumeUnavailable { earliest, .. }) => client
            .subscribe_since(topic, earliest.saturating_sub(1), None)
            .await
            .map(|s| s.replayed)
            .map_err(|e| format!("cannot join {topic}: {e}")),
        Err(e) => Err(format!("cannot join {topic}: {e}")),
    }
}

async fn send(client: &Client, topic: &str, nick: &str, text: &str) {
    let payload = serde_json::json!({ "nick": nick, "text": text }).to_string();
    if let Err(e) = client.publish(topic, Payload::Json(payload)).await {
        say(&format!("-- not sent ({e}): {text}"));
    }
}

fn show(event: &Event) {
    match event {
        Event::Message(m) => say(&chat_line(&m.payload)),
        Event::Presence {
            joined,
            client,
            user,
            ..
        } => {
            let who = match user {
                Some(user) => user.clone(),
                None => format!("anonymous {client}"),
            };
            say(&format!(
                "* {who} {}",
                if *joined { "joined" } else { "left" }
            ));
        }
        Event::Disconnected { reason } => {
            say(&format!("-- connection lost ({reason}); reconnecting --"))
        }
        Event::Reconnected => say("-- reconnected --"),
        Event::Gap {
            since, earliest, ..
        } => say(&format!(
            "-- messages {} to {} are no longer held by the server --",
            since + 1,
            earliest.saturating_sub(1)
        )),
        _ => {}
    }
}

/// `nick: text` for a chat payload; anything else (a line client's `PUB`) as it is.
fn chat_line(payload: &Payload) -> String {
    let Some(text) = payload.as_str() else {
        return format!(
            "(anonymous): ({} bytes of binary)",
            payload.as_bytes().len()
        );
    };
    #[derive(serde::Deserialize)]
    struct Line {
        nick: Option<String>,
        text: String,
    }
    match serde_json::from_str::<Line>(text) {
        Ok(Line {
            nick: Some(nick),
            text,
        }) => format!("{nick}: {text}"),
        Ok(Line { nick: None, text }) => format!("(anonymous): {text}"),
        Err(_) => format!("(anonymous): {text}"),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_lines_from_json_text_and_binary() {
        let json = Payload::Text(r#"{"nick":"ann","text":"hi"}"#.into());
        assert_eq!(chat_line(&json), "ann: hi");
        assert_eq!(
            chat_line(&Payload::Text("hello".into())),
            "(anonymous): hello"
        );
        assert_eq!(
            chat_line(&Payload::Json(r#"{"text":"x"}"#.into())),
            "(anonymous): x"
        );
        assert_eq!(
            chat_line(&Payload::Binary(vec![0u8, 1].into())),
            "(anonymous): (2 bytes of binary)"
        );
    }
}
