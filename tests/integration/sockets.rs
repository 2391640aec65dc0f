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
    let body: Value = app
        .post_json_as("/api/v1/ws-ticket", &json!({}), token)
        .await
        .json()
        .await
        .unwrap();
    body["ticket"].as_str().expect("a ticket").to_string()
}

pub fn socket_url(app: &TestApp, ticket: &str) -> String {
    format!(
        "{}/api/v1/ws?ticket={ticket}",
        app.address.replacen("http://", "ws://", 1)
    )
}

impl Client {
    /// Opens a socket for the user and reads the `welcome` frame.
    pub async fn connect(app: &TestApp, user_id: &str, token: &str) -> Self {
        let ticket = ticket(app, token).await;
        let (socket, _) = tokio_tungstenite::connect_async(socket_url(app, &ticket))
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
