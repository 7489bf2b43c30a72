//! The alert hook: on a lockout or a brute-force pattern, POST a JSON event to a
//! webhook and/or run a command with the event on stdin.
//!
//! Delivery happens in the background, a few at a time, and the same alert (same
//! kind and subject) is sent at most once per quiet period per server. Events name the
//! account and the client address; they never hold a password, code or token.
//!
//! The webhook URL is a credential (chat webhooks carry their token in the path): it
//! is held as a [`SecretUrl`] and a failed delivery logs only the redacted URL and the
//! kind of failure, never the HTTP library's own message, which quotes the URL.

use crate::config::SecretUrl;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Where alerts go.
#[derive(Debug, Clone, Default)]
pub struct AlertConfig {
    /// `http(s)://` URL that receives a JSON POST.
    pub webhook: Option<SecretUrl>,
    /// Shell command run with the JSON event on stdin and `ENVSEAL_ALERT_EVENT` set.
    pub command: Option<String>,
    /// The same alert is not repeated within this period.
    pub quiet_period: Duration,
}

/// The hook.
pub struct Alerts {
    config: AlertConfig,
    permits: Arc<Semaphore>,
    recent: Mutex<HashMap<String, Instant>>,
}

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

impl Alerts {
    /// A hook with this configuration (a no-op when neither target is set).
    pub fn new(config: AlertConfig) -> Self {
        Alerts {
            config,
            permits: Arc::new(Semaphore::new(4)),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Logs and sends `event` (kind `kind`, deduplicated by `subject`) in the
    /// background. Returns whether it was sent (false: a duplicate within the quiet
    /// period, or no target configured).
    pub fn fire(&self, kind: &'static str, subject: &str, mut event: serde_json::Value) -> bool {
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let key = format!("{kind}\0{subject}");
            let fresh = |t: &Instant| now.duration_since(*t) < self.config.quiet_period;
            if recent.get(&key).is_some_and(fresh) {
                return false;
            }
            if recent.len() >= 1024 {
                recent.retain(|_, t| fresh(t));
                if recent.len() >= 10_000 {
                    return false;
                }
            }
            recent.insert(key, now);
        }
        tracing::warn!(alert = kind, subject, "security alert");
        if self.config.webhook.is_none() && self.config.command.is_none() {
            return false;
        }
        if let Some(obj) = event.as_object_mut() {
            obj.insert("event".into(), kind.into());
            obj.insert("at".into(), crate::now().into());
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(alert = kind, "alert dropped: deliveries are backed up");
            return false;
        };
        let config = self.config.clone();
        tokio::spawn(async move {
            if let Some(url) = config.webhook {
                let body = event.clone();
                let shown = url.redacted();
                let sent = tokio::task::spawn_blocking(move || post(&url, body)).await;
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(webhook = %shown, error = %e, "alert webhook failed")
                    }
                    Err(e) => tracing::error!(error = %e, "alert webhook task failed"),
                }
            }
            if let Some(cmd) = config.command {
                if let Err(e) = run_command(&cmd, kind, &event).await {
                    tracing::error!(error = %e, "alert command failed");
                }
            }
            drop(permit);
        });
        true
    }
}

/// POSTs `body` to `url`; the error names only the kind of failure.
fn post(url: &SecretUrl, body: serde_json::Value) -> Result<(), String> {
    match ureq::post(url.expose())
        .timeout(DELIVERY_TIMEOUT)
        .send_json(body)
    {
        Ok(_) => Ok(()),
        Err(e) => Err(describe(&e)),
    }
}

/// A delivery failure without the URL: the HTTP status, or the transport error's kind
/// (connection refused, DNS, TLS, …). ureq's own text and messages quote the URL.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, _) => format!("answered HTTP {code}"),
        ureq::Error::Transport(t) => format!("transport error: {}", t.kind()),
    }
}

async fn run_command(cmd: &str, kind: &str, event: &serde_json::Value) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("ENVSEAL_ALERT_EVENT", kind)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut line = event.to_string();
        line.push('\n');
        stdin.write_all(line.as_bytes()).await?;
    }
    match tokio::time::timeout(DELIVERY_TIMEOUT, child.wait()).await {
        Ok(status) => {
            let status = status?;
            if !status.success() {
                return Err(std::io::Error::other(format!("exited with {status}")));
            }
            Ok(())
        }
        Err(_) => {
            let _ = child.kill().await;
            Err(std::io::Error::other("timed out"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_delivery_error_never_holds_the_url() {
        // A port nothing listens on: a real connection failure from ureq.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let canary = "T0KENcanary9f3b";
        let url = SecretUrl::new(format!(
            "http://hook:{canary}@127.0.0.1:{port}/services/{canary}?token={canary}"
        ));
        let raw = ureq::post(url.expose())
            .timeout(Duration::from_secs(2))
            .send_json(serde_json::json!({}))
            .unwrap_err();
        assert!(
            raw.to_string().contains(canary),
            "precondition: ureq quotes the URL"
        );
        let err = post(&url, serde_json::json!({})).unwrap_err();
        assert!(!err.contains(canary), "{err}");
        assert!(err.contains("transport error"), "{err}");
        assert!(!url.redacted().contains(canary));
        assert!(!format!(
            "{:?}",
            AlertConfig {
                webhook: Some(url.clone()),
                ..AlertConfig::default()
            }
        )
        .contains(canary));
    }
}
