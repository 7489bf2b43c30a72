//! How an error reaches the terminal: its chain of causes joined by `: `, each cause
//! said once (a cause whose text an outer message already carries is left out).

/// One line for `envseal: error: …`.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot open ./dir: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let err = anyhow::Error::new(Outer(io)).context("scanning");
        assert_eq!(
            super::render(&err),
            "scanning: cannot open ./dir: No such file"
        );
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let err = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(super::render(&err), "outer: middle: inner");
    }
}
