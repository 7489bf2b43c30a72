//! The few process calls that nix's safe API cannot express: its `Signal` enum has no
//! real-time signals (SIGRTMIN..=SIGRTMAX), so sending one, learning that a child died
//! of one, and dying of one ourselves go through libc here. Everything else uses nix.
#![allow(unsafe_code)]

use nix::errno::Errno;
use nix::libc;
use nix::unistd::Pid;
use std::ops::RangeInclusive;

/// The real-time signals this libc leaves to applications (glibc keeps the first two
/// kernel ones for its threads).
pub(crate) fn realtime_signals() -> RangeInclusive<i32> {
    libc::SIGRTMIN()..=libc::SIGRTMAX()
}

/// Sends `sig` (any number, real-time included) to the process group `pgid`.
pub(crate) fn killpg(pgid: Pid, sig: i32) -> Result<(), Errno> {
    // SAFETY: killpg takes two integers and touches no memory of ours.
    let rc = unsafe { libc::killpg(pgid.as_raw(), sig) };
    Errno::result(rc).map(drop)
}

/// Sends `sig` to the process `pid`.
pub(crate) fn kill(pid: Pid, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill takes two integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid.as_raw(), sig) };
    Errno::result(rc).map(drop)
}

/// How a reaped child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Code(i32),
    /// The signal number, real-time signals included.
    Signal(i32),
}

/// Reaps one child that has ended (`which`, or any child), without blocking:
/// `Ok(None)` when none has ended.
pub(crate) fn reap_one(which: Option<Pid>) -> Result<Option<(Pid, Ended)>, Errno> {
    let target = which.map_or(-1, Pid::as_raw);
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid, writable c_int for the duration of the call.
        let pid = unsafe { libc::waitpid(target, &mut status, libc::WNOHANG) };
        let pid = Errno::result(pid)?;
        if pid == 0 {
            return Ok(None);
        }
        let ended = if libc::WIFEXITED(status) {
            Ended::Code(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Ended::Signal(libc::WTERMSIG(status))
        } else {
            // A stop of a traced child (the only other report without WUNTRACED):
            // not an end; look further.
            continue;
        };
        return Ok(Some((Pid::from_raw(pid), ended)));
    }
}

/// Ends the launcher by `sig`'s default action, as the child ended: the handler is
/// reset, the signal unblocked and raised. Returns only if the signal did not end the
/// process (for PID 1 the kernel discards it).
///
/// The launcher first marks itself not dumpable: for SIGQUIT, SIGABRT, SIGSEGV and
/// the other core-dumping signals the kernel would otherwise write the launcher's
/// memory (the fetched values, the token) to a core file, or hand it to a crash
/// collector, and replace the child's own core file.
pub(crate) fn die_by(sig: i32) {
    let _ = nix::sys::prctl::set_dumpable(false);
    // SAFETY: resetting a disposition to SIG_DFL, editing a sigset_t we own and
    // raising a signal are async-signal-safe calls on memory we own.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;

    #[test]
    fn realtime_range_is_the_applications_part() {
        let range = realtime_signals();
        assert!(*range.start() >= 32 && range.start() < range.end());
        assert!(nix::sys::signal::Signal::try_from(*range.start()).is_err());
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped by `reap_one`, the code under test
    fn reap_one_reports_a_realtime_death() {
        let rt = libc::SIGRTMIN() + 1;
        let child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        killpg(pid, rt).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if let Some((p, ended)) = reap_one(Some(pid)).expect("waitpid") {
                assert_eq!((p, ended), (pid, Ended::Signal(rt)));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "child not reaped");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
