//! "Did you mean": the closest known name to a mistyped one.

/// The candidate closest to `wrong` by Jaro-Winkler similarity, if it is close enough
/// to be a likely typo.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wrong, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn suggests_the_nearest_name_only_when_close() {
        let names = ["SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD"];
        assert_eq!(super::closest("SECRET_KY", names), Some("SECRET_KEY"));
        assert_eq!(super::closest("DB_PASWORD", names), Some("DB_PASSWORD"));
        assert_eq!(super::closest("ZZZ", names), None);
    }
}
