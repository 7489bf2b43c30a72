//! `envseal run` as PID 1 of a fresh PID namespace: signals reach the child, zombies
//! are reaped, exit codes and signal deaths propagate.

use envseal_e2e::{
    as_pid1, children_of, create_env, launcher, machine_token, pid_namespace_available, proc_state,
    send_signal, set_secret, wait_until, wrapped, Server,
};
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

struct Setup {
    server: Server,
    token: String,
}

fn setup() -> Setup {
    let server = Server::start();
    create_env(&server, "dify", "prod");
    set_secret(&server, "dify", "prod", "GREETING", b"hello");
    let token = machine_token(&server, "dify", "prod");
    Setup { server, token }
}

impl Setup {
    fn run(&self, script: &str) -> Command {
        self.run_in("sh", script)
    }

    fn run_in(&self, shell: &str, script: &str) -> Command {
        let mut cmd = launcher(&self.server, &self.token, "dify", "prod");
        cmd.args(["--quiet", "--", shell, "-c", script]);
        cmd
    }
}

/// The `unshare` process around a launcher as PID 1; killed (and with it the whole
/// namespace, by `--kill-child`) when a test ends early.
struct Pid1(Child);

impl std::ops::Deref for Pid1 {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Pid1 {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Pid1 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The launcher as PID 1, its stdout piped; returns the `unshare` child, the
/// launcher's pid as seen from here, and the lines of the child's stdout.
fn start_pid1(cmd: &Command) -> (Pid1, u32, Receiver<String>) {
    let mut child = as_pid1(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning unshare");
    let unshare = child.id();
    let mut launcher = None;
    wait_until("the launcher to start", Duration::from_secs(5), || {
        launcher = children_of(unshare).first().copied();
        launcher.is_some()
    });
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Pid1(child), launcher.unwrap(), rx)
}

/// The child's next line of output, which must come within ten seconds.
fn expect_line(out: &mut Receiver<String>, want: &str) {
    match out.recv_timeout(Duration::from_secs(10)) {
        Ok(line) => assert_eq!(line, want),
        Err(err) => panic!("waiting for {want:?}: {err}"),
    }
}

/// The number of a signal named as bash names it (`RTMIN+3`).
fn signal_number(name: &str) -> i32 {
    let out = Command::new("bash")
        .args(["-c", &format!("kill -l {name}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn sigterm_reaches_the_child_and_pid1_exits_within_a_second_with_its_code() {
    if !pid_namespace_available("sigterm_reaches_the_child") {
        return;
    }
    let s = setup();
    let script = r#"trap 'echo got-TERM; exit 42' TERM
test "$$" -ne 1 || exit 99
echo "ready $GREETING"
sleep 1000 &
wait"#;
    let (mut child, _, mut out) = start_pid1(&s.run(script));
    expect_line(&mut out, "ready hello");
    let unshare = child.id();
    let launcher = children_of(unshare)[0];
    let sent = Instant::now();
    send_signal(launcher, "TERM");
    expect_line(&mut out, "got-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(1));
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(42));
}

#[test]
fn an_orphaned_grandchild_is_reaped_by_pid1() {
    if !pid_namespace_available("an_orphaned_grandchild_is_reaped") {
        return;
    }
    let s = setup();
    // The inner shell exits at once, so its background `sleep` is orphaned to PID 1
    // and exits a moment later.
    let script = r#"sh -c 'sleep 0.2 &'
echo ready
exec sleep 1000"#;
    let (mut child, launcher, mut out) = start_pid1(&s.run(script));
    expect_line(&mut out, "ready");
    let main = {
        let mut main = None;
        wait_until("the main child", Duration::from_secs(5), || {
            main = children_of(launcher).into_iter().find(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c == "sleep\n")
                    && std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                        .is_ok_and(|c| c.contains("1000"))
            });
            main.is_some()
        });
        main.unwrap()
    };
    // The orphan shows up as PID 1's child, then disappears completely: no zombie.
    wait_until("the orphan to be reaped", Duration::from_secs(5), || {
        children_of(launcher) == vec![main]
    });
    for pid in children_of(launcher) {
        assert_ne!(proc_state(pid), Some('Z'), "zombie {pid}");
    }
    send_signal(launcher, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(1));
    // The child died of SIGTERM; PID 1 cannot re-raise it, so 128 + 15.
    assert_eq!(status.code(), Some(143));
}

#[test]
fn exit_codes_and_signal_deaths_propagate_as_pid1() {
    if !pid_namespace_available("exit_codes_and_signal_deaths_propagate_as_pid1") {
        return;
    }
    let s = setup();
    for (script, want) in [
        ("exit 0", 0),
        ("exit 7", 7),
        ("exit 255", 255),
        ("kill -KILL $$", 137),
        ("kill -USR2 $$", 140),
    ] {
        let out = as_pid1(&s.run(script)).output().unwrap();
        assert_eq!(out.status.code(), Some(want), "{script}");
    }
    let mut missing = launcher(&s.server, &s.token, "dify", "prod");
    missing.args(["--quiet", "--", "/nonexistent/command"]);
    let out = as_pid1(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn exit_codes_and_signal_deaths_propagate_when_supervising_outside_pid1() {
    let s = setup();
    let mut cmd = launcher(&s.server, &s.token, "dify", "prod");
    cmd.args(["--quiet", "--supervise", "--", "sh", "-c", "exit 9"]);
    assert_eq!(cmd.output().unwrap().status.code(), Some(9));
    let mut cmd = launcher(&s.server, &s.token, "dify", "prod");
    cmd.args(["--quiet", "--supervise", "--", "sh", "-c", "kill -TERM $$"]);
    let status = cmd.output().unwrap().status;
    assert_eq!(status.signal(), Some(15), "{status:?}");
    // Exec mode: the launcher becomes the command.
    let mut cmd = launcher(&s.server, &s.token, "dify", "prod");
    cmd.args(["--quiet", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(cmd.output().unwrap().status.signal(), Some(15));
    let mut cmd = launcher(&s.server, &s.token, "dify", "prod");
    cmd.args(["--quiet", "--", "sh", "-c", "exit 3"]);
    assert_eq!(cmd.output().unwrap().status.code(), Some(3));
}

/// A child that dies of SIGQUIT dumps core; the launcher passes the death on but
/// must not dump its own memory (which holds the fetched values) next to it.
#[test]
fn a_core_dumping_death_is_passed_on_without_dumping_the_launcher() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut inner = launcher(&s.server, &s.token, "dify", "prod");
    inner
        .args(["--quiet", "--supervise", "--", "sh", "-c", "kill -QUIT $$"])
        .current_dir(dir.path());
    let mut cmd = wrapped(
        "bash",
        &["-c", "ulimit -c unlimited && exec \"$@\"", "bash"],
        &inner,
    );
    let status = cmd.output().unwrap().status;
    assert_eq!(status.signal(), Some(3), "{status:?}");
    assert!(!status.core_dumped(), "the launcher dumped core");
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.trim() == "core" {
        // The child really dumped core: the death passed on is a core-dumping one.
        assert!(
            dir.path().join("core").exists(),
            "the child left no core file"
        );
    }
}

#[test]
fn sigint_sighup_and_sigusr1_are_forwarded() {
    if !pid_namespace_available("sigint_sighup_and_sigusr1_are_forwarded") {
        return;
    }
    let s = setup();
    let script = r#"trap 'echo got-HUP' HUP
trap 'echo got-USR1' USR1
trap 'echo got-INT; exit 3' INT
echo ready
while :; do sleep 1000 & wait $!; done"#;
    let (mut child, launcher, mut out) = start_pid1(&s.run(script));
    expect_line(&mut out, "ready");
    send_signal(launcher, "HUP");
    expect_line(&mut out, "got-HUP");
    send_signal(launcher, "USR1");
    expect_line(&mut out, "got-USR1");
    send_signal(launcher, "INT");
    expect_line(&mut out, "got-INT");
    let status = wait_exit(&mut child, Duration::from_secs(1));
    assert_eq!(status.code(), Some(3));
}

#[test]
fn realtime_signals_are_forwarded_and_a_realtime_death_propagates() {
    if !pid_namespace_available("realtime_signals_are_forwarded") {
        return;
    }
    let s = setup();
    let script = r#"trap 'echo got-RTMIN+3' RTMIN+3
trap 'echo got-RTMAX; exit 4' RTMAX
echo ready
while :; do sleep 1000 & wait $!; done"#;
    let (mut child, pid1, mut out) = start_pid1(&s.run_in("bash", script));
    expect_line(&mut out, "ready");
    send_signal(pid1, "RTMIN+3");
    expect_line(&mut out, "got-RTMIN+3");
    send_signal(pid1, &signal_number("RTMAX").to_string());
    expect_line(&mut out, "got-RTMAX");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(1)).code(),
        Some(4)
    );

    // A child that dies of a real-time signal: 128+N as PID 1, the same death outside.
    let rt = signal_number("RTMIN+2");
    let out = as_pid1(&s.run_in("bash", "kill -s RTMIN+2 $$"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + rt));
    let mut cmd = launcher(&s.server, &s.token, "dify", "prod");
    cmd.args([
        "--quiet",
        "--supervise",
        "--",
        "bash",
        "-c",
        "kill -s RTMIN+2 $$",
    ]);
    assert_eq!(cmd.output().unwrap().status.signal(), Some(rt));
}

#[test]
fn sigterm_while_waiting_for_the_server_stops_pid1_at_once() {
    if !pid_namespace_available("sigterm_while_waiting_for_the_server") {
        return;
    }
    // A server that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let s = setup();
    let mut cmd = launcher(&s.server, &s.token, "dify", "prod");
    cmd.env(
        "ENVSEAL_ADDR",
        format!("http://{}", silent.local_addr().unwrap()),
    )
    .env("ENVSEAL_TIMEOUT", "60")
    .args(["--total-timeout", "60", "--", "sh", "-c", "echo started"]);
    let (mut child, launcher_pid, _out) = start_pid1(&cmd);
    // Wait until the launcher's request is queued on the silent listener.
    silent.set_nonblocking(false).unwrap();
    let (_conn, _) = silent.accept().unwrap();
    let sent = Instant::now();
    send_signal(launcher_pid, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(1));
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert_eq!(status.code(), Some(143));
}
