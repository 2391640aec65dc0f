//! A local stand-in for an OpenAI-compatible chat completions server (what vLLM serves at
//! `/v1/chat/completions`), so the explainer's real `async-openai` client runs unchanged in
//! the tests. It answers plain JSON or, when the request says `"stream": true`, server-sent
//! events ending in `data: [DONE]`, exactly as the real protocol does. How it answers is set per
//! test: a grounded answer composed from the facts in the prompt (as a model would), a fixed
//! text, a delay, an HTTP error, or a body that is not a chat completion. It records every
//! request it receives.

use std::{
    collections::VecDeque,
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{dev::ServerHandle, web, web::Bytes, App, HttpResponse, HttpServer};

use serde_json::{json, Value};

pub const MODEL: &str = "standin-model";

#[derive(Clone, Debug)]
pub enum Reply {
    /// Two sentences built from the facts the prompt states.
    Grounded,
    /// This exact text.
    Text(String),
    /// Wait this long before answering (before each streamed piece, when streaming).
    Slow(Duration),
    /// An error status with this body.
    Status(u16, String),
    /// HTTP 200 whose body is not a chat completion.
    Malformed,
}

#[derive(Default)]
struct Shared {
    /// Replies used in turn; the last one repeats.
    replies: VecDeque<Reply>,
    requests: Vec<Value>,
    authorizations: Vec<String>,
}

pub struct StandIn {
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
    handle: ServerHandle,
}

impl StandIn {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            replies: replies.into(),
            ..Shared::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::new(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/chat/completions", web::post().to(completions))
        })
        .workers(1)
        .shutdown_timeout(0)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            shared,
            handle,
        }
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().unwrap().requests.clone()
    }

    pub fn authorizations(&self) -> Vec<String> {
        self.shared.lock().unwrap().authorizations.clone()
    }

    /// The user message of the `n`th request.
    pub fn prompt(&self, n: usize) -> String {
        let requests = self.requests();
        requests[n]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn set_replies(&self, replies: Vec<Reply>) {
        self.shared.lock().unwrap().replies = replies.into();
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn completions(
    shared: web::Data<Arc<Mutex<Shared>>>,
    request: actix_web::HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    let body = body.into_inner();
    let reply = {
        let mut shared = shared.lock().unwrap();
        shared.requests.push(body.clone());
        let auth = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        shared.authorizations.push(auth);
        if shared.replies.len() > 1 {
            shared.replies.pop_front().unwrap()
        } else {
            shared.replies.front().cloned().unwrap_or(Reply::Grounded)
        }
    };
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let (delay, text) = match reply {
        Reply::Grounded => (Duration::ZERO, grounded(&prompt)),
        Reply::Text(text) => (Duration::ZERO, text),
        Reply::Slow(delay) => (delay, grounded(&prompt)),
        Reply::Status(status, message) => {
            let status = actix_web::http::StatusCode::from_u16(status).unwrap();
            let error = json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}});
            return HttpResponse::build(status).json(error);
        }
        Reply::Malformed => {
            return HttpResponse::Ok()
                .content_type("application/json")
                .body("{\"oops\": [1, 2");
        }
    };
    if stream {
        sse(text, delay)
    } else {
        tokio::time::sleep(delay).await;
        HttpResponse::Ok().json(json!({
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "created": 1_700_000_000u32,
            "model": MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140}
        }))
    }
}

/// The text as chat.completion.chunk events, a few words each, then `[DONE]`.
fn sse(text: String, delay: Duration) -> HttpResponse {
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_string).collect();
    let mut pieces: Vec<Value> = vec![json!({"role": "assistant", "content": ""})];
    pieces.extend(
        words
            .chunks(3)
            .map(|chunk| json!({"content": chunk.concat()})),
    );
    let count = pieces.len();
    let events: Vec<String> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, delta)| {
            let chunk = json!({
                "id": "chatcmpl-standin",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000u32,
                "model": MODEL,
                "choices": [{
                    "index": 0,
                    "delta": delta,
                    "finish_reason": if i + 1 == count { json!("stop") } else { Value::Null }
                }]
            });
            format!("data: {chunk}\n\n")
        })
        .chain(std::iter::once("data: [DONE]\n\n".to_string()))
        .collect();
    let stream = futures_util::stream::unfold(events.into_iter(), move |mut events| async move {
        let event = events.next()?;
        tokio::time::sleep(delay.max(Duration::from_millis(5))).await;
        Some((Ok::<_, actix_web::Error>(Bytes::from(event)), events))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(stream)
}

/// What a model told "use only these facts" might write: the genre and sound from the prompt,
/// and the audience it names.
fn grounded(prompt: &str) -> String {
    let field = |name: &str| {
        prompt
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("none recorded")
            .to_string()
    };
    let track = field("Track:");
    let genres = field("Genres:");
    let sound = field("What stands out in its sound:");
    let tempo = field("Tempo:");
    let who = if prompt.contains("Audience: a group") {
        "your group"
    } else {
        "you"
    };
    let genre = genres.split(", ").next().unwrap_or("this");
    let sound = if sound == "none recorded" {
        "its steady groove".to_string()
    } else {
        sound
    };
    format!(
        "{track} is a {genre} track, and its sound stands out as {sound} at {tempo}. \
         That mix is why Chorus thinks it suits {who} right now."
    )
}
