//! The `chorus` binary: everything lives in the library; see `chorus --help`.

#[actix_web::main]
async fn main() {
    if let Err(err) = chorus::cli::run().await {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
