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

/// Signal dispositions the launcher inherited: the ignored signals and the blocked
/// mask, recorded before it installs any handler.
struct Inherited {
    ignored: Vec<i32>,
    mask: libc::sigset_t,
}

static INHERITED: std::sync::OnceLock<Inherited> = std::sync::OnceLock::new();

/// Records which signals were ignored and which were blocked when the launcher
/// started. Call before installing any handler; later calls change nothing.
pub(crate) fn capture_inherited() {
    INHERITED.get_or_init(|| {
        let mut ignored = Vec::new();
        let all = (1..32).chain(realtime_signals());
        for sig in all {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // SAFETY: a null `act` only queries; `old` is a valid, writable sigaction.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
            if rc == 0 && old.sa_sigaction == libc::SIG_IGN {
                ignored.push(sig);
            }
        }
        // SAFETY: a null `set` only queries the calling thread's mask into `mask`.
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask) };
        Inherited { ignored, mask }
    });
}

/// Makes `cmd`'s process start with the dispositions the launcher inherited (as exec
/// would have): the ignored signals ignored again and the inherited mask, instead of
/// the defaults the standard library resets to. SIGPIPE is left as the standard
/// library sets it, because its inherited state is lost before `main`.
pub(crate) fn restore_inherited(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    let Some(inherited) = INHERITED.get() else {
        return;
    };
    let ignored: Vec<i32> = inherited
        .ignored
        .iter()
        .copied()
        .filter(|s| *s != libc::SIGPIPE)
        .collect();
    let mask = inherited.mask;
    // SAFETY: the closure runs between fork and exec and calls only signal(2) and
    // sigprocmask(2), which are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for &sig in &ignored {
                libc::signal(sig, libc::SIG_IGN);
            }
            if libc::sigprocmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
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
