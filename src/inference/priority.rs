//! The inference threads run at a lower scheduling priority than the rest of the server. On a
//! machine short of CPU, a ranking that waits is a list refreshed a little later, while a socket
//! or room actor that waits delays every member's events: so the kernel is told to run those
//! first. Linux applies niceness per thread; elsewhere this does nothing.

/// Raises the calling thread's niceness to `nice` (0 leaves it as it is). A failure (a
/// sandbox that forbids it) is logged; the thread runs on at its priority.
pub(super) fn lower_this_thread(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::warn!(error = %err, nice, "could not lower the inference thread's priority");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn own_niceness() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = own_niceness();
        let lowered = std::thread::spawn(|| {
            lower_this_thread(7);
            own_niceness()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, 7.max(before));
        // Linux's niceness is per thread: the rest of the process keeps its own.
        assert_eq!(own_niceness(), before);
        let untouched = std::thread::spawn(|| {
            lower_this_thread(0);
            own_niceness()
        })
        .join()
        .unwrap();
        assert_eq!(untouched, before);
    }
}
