//! The command line: clap definitions, turned into the library's plain [`Settings`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fileconsul_core::consul::{ConnectionFlags, ConsulConfig, DEFAULT_TIMEOUT};
use fileconsul_core::layout::Prefix;
use fileconsul_core::{Result, Settings};

pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success, including \"Already up-to-date\"
  1  status --exit-code: there is something to push or pull
  2  usage error (bad flag, argument or setting)
  3  Consul unreachable, timed out or without leader, or a push is in progress: retry later
  4  conflicts: a push was refused or a pull left local changes alone
  5  permission denied by Consul's ACLs (HTTP 403)
  6  a local file or directory could not be read or written
  7  refused: a file or key that cannot be shared (too large, symlink leaving the tree,
     unsafe key); the rest was applied, or for push nothing was written
When several apply, the first of 6, 4, 7, 1 wins.

Environment (as the Consul CLI): CONSUL_HTTP_ADDR (host:port, http:// or https://),
CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL, CONSUL_HTTP_SSL_VERIFY,
CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY. Flags win over the environment.";

#[derive(Debug, Parser)]
#[command(
    name = "fileconsul",
    version,
    about = "Share a directory tree with every node of a Consul cluster through Consul's KV store",
    after_help = EXIT_STATUS_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Consul agent address, host:port (default: $CONSUL_HTTP_ADDR, else 127.0.0.1:8500)
    #[arg(long, global = true, value_name = "ADDR")]
    pub addr: Option<String>,
    /// Datacenter to use (default: the agent's)
    #[arg(long, global = true, value_name = "DC")]
    pub dc: Option<String>,
    /// KV prefix the tree is stored under
    #[arg(long, global = true, default_value = "fileconsul")]
    pub prefix: String,
    /// Local directory to synchronize
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub basepath: PathBuf,
    /// File holding the ACL token (default: $CONSUL_HTTP_TOKEN, else $CONSUL_HTTP_TOKEN_FILE)
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds to wait for an agent's answer
    #[arg(long, global = true, default_value_t = DEFAULT_TIMEOUT.as_secs_f64(), value_name = "SECONDS")]
    pub timeout: f64,
    /// Seconds to wait for another node's push in progress to finish
    #[arg(long, global = true, default_value_t = 30.0, value_name = "SECONDS")]
    pub wait: f64,
    /// Output format of the data on stdout
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what would be pushed, pulled, and what conflicts
    Status {
        /// Exit with status 1 when there is something to push or pull
        #[arg(long)]
        exit_code: bool,
        /// Only paths matching these patterns (globs; a directory takes in what it holds)
        patterns: Vec<String>,
    },
    /// Store local changes in Consul as one revision
    Push {
        /// Show what would be pushed; write nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Only paths matching these patterns
        patterns: Vec<String>,
    },
    /// Apply Consul's changes to the local tree (never reads stdin; usable as a watch handler)
    Pull {
        /// Show what would be pulled; write nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Take Consul's version of conflicting files, keeping yours under .fileconsul/conflicts/
        #[arg(long)]
        force: bool,
        /// Only paths matching these patterns
        patterns: Vec<String>,
    },
    /// Keep the base directory in sync: pull, then apply every push as it commits
    Watch {
        /// Shell command run after each applied change; it gets the changed paths on stdin,
        /// one a line, and FILECONSUL_REVISION, FILECONSUL_CHANGED_COUNT, FILECONSUL_PREFIX and
        /// FILECONSUL_BASEPATH in its environment. A failure is logged; the watch goes on
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        /// Delay the command by a random time up to this bound (e.g. 500ms, 5s, 2m)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
        splay: Duration,
        /// Take Consul's version of conflicting files, keeping yours under .fileconsul/conflicts/
        #[arg(long)]
        force: bool,
        /// Only paths matching these patterns
        patterns: Vec<String>,
    },
    /// List the running watchers, the revision each holds and whether it is current
    Nodes,
}

/// Parses a duration such as `250ms`, `5s`, `2m` or `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 5s or 2m"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn seconds(name: &str, value: f64) -> Result<Duration> {
    if !value.is_finite() || value < 0.0 {
        return Err(fileconsul_core::Error::Config(format!(
            "--{name} must be a number of seconds, not {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

impl GlobalArgs {
    /// Turns the flags (and the environment) into the library's settings.
    pub fn settings(&self, patterns: &[String]) -> Result<Settings> {
        let flags = ConnectionFlags {
            address: self.addr.clone(),
            datacenter: self.dc.clone(),
            token_file: self.token_file.clone(),
            timeout: Some(seconds("timeout", self.timeout)?),
        };
        Ok(Settings {
            consul: ConsulConfig::resolve(&flags, &|name| std::env::var(name).ok())?,
            prefix: Prefix::parse(&self.prefix)?,
            base: self.basepath.clone(),
            patterns: patterns.to_vec(),
            wait: seconds("wait", self.wait)?,
        })
    }
}
