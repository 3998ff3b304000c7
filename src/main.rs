//! `fileconsul`: the thin binary. Parses the command line, runs the library, prints the report's
//! data on stdout and diagnostics on stderr, and exits with the documented status.

mod cli;

use std::io::Write;
use std::process::ExitCode as ProcessExit;

use clap::Parser;
use fileconsul_core::output::{self, Format};
use fileconsul_core::{ExitCode, PullOptions, PushOptions, Report};

use cli::{Cli, Command, OutputFormat};

fn run(cli: &Cli) -> fileconsul_core::Result<(Report, bool)> {
    match &cli.command {
        Command::Status {
            exit_code,
            patterns,
        } => Ok((
            fileconsul_core::status(&cli.global.settings(patterns)?)?,
            *exit_code,
        )),
        Command::Push { dry_run, patterns } => Ok((
            fileconsul_core::push(
                &cli.global.settings(patterns)?,
                PushOptions { dry_run: *dry_run },
            )?,
            false,
        )),
        Command::Pull {
            dry_run,
            force,
            patterns,
        } => Ok((
            fileconsul_core::pull(
                &cli.global.settings(patterns)?,
                PullOptions {
                    dry_run: *dry_run,
                    force: *force,
                },
            )?,
            false,
        )),
    }
}

fn main() -> ProcessExit {
    let cli = Cli::parse();
    let format = match cli.global.format {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
    };
    let code = match run(&cli) {
        Ok((report, changes_exit_code)) => {
            for line in output::diagnostics(&report) {
                eprintln!("fileconsul: {line}");
            }
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            if output::render(&report, format, &mut out)
                .and_then(|()| out.flush())
                .is_err()
            {
                ExitCode::LocalIo
            } else {
                report.exit_code(changes_exit_code)
            }
        }
        Err(err) => {
            eprintln!("fileconsul: {err}");
            if format == Format::Json {
                let json = serde_json::json!({
                    "error": err.to_string(),
                    "exit_code": err.exit_code().code(),
                });
                println!("{json}");
            }
            err.exit_code()
        }
    };
    ProcessExit::from(code.code())
}
