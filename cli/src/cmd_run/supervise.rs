//! Starting the child: exec mode (the launcher becomes the command) and supervise mode
//! (the launcher stays as its init: own process group, every catchable signal
//! forwarded to the group, every zombie reaped, the child's status passed on).
//!
//! With `--watch` a poller thread hands over the next child; the old group is stopped
//! (SIGTERM, then SIGKILL after `--stop-timeout`) and gone before the new one starts.
//! The main thread only ever blocks in the signal iterator; other threads wake it with
//! a SIGCHLD to itself.

use super::files;
use super::plan::ChildSpec;
use super::source::Watcher;
use super::sys::{self, Ended};
use anyhow::Context as _;
use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use signal_hook::consts::signal::*;
use signal_hook::iterator::Signals;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Signals passed on to the child's process group. Not included: SIGKILL and SIGSTOP
/// (cannot be caught), the synchronous fault signals SIGSEGV, SIGBUS, SIGILL, SIGFPE,
/// SIGTRAP, SIGSYS and SIGABRT (they describe the launcher's own faults), SIGCHLD
/// (used for reaping), and SIGTTIN/SIGTTOU: they concern the launcher's own terminal
/// access and keep their default action (a handler would make the kernel restart a
/// background write to a `tostop` terminal forever). The real-time signals
/// (SIGRTMIN..=SIGRTMAX) are forwarded as well; see [`forwarded`].
const FORWARDED: &[i32] = &[
    SIGHUP,
    SIGINT,
    SIGQUIT,
    SIGUSR1,
    SIGUSR2,
    SIGPIPE,
    SIGALRM,
    SIGTERM,
    SIGCONT,
    SIGTSTP,
    SIGURG,
    SIGXCPU,
    SIGXFSZ,
    SIGVTALRM,
    SIGPROF,
    SIGWINCH,
    SIGIO,
    nix::libc::SIGPWR,
];

fn command(spec: &ChildSpec) -> Command {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().cloned());
    sys::restore_inherited(&mut cmd);
    cmd
}

fn exec_error_code(err: &std::io::Error) -> u8 {
    if err.kind() == std::io::ErrorKind::NotFound {
        super::EXIT_NOT_FOUND
    } else {
        super::EXIT_CANNOT_EXEC
    }
}

/// Exec mode: writes the files and replaces the launcher with the command. Returns
/// only when that fails.
pub(crate) fn exec(spec: ChildSpec) -> ExitCode {
    if let Err(err) = files::write_all(&spec.files) {
        eprintln!("envseal: error: {err:#}");
        return ExitCode::from(2);
    }
    let err = command(&spec).exec();
    eprintln!(
        "envseal: error: cannot execute {}: {err}",
        spec.program.to_string_lossy()
    );
    ExitCode::from(exec_error_code(&err))
}

fn spawn(spec: &ChildSpec) -> anyhow::Result<Pid> {
    files::write_all(&spec.files)?;
    let child = command(spec).process_group(0).spawn().map_err(|err| {
        anyhow::Error::new(ExecFailed(exec_error_code(&err))).context(format!(
            "cannot execute {}: {err}",
            spec.program.to_string_lossy()
        ))
    })?;
    let pid = Pid::from_raw(i32::try_from(child.id()).context("child pid")?);
    give_terminal(pid);
    Ok(pid)
}

#[derive(Debug, thiserror::Error)]
#[error("exec failed")]
struct ExecFailed(u8);

/// When the launcher owns the terminal's foreground, hand it to the child's group so
/// that it can read and get ^C. Best effort.
fn give_terminal(pgid: Pid) {
    let stdin = std::io::stdin();
    if let Ok(fg) = nix::unistd::tcgetpgrp(&stdin) {
        if fg == nix::unistd::getpgrp() {
            let _ = nix::unistd::tcsetpgrp(&stdin, pgid);
        }
    }
}

/// Whether `sig` is passed on to the child's group.
fn forwarded(sig: i32) -> bool {
    FORWARDED.contains(&sig) || sys::realtime_signals().contains(&sig)
}

/// Wakes the main loop (it treats SIGCHLD as "look at the state").
fn wake() {
    let _ = kill(nix::unistd::getpid(), Signal::SIGCHLD);
}

/// Reaps every child that has ended; returns the main child's status if it did.
fn reap(main: Pid) -> anyhow::Result<Option<Ended>> {
    let mut status = None;
    loop {
        match sys::reap_one(None) {
            Ok(None) | Err(Errno::ECHILD) => return Ok(status),
            Ok(Some((pid, ended))) if pid == main => status = Some(ended),
            Ok(Some(_)) | Err(Errno::EINTR) => {}
            Err(err) => return Err(err).context("waiting for children"),
        }
    }
}

/// Passes `sig` to the child's group, or to the child alone if it has left the group.
fn forward(pgid: Pid, sig: i32) {
    if sys::killpg(pgid, sig).is_err() {
        let _ = sys::kill(pgid, sig);
    }
}

/// Kills what is left of the old group and reaps it, so that nothing of it overlaps
/// the next child. Bounded: gives up after two seconds.
fn clear_group(pgid: Pid) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let _ = killpg(pgid, Signal::SIGKILL);
        reap(pgid)?;
        if killpg(pgid, None) == Err(Errno::ESRCH) || Instant::now() > deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Before the child exists: SIGTERM, SIGINT or SIGQUIT end the launcher at once with
/// 128 + N, so that `docker stop` is not ignored by a PID 1 that is still waiting for
/// the server (the kernel discards signals that PID 1 does not handle).
pub(crate) struct EarlyStop {
    armed: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl EarlyStop {
    /// Installs the handlers.
    pub(crate) fn install() -> anyhow::Result<EarlyStop> {
        let armed = Arc::new(AtomicBool::new(true));
        let mut ids = Vec::new();
        for sig in [SIGTERM, SIGINT, SIGQUIT] {
            ids.push(
                signal_hook::flag::register_conditional_shutdown(
                    sig,
                    128 + sig,
                    Arc::clone(&armed),
                )
                .context("installing signal handlers")?,
            );
        }
        Ok(EarlyStop { armed, ids })
    }

    /// Hands signal handling over to the supervisor (whose handlers are already in).
    fn disarm(self) {
        self.armed.store(false, Ordering::SeqCst);
        for id in self.ids {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Supervise mode. Returns the child's exit code; re-raises its terminating signal.
pub(crate) fn supervise(
    spec: ChildSpec,
    watch: Option<Watcher>,
    stop_timeout: Duration,
    early: Option<EarlyStop>,
) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::new(
        FORWARDED
            .iter()
            .copied()
            .chain(sys::realtime_signals())
            .chain([SIGCHLD]),
    )
    .context("installing signal handlers")?;
    if let Some(early) = early {
        early.disarm();
    }
    if nix::unistd::getpid().as_raw() != 1 {
        // Orphaned grandchildren come to us instead of the host's init.
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    let mut child = match spawn(&spec) {
        Ok(pid) => pid,
        Err(err) => {
            if let Some(ExecFailed(code)) = err.downcast_ref::<ExecFailed>() {
                eprintln!("envseal: error: {err:#}");
                return Ok(ExitCode::from(*code));
            }
            return Err(err);
        }
    };
    drop(spec);

    let pending: Arc<Mutex<Option<ChildSpec>>> = Arc::new(Mutex::new(None));
    if let Some(mut watcher) = watch {
        let pending = Arc::clone(&pending);
        std::thread::Builder::new()
            .name("envseal-watch".into())
            .spawn(move || loop {
                std::thread::sleep(watcher.interval());
                if let Some(next) = watcher.poll() {
                    *pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(next);
                    wake();
                }
            })
            .context("starting the watch thread")?;
    }

    // A restart in progress: the next child and when to stop asking nicely.
    let mut restart: Option<(ChildSpec, Instant)> = None;
    let mut shutting_down = false;
    loop {
        for sig in signals.wait() {
            if forwarded(sig) {
                forward(child, sig);
                if matches!(sig, SIGTERM | SIGINT | SIGQUIT) {
                    shutting_down = true;
                    restart = None;
                }
            }
        }
        if let Some(status) = reap(child)? {
            match restart.take() {
                Some((next, _)) if !shutting_down => {
                    clear_group(child)?;
                    child = match spawn(&next) {
                        Ok(pid) => pid,
                        Err(err) => {
                            eprintln!("envseal: error: {err:#}");
                            return Ok(ExitCode::from(
                                err.downcast_ref::<ExecFailed>().map_or(2, |e| e.0),
                            ));
                        }
                    };
                    continue;
                }
                _ => return Ok(exit_with(status)),
            }
        }
        let next = pending.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(next) = next {
            if !shutting_down {
                match &mut restart {
                    Some((queued, _)) => *queued = next,
                    None => {
                        forward(child, SIGTERM);
                        let deadline = Instant::now() + stop_timeout;
                        restart = Some((next, deadline));
                        std::thread::spawn(move || {
                            std::thread::sleep(stop_timeout);
                            wake();
                        });
                    }
                }
            }
        }
        if let Some((_, deadline)) = &restart {
            if Instant::now() >= *deadline {
                let _ = killpg(child, Signal::SIGKILL);
            }
        }
    }
}

/// The launcher's own exit: the child's code, or its signal re-raised. As PID 1 the
/// kernel ignores the re-raised signal, so the shell convention 128+N follows.
fn exit_with(status: Ended) -> ExitCode {
    match status {
        Ended::Code(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Ended::Signal(sig) => {
            // As PID 1 a re-raised signal is discarded by the kernel: skip straight to
            // 128+N.
            if nix::unistd::getpid().as_raw() != 1 {
                let _ = std::io::Write::flush(&mut std::io::stderr());
                sys::die_by(sig);
            }
            ExitCode::from(u8::try_from(128 + sig).unwrap_or(u8::MAX))
        }
    }
}
