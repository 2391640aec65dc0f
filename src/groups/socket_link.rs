//! How a room's actor reaches one member socket: frames go straight onto the socket's outbox
//! (events, acks and lists are most of a busy room's work, and a hop through each connection's
//! actor cost a mailbox message and a task wake-up per member per event); what the connection
//! must act on goes to its actor as a [`ToSocket`] message.

use actix::prelude::*;
use bytestring::ByteString;

use super::{
    events::LeaveReason,
    socket_io::{FrameSender, Outgoing, PushError},
};

/// What a socket's connection actor must handle itself.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum ToSocket {
    /// The socket's user is no longer in the group.
    Left {
        group_id: String,
        reason: LeaveReason,
    },
    /// The outbox is full: the client does not read its frames fast enough.
    TooSlow,
}

#[derive(Clone)]
pub struct SocketLink {
    frames: FrameSender,
    connection: Recipient<ToSocket>,
}

impl SocketLink {
    pub fn new(frames: FrameSender, connection: Recipient<ToSocket>) -> Self {
        Self { frames, connection }
    }

    pub fn frame(&self, frame: ByteString) {
        self.push(Outgoing::Text(frame));
    }

    /// Frames written in order as one outbox item (a reconnect's replay).
    pub fn frames(&self, frames: Vec<ByteString>) {
        self.push(Outgoing::Batch(frames));
    }

    pub fn left(&self, group_id: String, reason: LeaveReason) {
        self.connection.do_send(ToSocket::Left { group_id, reason });
    }

    fn push(&self, item: Outgoing) {
        match self.frames.push(item) {
            // A closed outbox: the connection is ending and detaches itself.
            Ok(()) | Err(PushError::Closed) => {}
            Err(PushError::Full) => self.connection.do_send(ToSocket::TooSlow),
        }
    }
}
