//! Generated documentation: shell completions (`clap_complete`), man pages
//! (`clap_mangen`) and the Markdown reference `docs/cli.md`, all from the clap
//! definitions in [`crate::app`], so none of them can drift from the real flags.

use crate::app::Cli;
use anyhow::Context as _;
use clap::CommandFactory as _;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// `envseal completions SHELL`.
#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// `envseal man`.
#[derive(clap::Args)]
pub struct ManArgs {
    /// Write envseal.1 and envseal-<subcommand>.1 pages into this directory (default:
    /// envseal.1 to stdout).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints a completion script.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "envseal", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Writes man pages.
pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = Cli::command();
    match args.out_dir {
        None => {
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing man pages to {}", dir.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The Markdown CLI reference (`docs/cli.md`).
pub fn reference() -> String {
    let mut cmd = Cli::command().bin_name("envseal");
    cmd.build();
    let mut out = String::new();
    out.push_str(
        "# envseal command-line reference\n\n\
         Generated from the CLI's own definitions; `cargo test -p envseal --test \
         cli_reference` fails when this page is stale, and `ENVSEAL_UPDATE_DOCS=1` with \
         the same command rewrites it.\n\n\
         Exit status: 0 success, 1 findings (`scan`) or a verification failure, 2 \
         errors (bad input, server refused, unreachable). The launcher passes the \
         command's own status on.\n\n",
    );
    out.push_str(OUTPUT_FORMATS);
    write_command(&mut out, &cmd, "envseal", 2);
    out
}

/// The JSON field reference for `--format json`, part of the CLI's contract.
const OUTPUT_FORMATS: &str = include_str!("../data/output_formats.md");

fn write_command(out: &mut String, cmd: &clap::Command, path: &str, depth: usize) {
    if cmd.is_hide_set() {
        return;
    }
    let _ = writeln!(out, "{} `{path}`\n", "#".repeat(depth.min(4)));
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        let _ = writeln!(out, "{about}\n");
    }
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ").trim();
    let _ = writeln!(out, "```text\n{usage}\n```\n");
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version")
        .filter(|a| depth == 2 || !a.is_global_set())
        .collect();
    if !args.is_empty() {
        out.push_str("| argument | meaning |\n|---|---|\n");
        for arg in args {
            let _ = writeln!(out, "| {} | {} |", arg_name(arg), arg_help(arg));
        }
        out.push('\n');
    }
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_command(out, sub, &format!("{path} {}", sub.get_name()), depth + 1);
    }
}

fn arg_name(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .map(|v| {
            v.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
    let mut name = match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => format!("`-{s}`, `--{l}`"),
        (None, Some(l)) => format!("`--{l}`"),
        (Some(s), None) => format!("`-{s}`"),
        (None, None) => format!("`{value}`"),
    };
    if takes_value && arg.get_long().is_some() {
        name.push_str(&format!(" `{value}`"));
    }
    name
}

fn arg_help(arg: &clap::Arg) -> String {
    let mut help = arg
        .get_help()
        .map(|h| h.to_string())
        .unwrap_or_default()
        .replace('\n', " ")
        .replace('|', "\\|");
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| format!("`{}`", p.get_name()))
        .collect();
    if !possible.is_empty() && arg.get_num_args().is_some_and(|n| n.takes_values()) {
        help.push_str(&format!(" One of {}.", possible.join(", ")));
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && arg.get_num_args().is_some_and(|n| n.takes_values()) {
        help.push_str(&format!(" Default: `{}`.", defaults.join(",")));
    }
    if let Some(env) = arg.get_env() {
        help.push_str(&format!(" Env: `{}`.", env.to_string_lossy()));
    }
    help.trim().to_owned()
}
