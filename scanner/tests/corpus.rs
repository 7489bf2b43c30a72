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
