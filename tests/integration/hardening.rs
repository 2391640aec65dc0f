//! The findings of the attack on a running Chorus (issue 18), each reproduced as it was found.

use std::time::{Duration, Instant};

use crate::{
    helpers::spawn_app,
    sockets::RawSocket,
};

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;

/// Finding 1: a header declaring more than the limit closes the socket with 1009 at once,
/// before any payload (previously the server buffered the payload, and a header with no body
/// kept the socket open until the heartbeat gave up).
#[actix_web::test]
async fn a_frame_declared_over_the_limit_closes_1009_from_its_header() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Mallory").await;
    for declared in [1u64 << 30, 1 << 62, 65_537] {
        let mut socket = RawSocket::connect(&app, &token).await;
        let started = Instant::now();
        assert!(socket.write(&RawSocket::header(true, TEXT, declared)).await);
        assert_eq!(
            socket.close_code(Duration::from_secs(3)).await,
            Some(1009),
            "declared {declared} bytes"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

/// Finding 1: streaming a declared 1 GiB frame is cut off early, not buffered to the end.
#[actix_web::test]
async fn a_giant_frame_being_streamed_is_cut_off() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Mallory").await;
    let mut socket = RawSocket::connect(&app, &token).await;
    socket
        .write(&RawSocket::header(true, TEXT, 1 << 30))
        .await;
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0usize;
    // Keep writing until the server stops taking bytes (it closed) or 64 MiB went through.
    while sent < 64 << 20 && socket.write(&chunk).await {
        sent += chunk.len();
        if sent % (1 << 20) == 0 && socket.close_code(Duration::from_millis(1)).await == Some(1009)
        {
            return;
        }
    }
    assert!(
        sent < 64 << 20,
        "the server kept reading a 1 GiB frame ({sent} bytes taken)"
    );
}

/// Finding 1: a fragmented message whose fragments add up to more than the limit closes with
/// 1009 too (previously 1002), as soon as the fragment that crosses it is announced.
#[actix_web::test]
async fn a_fragmented_message_over_the_limit_closes_1009() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Mallory").await;
    let mut socket = RawSocket::connect(&app, &token).await;
    assert!(socket.write(&RawSocket::frame(false, TEXT, &[b' '; 60_000])).await);
    assert!(
        socket
            .write(&RawSocket::header(false, CONTINUATION, 10_000))
            .await
    );
    assert_eq!(socket.close_code(Duration::from_secs(3)).await, Some(1009));

    // Fragments within the limit still make one message.
    let mut socket = RawSocket::connect(&app, &token).await;
    let mut bytes = RawSocket::frame(false, TEXT, br#"{"type":"#);
    bytes.extend(RawSocket::frame(true, CONTINUATION, br#""ping"}"#));
    assert!(socket.write(&bytes).await);
    let frames = socket.text_frames_until("pong", Duration::from_secs(3)).await;
    assert_eq!(frames.last().unwrap()["type"], "pong", "{frames:?}");
}
