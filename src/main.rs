use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use mcp_bridge::config::{Cli, Command, Config, JournalAction, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Journal {
        action: JournalAction::Summarize { file },
    }) = &cli.command
    {
        return summarize(file);
    }
    let cfg = match Config::try_from(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&cfg);
    let result = actix_web::rt::System::new().block_on(mcp_bridge::run(cfg));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}

fn summarize(file: &std::path::Path) -> ExitCode {
    let report = std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .and_then(mcp_bridge::observe::summarize::summarize);
    match report {
        Ok(r) => {
            print!("{r}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-bridge: {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(cfg: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log_level));
    // Colours only for a person at a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
