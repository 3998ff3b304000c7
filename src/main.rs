//! `fileconsul`: the thin binary. Parses the command line, runs the library, prints the report's
//! data on stdout and diagnostics on stderr, and exits with the documented status.

mod cli;

use std::io::Write;
use std::process::ExitCode as ProcessExit;

use clap::Parser;
use fileconsul_core::output::{self, Format};
use fileconsul_core::watch::{self, WatchOptions};
use fileconsul_core::{ExitCode, PullOptions, PushOptions, Report};

use cli::{Cli, Command, OutputFormat};

fn run(cli: &Cli) -> fileconsul_core::Result<(Report, bool)> {
    match &cli.command {
        Command::Watch { .. } | Command::Nodes => unreachable!("handled in main"),
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

/// `watch` and `nodes`: no sync report, their own output.
fn run_other(cli: &Cli, format: Format) -> Option<fileconsul_core::Result<()>> {
    match &cli.command {
        Command::Watch {
            exec,
            splay,
            force,
            patterns,
        } => Some(cli.global.settings(patterns).and_then(|settings| {
            let options = WatchOptions {
                exec: exec.clone(),
                splay: *splay,
                force: *force,
                json_logs: format == Format::Json,
                ..WatchOptions::default()
            };
            watch::run_until_signal(&settings, &options)
        })),
        Command::Nodes => Some(cli.global.settings(&[]).and_then(|settings| {
            let report = watch::nodes(&settings)?;
            let mut out = std::io::stdout().lock();
            output::render_nodes(&report, format, &mut out)
                .and_then(|()| out.flush())
                .map_err(|e| fileconsul_core::Error::io("stdout", e))
        })),
        _ => None,
    }
}

fn report_error(err: &fileconsul_core::Error, format: Format) -> ExitCode {
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

fn main() -> ProcessExit {
    let cli = Cli::parse();
    let format = match cli.global.format {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
    };
    if let Some(result) = run_other(&cli, format) {
        let code = match result {
            Ok(()) => ExitCode::Success,
            Err(err) => report_error(&err, format),
        };
        return ProcessExit::from(code.code());
    }
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
        Err(err) => report_error(&err, format),
    };
    ProcessExit::from(code.code())
}
