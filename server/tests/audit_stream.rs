//! Audit streaming over real sockets: a syslog receiver (TCP and TLS), an HTTP
//! endpoint and a file, each fed by the server's audit writer through its bounded
//! on-disk queue; a sink that is down, then back.

mod common;

use common::backends;
use envseal_server::audit::AuditEvent;
use envseal_server::audit_stream::{StreamArgs, Streamer};
use std::io::{BufRead as _, Read as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn args(dir: &std::path::Path) -> StreamArgs {
    StreamArgs {
        audit_syslog: None,
        audit_syslog_ca: None,
        audit_http: None,
        audit_file: None,
        audit_queue_dir: Some(dir.join("queue")),
        audit_queue_max_bytes: 64 << 20,
        audit_anchor_key: Some(dir.join("anchor.key")),
        audit_anchor_interval_ms: 200,
    }
}

/// Lines received by a test peer.
type Lines = Arc<Mutex<Vec<String>>>;

/// A syslog receiver: reads RFC 6587 octet-counted frames from every connection.
fn syslog_listener(tls: Option<Arc<rustls::ServerConfig>>) -> (u16, Lines) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Lines = Arc::default();
    let out = got.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { continue };
            let out = out.clone();
            let tls = tls.clone();
            std::thread::spawn(move || {
                let reader: Box<dyn std::io::Read> = match tls {
                    Some(config) => Box::new(rustls::StreamOwned::new(
                        rustls::ServerConnection::new(config).unwrap(),
                        sock,
                    )),
                    None => Box::new(sock),
                };
                let mut r = std::io::BufReader::new(reader);
                loop {
                    let mut len = Vec::new();
                    if r.read_until(b' ', &mut len).unwrap_or(0) == 0 {
                        return;
                    }
                    let n: usize = std::str::from_utf8(&len[..len.len() - 1])
                        .unwrap()
                        .parse()
                        .expect("octet count");
                    let mut msg = vec![0u8; n];
                    if r.read_exact(&mut msg).is_err() {
                        return;
                    }
                    out.lock().unwrap().push(String::from_utf8(msg).unwrap());
                }
            });
        }
    });
    (port, got)
}

/// An HTTP endpoint on `listener` that stores every JSON line POSTed to it.
fn http_listener(listener: std::net::TcpListener) -> Lines {
    let got: Lines = Arc::default();
    let out = got.clone();
    listener.set_nonblocking(true).unwrap();
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/ingest",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let out = out.clone();
                async move {
                    assert_eq!(headers["content-type"], "application/x-ndjson");
                    out.lock().unwrap().extend(body.lines().map(str::to_owned));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, app).await.unwrap();
    });
    got
}

fn records(lines: &Lines, kind: &str) -> Vec<serde_json::Value> {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(&l[l.find('{').unwrap()..]).unwrap())
        .filter(|v| v["type"] == kind)
        .collect()
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn record_n(h: &common::Harness, n: usize) {
    for i in 0..n {
        h.state
            .audit
            .record(AuditEvent::new(
                "user:alice",
                "secret.read",
                format!("dify/prod/K{i}"),
            ))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_reaches_syslog_http_and_file_with_signed_anchors() {
    for b in backends("every_entry_reaches_syslog_http_and_file_with_signed_anchors").await {
        let dir = tempfile::tempdir().unwrap();
        let (syslog_port, syslog) = syslog_listener(None);
        let http_sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let http_port = http_sock.local_addr().unwrap().port();
        let http = http_listener(http_sock);
        let mut a = args(dir.path());
        a.audit_syslog = Some(format!("tcp://127.0.0.1:{syslog_port}").parse().unwrap());
        a.audit_http = Some(format!("http://127.0.0.1:{http_port}/ingest"));
        a.audit_file = Some(dir.path().join("audit.jsonl"));
        let h = common::harness(&b.store, common::cheap_auth()).await;
        let streamer = Streamer::start(&a, dir.path(), b.store.clone())
            .unwrap()
            .unwrap();
        h.state.audit.stream_to(streamer);
        record_n(&h, 25).await;
        let file_path = dir.path().join("audit.jsonl");
        let file: Lines = Arc::default();
        let head = envseal_server::audit::verify(&b.store).await.unwrap();
        assert_eq!(head.head_seq, 25, "{}", b.name);
        wait_for(
            "every sink to hold all entries and the head's anchor",
            Duration::from_secs(20),
            || {
                *file.lock().unwrap() = std::fs::read_to_string(&file_path)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect();
                [&syslog, &http, &file].iter().all(|l| {
                    records(l, "entry").len() == 25
                        && records(l, "anchor").iter().any(|a| a["seq"] == 25)
                })
            },
        )
        .await;
        let pem = std::fs::read_to_string(dir.path().join("anchor.key.pub")).unwrap();
        let key = <ed25519_dalek::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(&pem).unwrap();
        for (name, lines) in [("syslog", &syslog), ("http", &http), ("file", &file)] {
            let entries = records(lines, "entry");
            let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
            assert_eq!(seqs, (1..=25).collect::<Vec<_>>(), "{} {name}", b.name);
            assert_eq!(entries[3]["target"], "dify/prod/K3");
            assert!(records(lines, "gap").is_empty(), "{} {name}", b.name);
            for a in records(lines, "anchor") {
                let anchor: envseal_core::audit_anchor::Anchor = serde_json::from_value(a).unwrap();
                let sig =
                    ed25519_dalek::Signature::from_slice(&hex::decode(&anchor.signature).unwrap())
                        .unwrap();
                key.verify_strict(&anchor.message(), &sig).unwrap();
                if anchor.seq == 25 {
                    assert_eq!(anchor.head_hash, head.head_hash);
                }
            }
        }
        // RFC 5424 header with octet counting (checked by the receiver), facility 13.
        let first = syslog.lock().unwrap()[0].clone();
        let parts: Vec<&str> = first.splitn(8, ' ').collect();
        assert!(parts[0] == "<110>1", "{first}");
        assert!(parts[1].ends_with('Z') && parts[1].contains('T'), "{first}");
        assert_eq!(parts[3], "envseal-server");
        assert!(["audit", "anchor"].contains(&parts[5]), "{first}");
        assert_eq!(parts[6], "-");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_down_does_not_block_requests_and_the_gap_is_reported_when_it_returns() {
    for b in
        backends("sink_down_does_not_block_requests_and_the_gap_is_reported_when_it_returns").await
    {
        let dir = tempfile::tempdir().unwrap();
        // A port with nobody listening: connections are refused until the sink returns.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut a = args(dir.path());
        a.audit_http = Some(format!("http://127.0.0.1:{port}/ingest"));
        a.audit_queue_max_bytes = 16 * 1024;
        a.audit_anchor_interval_ms = 3_600_000;
        let h = common::harness(&b.store, common::cheap_auth()).await;
        let streamer = Streamer::start(&a, dir.path(), b.store.clone())
            .unwrap()
            .unwrap();
        h.state.audit.stream_to(streamer.clone());
        let started = Instant::now();
        record_n(&h, 300).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(20),
            "{}: 300 entries took {took:?}",
            b.name
        );
        let pending = streamer.pending()[0].1;
        assert!(pending > 0 && pending <= 16 * 1024, "{}: {pending}", b.name);
        assert!(
            dir.path().join("queue/http/gap.json").exists(),
            "{}",
            b.name
        );

        let http = http_listener(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
        wait_for("the gap record", Duration::from_secs(60), || {
            !records(&http, "gap").is_empty()
        })
        .await;
        // Entries after the gap arrive after it.
        record_n(&h, 5).await;
        wait_for("the entries after the gap", Duration::from_secs(30), || {
            records(&http, "entry")
                .last()
                .map(|e| e["seq"].as_i64().unwrap())
                == Some(305)
        })
        .await;
        let gaps = records(&http, "gap");
        assert_eq!(gaps.len(), 1, "{}: {gaps:?}", b.name);
        let gap = gaps[0].clone();
        let delivered: Vec<i64> = records(&http, "entry")
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        let (first, last) = (
            gap["first_seq"].as_i64().unwrap(),
            gap["last_seq"].as_i64().unwrap(),
        );
        let missed: Vec<i64> = (first..=last).collect();
        assert_eq!(
            gap["entries"].as_i64().unwrap(),
            missed.len() as i64,
            "{}",
            b.name
        );
        // Every entry either arrived or is named by the gap, never both, in order.
        let mut all: Vec<i64> = delivered
            .iter()
            .copied()
            .chain(missed.iter().copied())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=305).collect::<Vec<_>>(), "{}", b.name);
        assert!(delivered.windows(2).all(|w| w[0] < w[1]), "{}", b.name);
        let lines = http.lock().unwrap().clone();
        let gap_at = lines.iter().position(|l| l.contains("\"gap\"")).unwrap();
        assert!(lines[..gap_at]
            .iter()
            .all(|l| !l.contains(&format!("\"seq\":{last},"))));
        assert!(!dir.path().join("queue/http/gap.json").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tls_checks_the_receiver_certificate() {
    for b in backends("syslog_over_tls_checks_the_receiver_certificate").await {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into()),
        )
        .unwrap();
        let (port, syslog) = syslog_listener(Some(Arc::new(config)));
        let mut a = args(dir.path());
        a.audit_syslog = Some(format!("tls://localhost:{port}").parse().unwrap());
        a.audit_syslog_ca = Some(ca);
        let h = common::harness(&b.store, common::cheap_auth()).await;
        let streamer = Streamer::start(&a, dir.path(), b.store.clone())
            .unwrap()
            .unwrap();
        h.state.audit.stream_to(streamer);
        record_n(&h, 5).await;
        wait_for("entries over TLS", Duration::from_secs(20), || {
            records(&syslog, "entry").len() == 5
        })
        .await;

        // A receiver whose certificate the CA file does not vouch for gets nothing.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let other_ca = dir.path().join("other.pem");
        std::fs::write(&other_ca, other.cert.pem()).unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        let mut a2 = args(dir2.path());
        a2.audit_syslog = Some(format!("tls://localhost:{port}").parse().unwrap());
        a2.audit_syslog_ca = Some(other_ca);
        let h2 = common::harness(&b.store, common::cheap_auth()).await;
        let s2 = Streamer::start(&a2, dir2.path(), b.store.clone())
            .unwrap()
            .unwrap();
        h2.state.audit.stream_to(s2.clone());
        record_n(&h2, 3).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(records(&syslog, "entry").len(), 5, "{}", b.name);
        assert!(s2.pending()[0].1 > 0, "{}", b.name);
    }
}

#[test]
fn bad_stream_options_are_refused_before_anything_starts() {
    use clap::Parser as _;
    let parse = |extra: &[&str]| {
        let mut v = vec!["envseal-server"];
        v.extend_from_slice(extra);
        envseal_server::ServerArgs::try_parse_from(v).map(|a| a.resolve().map(|_| ()))
    };
    assert!(parse(&["--audit-syslog", "udp://x:514"]).is_err());
    let err = parse(&["--audit-http", "ftp://x"]).unwrap().unwrap_err();
    assert!(err.to_string().contains("--audit-http"));
    let err = parse(&["--audit-syslog", "tcp://x:514", "--audit-syslog-ca", "/x"])
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("tls://"));
    assert!(
        parse(&["--audit-syslog", "tls://x:6514", "--audit-file", "/tmp/a"])
            .unwrap()
            .is_ok()
    );
}
