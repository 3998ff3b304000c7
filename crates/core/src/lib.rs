//! fileconsul shares a directory tree with every node of a Consul cluster through Consul's KV
//! store. This crate does the work; the `fileconsul` binary only parses flags into [`Settings`]
//! and prints [`Report`]s.
//!
//! Modules, one concern each:
//! * [`consul`]: the HTTP client (KV, transactions, blocking queries, sessions);
//! * [`layout`]: how paths, metadata and bookkeeping map to keys and flags;
//! * [`tree`]: the local tree; [`filter`]: ignore file and path patterns;
//! * [`state`]: the sync state of the last push or pull;
//! * [`remote`]: Consul's tree; [`plan`]: the three-way decision per path;
//! * [`apply`]: safe local writes; [`push`]: the commit protocol for writes to Consul;
//! * [`sync`]: the `status`, `push` and `pull` verbs; [`watch`]: `watch` and `nodes`;
//!   [`output`]: rendering their reports.

pub mod apply;
pub mod consul;
pub mod error;
pub mod filter;
pub mod layout;
pub mod output;
pub mod plan;
pub mod push;
pub mod remote;
pub mod state;
pub mod sync;
pub mod tree;
pub mod watch;

pub use error::{Error, ExitCode, Result};
pub use sync::{pull, push, status, PullOptions, PushOptions, Report, Settings};
