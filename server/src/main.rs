//! `envseal-server`: parse arguments, set up logging, run the subcommand (serving by
//! default).

use clap::Parser as _;
use envseal_server::ServerArgs;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = ServerArgs::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("envseal-server: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let command = args
        .command
        .clone()
        .unwrap_or(envseal_server::commands::ServerCommand::Serve);
    match runtime.block_on(envseal_server::commands::dispatch(args, command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("envseal-server: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
