//! The `chorus` binary: everything lives in the library; see `chorus --help`.

/// Many small, short-lived allocations freed on other threads than made them (frames, rows,
/// feature rows): mimalloc's per-thread free lists serve them for less than glibc's arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() {
    if let Err(err) = chorus::cli::run().await {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
