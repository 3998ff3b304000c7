//! `fileconsul`: the thin binary. Parses the command line, runs the library, prints the data on
//! stdout and diagnostics on stderr, and exits with the documented status.

mod cli;

use std::io::Write;
use std::process::ExitCode as ProcessExit;

use clap::Parser;
use fileconsul_core::output::{self, Format};
use fileconsul_core::watch::{self, WatchOptions};
use fileconsul_core::{Error, ExitCode, PullOptions, PushOptions, Result};

use cli::{Cli, Command, OutputFormat};

fn stdout_error(e: std::io::Error) -> Error {
    Error::io("stdout", e)
}

/// Runs the verb and returns the exit status its outcome stands for.
fn dispatch(cli: &Cli, format: Format) -> Result<ExitCode> {
    let global = &cli.global;
    let (report, changes_exit_code) = match &cli.command {
        Command::Status {
            exit_code,
            patterns,
        } => (
            fileconsul_core::status(&global.settings(patterns)?)?,
            *exit_code,
        ),
        Command::Push { dry_run, patterns } => (
            fileconsul_core::push(
                &global.settings(patterns)?,
                PushOptions { dry_run: *dry_run },
            )?,
            false,
        ),
        Command::Pull {
            dry_run,
            force,
            patterns,
        } => (
            fileconsul_core::pull(
                &global.settings(patterns)?,
                PullOptions {
                    dry_run: *dry_run,
                    force: *force,
                },
            )?,
            false,
        ),
        Command::Watch {
            exec,
            splay,
            force,
            patterns,
        } => {
            let options = WatchOptions {
                exec: exec.clone(),
                splay: *splay,
                force: *force,
                json_logs: format == Format::Json,
                ..WatchOptions::default()
            };
            watch::run_until_signal(&global.settings(patterns)?, &options)?;
            return Ok(ExitCode::Success);
        }
        Command::Nodes => {
            let report = watch::nodes(&global.settings(&[])?)?;
            let mut out = std::io::stdout().lock();
            output::render_nodes(&report, format, &mut out)
                .and_then(|()| out.flush())
                .map_err(stdout_error)?;
            return Ok(ExitCode::Success);
        }
    };
    for line in output::diagnostics(&report) {
        eprintln!("fileconsul: {line}");
    }
    let mut out = std::io::stdout().lock();
    output::render(&report, format, &mut out)
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
    Ok(report.exit_code(changes_exit_code))
}

fn main() -> ProcessExit {
    let cli = Cli::parse();
    let format = match cli.global.format {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
    };
    let code = dispatch(&cli, format).unwrap_or_else(|err| {
        eprintln!("fileconsul: {err}");
        if format == Format::Json {
            let json = serde_json::json!({
                "error": err.to_string(),
                "exit_code": err.exit_code().code(),
            });
            println!("{json}");
        }
        err.exit_code()
    });
    ProcessExit::from(code.code())
}
