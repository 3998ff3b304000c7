//! `/v1/txn` operations and the batching that keeps each transaction inside Consul's limits:
//! 64 operations (1.8.7; 128 from 1.14) and a request body of 512 KiB, in which values travel
//! base64-encoded.

use base64::Engine as _;
use serde::Serialize;

/// Operations per transaction that every supported Consul accepts.
pub const TXN_MAX_OPS: usize = 64;
/// Request body size kept under Consul's default `txn_max_req_len` (512 KiB), with headroom.
pub const TXN_MAX_BODY: usize = 500 * 1024;

/// One KV operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Set `key` only if its `ModifyIndex` is `index` (0: only if it does not exist).
    Cas {
        key: String,
        value: Vec<u8>,
        flags: u64,
        index: u64,
    },
    /// Set `key` unconditionally.
    Set {
        key: String,
        value: Vec<u8>,
        flags: u64,
    },
    /// Delete `key` only if its `ModifyIndex` is `index`.
    DeleteCas { key: String, index: u64 },
    /// Delete `key` (no error when it does not exist).
    Delete { key: String },
    /// Delete every key starting with `prefix` (only ever used on fileconsul's own keys).
    DeleteTree { prefix: String },
    /// Fail the transaction unless `key` has `ModifyIndex` `index`.
    CheckIndex { key: String, index: u64 },
    /// Fail the transaction if `key` exists.
    CheckNotExists { key: String },
    /// Fail the transaction unless `session` holds the lock on `key`.
    CheckSession { key: String, session: String },
    /// Take the lock on `key` for `session` and set its value.
    Lock {
        key: String,
        value: Vec<u8>,
        session: String,
    },
    /// Read `key` (fails the transaction when it does not exist).
    Get { key: String },
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "KV")]
    kv: WireKv<'a>,
}

#[derive(Serialize)]
struct WireKv<'a> {
    #[serde(rename = "Verb")]
    verb: &'static str,
    #[serde(rename = "Key")]
    key: &'a str,
    #[serde(rename = "Value", skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(rename = "Flags", skip_serializing_if = "Option::is_none")]
    flags: Option<u64>,
    #[serde(rename = "Index", skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    #[serde(rename = "Session", skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
}

fn b64(value: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}

impl TxnOp {
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Cas { key, .. }
            | TxnOp::Set { key, .. }
            | TxnOp::DeleteCas { key, .. }
            | TxnOp::Delete { key }
            | TxnOp::CheckIndex { key, .. }
            | TxnOp::CheckNotExists { key }
            | TxnOp::CheckSession { key, .. }
            | TxnOp::Lock { key, .. }
            | TxnOp::Get { key } => key,
            TxnOp::DeleteTree { prefix } => prefix,
        }
    }

    fn wire(&self) -> Wire<'_> {
        let mut kv = WireKv {
            verb: "",
            key: self.key(),
            value: None,
            flags: None,
            index: None,
            session: None,
        };
        match self {
            TxnOp::Cas {
                value,
                flags,
                index,
                ..
            } => {
                kv.verb = "cas";
                kv.value = Some(b64(value));
                kv.flags = Some(*flags);
                kv.index = Some(*index);
            }
            TxnOp::Set { value, flags, .. } => {
                kv.verb = "set";
                kv.value = Some(b64(value));
                kv.flags = Some(*flags);
            }
            TxnOp::DeleteCas { index, .. } => {
                kv.verb = "delete-cas";
                kv.index = Some(*index);
            }
            TxnOp::Delete { .. } => kv.verb = "delete",
            TxnOp::DeleteTree { .. } => kv.verb = "delete-tree",
            TxnOp::CheckIndex { index, .. } => {
                kv.verb = "check-index";
                kv.index = Some(*index);
            }
            TxnOp::CheckNotExists { .. } => kv.verb = "check-not-exists",
            TxnOp::CheckSession { session, .. } => {
                kv.verb = "check-session";
                kv.session = Some(session);
            }
            TxnOp::Lock { value, session, .. } => {
                kv.verb = "lock";
                kv.value = Some(b64(value));
                kv.session = Some(session);
            }
            TxnOp::Get { .. } => kv.verb = "get",
        }
        Wire { kv }
    }

    /// The size this operation adds to a request body (JSON with the value in base64).
    pub fn wire_size(&self) -> usize {
        let value_len = match self {
            TxnOp::Cas { value, .. } | TxnOp::Set { value, .. } | TxnOp::Lock { value, .. } => {
                value.len()
            }
            _ => 0,
        };
        wire_size(self.key().len(), value_len)
    }
}

/// The size an operation on a key of `key_len` bytes with a value of `value_len` bytes adds to a
/// request body: verb, field names, flags, index and session take under 160 bytes, keys may be
/// JSON-escaped, values travel in base64.
pub fn wire_size(key_len: usize, value_len: usize) -> usize {
    160 + key_len * 2 + value_len.div_ceil(3) * 4
}

/// Serializes operations as a `/v1/txn` request body.
pub fn encode_body(ops: &[TxnOp]) -> Vec<u8> {
    let wire: Vec<Wire<'_>> = ops.iter().map(TxnOp::wire).collect();
    // Serializing plain strings and integers cannot fail.
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// Packs items into transactions that each fit Consul's limits, keeping `reserved_ops` and
/// `reserved_bytes` free in every batch for operations the caller adds (checks, head updates).
/// The items are operations, or anything the caller turns into one operation later (so that a
/// value need not be read before its batch is sent).
#[derive(Debug)]
pub struct TxnBatcher<T = TxnOp> {
    batches: Vec<Vec<T>>,
    bytes: usize,
    max_ops: usize,
    max_bytes: usize,
}

impl<T> TxnBatcher<T> {
    pub fn new(reserved_ops: usize, reserved_bytes: usize) -> Self {
        TxnBatcher {
            batches: vec![Vec::new()],
            bytes: 0,
            max_ops: TXN_MAX_OPS - reserved_ops,
            max_bytes: TXN_MAX_BODY - reserved_bytes,
        }
    }

    /// Whether an operation of this wire size can go through a transaction at all.
    pub fn fits(&self, size: usize) -> bool {
        size <= self.max_bytes
    }

    /// Adds an item whose operation has this wire size.
    pub fn push_sized(&mut self, item: T, size: usize) {
        let current = self.batches.last().map_or(0, Vec::len);
        if current > 0 && (current == self.max_ops || self.bytes + size > self.max_bytes) {
            self.batches.push(Vec::new());
            self.bytes = 0;
        }
        self.bytes += size;
        if let Some(batch) = self.batches.last_mut() {
            batch.push(item);
        }
    }

    /// Takes the batches that are full, leaving the one still being filled.
    pub fn take_full(&mut self) -> Vec<Vec<T>> {
        let open = self.batches.pop().unwrap_or_default();
        let full = std::mem::replace(&mut self.batches, vec![open]);
        full.into_iter().filter(|b| !b.is_empty()).collect()
    }

    /// How many batches are full.
    pub fn full_count(&self) -> usize {
        self.batches.len().saturating_sub(1)
    }

    pub fn into_batches(self) -> Vec<Vec<T>> {
        self.batches.into_iter().filter(|b| !b.is_empty()).collect()
    }
}

impl TxnBatcher<TxnOp> {
    /// Whether this operation can go through a transaction at all.
    pub fn fits_alone(&self, op: &TxnOp) -> bool {
        self.fits(op.wire_size())
    }

    pub fn push(&mut self, op: TxnOp) {
        let size = op.wire_size();
        self.push_sized(op, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_op_count_and_body_size() {
        let mut b = TxnBatcher::new(4, 1000);
        for i in 0..200 {
            b.push(TxnOp::Cas {
                key: format!("p/f{i}"),
                value: vec![7; 2000],
                flags: 0,
                index: 0,
            });
        }
        let batches = b.into_batches();
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 200);
        for batch in &batches {
            assert!(batch.len() <= TXN_MAX_OPS - 4);
            let body = encode_body(batch);
            assert!(body.len() <= TXN_MAX_BODY - 1000, "{}", body.len());
            let estimate: usize = batch.iter().map(TxnOp::wire_size).sum();
            assert!(
                estimate >= body.len(),
                "estimate {estimate} < {}",
                body.len()
            );
        }
        let mut streamed = TxnBatcher::new(0, 0);
        let mut sent = 0;
        for i in 0..300 {
            streamed.push(TxnOp::Delete {
                key: format!("k{i}"),
            });
            if streamed.full_count() >= 2 {
                sent += streamed.take_full().iter().map(Vec::len).sum::<usize>();
            }
        }
        sent += streamed.into_batches().iter().map(Vec::len).sum::<usize>();
        assert_eq!(sent, 300);
        let mut big = TxnBatcher::new(4, 1000);
        for i in 0..3 {
            big.push(TxnOp::Set {
                key: format!("k{i}"),
                value: vec![1; 300 * 1024],
                flags: 0,
            });
        }
        assert_eq!(big.into_batches().len(), 3);
    }

    #[test]
    fn wire_format_matches_consul() {
        let body = encode_body(&[
            TxnOp::Cas {
                key: "p/a".into(),
                value: b"hi".to_vec(),
                flags: 5,
                index: 0,
            },
            TxnOp::CheckNotExists { key: "p/b".into() },
        ]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"[{"KV":{"Verb":"cas","Key":"p/a","Value":"aGk=","Flags":5,"Index":0}},{"KV":{"Verb":"check-not-exists","Key":"p/b"}}]"#
        );
    }
}
