//! A client of the TCP line protocol, as `nc` would be: one text line out, one line back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long one line from the server may take before the test fails (never hang).
const WAIT: Duration = Duration::from_secs(5);

/// A line-protocol connection that has read the server's `+OK tidings` greeting.
#[derive(Debug)]
pub struct Line(BufReader<TcpStream>);

impl Line {
    /// Connects to the TCP listener at `addr` and reads the greeting.
    pub async fn open(addr: SocketAddr) -> Line {
        let stream = TcpStream::connect(addr).await.expect("connect to tcp");
        let mut line = Line(BufReader::new(stream));
        let greeting = line.read().await;
        assert!(greeting.starts_with("+OK tidings"), "greeting {greeting:?}");
        line
    }

    /// Sends `text` and its `\r\n`.
    /// The client's own address (what the server sees as the peer).
    pub fn local_addr(&self) -> SocketAddr {
        self.0
            .get_ref()
            .local_addr()
            .expect("a connected socket has a local address")
    }

    pub async fn send(&mut self, text: &str) {
        let w = self.0.get_mut();
        w.write_all(format!("{text}\r\n").as_bytes())
            .await
            .expect("write a line");
    }

    /// The next line, without its line end; panics after 5 s.
    pub async fn read(&mut self) -> String {
        let mut s = String::new();
        tokio::time::timeout(WAIT, self.0.read_line(&mut s))
            .await
            .expect("a line in time")
            .expect("read a line");
        s.trim_end().to_owned()
    }

    /// Sends `text` and returns the next line (its reply when nothing else is pending).
    pub async fn ask(&mut self, text: &str) -> String {
        self.send(text).await;
        self.read().await
    }
}
