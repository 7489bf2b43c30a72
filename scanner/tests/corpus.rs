//! Every detector against the generated corpus: each true secret is found under its
//! rule, and no decoy is reported.

mod common;

use common::corpus::cases;
use envseal_scan::{detect::best_per_value, Scanner};
use std::collections::BTreeSet;

#[test]
fn corpus_true_positives_and_decoys() {
    let scanner = Scanner::new();
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        let hits = best_per_value(scanner.scan(case.content.as_bytes(), Some(&case.path)));
        let got: BTreeSet<(String, String)> = hits
            .iter()
            .map(|h| (h.rule.id().to_owned(), h.secret.expose().to_owned()))
            .collect();
        let want: BTreeSet<(String, String)> = case
            .expect
            .iter()
            .map(|(r, v)| ((*r).to_owned(), v.clone()))
            .collect();
        if got != want {
            let show = |s: &BTreeSet<(String, String)>| {
                s.iter()
                    .map(|(r, v)| format!("{r}:{}", v.chars().take(12).collect::<String>()))
                    .collect::<Vec<_>>()
            };
            failures.push(format!(
                "{}: want {:?} got {:?}",
                case.path,
                show(&want),
                show(&got)
            ));
        }
    }
    assert!(cases.iter().filter(|c| c.is_decoy()).count() >= 20);
    assert!(
        failures.is_empty(),
        "{} corpus failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn url_password_reports_its_own_line_not_the_windows() {
    let pw = common::corpus::password();
    let text = format!("# settings\n\nDATABASE_URL = 'postgresql://app:{pw}@db.internal/app'\n");
    let hits = Scanner::new().scan(text.as_bytes(), Some("settings.py"));
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].line, 3);
}

#[test]
fn malformed_percent_escapes_and_joke_passwords_are_not_findings() {
    for url in [
        "redis://:bad%zz@cache:6379",
        "postgres://app:hunter2@db/app",
    ] {
        let hits = Scanner::new().scan(format!("URL = \"{url}\"\n").as_bytes(), Some("a.py"));
        assert!(hits.is_empty(), "{url}");
    }
}
