//! Panics of third-party code on bad input, turned into values.

use std::panic::{catch_unwind, set_hook, take_hook, AssertUnwindSafe};
use std::sync::Mutex;

/// Runs `f`; `None` if it panicked. The panic prints nothing (a temporary silent hook, one
/// caller at a time so that two cannot restore each other's), for libraries that panic on
/// input they cannot read (burn's record loader, burn-store's pickle reader) where the caller
/// reports the input as bad instead.
pub(crate) fn catch_silently<T>(f: impl FnOnce() -> T) -> Option<T> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let hook = take_hook();
    set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(f));
    set_hook(hook);
    result.ok()
}
