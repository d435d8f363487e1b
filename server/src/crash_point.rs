//! Named steps of a commit where the test suite kills the server, to prove that a crash at each
//! one recovers: `FERRY_TEST_CRASH_AT=bigquery.after_flip ferry-server serve` dies with SIGKILL
//! (as `kill -9` would: no destructor, no flush, no graceful shutdown) when it gets there.
//! Unset, as in every deployment, a step costs one read of a cached `None`.

use std::sync::OnceLock;

/// The environment variable that names the step to die at.
pub const ENV: &str = "FERRY_TEST_CRASH_AT";

/// Kills this process if `FERRY_TEST_CRASH_AT` names `step`.
pub fn reached(step: &str) {
    static CRASH_AT: OnceLock<Option<String>> = OnceLock::new();
    let crash_at = CRASH_AT.get_or_init(|| std::env::var(ENV).ok().filter(|s| !s.is_empty()));
    if crash_at.as_deref() == Some(step) {
        eprintln!("{ENV}={step}: killing this process");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // Not reached: SIGKILL cannot be caught.
        std::process::abort();
    }
}
