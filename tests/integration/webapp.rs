//! The web app's files at `/` and `/assets/`: served with their content types, nothing outside
//! the directory reachable, and a page that says how to build the app when it is missing.

use crate::helpers::{assert_error, spawn_app_with, AppOptions};

#[actix_web::test]
async fn the_built_app_is_served_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>Chorus</title>",
    )
    .unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "console.log('hi')").unwrap();
    std::fs::write(dir.path().join("assets/app.css"), "body{}").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "not for you").unwrap();
    let app = spawn_app_with(AppOptions {
        web_dir: Some(dir.path().to_path_buf()),
        ..AppOptions::default()
    })
    .await;

    let index = app.get("/").await;
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    assert!(index
        .text()
        .await
        .unwrap()
        .contains("<title>Chorus</title>"));
    let js = app.get("/assets/app.js").await;
    assert_eq!(js.status(), 200);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let css = app.get("/assets/app.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    for path in [
        "/assets/missing.js",
        "/assets/..%2Fsecret.txt",
        "/assets/.hidden",
        "/assets/a%5Cb.js",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_error(response, 404, "not_found").await;
    }
    assert_error(app.get("/secret.txt").await, 404, "not_found").await;
}

#[actix_web::test]
async fn an_unbuilt_app_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(AppOptions {
        web_dir: Some(dir.path().join("dist")),
        ..AppOptions::default()
    })
    .await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 503);
    let body = response.text().await.unwrap();
    assert!(body.contains("scripts/setup.sh"), "{body}");
}
