//! Both corpora together (every rule file's provider in many placements, plus the
//! original detectors, and decoys): at least 150 planted secrets and 80 decoys, at
//! least 97 % of the planted values found under their rule, no decoy reported.

mod common;

use common::corpus::{all_cases, breadth_cases};
use envseal_scan::{detect::best_per_value, Scanner};

#[test]
fn breadth_corpus_finds_at_least_97_percent_and_no_decoy() {
    let scanner = Scanner::new();
    let cases = all_cases();
    let planted: usize = cases.iter().map(|c| c.expect.len()).sum();
    let decoys = cases.iter().filter(|c| c.is_decoy()).count();
    assert!(planted >= 150, "{planted} planted secrets");
    assert!(decoys >= 80, "{decoys} decoys");
    let (mut found, mut missed, mut flagged) = (0usize, Vec::new(), Vec::new());
    for case in &cases {
        let hits = best_per_value(scanner.scan(case.content.as_bytes(), Some(&case.path)));
        if case.is_decoy() {
            if !hits.is_empty() {
                flagged.push(format!(
                    "{}: {:?}",
                    case.path,
                    hits.iter().map(|h| h.rule.id()).collect::<Vec<_>>()
                ));
            }
            continue;
        }
        for (rule, value) in &case.expect {
            if hits
                .iter()
                .any(|h| h.rule.id() == *rule && h.secret.expose() == value)
            {
                found += 1;
            } else {
                missed.push(format!(
                    "{} ({rule}): got {:?}",
                    case.path,
                    hits.iter().map(|h| h.rule.id()).collect::<Vec<_>>()
                ));
            }
        }
    }
    println!(
        "found {found} of {planted}; decoys {decoys}, flagged {}",
        flagged.len()
    );
    assert!(
        flagged.is_empty(),
        "decoys reported:\n{}",
        flagged.join("\n")
    );
    assert!(
        found * 100 >= planted * 97,
        "found {found} of {planted}; missed:\n{}",
        missed.join("\n")
    );
}

#[test]
fn breadth_corpus_covers_every_rule_file_rule() {
    let cases = breadth_cases();
    let missing: Vec<_> = envseal_scan::Rule::all()
        .into_iter()
        .filter_map(|r| r.def())
        .filter(|d| {
            !cases
                .iter()
                .any(|c| c.expect.iter().any(|(r, _)| *r == d.id))
        })
        .map(|d| d.id)
        .collect();
    assert!(
        missing.is_empty(),
        "rules without a corpus case: {missing:?}"
    );
}
