//! The line protocol (TCP port): commands one way, replies and messages the other, decoded
//! with tidings-proto's own decoders.

use bytes::BytesMut;
use tidings_proto::line::{self, Command, Reply};

use super::{arrow, show, slot, MAX_PENDING};
use crate::tap::Dir;

pub(crate) struct LineStream {
    commands: line::Decoder,
    replies: line::ReplyDecoder,
    bufs: [BytesMut; 2],
    /// After lost bytes: drop input up to the next line end, then decode again.
    resync: [bool; 2],
    max_text: usize,
}

impl LineStream {
    pub(crate) fn new(max_text: usize) -> Self {
        let limits = line::Limits::default();
        Self {
            commands: line::Decoder::new(limits),
            replies: line::ReplyDecoder::new(limits),
            bufs: Default::default(),
            resync: [false; 2],
            max_text,
        }
    }

    pub(crate) fn lost(&mut self, dir: Dir, n: usize, out: &mut Vec<String>) {
        out.push(format!(
            "line {} could not decode: {n} bytes were not captured; resuming at the next line",
            arrow(dir)
        ));
        let i = slot(dir);
        self.bufs[i].clear();
        self.resync[i] = true;
        // Fresh decoders: they remember how far they searched.
        match dir {
            Dir::ToServer => self.commands = line::Decoder::new(self.commands.limits()),
            Dir::ToClient => self.replies = line::ReplyDecoder::new(line::Limits::default()),
        }
    }

    pub(crate) fn feed(&mut self, dir: Dir, mut bytes: &[u8], out: &mut Vec<String>) {
        let i = slot(dir);
        if self.resync[i] {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(at) => {
                    bytes = &bytes[at + 1..];
                    self.resync[i] = false;
                }
                None => return,
            }
        }
        self.bufs[i].extend_from_slice(bytes);
        let a = arrow(dir);
        loop {
            let buf = &mut self.bufs[i];
            let text = match dir {
                Dir::ToServer => match self.commands.decode(buf) {
                    Ok(Some(c)) => command(&c, self.max_text),
                    Ok(None) => break,
                    Err(e) if e.is_fatal() => {
                        out.push(format!(
                            "line {a} could not decode: {e}; resuming at the next line"
                        ));
                        buf.clear();
                        self.resync[i] = true;
                        self.commands = line::Decoder::new(self.commands.limits());
                        break;
                    }
                    Err(e) => format!("(refused by the server: {e})"),
                },
                Dir::ToClient => match self.replies.decode(buf) {
                    Ok(Some(r)) => reply(&r, self.max_text),
                    Ok(None) => break,
                    Err(e) if e.is_fatal() => {
                        out.push(format!(
                            "line {a} could not decode: {e}; resuming at the next line"
                        ));
                        buf.clear();
                        self.resync[i] = true;
                        self.replies = line::ReplyDecoder::new(line::Limits::default());
                        break;
                    }
                    Err(e) => format!("could not decode: {e}"),
                },
            };
            out.push(format!("line {a} {text}"));
        }
        if self.bufs[i].len() > MAX_PENDING {
            self.lost(dir, 0, out);
        }
    }
}

fn command(c: &Command, max: usize) -> String {
    match c {
        Command::Pub { topic, payload } => {
            format!("PUB {topic} {}", show(payload, payload.len(), max))
        }
        Command::Auth { user, .. } => format!("AUTH {user} ****"),
        Command::AuthToken { .. } => "AUTH TOKEN ****".to_owned(),
        other => {
            let mut b = Vec::new();
            match line::encode_command(other, &mut b) {
                Ok(()) => String::from_utf8_lossy(&b).trim_end().to_owned(),
                Err(_) => format!("{other:?}"),
            }
        }
    }
}

fn reply(r: &Reply, max: usize) -> String {
    match r {
        Reply::Ok(t) => format!("+OK {t}"),
        Reply::Err(t) => format!("-ERR {t}"),
        Reply::Info(t) => format!("# {t}"),
        Reply::Msg {
            topic,
            offset,
            payload,
        } => format!("MSG {topic} {offset} {}", show(payload, payload.len(), max)),
        Reply::Pong(t) => format!("PONG {}", t.as_deref().unwrap_or(""))
            .trim_end()
            .to_owned(),
        Reply::Join {
            topic,
            client,
            user,
        } => {
            format!("JOIN {topic} {client} {}", user.as_deref().unwrap_or("-"))
        }
        Reply::Leave {
            topic,
            client,
            user,
        } => {
            format!("LEAVE {topic} {client} {}", user.as_deref().unwrap_or("-"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_directions_in_any_split() {
        let mut s = LineStream::new(50);
        let mut out = Vec::new();
        s.feed(Dir::ToServer, b"SUB chat.*\r\nPUB chat.x hel", &mut out);
        s.feed(
            Dir::ToServer,
            b"lo\r\nBPUB b 2\r\n\x00\xff\r\nAUTH al secret\r\n",
            &mut out,
        );
        s.feed(
            Dir::ToClient,
            b"+OK tidings\r\nMSG chat.x 1 hello\r\n",
            &mut out,
        );
        s.feed(Dir::ToServer, b"FROB\r\n", &mut out);
        assert_eq!(
            out,
            [
                "line > SUB chat.*",
                "line > PUB chat.x \"hello\"",
                "line > PUB b <2 bytes: 00 ff>",
                "line > AUTH al ****",
                "line < +OK tidings",
                "line < MSG chat.x 1 \"hello\"",
                "line > (refused by the server: unknown command \"FROB\"; try HELP)",
            ]
        );
        out.clear();
        s.lost(Dir::ToServer, 5, &mut out);
        s.feed(Dir::ToServer, b"B a\r\nPING\r\n", &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1], "line > PING");
    }
}
