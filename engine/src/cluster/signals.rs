//! SIGTERM and SIGUSR1, which Slurm (`scancel`, preemption, `--signal`), Kubernetes and systemd
//! send before they kill a task (Slurm's `KillWait` and Kubernetes' grace period are ~30 s).
//!
//! The answer is to abandon the unit in hand at once and exit [`RETRY_EXIT_CODE`]: every
//! output of a unit is written atomically and its `done.json` last, so nothing half-written is
//! ever taken for finished, and the rerun the scheduler starts redoes exactly the abandoned
//! units. Finishing the unit instead could take longer than any grace period (a unit is a
//! whole adaptation). Worker processes started by this one are sent the same signal first: in
//! a container only the first process receives it.

use std::sync::Mutex;

use signal_hook::consts::{SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use super::RETRY_EXIT_CODE;

/// Worker processes to pass the signal on to.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// From now on SIGTERM or SIGUSR1 makes this process say so on stderr (naming `what` it was
/// doing), pass the signal to its registered worker processes and exit 75. A thread waits for
/// the signals; the handler itself only wakes it.
// The one place the library prints and exits: the process must end from this thread, and the
// line is the only trace the scheduler's log keeps of why.
#[allow(clippy::print_stderr, clippy::exit)]
pub fn exit_on_stop(what: &'static str) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGUSR1])?;
    std::thread::Builder::new()
        .name("delinea-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = if signal == SIGTERM { "SIGTERM" } else { "SIGUSR1" };
                let children = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
                for pid in &children {
                    terminate(*pid);
                }
                eprintln!(
                    "delinea: {name}: {what} stopped; the unfinished units are left for a rerun (exit {RETRY_EXIT_CODE}: retry)"
                );
                std::process::exit(i32::from(RETRY_EXIT_CODE));
            }
        })?;
    Ok(())
}

/// Registers a worker process to be sent SIGTERM when this process is stopped.
pub fn track_child(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid);
    }
}

/// Forgets a worker process once it has been waited for (its id may be reused after).
pub fn untrack_child(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|p| *p != pid);
    }
}

#[allow(unsafe_code)]
fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) with a pid this process started and has not reaped yet (so it cannot
    // name another process) and a valid signal number.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}
