//! A login flood over loopback: thousands of wrong passwords across many accounts and
//! client addresses (forwarded by a trusted proxy) while a service keeps fetching its
//! environment. No attempt succeeds, every limit and the lockout hold, argon2 runs
//! only for admitted attempts, and fetches stay fast.

use envseal_e2e::{http, ok, Server, ServerOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PW: &str = "the-real-password-of-v1";
const THREADS: usize = 8;
const PER_THREAD: usize = 300;
const ACCOUNTS: usize = 40;
const ADDRESSES: usize = 150;

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[test]
fn login_flood_is_refused_cheaply_while_fetches_stay_fast() {
    let server = Server::start_with(ServerOptions {
        args: vec!["--trusted-proxy".into(), "127.0.0.1".into()],
        env: vec![
            // Cheaper than the default so the debug build drains the admitted
            // attempts quickly; the bound, not the cost, is under test.
            ("ENVSEAL_ARGON2_MEMORY_KIB".into(), "4096".into()),
            ("ENVSEAL_ARGON2_ITERATIONS".into(), "1".into()),
        ],
        ..Default::default()
    });
    ok(server.cli().args(["projects", "create", "dify"]), b"");
    ok(
        server.cli().args(["projects", "add-env", "dify", "prod"]),
        b"",
    );
    for i in 0..20 {
        ok(
            server.cli().args([
                "secrets",
                "set",
                "-p",
                "dify",
                "-e",
                "prod",
                &format!("S_{i}"),
                "--raw",
            ]),
            format!("value-{i}").as_bytes(),
        );
    }
    let token = String::from_utf8(ok(
        server.cli().args([
            "tokens", "create", "--name", "api", "-p", "dify", "-e", "prod",
        ]),
        b"",
    ))
    .unwrap()
    .trim()
    .to_owned();
    ok(
        server.cli().args([
            "users",
            "create",
            "victim",
            "--role",
            "viewer",
            "--password-stdin",
        ]),
        PW.as_bytes(),
    );

    let url = server.url.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The legitimate service: fetch the environment over and over.
    let fetcher = {
        let (url, stop, auth) = (url.clone(), stop.clone(), format!("Bearer {token}"));
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            let mut bad = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = http(
                    &url,
                    "GET",
                    "/v1/projects/dify/environments/prod/export",
                    &[("Authorization", &auth)],
                    None,
                );
                lat.push(t.elapsed());
                if !matches!(&r, Ok(r) if r.status == 200) {
                    bad += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (lat, bad)
        })
    };

    // (status, account, address) of every flood attempt.
    let seen: Arc<Mutex<Vec<(u16, usize, usize)>>> = Arc::default();
    let cpu_before = cpu_ticks(server.pid().unwrap());
    let started = Instant::now();
    // The flood opens with the victim from six addresses (5 pass the account window).
    for i in 0..6 {
        let body =
            serde_json::json!({ "username": "victim", "password": format!("first-guess-{i}") })
                .to_string();
        let fwd = format!("203.0.9.{}", i + 1);
        let r = http(
            &url,
            "POST",
            "/v1/auth/login",
            &[("X-Forwarded-For", &fwd)],
            Some(&body),
        )
        .unwrap();
        seen.lock().unwrap().push((r.status, 0, 1000 + i));
    }
    let mut threads = Vec::new();
    for t in 0..THREADS {
        let (url, seen) = (url.clone(), seen.clone());
        threads.push(std::thread::spawn(move || {
            for i in 0..PER_THREAD {
                let n = t * PER_THREAD + i;
                let account = (n * 7 + 3) % ACCOUNTS;
                let address = (n * 13 + t) % ADDRESSES;
                let user = if account == 0 {
                    "victim".to_owned()
                } else {
                    format!("user{account}")
                };
                let body =
                    serde_json::json!({ "username": user, "password": format!("guess-{n}") })
                        .to_string();
                let fwd = format!("203.0.{}.{}", address / 250, address % 250 + 1);
                let r = http(
                    &url,
                    "POST",
                    "/v1/auth/login",
                    &[("X-Forwarded-For", &fwd), ("User-Agent", "flood/1")],
                    Some(&body),
                )
                .expect("flood request");
                seen.lock().unwrap().push((r.status, account, address));
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let flood_time = started.elapsed();
    let cpu_after = cpu_ticks(server.pid().unwrap());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut lat, bad_fetches) = fetcher.join().unwrap();

    let seen = seen.lock().unwrap().clone();
    let total = seen.len();
    let count = |s: u16| seen.iter().filter(|(st, _, _)| *st == s).count();
    let (ok_n, unauthorized, limited) = (count(200), count(401), count(429));
    assert_eq!(ok_n, 0, "a flood attempt succeeded");
    assert_eq!(unauthorized + limited, total, "only 401 and 429 answers");
    // Admitted (argon2-verified) attempts are bounded by every limit.
    assert!(unauthorized <= 100, "global limit: {unauthorized} admitted");
    let mut per_account: HashMap<usize, usize> = HashMap::new();
    let mut per_address: HashMap<usize, usize> = HashMap::new();
    for (s, a, ip) in &seen {
        if *s == 401 {
            *per_account.entry(*a).or_default() += 1;
            *per_address.entry(*ip).or_default() += 1;
        }
    }
    assert!(per_account.values().all(|n| *n <= 5), "{per_account:?}");
    assert!(per_address.values().all(|n| *n <= 10), "{per_address:?}");
    assert_eq!(
        per_account.get(&0),
        Some(&5),
        "the victim got 5 verified attempts"
    );

    // The victim is locked, and the audit log holds every attempt.
    let auth = format!("Bearer {}", server.admin_token);
    let r = http(
        &url,
        "GET",
        "/v1/users/victim",
        &[("Authorization", &auth)],
        None,
    )
    .unwrap();
    assert_eq!(r.json()["locked"], true, "{}", r.body);
    let export = String::from_utf8(ok(server.cli().args(["audit", "export"]), b"")).unwrap();
    let logins = export
        .lines()
        .filter(|l| l.contains("\"auth.login\""))
        .count();
    assert_eq!(logins, total, "every attempt is audited");
    let verified = export
        .lines()
        .filter(|l| l.contains("\"auth.login\"") && l.contains("\"failure\""))
        .count();
    assert_eq!(
        verified, unauthorized,
        "argon2 ran once per admitted attempt and never for a refused one"
    );
    assert!(export.contains("\"auth.lockout\""));
    let out = String::from_utf8(ok(server.cli().args(["audit", "verify"]), b"")).unwrap();
    assert!(out.starts_with("ok: "), "{out}");

    // Legitimate fetches went on, fast.
    lat.sort();
    assert!(lat.len() >= 20, "only {} fetches", lat.len());
    assert_eq!(bad_fetches, 0);
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    let cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => format!(
            "{:.2} cores",
            (b - a) as f64 / 100.0 / flood_time.as_secs_f64()
        ),
        _ => "unknown".to_owned(),
    };
    eprintln!(
        "flood: {total} attempts in {flood_time:?} ({:.0}/s): {unauthorized} verified, {limited} refused; \
         server CPU {cpu}; fetches: {} p50 {:?} p99 {:?}",
        total as f64 / flood_time.as_secs_f64(),
        lat.len(),
        p(0.5),
        p(0.99)
    );
    assert!(
        p(0.99) < Duration::from_millis(1000),
        "fetch p99 {:?} during the flood",
        p(0.99)
    );
}
