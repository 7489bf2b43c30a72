//! `envseal run --watch`: a change on the server restarts the command, and the old
//! command has fully exited before the new one starts.

use envseal_e2e::{
    create_env, launcher, machine_token, send_signal, set_secret, wait_until, Server,
};
use std::process::Stdio;
use std::time::Duration;

#[test]
fn watch_restarts_on_change_without_overlapping_children() {
    let server = Server::start();
    create_env(&server, "dify", "prod");
    set_secret(&server, "dify", "prod", "VERSION_TAG", b"one");
    let token = machine_token(&server, "dify", "prod");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let lock = dir.path().join("running");
    // Each child takes a lock directory for its whole life and is slow to stop, so an
    // overlap would show as a failed mkdir.
    let script = r#"mkdir "$LOCK" || { echo OVERLAP >> "$LOG"; exit 1; }
trap 'echo "stop $VERSION_TAG" >> "$LOG"; sleep 0.2; rmdir "$LOCK"; exit 0' TERM
echo "start $VERSION_TAG" >> "$LOG"
sleep 1000 &
wait"#;
    let mut child = launcher(&server, &token, "dify", "prod")
        .env("LOG", &log)
        .env("LOCK", &lock)
        .args(["--quiet", "--watch", "--watch-interval", "0.1", "--"])
        .args(["sh", "-c", script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the first child", Duration::from_secs(10), || {
        read().contains("start one")
    });
    set_secret(&server, "dify", "prod", "VERSION_TAG", b"two");
    wait_until("the restart", Duration::from_secs(10), || {
        read().contains("start two")
    });
    set_secret(&server, "dify", "prod", "VERSION_TAG", b"three");
    wait_until("the second restart", Duration::from_secs(10), || {
        read().contains("start three")
    });
    assert_eq!(
        read(),
        "start one\nstop one\nstart two\nstop two\nstart three\n"
    );
    send_signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(read().lines().last(), Some("stop three"));
}

#[test]
fn watch_kills_a_child_that_ignores_sigterm_before_starting_the_next() {
    let server = Server::start();
    create_env(&server, "dify", "prod");
    set_secret(&server, "dify", "prod", "VERSION_TAG", b"one");
    let token = machine_token(&server, "dify", "prod");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let pgfile = dir.path().join("pgid");
    // Ignores SIGTERM, and so does a helper in its group. Each child first checks
    // that nothing of the previous child's process group is left.
    let script = r#"if [ -f "$PGFILE" ] && kill -0 "-$(cat "$PGFILE")" 2>/dev/null; then
  echo OVERLAP >> "$LOG"
fi
echo $$ > "$PGFILE"
echo $$ >> "$PGFILE.all"
trap '' TERM
sh -c 'trap "" TERM; while :; do sleep 1; done' &
echo "start $VERSION_TAG" >> "$LOG"
while :; do sleep 1; done"#;
    let mut child = launcher(&server, &token, "dify", "prod")
        .env("LOG", &log)
        .env("PGFILE", &pgfile)
        .args(["--quiet", "--watch", "--watch-interval", "0.1"])
        .args(["--stop-timeout", "0.3", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the first child", Duration::from_secs(10), || {
        read().contains("start one")
    });
    set_secret(&server, "dify", "prod", "VERSION_TAG", b"two");
    wait_until("the restart", Duration::from_secs(10), || {
        read().contains("start two")
    });
    let _ = child.kill();
    let _ = child.wait();
    // The launcher was SIGKILLed: clean up every group it may have left behind.
    let all = std::fs::read_to_string(dir.path().join("pgid.all")).unwrap();
    for pgid in all.split_whitespace() {
        let _ = std::process::Command::new("sh")
            .args(["-c", &format!("kill -KILL -{pgid} 2>/dev/null")])
            .status();
    }
    assert_eq!(read(), "start one\nstart two\n");
}
