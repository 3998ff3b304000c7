//! A small client for the parts of Consul's HTTP API that fileconsul uses: KV reads (streamed),
//! key listings, CAS writes, `/v1/txn`, blocking queries and sessions.
//!
//! [`ConsulConfig`] gathers connection settings the way the official Consul CLI does (flags over
//! environment over defaults); [`Client`] speaks HTTP with a timeout on every request.

mod client;
mod config;
mod txn;

pub use client::{Client, KvEntry, ReadIndex, TxnOutcome};
pub use config::{ConnectionFlags, ConsulConfig, Secret, TlsSettings, DEFAULT_TIMEOUT};
pub use txn::{wire_size, TxnBatcher, TxnOp, TXN_MAX_BODY, TXN_MAX_OPS};
