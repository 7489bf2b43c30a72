//! `envseal login|logout|whoami|passwd|mfa …`: user sessions from the command line.
//!
//! Passwords are read from stdin (never a flag); the session token is printed once on
//! stdout (or written to a 0600 file with `--save`) for use as `ENVSEAL_TOKEN` or
//! `--token-file`. A one-time TOTP code may be given as a flag: it is useless once used.

use crate::client::{Client, ClientConfig};
use crate::global::Global;
use anyhow::Context as _;
use envseal_core::wire::{
    LoginRequest, LoginResponse, MfaCode, MfaEnrolment, RecoveryCodes, SetPassword, WhoAmI,
};
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use zeroize::Zeroizing;

/// `envseal login`.
#[derive(clap::Args)]
pub struct LoginArgs {
    /// Login name.
    #[arg(long, short = 'u', env = "ENVSEAL_USER")]
    pub username: String,
    /// Read the password from the first line of stdin.
    #[arg(long, required = true)]
    pub password_stdin: bool,
    /// A TOTP code or a recovery code (accounts with MFA).
    #[arg(long)]
    pub totp: Option<String>,
    /// Write the session token to this file (mode 0600) instead of stdout.
    #[arg(long)]
    pub save: Option<PathBuf>,
}

/// `envseal mfa …` (with a session token).
#[derive(clap::Subcommand)]
pub enum MfaCmd {
    /// Start TOTP enrolment: prints the secret and an otpauth:// URI, once.
    Enroll,
    /// Finish enrolment with a current code: prints the recovery codes, once.
    Confirm {
        /// Current 6-digit code.
        code: String,
    },
    /// Turn TOTP off (needs a current code).
    Disable {
        /// Current 6-digit code.
        code: String,
    },
}

/// Reads one line (a password) from stdin.
pub fn read_password_stdin() -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
    anyhow::ensure!(!trimmed.is_empty(), "no password on stdin");
    Ok(trimmed)
}

fn anonymous_client(global: &Global) -> anyhow::Result<Client> {
    let timeout = global.timeout;
    Ok(Client::new(&ClientConfig {
        addr: global.addr.clone(),
        token: Zeroizing::new(String::new()),
        ca_cert: global.ca_cert.clone(),
        connect_timeout: timeout.min(Duration::from_secs(5)),
        timeout,
        insecure_http: global.insecure_http,
    })?)
}

/// Signs in and prints (or saves) the session token.
pub fn login(global: &Global, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let password = read_password_stdin()?;
    let client = anonymous_client(global)?;
    let answer: LoginResponse = client.send(
        "POST",
        "/v1/auth/login",
        &LoginRequest {
            username: args.username,
            password,
            totp: args.totp.map(Zeroizing::new),
            cookie: false,
        },
    )?;
    let token = Zeroizing::new(answer.token.clone().context("the server sent no token")?);
    if answer.mfa_enrolment_required {
        eprintln!("note: this account must enrol TOTP before anything else: `envseal mfa enroll`");
    }
    match args.save {
        Some(path) => {
            write_private(&path, token.as_bytes())?;
            eprintln!(
                "signed in as {}; session token saved to {} (use --token-file)",
                answer.username,
                path.display()
            );
        }
        None => {
            eprintln!("signed in as {}; session token:", answer.username);
            println!("{}", token.as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    Ok(())
}

/// Ends the current session.
pub fn logout(global: &Global) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    let _: serde_json::Value = client.send("POST", "/v1/auth/logout", &serde_json::json!({}))?;
    eprintln!("signed out");
    Ok(ExitCode::SUCCESS)
}

/// Prints who the token or session belongs to.
pub fn whoami(global: &Global, format: crate::output::FormatArg) -> anyhow::Result<ExitCode> {
    use crate::output::{self, Format, Table};
    let me: WhoAmI = global.client()?.get("/v1/auth/me")?;
    match format.get() {
        Format::Json => output::print_json(&serde_json::json!({
            "name": me.name,
            "kind": me.kind,
            "roles": me.roles.iter().map(|r| serde_json::json!({
                "project": r.project, "role": r.role,
            })).collect::<Vec<_>>(),
            "mfa_enrolment_required": me.mfa_enrolment_required,
        }))?,
        Format::Table => {
            let mut t = Table::new(&["NAME", "KIND", "PROJECT", "ROLE"]);
            if me.roles.is_empty() {
                t.row(vec![
                    me.name.clone(),
                    me.kind.clone(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            for r in &me.roles {
                t.row(vec![
                    me.name.clone(),
                    me.kind.clone(),
                    r.project.clone(),
                    r.role.clone(),
                ]);
            }
            output::print(&t.render())?;
            if me.mfa_enrolment_required {
                eprintln!("envseal: MFA enrolment required (envseal mfa enroll)");
            }
        }
        Format::Tsv => {
            println!("{}\t{}", me.name, me.kind);
            for r in me.roles {
                println!("{}\t{}", r.project, r.role);
            }
            if me.mfa_enrolment_required {
                println!("mfa enrolment required");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Changes one's own password: current password on the first line of stdin, the new
/// one on the second.
pub fn passwd(global: &Global) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    let current = read_password_stdin()?;
    let new = read_password_stdin().context("the new password goes on the second line")?;
    let _: serde_json::Value = client.send(
        "PUT",
        "/v1/auth/password",
        &SetPassword {
            current: Some(current),
            password: new,
        },
    )?;
    eprintln!("password changed; every session has ended, log in again");
    Ok(ExitCode::SUCCESS)
}

/// `envseal mfa …`.
pub fn mfa(global: &Global, cmd: MfaCmd) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match cmd {
        MfaCmd::Enroll => {
            let e: MfaEnrolment =
                client.send("POST", "/v1/auth/mfa/enroll", &serde_json::json!({}))?;
            eprintln!("add this secret to an authenticator app, then `envseal mfa confirm CODE`:");
            println!("{}", e.secret);
            println!("{}", e.otpauth_uri);
        }
        MfaCmd::Confirm { code } => {
            let r: RecoveryCodes =
                client.send("POST", "/v1/auth/mfa/confirm", &MfaCode { code })?;
            eprintln!("TOTP enrolled. Recovery codes (each works once; store them now):");
            for c in r.recovery_codes {
                println!("{c}");
            }
        }
        MfaCmd::Disable { code } => {
            let _: serde_json::Value =
                client.send("POST", "/v1/auth/mfa/disable", &MfaCode { code })?;
            eprintln!("TOTP disabled");
        }
    }
    Ok(ExitCode::SUCCESS)
}
