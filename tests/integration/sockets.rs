//! A WebSocket test client speaking Chorus's protocol through tokio-tungstenite.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{protocol::frame::coding::CloseCode, Message},
    MaybeTlsStream, WebSocketStream,
};

use crate::helpers::TestApp;

/// How long a test waits for an expected frame before failing.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended, as the client saw it.
#[derive(Debug, PartialEq)]
pub enum Ending {
    Closed {
        code: u16,
        reason: String,
    },
    /// The connection ended without a close frame.
    Dropped,
}

pub async fn ticket(app: &TestApp, token: &str) -> String {
    ticket_at(&app.address, token).await
}

/// A socket ticket from the server at `address` (`http://host:port`).
pub async fn ticket_at(address: &str, token: &str) -> String {
    let body: Value = reqwest::Client::new()
        .post(format!("{address}/api/v1/ws-ticket"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["ticket"].as_str().expect("a ticket").to_string()
}

pub fn socket_url(app: &TestApp, ticket: &str) -> String {
    socket_url_at(&app.address, ticket)
}

fn socket_url_at(address: &str, ticket: &str) -> String {
    format!(
        "{}/api/v1/ws?ticket={ticket}",
        address.replacen("http://", "ws://", 1)
    )
}

impl Client {
    /// Opens a socket for the user and reads the `welcome` frame.
    pub async fn connect(app: &TestApp, user_id: &str, token: &str) -> Self {
        Self::connect_at(&app.address, user_id, token).await
    }

    /// The same, to the server at `address` (`http://host:port`).
    pub async fn connect_at(address: &str, user_id: &str, token: &str) -> Self {
        let ticket = ticket_at(address, token).await;
        let (socket, _) = tokio_tungstenite::connect_async(socket_url_at(address, &ticket))
            .await
            .expect("the socket opens");
        let mut client = Self { socket };
        let welcome = client.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["user_id"], user_id);
        client
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("send a frame");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("send a frame");
    }

    /// The next text frame as JSON (control frames are skipped).
    pub async fn recv(&mut self) -> Value {
        self.try_recv(FRAME_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no frame within {FRAME_TIMEOUT:?}"))
    }

    /// The next text frame within `wait`, or `None`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("frames are JSON"))
                }
                Some(Ok(Message::Close(frame))) => panic!("socket closed: {frame:?}"),
                Some(Ok(_)) => continue,
                other => panic!("socket ended: {other:?}"),
            }
        }
    }

    /// Frames until one of type `kind` (returned last).
    pub async fn recv_until(&mut self, kind: &str) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await;
            let done = frame["type"] == kind;
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// The next frame of type `kind`, skipping others (presence, recommendations…).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        self.recv_until(kind).await.pop().unwrap()
    }

    /// The `ack` (or `error`) answering `client_msg_id`, skipping everything before it.
    pub async fn recv_until_ack(&mut self, client_msg_id: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if (frame["type"] == "ack" || frame["type"] == "error")
                && frame["client_msg_id"] == client_msg_id
            {
                return frame;
            }
        }
    }

    /// Joins and returns every frame up to and including the join's `ack`.
    pub async fn join(&mut self, group_id: &str, last_seq: Option<i64>) -> Vec<Value> {
        let mut frame = json!({"type": "join", "group_id": group_id, "client_msg_id": "join"});
        if let Some(seq) = last_seq {
            frame["last_seq"] = json!(seq);
        }
        self.send(frame).await;
        loop {
            let frames = self.recv_until_ack_or_error().await;
            let last = frames.last().unwrap();
            if last["client_msg_id"] == "join" {
                assert_eq!(last["type"], "ack", "joining failed: {last}");
                return frames;
            }
        }
    }

    async fn recv_until_ack_or_error(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await;
            let done = frame["type"] == "ack" || frame["type"] == "error";
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// Sends an operation and returns the `ack` or `error` answering it, with the frames that
    /// came before.
    pub async fn op(&mut self, mut frame: Value, client_msg_id: &str) -> (Value, Vec<Value>) {
        frame["client_msg_id"] = json!(client_msg_id);
        self.send(frame).await;
        let mut before = Vec::new();
        loop {
            let frame = self.recv().await;
            if (frame["type"] == "ack" || frame["type"] == "error")
                && frame["client_msg_id"] == client_msg_id
            {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    /// Reads until the socket ends, returning the text frames seen and how it ended.
    pub async fn drain_until_end(&mut self, wait: Duration) -> (Vec<Value>, Ending) {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("the socket did not end within {wait:?}"));
            match message {
                Some(Ok(Message::Text(text))) => {
                    frames.push(serde_json::from_str(text.as_str()).unwrap())
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (
                        frames,
                        Ending::Closed {
                            code: u16::from(frame.code),
                            reason: frame.reason.to_string(),
                        },
                    )
                }
                Some(Ok(Message::Close(None))) => {
                    return (
                        frames,
                        Ending::Closed {
                            code: u16::from(CloseCode::Status),
                            reason: String::new(),
                        },
                    )
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return (frames, Ending::Dropped),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// The events (seq, kind) among frames.
pub fn events(frames: &[Value]) -> Vec<(i64, String)> {
    frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| {
            (
                f["seq"].as_i64().unwrap(),
                f["event"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A socket driven byte by byte, for what a well-behaved client library will not send: frame
/// headers without their payload, giant declared lengths, never reading.
pub struct RawSocket {
    stream: TcpStream,
    /// Bytes read past the last parsed server frame.
    read: Vec<u8>,
}

impl RawSocket {
    /// Upgrades with a fresh ticket and checks the 101.
    pub async fn connect(app: &TestApp, token: &str) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ticket = ticket(app, token).await;
        let host = app.address.trim_start_matches("http://").to_string();
        // A small receive buffer (which also stops the kernel growing it), so that a test that
        // does not read finds out soon, not after tens of megabytes.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        let mut stream = socket
            .connect(host.parse().unwrap())
            .await
            .expect("connect");
        let request = format!(
            "GET /api/v1/ws?ticket={ticket} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut read = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            let n = tokio::time::timeout(FRAME_TIMEOUT, stream.read(&mut buf))
                .await
                .expect("an upgrade answer")
                .unwrap();
            assert!(n > 0, "the server closed during the upgrade");
            read.extend_from_slice(&buf[..n]);
            if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&read[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        read.drain(..head_end);
        Self { stream, read }
    }

    /// A masked client frame header (zero mask key, so payload bytes go as they are).
    pub fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out
    }

    pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Self::header(fin, opcode, payload.len() as u64);
        out.extend_from_slice(payload);
        out
    }

    /// Writes bytes; `false` once the server has closed the connection.
    pub async fn write(&mut self, bytes: &[u8]) -> bool {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.is_ok()
    }

    /// The next server frame `(opcode, payload)` within `wait`; `None` on timeout or end.
    pub async fn read_frame(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((opcode, payload, used)) = parse_server_frame(&self.read) {
                self.read.drain(..used);
                return Some((opcode, payload));
            }
            let mut buf = [0u8; 65536];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.read.extend_from_slice(&buf[..n]);
        }
    }

    /// Text frames (as JSON) until one of type `kind`, within `wait`.
    pub async fn text_frames_until(&mut self, kind: &str, wait: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some((opcode, payload)) = self.read_frame(left).await else {
                return frames;
            };
            if opcode == 0x1 {
                let frame: Value = serde_json::from_slice(&payload).expect("frames are JSON");
                let done = frame["type"] == kind;
                frames.push(frame);
                if done {
                    return frames;
                }
            }
        }
    }

    /// Reads everything until the connection ends: how it ended, and the text-frame bytes read.
    pub async fn ending(&mut self, wait: Duration) -> (RawEnding, usize) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut text_bytes = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return (RawEnding::StillOpen, text_bytes);
            }
            match self.read_frame(left).await {
                Some((0x8, payload)) => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    return (RawEnding::Closed(code), text_bytes);
                }
                Some((op, payload)) => text_bytes += if op == 0x1 { payload.len() } else { 0 },
                None if tokio::time::Instant::now() < deadline => {
                    return (RawEnding::Dropped, text_bytes)
                }
                None => return (RawEnding::StillOpen, text_bytes),
            }
        }
    }

    /// Reads frames until a close frame and returns its code, or `None` if none came in `wait`.
    pub async fn close_code(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (opcode, payload) = self.read_frame(left).await?;
            if opcode == 0x8 {
                return Some(u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum RawEnding {
    Closed(u16),
    /// The connection ended without a close frame.
    Dropped,
    StillOpen,
}

/// One unmasked server frame from the front of `bytes`: opcode, payload, bytes used.
fn parse_server_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if bytes.len() < 2 {
        return None;
    }
    let (len, at) = match bytes[1] & 0x7F {
        126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
        127 if bytes.len() >= 10 => (
            u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        short => (short as usize, 2),
    };
    (bytes.len() >= at + len).then(|| (bytes[0] & 0x0F, bytes[at..at + len].to_vec(), at + len))
}
