//! The client side of an OpenAI-compatible chat completions server (vLLM in production), through
//! `async-openai`. Retries are async-openai's own retry layer, set to our count: it repeats a
//! request after a refused connection, a 429 or a 5xx (exponential backoff from 100 ms, or the
//! server's Retry-After), always before any text has arrived, which is what makes it safe for a
//! side-effect-free completion. Deadlines and fallbacks are the caller's.

use async_openai::{
    config::OpenAIConfig,
    error::OpenAIError,
    middleware::{retry::OpenAIRetryLayer, ReqwestService},
    types::chat::{
        ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
        ChatCompletionRequestUserMessage, CreateChatCompletionRequest,
        CreateChatCompletionRequestArgs,
    },
    Client,
};
use futures_util::StreamExt;

use super::prompt::Prompt;

/// Why one call to the language model produced no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the server answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the answer was not a chat completion: {0}")]
    Malformed(String),
    #[error("the answer held no text")]
    Empty,
    #[error("the request failed: {0}")]
    Transport(String),
}

impl LlmError {
    /// A short label for metrics and readiness.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Connect(_) => "connect",
            LlmError::Status { .. } => "http_status",
            LlmError::Malformed(_) => "malformed",
            LlmError::Empty => "empty",
            LlmError::Transport(_) => "transport",
        }
    }
}

impl From<OpenAIError> for LlmError {
    fn from(err: OpenAIError) -> Self {
        match err {
            OpenAIError::Reqwest(e) if e.is_connect() => LlmError::Connect(e.to_string()),
            OpenAIError::Reqwest(e) if e.is_decode() => LlmError::Malformed(e.to_string()),
            OpenAIError::Reqwest(e) => LlmError::Transport(e.to_string()),
            OpenAIError::ApiError(api) => LlmError::Status {
                status: api.status_code.as_u16(),
                message: truncate(&api.api_error.message, 200),
            },
            OpenAIError::JSONDeserialize(e, _) => LlmError::Malformed(e.to_string()),
            OpenAIError::StreamError(e) => LlmError::Malformed(truncate(&e.to_string(), 200)),
            other => LlmError::Transport(truncate(&other.to_string(), 200)),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

pub struct LlmClient {
    client: Client<OpenAIConfig>,
    model: String,
    max_tokens: u32,
}

impl LlmClient {
    /// `base_url` includes the API version path, e.g. `http://localhost:8000/v1`.
    pub fn new(
        base_url: &str,
        model: &str,
        api_key: Option<&str>,
        max_tokens: u32,
        max_retries: u32,
    ) -> Self {
        // The key is set explicitly (empty when none) so OPENAI_API_KEY from the environment
        // is never sent to a server it was not meant for.
        let config = OpenAIConfig::new()
            .with_api_base(base_url.trim_end_matches('/'))
            .with_api_key(api_key.unwrap_or_default());
        let transport = tower::ServiceBuilder::new()
            .layer(OpenAIRetryLayer::new(max_retries as usize))
            .service(ReqwestService::new(reqwest::Client::new()));
        Self {
            client: Client::with_config(config).with_http_service(transport),
            model: model.to_string(),
            max_tokens,
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// One plain (non-streamed) chat completion.
    pub async fn complete(&self, prompt: &Prompt) -> Result<String, LlmError> {
        let response = self.client.chat().create(self.request(prompt)?).await?;
        let text = response
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message.content)
            .unwrap_or_default();
        non_empty(text)
    }

    /// One streamed chat completion: `on_delta` hears each piece of text as it arrives, and
    /// the whole text is returned at the end.
    pub async fn stream(
        &self,
        prompt: &Prompt,
        mut on_delta: impl FnMut(&str) + Send,
    ) -> Result<String, LlmError> {
        let mut chunks = self
            .client
            .chat()
            .create_stream(self.request(prompt)?)
            .await?;
        let mut text = String::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            for choice in chunk.choices {
                if let Some(piece) = choice.delta.content.filter(|p| !p.is_empty()) {
                    on_delta(&piece);
                    text.push_str(&piece);
                }
            }
        }
        non_empty(text)
    }

    fn request(&self, prompt: &Prompt) -> Result<CreateChatCompletionRequest, LlmError> {
        let messages: Vec<ChatCompletionRequestMessage> = vec![
            ChatCompletionRequestSystemMessage::from(prompt.system.as_str()).into(),
            ChatCompletionRequestUserMessage::from(prompt.user.as_str()).into(),
        ];
        CreateChatCompletionRequestArgs::default()
            .model(&self.model)
            .messages(messages)
            .max_completion_tokens(self.max_tokens)
            .temperature(0.3)
            .build()
            .map_err(|e| LlmError::Transport(e.to_string()))
    }
}

fn non_empty(text: String) -> Result<String, LlmError> {
    if text.trim().is_empty() {
        Err(LlmError::Empty)
    } else {
        Ok(text)
    }
}
