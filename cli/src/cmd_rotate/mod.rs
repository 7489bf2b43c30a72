//! `envseal rotate`: runs the four rotation steps (create, set, test, finish) for a
//! secret against its target system, reporting each step to the server so that a
//! crash is resumed by the next run; also `--due`, `--status`, `--rollback`,
//! `--cancel` and `--set-policy`.
//!
//! Values never reach stdout, stderr, a command line or a log: errors name secrets
//! and steps only, and a verification command gets the value in its environment.

mod generate;
mod policy;
mod targets;

use crate::client::{seg, Client};
use crate::global::{EnvTarget, Global};
use anyhow::{bail, Context as _};
use envseal_core::wire::SecretWithValue;
use envseal_core::{validate_env_var_name, SecretValue, WireValue};
use policy::{Catalogue, Policy};
use serde::Deserialize;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::process::ExitCode;
use targets::{Ctx, Target};
use zeroize::Zeroizing;

/// `envseal rotate` arguments.
#[derive(clap::Args)]
pub struct RotateArgs {
    #[command(flatten)]
    target: EnvTarget,
    /// The secret to rotate (or to roll back / cancel / give a policy).
    name: Option<String>,
    /// Rotate every secret whose policy says it is due (for cron or a timer).
    #[arg(long, conflicts_with_all = ["status", "rollback", "cancel", "set_policy"])]
    due: bool,
    /// Show labels, rotations in progress and due dates; changes nothing.
    #[arg(long, conflicts_with_all = ["rollback", "cancel", "set_policy"])]
    status: bool,
    /// Restore `previous` in the store and on the target.
    #[arg(long, requires = "name", conflicts_with_all = ["cancel", "set_policy"])]
    rollback: bool,
    /// Discard a rotation in progress (only an abandoned one, unless --force).
    #[arg(long, requires = "name", conflicts_with = "set_policy")]
    cancel: bool,
    /// With --cancel: discard even a rotation another run holds.
    #[arg(long, requires = "cancel")]
    force: bool,
    /// Store the rotation policy (JSON on stdin) of NAME.
    #[arg(long, requires = "name")]
    set_policy: bool,
    /// Use the new value from stdin instead of generating one (one trailing newline is
    /// dropped).
    #[arg(long)]
    value_stdin: bool,
    /// Do not ask before rotations that disrupt users (SECRET_KEY).
    #[arg(long)]
    yes: bool,
    /// Seconds this run holds the rotation between reports; after that, another run
    /// may take it over.
    #[arg(long, default_value_t = 300)]
    lease: i64,
}

/// A rotation's state as the server reports it.
#[derive(Deserialize)]
struct Status {
    name: String,
    labels: std::collections::BTreeMap<String, i64>,
    rotation: Option<RotationState>,
    policy: Option<serde_json::Value>,
    due_at: Option<i64>,
}

#[derive(Deserialize)]
struct RotationState {
    step: String,
    stale: bool,
    last_error: Option<String>,
}

#[derive(Deserialize)]
struct StatusList {
    secrets: Vec<Status>,
    now: i64,
}

#[derive(Deserialize)]
struct Started {
    rotation_id: String,
    step: String,
    resumed: bool,
    pending: WireValue,
}

#[derive(Deserialize)]
struct Finished {
    version: i64,
    written: Vec<String>,
}

/// Runs `envseal rotate`.
pub fn run(global: &Global, args: RotateArgs) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    let catalogue = Catalogue::dify();
    if args.status {
        return status(&client, &args.target);
    }
    if args.due {
        return due(&client, &catalogue, &args);
    }
    let Some(name) = args.name.as_deref() else {
        bail!("name a secret to rotate, or use --due or --status");
    };
    validate_env_var_name(name)?;
    let path = format!("{}/secrets/{}/rotation", args.target.path(), seg(name));
    if args.cancel {
        let _: serde_json::Value = client
            .send(
                "POST",
                &format!("{path}/cancel"),
                &serde_json::json!({ "force": args.force, "reason": "envseal rotate --cancel" }),
            )
            .with_context(|| format!("cancelling the rotation of {name}"))?;
        eprintln!("rotation of {name} cancelled; current is unchanged");
        return Ok(ExitCode::SUCCESS);
    }
    if args.set_policy {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the policy from stdin")?;
        let json: serde_json::Value =
            serde_json::from_str(&text).context("the policy on stdin is not JSON")?;
        Policy::from_json(&json).context("checking the policy")?;
        let _: serde_json::Value = client
            .send("PUT", &format!("{path}/policy"), &json)
            .with_context(|| format!("storing the rotation policy of {name}"))?;
        eprintln!("rotation policy of {name} stored");
        return Ok(ExitCode::SUCCESS);
    }
    let value = if args.value_stdin {
        Some(read_value_stdin()?)
    } else {
        None
    };
    let outcome = rotate_one(&client, &catalogue, &args, name, value, args.rollback)?;
    eprintln!("{outcome}");
    Ok(ExitCode::SUCCESS)
}

fn read_value_stdin() -> anyhow::Result<SecretValue> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut buf)
        .context("reading the new value from stdin")?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.is_empty() {
        bail!("the new value on stdin is empty");
    }
    Ok(SecretValue::new(std::mem::take(&mut *buf)))
}

fn status(client: &Client, target: &EnvTarget) -> anyhow::Result<ExitCode> {
    let list: StatusList = client
        .get(&format!("{}/rotations", target.path()))
        .context("reading rotation state")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<32} {:>7} {:>8} {:>7}  {:<10} DUE",
        "NAME", "CURRENT", "PREVIOUS", "PENDING", "STEP"
    )?;
    for s in &list.secrets {
        let label = |l: &str| s.labels.get(l).map_or("-".to_owned(), |v| v.to_string());
        let step = match &s.rotation {
            Some(r) if r.stale => format!("{} (abandoned)", r.step),
            Some(r) => r.step.clone(),
            None => "-".to_owned(),
        };
        let due = match s.due_at {
            Some(t) if t <= list.now => "now".to_owned(),
            Some(t) => format!("in {}h", (t - list.now + 3599) / 3600),
            None => "-".to_owned(),
        };
        writeln!(
            out,
            "{:<32} {:>7} {:>8} {:>7}  {:<10} {due}",
            s.name,
            label("current"),
            label("previous"),
            label("pending"),
            step
        )?;
        if let Some(err) = s.rotation.as_ref().and_then(|r| r.last_error.as_deref()) {
            writeln!(out, "    last error: {}", sanitize(err))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn due(client: &Client, catalogue: &Catalogue, args: &RotateArgs) -> anyhow::Result<ExitCode> {
    let list: StatusList = client
        .get(&format!("{}/rotations", args.target.path()))
        .context("reading rotation state")?;
    let mut failed = 0;
    let mut done = 0;
    for s in list.secrets {
        let is_due = s.due_at.is_some_and(|t| t <= list.now);
        let abandoned = s.rotation.as_ref().is_some_and(|r| r.stale);
        if !is_due && !abandoned {
            continue;
        }
        if s.rotation.as_ref().is_some_and(|r| !r.stale) {
            eprintln!(
                "{}: a rotation is in progress in another run; skipped",
                s.name
            );
            continue;
        }
        match rotate_one(client, catalogue, args, &s.name, None, false) {
            Ok(outcome) => {
                done += 1;
                eprintln!("{outcome}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("envseal: {}: rotation failed: {e:#}", s.name);
            }
        }
    }
    eprintln!("{done} rotated, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Removes control characters from server-provided text before printing it.
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

fn get_value(
    client: &Client,
    target: &EnvTarget,
    name: &str,
    version: Option<i64>,
) -> anyhow::Result<SecretValue> {
    let mut path = format!("{}/secrets/{}", target.path(), seg(name));
    if let Some(v) = version {
        path.push_str(&format!("?version={v}"));
    }
    let got: SecretWithValue = client
        .get(&path)
        .with_context(|| format!("reading {name}"))?;
    got.value
        .decode()
        .with_context(|| format!("the server sent an undecodable value for {name}"))
}

/// An injected fault (`ENVSEAL_ROTATE_FAULT`), for proving that a failure at each
/// step leaves `current` working: `create`, `set`, `test` or `finish` fail that step;
/// `kill-after-create`, `kill-after-set`, `kill-after-test` end the process with
/// SIGKILL right after that step was reported.
fn fault() -> Option<String> {
    std::env::var("ENVSEAL_ROTATE_FAULT").ok()
}

fn inject(step: &str) -> anyhow::Result<()> {
    if fault().as_deref() == Some(step) {
        bail!("injected fault at the {step} step (ENVSEAL_ROTATE_FAULT)");
    }
    Ok(())
}

fn kill_point(step: &str) {
    if fault().is_some_and(|f| f == format!("kill-after-{step}")) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

fn confirm(name: &str, warning: &str, yes: bool) -> anyhow::Result<()> {
    eprintln!("warning: {name}: {warning}");
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{name}: refusing without confirmation; pass --yes to rotate it from a script");
    }
    eprint!("rotate {name}? type yes: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if line.trim() != "yes" {
        bail!("{name}: not confirmed; nothing changed");
    }
    Ok(())
}

/// One rotation (or rollback) of `name`, start to finish.
fn rotate_one(
    client: &Client,
    catalogue: &Catalogue,
    args: &RotateArgs,
    name: &str,
    value: Option<SecretValue>,
    rollback: bool,
) -> anyhow::Result<String> {
    let path = format!("{}/secrets/{}/rotation", args.target.path(), seg(name));
    let status: Status = client
        .get(&path)
        .with_context(|| format!("reading the rotation state of {name}"))?;
    let entry = catalogue.get(name);
    let policy_json = match (&status.policy, entry.and_then(|e| e.policy.as_ref())) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => bail!(
            "{name} has no rotation policy; store one with `envseal rotate --set-policy {name}` \
             (see docs/rotation.md)"
        ),
    };
    let policy = Policy::from_json(&policy_json)
        .with_context(|| format!("the rotation policy of {name}"))?;
    if status.policy.is_none() {
        // A catalogue default: store it so that finish rewrites its linked secrets.
        let _: serde_json::Value = client
            .send("PUT", &format!("{path}/policy"), &policy_json)
            .with_context(|| format!("storing the default rotation policy of {name}"))?;
    }
    if let Some(warning) = entry.and_then(|e| e.warning.as_deref()) {
        if entry.is_some_and(|e| e.confirm) {
            confirm(name, warning, args.yes)?;
        } else {
            eprintln!("note: {name}: {warning}");
        }
    }
    let old = get_value(client, &args.target, name, None)?;
    let new = if rollback {
        let previous = *status
            .labels
            .get("previous")
            .with_context(|| format!("{name} has no previous version to roll back to"))?;
        get_value(client, &args.target, name, Some(previous))
            .with_context(|| format!("reading the previous version of {name}"))?
    } else {
        match value {
            Some(v) => v,
            None => policy.rotator.new_value()?,
        }
    };
    let ctx = Ctx {
        client,
        target: &args.target,
        name,
    };
    inject("create")?;
    let started: Started = client
        .send(
            "POST",
            &path,
            &StartBody {
                value: new.to_wire(),
                lease_secs: args.lease,
            },
        )
        .with_context(|| format!("creating the pending value of {name}"))?;
    let pending = started
        .pending
        .decode()
        .context("the server sent an undecodable pending value")?;
    if started.resumed {
        eprintln!(
            "{name}: resuming an abandoned rotation (last step: {}) with its pending value",
            sanitize(&started.step)
        );
    }
    kill_point("create");
    let id = started.rotation_id;
    let cancel = |step: &str| -> Result<serde_json::Value, _> {
        client.send(
            "POST",
            &format!("{path}/cancel"),
            &serde_json::json!({ "rotation_id": id, "reason": format!("{step} failed") }),
        )
    };
    let mut target = match policy.rotator.target(&ctx, &old, &pending) {
        Ok(t) => t,
        Err(e) if started.resumed => {
            return Err(e.context(format!(
                "{name}: cannot reach the target; the resumed rotation is kept for the next run"
            )))
        }
        Err(e) => {
            let _ = cancel("set");
            return Err(e.context(format!("{name}: cannot reach the target; nothing changed")));
        }
    };
    let report = |step: &str, error: Option<String>| -> anyhow::Result<()> {
        let _: serde_json::Value = client
            .send(
                "POST",
                &format!("{path}/step"),
                &serde_json::json!({
                    "rotation_id": id, "step": step, "ok": error.is_none(),
                    "error": error, "lease_secs": args.lease,
                }),
            )
            .with_context(|| format!("reporting the {step} step of {name}"))?;
        Ok(())
    };
    let abandon = |target: &mut Box<dyn Target + '_>, step: &str, err: anyhow::Error| {
        let reverted = target.revert(&old, &pending);
        let _ = report(step, Some(format!("{err:#}")));
        let cancel = cancel(step);
        let mut err = err.context(format!("{name}: the {step} step failed"));
        if let Err(r) = reverted {
            err = err.context(format!(
                "{name}: putting the current value back on the target also failed ({r:#}); \
                 the pending value is kept so that the next run resumes"
            ));
        } else if cancel.is_err() {
            err = err.context(format!(
                "{name}: the target is back on the current value; the abandoned pending \
                 value will be resumed or cancelled by the next run"
            ));
        } else {
            err = err.context(format!(
                "{name}: current is unchanged and still works on the target"
            ));
        }
        err
    };
    if let Err(e) = inject("set").and_then(|()| target.set(&pending)) {
        return Err(abandon(&mut target, "set", e));
    }
    report("set", None)?;
    kill_point("set");
    if let Err(e) = inject("test").and_then(|()| target.test(&pending)) {
        return Err(abandon(&mut target, "test", e));
    }
    report("test", None)?;
    kill_point("test");
    let also: std::collections::BTreeMap<String, WireValue> = target
        .also(&pending)
        .into_iter()
        .map(|(k, v)| (k, v.to_wire()))
        .collect();
    let finished: anyhow::Result<Finished> = inject("finish").and_then(|()| {
        client
            .send(
                "POST",
                &format!("{path}/finish"),
                &serde_json::json!({ "rotation_id": id, "also": also }),
            )
            .map_err(anyhow::Error::from)
    });
    let finished = match finished {
        Ok(f) => f,
        Err(e) => return Err(abandon(&mut target, "finish", e)),
    };
    if let Err(e) = target.after_finish(&old, &pending) {
        eprintln!(
            "envseal: {name}: rotated, but cleaning up the old value on the target failed: {e:#}"
        );
    }
    if let Some(hook) = &policy.restart {
        hook.run(&args.target, name, finished.version)
            .with_context(|| {
                format!(
                    "{name}: rotated (version {}), but the restart hook failed",
                    finished.version
                )
            })?;
    }
    let verb = if rollback { "rolled back" } else { "rotated" };
    Ok(format!(
        "{name}: {verb}; current is version {} (written: {})",
        finished.version,
        finished.written.join(", ")
    ))
}

#[derive(serde::Serialize)]
struct StartBody {
    #[serde(flatten)]
    value: WireValue,
    lease_secs: i64,
}
