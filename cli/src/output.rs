//! How commands print data: `--format table` (aligned columns with headers, times in
//! UTC), `--format json` (one JSON document, RFC 3339 times, the field names listed
//! in `docs/cli.md`), or `--format tsv` (tab-separated, no header: the stable form for
//! `cut` and `awk`). Without `--format`: a table on a terminal, TSV otherwise.

use std::io::{IsTerminal as _, Write as _};

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header line.
    Table,
    /// One JSON document.
    Json,
    /// Tab-separated lines, no header.
    Tsv,
}

/// The `--format` flag of data-printing commands.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct FormatArg {
    /// Output format (default: table on a terminal, tsv otherwise).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
}

impl FormatArg {
    /// The chosen format.
    pub fn get(&self) -> Format {
        self.format.unwrap_or_else(|| {
            if std::io::stdout().is_terminal() {
                Format::Table
            } else {
                Format::Tsv
            }
        })
    }
}

/// Rows with named columns.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per header).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// Aligned columns; control characters in cells are escaped.
    pub fn render(&self) -> String {
        let clean: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| printable(c)).collect())
            .collect();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &clean {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (i, cell) in cells.enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&mut self.headers.iter().copied());
        for row in &clean {
            line(&mut row.iter().map(String::as_str));
        }
        out
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Writes `text` to stdout.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes `value` to stdout as pretty JSON and a newline.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print(&text)
}

/// A Unix time as RFC 3339 (UTC, seconds), for JSON.
pub fn rfc3339(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A Unix time for a table: `2026-12-01 21:10:05 UTC`.
pub fn human_time(unix: i64) -> String {
    let text = rfc3339(unix);
    format!("{} UTC", text.trim_end_matches('Z').replace('T', " "))
}

/// An optional time for JSON.
pub fn rfc3339_opt(unix: Option<i64>) -> serde_json::Value {
    unix.map_or(serde_json::Value::Null, |t| rfc3339(t).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_under_headers() {
        let mut t = Table::new(&["NAME", "VERSION"]);
        t.row(vec!["SECRET_KEY".into(), "3".into()]);
        t.row(vec!["A\u{1b}[31m".into(), "12".into()]);
        assert_eq!(
            t.render(),
            "NAME         VERSION\nSECRET_KEY   3\nA\\u{1b}[31m  12\n"
        );
    }

    #[test]
    fn times_are_rfc3339_for_json_and_readable_for_tables() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_622_205), "2025-12-01T20:50:05Z");
        assert_eq!(human_time(1_764_622_205), "2025-12-01 20:50:05 UTC");
    }
}
