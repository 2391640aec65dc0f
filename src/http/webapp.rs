//! The web app's built files (`web/dist`): `index.html` at `/` and its assets under `/assets/`.
//! Only plain file names are served, so no request can reach outside the directory. When the
//! app has not been built, `/` says how to build it instead of failing obscurely.

use std::path::Path;

use actix_web::{get, http::header, web, HttpResponse};

use crate::{
    error::{ApiError, ErrorCode},
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(index).service(asset);
}

#[get("/")]
pub async fn index(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let path = state.settings.server.web_dir.join("index.html");
    match read(&path).await {
        Some(body) => Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(body)),
        None => Ok(HttpResponse::ServiceUnavailable()
            .content_type("text/html; charset=utf-8")
            .body(format!(
                "<!doctype html><title>Chorus</title><h1>Chorus</h1><p>The web app is not \
                 built ({} is missing). Run <code>scripts/setup.sh</code> (or \
                 <code>scripts/run.sh</code>), then reload. The API is at \
                 <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</p>",
                path.display()
            ))),
    }
}

#[get("/assets/{file}")]
pub async fn asset(
    state: web::Data<AppState>,
    file: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = file.into_inner();
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    let missing = || ApiError::new(ErrorCode::NotFound, format!("no asset named {name:?}"));
    if !plain {
        return Err(missing());
    }
    let path = state.settings.server.web_dir.join("assets").join(&name);
    let body = read(&path).await.ok_or_else(missing)?;
    Ok(HttpResponse::Ok()
        .content_type(content_type(&name))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}

async fn read(path: &Path) -> Option<Vec<u8>> {
    tokio::fs::read(path).await.ok()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "map" | "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}
