//! Refuses oversize WebSocket frames from their header, before their payload is buffered.
//!
//! actix-http's frame parser compares a frame's length with the limit only once the whole frame
//! has arrived, and actix-ws (0.3 and 0.4 alike) buffers the bytes meanwhile: a client declaring
//! a 1 GiB frame could make the server hold 1 GiB, and a header declaring 2^62 bytes with no body
//! kept the socket open until the heartbeat gave up. [`FrameGuard`] sits between the connection's
//! byte stream and actix-ws: it reads each frame header as it passes (payload bytes pass through
//! untouched and are never copied) and ends the stream with [`PayloadError::Overflow`] as soon as
//! a header, or a fragmented message's running total, declares more than the limit. The socket
//! then closes with 1009 at once.
//!
//! [`FrameScanner`] is the pure part: a byte-at-a-time header state machine with no I/O.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use actix_web::{error::PayloadError, web::Bytes};
use futures_util::Stream;

/// Why the scanner refused the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// One frame's header declared this many payload bytes.
    Frame(u64),
    /// A fragmented message reached this many bytes.
    Message(u64),
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
/// The longest header: 2 bytes, an 8-byte extended length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// Follows frame boundaries in a client-to-server byte stream (RFC 6455 §5.2).
#[derive(Debug)]
pub struct FrameScanner {
    limit: u64,
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: u64,
    /// Bytes of the fragmented data message in progress (0 when none is).
    message_bytes: u64,
}

impl FrameScanner {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit as u64,
            header: [0; MAX_HEADER],
            header_len: 0,
            payload_left: 0,
            message_bytes: 0,
        }
    }

    /// Scans `chunk`. `Err((n, why))`: the first `n` bytes are sound (whole frames and payload
    /// already declared within the limit); the header after them is refused.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), (usize, Oversize)> {
        let mut at = 0;
        // Where the header being read began in this chunk (0 if it began in an earlier one).
        let mut header_start = 0;
        while at < chunk.len() {
            if self.payload_left > 0 {
                let skip = self.payload_left.min((chunk.len() - at) as u64);
                self.payload_left -= skip;
                at += skip as usize;
                continue;
            }
            if self.header_len == 0 {
                header_start = at;
            }
            self.header[self.header_len] = chunk[at];
            self.header_len += 1;
            at += 1;
            if self.header_len == self.needed_header_len() {
                self.finish_header().map_err(|why| (header_start, why))?;
            }
        }
        Ok(())
    }

    /// Header bytes needed so far, known once the first two have arrived.
    fn needed_header_len(&self) -> usize {
        if self.header_len < 2 {
            return 2;
        }
        let extended = match self.header[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn finish_header(&mut self) -> Result<(), Oversize> {
        let fin = self.header[0] & 0x80 != 0;
        let opcode = self.header[0] & 0x0F;
        let length = match self.header[1] & 0x7F {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => u64::from_be_bytes(self.header[2..10].try_into().expect("8 bytes")),
            short => u64::from(short),
        };
        self.header_len = 0;
        if length > self.limit {
            return Err(Oversize::Frame(length));
        }
        match opcode {
            OP_TEXT | OP_BINARY if !fin => self.message_bytes = length,
            OP_CONTINUATION => {
                self.message_bytes = self.message_bytes.saturating_add(length);
                if self.message_bytes > self.limit {
                    return Err(Oversize::Message(self.message_bytes));
                }
                if fin {
                    self.message_bytes = 0;
                }
            }
            // Whole data frames and control frames (which may interleave with fragments).
            _ => {}
        }
        self.payload_left = length;
        Ok(())
    }
}

/// A connection's incoming bytes with oversize frames refused (see the module docs).
pub struct FrameGuard<S> {
    inner: S,
    scanner: FrameScanner,
    /// Set once a refused header was found: the next poll ends the stream with the error.
    refused: bool,
}

impl<S> FrameGuard<S> {
    pub fn new(inner: S, limit: usize) -> Self {
        Self {
            inner,
            scanner: FrameScanner::new(limit),
            refused: false,
        }
    }
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.refused {
            return Poll::Ready(Some(Err(PayloadError::Overflow)));
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match self.scanner.feed(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err((sound, _)) => {
                    self.refused = true;
                    if sound == 0 {
                        Poll::Ready(Some(Err(PayloadError::Overflow)))
                    } else {
                        // Whole frames before the refused header are still delivered.
                        Poll::Ready(Some(Ok(chunk.slice(..sound))))
                    }
                }
            },
            other => other,
        }
    }
}

/// Whether a socket's protocol error is this guard's refusal (actix-ws wraps payload errors in
/// an I/O error).
pub fn is_refusal(err: &std::io::Error) -> bool {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<PayloadError>())
        .is_some_and(|e| matches!(e, PayloadError::Overflow))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header declaring `len` bytes.
    fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
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
        out.extend_from_slice(&[1, 2, 3, 4]);
        out
    }

    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut out = header(fin, opcode, len as u64);
        out.extend(std::iter::repeat_n(b'x', len));
        out
    }

    #[test]
    fn frames_within_the_limit_pass_in_any_chunking() {
        let mut stream = Vec::new();
        for len in [0, 5, 125, 126, 1000, 65_535, 65_536] {
            stream.extend(frame(true, OP_TEXT, len));
        }
        stream.extend(frame(true, 0x9, 10)); // ping
        for chunk_size in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let mut scanner = FrameScanner::new(65_536);
            for chunk in stream.chunks(chunk_size) {
                assert_eq!(scanner.feed(chunk), Ok(()), "chunks of {chunk_size}");
            }
            assert_eq!(scanner.payload_left, 0);
            assert_eq!(scanner.header_len, 0);
        }
    }

    #[test]
    fn a_header_declaring_too_much_is_refused_before_any_payload() {
        let mut scanner = FrameScanner::new(65_536);
        assert_eq!(
            scanner.feed(&header(true, OP_TEXT, 1 << 30)),
            Err((0, Oversize::Frame(1 << 30)))
        );
        let mut scanner = FrameScanner::new(65_536);
        assert_eq!(
            scanner.feed(&header(true, OP_BINARY, 1 << 62)),
            Err((0, Oversize::Frame(1 << 62)))
        );
        let mut scanner = FrameScanner::new(65_536);
        assert_eq!(
            scanner.feed(&header(true, OP_TEXT, 65_537)),
            Err((0, Oversize::Frame(65_537)))
        );
    }

    #[test]
    fn sound_frames_before_a_refused_header_are_counted() {
        let mut stream = frame(true, OP_TEXT, 10);
        let sound = stream.len();
        stream.extend(header(true, OP_TEXT, 1 << 40));
        let mut scanner = FrameScanner::new(1000);
        assert_eq!(
            scanner.feed(&stream),
            Err((sound, Oversize::Frame(1 << 40)))
        );
    }

    #[test]
    fn a_header_split_across_chunks_is_refused_when_complete() {
        let bad = header(true, OP_TEXT, 1 << 40);
        let mut scanner = FrameScanner::new(1000);
        assert_eq!(scanner.feed(&bad[..5]), Ok(()));
        assert_eq!(scanner.feed(&bad[5..]), Err((0, Oversize::Frame(1 << 40))));
    }

    #[test]
    fn fragmented_messages_count_their_total() {
        let mut scanner = FrameScanner::new(1000);
        let mut stream = frame(false, OP_TEXT, 400);
        stream.extend(frame(true, 0x9, 3)); // a ping between fragments
        stream.extend(frame(false, OP_CONTINUATION, 400));
        assert_eq!(scanner.feed(&stream), Ok(()));
        assert_eq!(
            scanner.feed(&frame(false, OP_CONTINUATION, 400)),
            Err((0, Oversize::Message(1200)))
        );
        // A finished fragmented message resets the count.
        let mut scanner = FrameScanner::new(1000);
        let mut stream = frame(false, OP_TEXT, 600);
        stream.extend(frame(true, OP_CONTINUATION, 400));
        stream.extend(frame(false, OP_BINARY, 600));
        stream.extend(frame(true, OP_CONTINUATION, 400));
        assert_eq!(scanner.feed(&stream), Ok(()));
    }
}
