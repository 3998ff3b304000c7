//! Integration tests: the `fileconsul` binary against a real Consul cluster started by the
//! harness (one per test binary), each test on its own prefix and directories.

mod exits;
mod harness;
mod sync;
mod watch;
