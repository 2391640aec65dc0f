//! A WebSocket's two byte streams, on actix-http's frame codec.
//!
//! [`Incoming`] turns the request payload (behind a [`FrameGuard`]) into whole messages.
//! [`OutboxBody`] is the response body: it pulls one item at a time from the connection's
//! bounded outbox, and only when actix-http asks for more bytes, which it does only while its
//! write buffer (32 KiB) has room. So what one socket holds is its outbox, bounded in frames
//! and bytes ([`Outbox::push`]), plus that buffer.
//!
//! Why not actix-ws: its `Session` pushes frames into a 32-message channel that its body drains
//! whole into one buffer each time it is polled, so up to ~64 frames per socket sat beyond any
//! bound of ours; with 170 KB snapshots that was ~11 MB for each client that stopped reading.

use std::{
    collections::VecDeque,
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use actix_codec::{Decoder, Encoder};
use actix_http::{
    body::{BodyStream, MessageBody},
    ws::{self, CloseReason, Codec, Frame, Item, Message, ProtocolError},
};
use actix_web::{
    dev::Payload,
    web::{Bytes, BytesMut},
    HttpRequest, HttpResponse,
};
use bytestring::ByteString;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

use super::frame_guard::FrameGuard;

const MAX_CLOSE_REASON_BYTES: usize = 123;

/// What the connection sends: one outbox item each.
pub enum Outgoing {
    Text(ByteString),
    /// Frames written in order as one item (a reconnect's replay).
    Batch(Vec<ByteString>),
    Ping,
    Pong(Bytes),
}

impl Outgoing {
    fn bytes(&self) -> usize {
        match self {
            Outgoing::Text(text) => text.len(),
            Outgoing::Batch(frames) => frames.iter().map(|f| f.len()).sum(),
            Outgoing::Ping => 0,
            Outgoing::Pong(bytes) => bytes.len(),
        }
    }
}

/// A whole message from the client (fragments already joined).
#[derive(Debug, PartialEq)]
pub enum Inbound {
    Text(ByteString),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<CloseReason>),
}

/// Why [`Outbox::push`] refused an item.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The client is too far behind (frames or bytes).
    Full,
    /// The body is gone (the connection ended).
    Closed,
}

/// The connection's end of the outbox.
pub struct Outbox {
    sender: FrameSender,
    closer: Option<oneshot::Sender<CloseReason>>,
}

/// What queues frames on one socket's outbox, cloneable: a room's actor holds one per member
/// socket and writes its events there directly, not through the connection's actor.
#[derive(Clone)]
pub struct FrameSender {
    frames: mpsc::Sender<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl FrameSender {
    /// Queues an item unless the outbox would exceed its frame or byte bound. One item always
    /// fits an empty outbox, however large (a big room's snapshot must be deliverable).
    pub fn push(&self, item: Outgoing) -> Result<(), PushError> {
        let bytes = item.bytes();
        let queued = self.queued_bytes.load(Ordering::Relaxed);
        if queued > 0 && queued + bytes > self.max_bytes {
            return Err(PushError::Full);
        }
        // Counted before the frame is in the channel: the body (on the socket's thread, while a
        // room's actor pushes from another) may write it and subtract at once, and a count
        // added after that would dip below zero meanwhile, wrap, and make the next push see a
        // full outbox (a healthy client closed with 4008).
        self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        let refused = match self.frames.try_send(item) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => PushError::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => PushError::Closed,
        };
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        Err(refused)
    }
}

impl Outbox {
    pub fn push(&self, item: Outgoing) -> Result<(), PushError> {
        self.sender.push(item)
    }

    /// A sender for others to queue frames on this socket.
    pub fn sender(&self) -> FrameSender {
        self.sender.clone()
    }

    /// Sends a close frame ahead of anything still queued, then ends the body. Only the first
    /// call counts; `false` when the socket was already closing.
    pub fn close(&mut self, mut reason: CloseReason) -> bool {
        // A close frame is a control frame: 125 bytes at most, 2 of them the code (browsers
        // treat a longer one as a protocol error).
        if let Some(text) = reason.description.as_mut() {
            let mut end = text.len().min(MAX_CLOSE_REASON_BYTES);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        match self.closer.take() {
            Some(closer) => {
                let _ = closer.send(reason);
                true
            }
            None => false,
        }
    }
}

/// The response body: frames pulled from the outbox as actix-http has room for them.
pub struct OutboxBody {
    frames: mpsc::Receiver<Outgoing>,
    close_request: Option<oneshot::Receiver<CloseReason>>,
    /// The rest of a batch being written.
    batch: VecDeque<ByteString>,
    queued_bytes: Arc<AtomicUsize>,
    codec: Codec,
    done: bool,
}

impl OutboxBody {
    fn encode(&mut self, message: Message) -> Poll<Option<Result<Bytes, Infallible>>> {
        let mut buf = BytesMut::new();
        // Encoding a server frame cannot fail (no size limit applies to what we send).
        if let Err(err) = self.codec.encode(message, &mut buf) {
            tracing::error!(error = %err, "encoding a socket frame");
        }
        Poll::Ready(Some(Ok(buf.freeze())))
    }

    fn text(&mut self, text: ByteString) -> Poll<Option<Result<Bytes, Infallible>>> {
        self.queued_bytes.fetch_sub(text.len(), Ordering::Relaxed);
        self.encode(Message::Text(text))
    }
}

impl Stream for OutboxBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // A close request wins over whatever is still queued.
        if let Some(request) = self.close_request.as_mut() {
            match Pin::new(request).poll(cx) {
                Poll::Ready(Ok(reason)) => {
                    self.done = true;
                    return self.encode(Message::Close(Some(reason)));
                }
                // The connection went away without asking: end with the frames below.
                Poll::Ready(Err(_)) => self.close_request = None,
                Poll::Pending => {}
            }
        }
        if let Some(text) = self.batch.pop_front() {
            return self.text(text);
        }
        match self.frames.poll_recv(cx) {
            Poll::Ready(Some(Outgoing::Text(text))) => self.text(text),
            Poll::Ready(Some(Outgoing::Batch(frames))) => {
                self.batch = frames.into();
                match self.batch.pop_front() {
                    Some(text) => self.text(text),
                    None => {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                }
            }
            Poll::Ready(Some(Outgoing::Ping)) => self.encode(Message::Ping(Bytes::new())),
            Poll::Ready(Some(Outgoing::Pong(bytes))) => {
                self.queued_bytes.fetch_sub(bytes.len(), Ordering::Relaxed);
                self.encode(Message::Pong(bytes))
            }
            // The connection actor stopped without a close request: close plainly.
            Poll::Ready(None) => {
                self.done = true;
                self.encode(Message::Close(None))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The request payload as whole client messages (fragments joined; the guard has already
/// refused any frame or message over the limit).
pub struct Incoming {
    payload: FrameGuard<Payload>,
    buf: BytesMut,
    codec: Codec,
    /// A fragmented message being joined: whether it is text, and its bytes so far.
    fragments: Option<(bool, BytesMut)>,
    ended: bool,
}

impl Incoming {
    fn message(&mut self, frame: Frame) -> Result<Option<Inbound>, ProtocolError> {
        Ok(Some(match frame {
            Frame::Text(bytes) => Inbound::Text(utf8(bytes)?),
            Frame::Binary(bytes) => Inbound::Binary(bytes),
            Frame::Ping(bytes) => Inbound::Ping(bytes),
            Frame::Pong(bytes) => Inbound::Pong(bytes),
            Frame::Close(reason) => Inbound::Close(reason),
            Frame::Continuation(Item::FirstText(bytes)) => {
                self.fragments = Some((true, BytesMut::from(&bytes[..])));
                return Ok(None);
            }
            Frame::Continuation(Item::FirstBinary(bytes)) => {
                self.fragments = Some((false, BytesMut::from(&bytes[..])));
                return Ok(None);
            }
            Frame::Continuation(Item::Continue(bytes)) => {
                let (_, joined) = self
                    .fragments
                    .as_mut()
                    .ok_or(ProtocolError::ContinuationNotStarted)?;
                joined.extend_from_slice(&bytes);
                return Ok(None);
            }
            Frame::Continuation(Item::Last(bytes)) => {
                let (text, mut joined) = self
                    .fragments
                    .take()
                    .ok_or(ProtocolError::ContinuationNotStarted)?;
                joined.extend_from_slice(&bytes);
                let joined = joined.freeze();
                if text {
                    Inbound::Text(utf8(joined)?)
                } else {
                    Inbound::Binary(joined)
                }
            }
        }))
    }
}

fn utf8(bytes: Bytes) -> Result<ByteString, ProtocolError> {
    ByteString::try_from(bytes)
        .map_err(|err| ProtocolError::Io(io::Error::new(io::ErrorKind::InvalidData, err)))
}

impl Stream for Incoming {
    type Item = Result<Inbound, ProtocolError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            // Whole frames already buffered come first.
            loop {
                match this.codec.decode(&mut this.buf) {
                    Ok(Some(frame)) => match this.message(frame) {
                        Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                        Ok(None) => continue,
                        Err(err) => {
                            this.ended = true;
                            return Poll::Ready(Some(Err(err)));
                        }
                    },
                    Ok(None) => break,
                    Err(err) => {
                        this.ended = true;
                        this.buf.clear();
                        return Poll::Ready(Some(Err(err)));
                    }
                }
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => this.buf.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(err))) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(ProtocolError::Io(io::Error::other(err)))));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Bounds of one socket.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    /// Largest client frame or fragmented message.
    pub max_frame_bytes: usize,
    pub outbox_frames: usize,
    pub outbox_bytes: usize,
}

/// Answers the upgrade request: the 101 response (whose body is the outbox), the incoming
/// messages and the outbox's sending end.
pub fn upgrade(
    req: &HttpRequest,
    payload: Payload,
    limits: SocketLimits,
) -> Result<(HttpResponse, Incoming, Outbox), String> {
    let mut response = ws::handshake(req.head()).map_err(|e| e.to_string())?;
    let (frames_tx, frames_rx) = mpsc::channel(limits.outbox_frames);
    let (closer, close_request) = oneshot::channel();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let body = OutboxBody {
        frames: frames_rx,
        close_request: Some(close_request),
        batch: VecDeque::new(),
        queued_bytes: Arc::clone(&queued_bytes),
        codec: Codec::new(),
        done: false,
    };
    let response = response
        .message_body(BodyStream::new(body).boxed())
        .map_err(|e| e.to_string())?;
    let incoming = Incoming {
        payload: FrameGuard::new(payload, limits.max_frame_bytes),
        buf: BytesMut::new(),
        codec: Codec::new().max_size(limits.max_frame_bytes),
        fragments: None,
        ended: false,
    };
    let outbox = Outbox {
        sender: FrameSender {
            frames: frames_tx,
            queued_bytes,
            max_bytes: limits.outbox_bytes,
        },
        closer: Some(closer),
    };
    Ok((HttpResponse::from(response), incoming, outbox))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn body_and_outbox(frames: usize, bytes: usize) -> (OutboxBody, Outbox) {
        let (frames_tx, frames_rx) = mpsc::channel(frames);
        let (closer, close_request) = oneshot::channel();
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        (
            OutboxBody {
                frames: frames_rx,
                close_request: Some(close_request),
                batch: VecDeque::new(),
                queued_bytes: Arc::clone(&queued_bytes),
                codec: Codec::new(),
                done: false,
            },
            Outbox {
                sender: FrameSender {
                    frames: frames_tx,
                    queued_bytes,
                    max_bytes: bytes,
                },
                closer: Some(closer),
            },
        )
    }

    fn text(n: usize) -> Outgoing {
        Outgoing::Text(ByteString::from("x".repeat(n)))
    }

    #[test]
    fn the_outbox_is_bounded_in_bytes_but_always_takes_one_item() {
        let (_body, outbox) = body_and_outbox(100, 1000);
        assert_eq!(
            outbox.push(text(5000)),
            Ok(()),
            "one item fits an empty outbox"
        );
        assert_eq!(outbox.push(text(1)), Err(PushError::Full));
        let (_body, outbox) = body_and_outbox(100, 1000);
        assert_eq!(outbox.push(text(600)), Ok(()));
        assert_eq!(outbox.push(text(400)), Ok(()));
        assert_eq!(outbox.push(text(1)), Err(PushError::Full));
        let (_body, outbox) = body_and_outbox(2, 1000);
        assert_eq!(outbox.push(text(1)), Ok(()));
        assert_eq!(outbox.push(text(1)), Ok(()));
        assert_eq!(outbox.push(text(1)), Err(PushError::Full), "frame bound");
    }

    #[actix_web::test]
    async fn the_body_writes_batches_frame_by_frame_and_frees_their_bytes() {
        let (mut body, outbox) = body_and_outbox(10, 1 << 20);
        let batch = (0..3)
            .map(|i| ByteString::from(format!("frame {i}")))
            .collect();
        outbox.push(Outgoing::Batch(batch)).unwrap();
        outbox.push(text(10)).unwrap();
        let mut decoder = Codec::new().client_mode();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let mut bytes = BytesMut::from(&body.next().await.unwrap().unwrap()[..]);
            match decoder.decode(&mut bytes).unwrap().unwrap() {
                Frame::Text(text) => seen.push(String::from_utf8(text.to_vec()).unwrap()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen[..3], ["frame 0", "frame 1", "frame 2"]);
        assert_eq!(outbox.sender.queued_bytes.load(Ordering::Relaxed), 0);
    }

    #[actix_web::test]
    async fn a_sender_shares_the_outbox_bounds_and_its_frames_keep_their_order() {
        let (mut body, outbox) = body_and_outbox(10, 1000);
        let room = outbox.sender();
        outbox
            .push(Outgoing::Text(ByteString::from("welcome")))
            .unwrap();
        room.push(text(600)).unwrap();
        assert_eq!(
            room.push(text(600)),
            Err(PushError::Full),
            "bytes queued by either count"
        );
        assert_eq!(outbox.push(text(600)), Err(PushError::Full));
        room.push(Outgoing::Text(ByteString::from("event")))
            .unwrap();
        let mut decoder = Codec::new().client_mode();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut bytes = BytesMut::from(&body.next().await.unwrap().unwrap()[..]);
            match decoder.decode(&mut bytes).unwrap().unwrap() {
                Frame::Text(text) => seen.push(text.len()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, ["welcome".len(), 600, "event".len()]);
        assert_eq!(
            room.push(text(900)),
            Ok(()),
            "written frames free the bound for both"
        );
        drop(body);
        assert_eq!(room.push(text(1)), Err(PushError::Closed));
    }

    /// Pushes from two threads (a room's actor, the socket's own actor) while the body writes on
    /// a third: no push is refused on a count above what is queued, and the count ends at zero.
    /// (The interleaving that wrapped the count, a write between a push's send and its count,
    /// is too narrow to hit reliably here; the live benchmark found it, about one socket closed
    /// with 4008 in five 1,000-room runs.)
    #[test]
    fn concurrent_pushes_and_writes_leave_the_byte_count_at_zero() {
        let (mut body, outbox) = body_and_outbox(1_024, 1 << 20);
        let queued = Arc::clone(&outbox.sender.queued_bytes);
        // Frames of different sizes: a small push right after a large frame was written and
        // not yet counted is what saw a wrapped count.
        let pushers: Vec<_> = [8, 200]
            .into_iter()
            .map(|size| {
                let sender = outbox.sender();
                std::thread::spawn(move || {
                    let mut pushed = 0;
                    while pushed < 50_000 {
                        match sender.push(text(size)) {
                            Ok(()) => pushed += 1,
                            // The frame bound (1,024 frames, far below the byte bound): wait
                            // for the body. A count that wrapped below zero would read as
                            // more than the bound.
                            Err(PushError::Full) => {
                                let bytes = sender.queued_bytes.load(Ordering::Relaxed);
                                assert!(bytes <= 2 * 1_024 * 200, "{bytes} bytes counted");
                                std::thread::yield_now()
                            }
                            Err(err) => panic!("{err:?}"),
                        }
                    }
                })
            })
            .collect();
        let writer = std::thread::spawn(move || {
            let waker = futures_util::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            let mut written = 0;
            while written < 100_000 {
                match Pin::new(&mut body).poll_next(&mut cx) {
                    Poll::Ready(Some(Ok(_))) => written += 1,
                    Poll::Ready(other) => panic!("body ended: {other:?}"),
                    Poll::Pending => std::thread::yield_now(),
                }
            }
        });
        for pusher in pushers {
            pusher.join().unwrap();
        }
        writer.join().unwrap();
        assert_eq!(queued.load(Ordering::Relaxed), 0);
    }

    #[actix_web::test]
    async fn a_long_close_reason_is_cut_to_a_valid_control_frame() {
        let (mut body, mut outbox) = body_and_outbox(10, 1 << 20);
        outbox.close(CloseReason {
            code: ws::CloseCode::Protocol,
            description: Some("é".repeat(200)),
        });
        let bytes = body.next().await.unwrap().unwrap();
        assert!(bytes.len() <= 2 + 125, "{} bytes", bytes.len());
        let mut bytes = BytesMut::from(&bytes[..]);
        let frame = Codec::new().client_mode().decode(&mut bytes).unwrap();
        assert!(matches!(frame, Some(Frame::Close(Some(_)))), "{frame:?}");
    }

    #[actix_web::test]
    async fn a_close_request_goes_before_queued_frames_and_ends_the_body() {
        let (mut body, mut outbox) = body_and_outbox(10, 1 << 20);
        outbox.push(text(10)).unwrap();
        assert!(outbox.close(CloseReason::from(ws::CloseCode::Size)));
        assert!(!outbox.close(CloseReason::from(ws::CloseCode::Normal)));
        let mut bytes = BytesMut::from(&body.next().await.unwrap().unwrap()[..]);
        let frame = Codec::new().client_mode().decode(&mut bytes).unwrap();
        assert!(
            matches!(frame, Some(Frame::Close(Some(ref r))) if r.code == ws::CloseCode::Size),
            "{frame:?}"
        );
        assert!(body.next().await.is_none());
    }
}
