//! Errors of the library and the exit statuses they map to.
//!
//! Every failure a user can meet is one variant of [`Error`]; each names the file, key or address it
//! is about. [`ExitCode`] is the contract with scripts: the binary turns an `Error` (or an outcome
//! such as "conflicts were left") into one of these codes and nothing else.

use std::io;
use std::path::PathBuf;

/// The exit statuses of `fileconsul`, documented in the README and `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success, including "already up to date".
    Success = 0,
    /// `status --exit-code` found something to push or pull.
    ChangesPending = 1,
    /// Bad flags or arguments.
    Usage = 2,
    /// Consul could not be reached, timed out, had no leader, or a push is in progress: retry later.
    Unavailable = 3,
    /// Conflicts: a push was refused or a pull left local changes alone.
    Conflict = 4,
    /// Consul's ACLs refused the request (HTTP 403).
    PermissionDenied = 5,
    /// A local file or directory could not be read or written.
    LocalIo = 6,
    /// A file or key was refused: too large, a symlink leaving the tree, an unsafe key.
    Refused = 7,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Any failure of a fileconsul operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("cannot reach Consul at {addr}: {detail}")]
    Unreachable { addr: String, detail: String },

    #[error("Consul at {addr} answered {status} to {what}: {body}")]
    Http {
        addr: String,
        status: u16,
        what: String,
        body: String,
    },

    #[error("Consul refused {what} (HTTP 403, check the ACL token): {body}")]
    PermissionDenied { what: String, body: String },

    #[error("unexpected answer from Consul to {what}: {detail}")]
    Protocol { what: String, detail: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("refused: {0}")]
    Refused(String),

    #[error("{0}")]
    Busy(String),

    #[error("{0}")]
    Conflict(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The exit status this error stands for.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) => ExitCode::Usage,
            Error::Unreachable { .. } | Error::Busy(_) => ExitCode::Unavailable,
            Error::Http { status, .. } if *status >= 500 => ExitCode::Unavailable,
            Error::Http { .. } | Error::Protocol { .. } => ExitCode::Unavailable,
            Error::PermissionDenied { .. } => ExitCode::PermissionDenied,
            Error::Io { .. } => ExitCode::LocalIo,
            Error::Refused(_) => ExitCode::Refused,
            Error::Conflict(_) => ExitCode::Conflict,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
