//! Writing changes to Consul as one revision: the commit protocol.
//!
//! Every write is conditional: a file is created with `cas` index 0 and changed or deleted with
//! `cas`/`delete-cas` at the `ModifyIndex` the plan saw, and the head key (`.fileconsul/head`, the
//! tree's revision) is replaced with `cas` too. So a push that races another changes nothing.
//!
//! * **One transaction** when the changes fit (at most 60 files and about 500 KB): file writes,
//!   the head, and the revision's change list are applied together or not at all.
//! * **Several transactions** otherwise:
//!   1. *stage*: every new value is written under `.fileconsul/staging/<id>/`, with the plan;
//!      nothing a reader looks at has changed yet;
//!   2. *lock*: the push marker `.fileconsul/push` is taken with a Consul session, on condition
//!      that the head is unchanged; readers that see the marker do not apply the tree;
//!   3. *apply*: the files are written in batches, each checking that the session still holds
//!      the marker;
//!   4. *commit*: the last transaction moves the head, writes the change list, deletes the marker
//!      and the staging data.
//!
//!   If the pusher dies after step 2, its session ends (TTL) and the marker is left without a
//!   holder. Readers keep their files; the next push rolls the abandoned push forward from the
//!   staged data ([`Pusher::repair`]), so no reader ever applies half of it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::consul::{wire_size, Client, TxnBatcher, TxnOp, TxnOutcome, TXN_MAX_BODY, TXN_MAX_OPS};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::layout::{encode_flags, Meta, Prefix, RelPath};
use crate::plan::Change;
use crate::remote::{
    read_tree, Head, HeadInfo, Marker, MarkerInfo, HEAD, LOG, PUSH_MARKER, STAGING,
};
use crate::state::{digest, Digest, SyncState};

/// Revisions whose change lists are kept for watchers that catch up.
pub const LOG_KEEP: u64 = 256;
/// A change list larger than this says "read everything" instead of naming paths.
const LOG_ENTRY_MAX: usize = 8 * 1024;
const SESSION_TTL: Duration = Duration::from_secs(15);
const PARALLEL_TXNS: usize = 4;
/// Operations kept free in a single-transaction push: marker check, head, log, log pruning.
const COMMIT_OPS: usize = 4;
const COMMIT_BYTES: usize = LOG_ENTRY_MAX * 2 + 2048;

/// One path to write or delete in Consul.
#[derive(Debug, Clone)]
pub struct PushOp {
    pub path: RelPath,
    pub change: Change,
    pub meta: Meta,
    /// The `ModifyIndex` the key must still have (0: the key must not exist).
    pub cas: u64,
}

/// What a written path is now in Consul.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub digest: Digest,
    pub size: u64,
    pub meta: Meta,
    pub index: u64,
}

#[derive(Debug)]
pub struct Commit {
    pub revision: u64,
    /// Every path of the push: `Some` when written, `None` when deleted.
    pub applied: Vec<(RelPath, Option<Written>)>,
    /// Paths left out because Consul's key changed while the push ran.
    pub skipped: Vec<(RelPath, String)>,
}

#[derive(Debug)]
pub enum Outcome {
    Committed(Commit),
    /// The head or a key changed since the tree was read: read again and re-plan.
    Stale(String),
}

/// The change list of one revision (`.fileconsul/log/<revision>`), read by watchers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub revision: u64,
    #[serde(default)]
    pub set: Vec<String>,
    #[serde(default)]
    pub delete: Vec<String>,
    /// The list was too long to keep: a watcher reads the whole tree.
    #[serde(default)]
    pub full: bool,
}

/// One operation of a staged plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PlanRecord {
    #[serde(rename = "p")]
    path: String,
    #[serde(rename = "d")]
    delete: bool,
    #[serde(rename = "i")]
    cas: u64,
    #[serde(rename = "f")]
    flags: u64,
    #[serde(rename = "s")]
    seq: usize,
}

pub fn log_key(prefix: &Prefix, revision: u64) -> String {
    prefix.reserved(&format!("{LOG}/{revision:020}"))
}

fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    secs.to_string()
}

/// Reads the content of a path to push (the local file, or a staged value on repair).
pub trait ContentSource: Sync {
    fn content(&self, path: &RelPath, meta: Meta) -> Result<Vec<u8>>;
}

pub struct Pusher<'a> {
    pub client: &'a Client,
    pub prefix: &'a Prefix,
    pub node: String,
}

/// A file operation ready for a transaction, with what it will leave in Consul.
struct Prepared {
    path: RelPath,
    op: TxnOp,
    written: Option<Written>,
}

impl Pusher<'_> {
    fn commit_ops(&self, head: Option<&Head>, ops: &[(RelPath, bool)]) -> (Vec<TxnOp>, u64) {
        let revision = head.map_or(0, |h| h.info.revision) + 1;
        let info = HeadInfo {
            revision,
            node: self.node.clone(),
            time: timestamp(),
        };
        let mut entry = LogEntry {
            revision,
            ..LogEntry::default()
        };
        for (path, delete) in ops {
            let list = if *delete {
                &mut entry.delete
            } else {
                &mut entry.set
            };
            list.push(path.as_str().to_owned());
        }
        let mut log = serde_json::to_vec(&entry).unwrap_or_default();
        if log.len() > LOG_ENTRY_MAX {
            entry = LogEntry {
                revision,
                full: true,
                ..LogEntry::default()
            };
            log = serde_json::to_vec(&entry).unwrap_or_default();
        }
        let mut txn = vec![
            TxnOp::Cas {
                key: self.prefix.reserved(HEAD),
                value: serde_json::to_vec(&info).unwrap_or_default(),
                flags: 0,
                index: head.map_or(0, |h| h.modify_index),
            },
            TxnOp::Set {
                key: log_key(self.prefix, revision),
                value: log,
                flags: 0,
            },
        ];
        if revision > LOG_KEEP {
            txn.push(TxnOp::Delete {
                key: log_key(self.prefix, revision - LOG_KEEP),
            });
        }
        (txn, revision)
    }

    fn prepare(&self, op: &PushOp, source: &dyn ContentSource) -> Result<Prepared> {
        let key = self.prefix.key_for(&op.path);
        if op.change == Change::Delete {
            return Ok(Prepared {
                path: op.path.clone(),
                op: TxnOp::DeleteCas { key, index: op.cas },
                written: None,
            });
        }
        let value = source.content(&op.path, op.meta)?;
        let written = Written {
            digest: digest(&value),
            size: value.len() as u64,
            meta: op.meta,
            index: 0,
        };
        Ok(Prepared {
            path: op.path.clone(),
            op: TxnOp::Cas {
                key,
                value,
                flags: encode_flags(op.meta),
                index: op.cas,
            },
            written: Some(written),
        })
    }

    /// Pushes `ops` on top of `head` as one new revision.
    pub fn push(
        &self,
        head: Option<&Head>,
        ops: &[PushOp],
        source: &dyn ContentSource,
    ) -> Result<Outcome> {
        let single_ops = ops.len() + COMMIT_OPS <= TXN_MAX_OPS;
        if single_ops {
            let mut prepared = Vec::with_capacity(ops.len());
            let mut bytes = COMMIT_BYTES;
            for op in ops {
                let p = self.prepare(op, source)?;
                bytes += p.op.wire_size();
                prepared.push(p);
                if bytes > TXN_MAX_BODY {
                    break;
                }
            }
            if bytes <= TXN_MAX_BODY {
                return self.push_one(head, prepared);
            }
        }
        self.push_staged(head, ops, source)
    }

    fn push_one(&self, head: Option<&Head>, prepared: Vec<Prepared>) -> Result<Outcome> {
        let paths: Vec<(RelPath, bool)> = prepared
            .iter()
            .map(|p| (p.path.clone(), p.written.is_none()))
            .collect();
        let (commit, revision) = self.commit_ops(head, &paths);
        let mut txn = vec![TxnOp::CheckNotExists {
            key: self.prefix.reserved(PUSH_MARKER),
        }];
        let mut applied = Vec::with_capacity(prepared.len());
        for p in prepared {
            txn.push(p.op);
            applied.push((p.path, p.written));
        }
        txn.extend(commit);
        match self.client.txn(&txn)? {
            TxnOutcome::RolledBack(errors) => Ok(Outcome::Stale(describe(&txn, &errors))),
            TxnOutcome::Applied(results) => {
                let index = results.iter().map(|e| e.modify_index).max().unwrap_or(0);
                for (_, written) in applied.iter_mut() {
                    if let Some(w) = written {
                        w.index = index;
                    }
                }
                Ok(Outcome::Committed(Commit {
                    revision,
                    applied,
                    skipped: Vec::new(),
                }))
            }
        }
    }

    fn push_staged(
        &self,
        head: Option<&Head>,
        ops: &[PushOp],
        source: &dyn ContentSource,
    ) -> Result<Outcome> {
        let session = self
            .client
            .create_session("fileconsul push", SESSION_TTL, "release")?;
        let result = self.push_staged_in(head, ops, source, &session);
        let _ = self.client.destroy_session(&session);
        result
    }

    fn push_staged_in(
        &self,
        head: Option<&Head>,
        ops: &[PushOp],
        source: &dyn ContentSource,
        session: &str,
    ) -> Result<Outcome> {
        let id = format!(
            "{}-{}-{}",
            self.node,
            std::process::id(),
            crate::state::now_ns()
        );
        let staging_dir = self.prefix.reserved(&format!("{STAGING}/{id}/"));
        // 1. Stage every new value and the plan.
        let mut records = Vec::with_capacity(ops.len());
        let mut expected: Vec<Option<Written>> = Vec::with_capacity(ops.len());
        let cleanup = TxnOp::DeleteTree {
            prefix: staging_dir.clone(),
        };
        let send = |batches: Vec<Vec<TxnOp>>| {
            run_parallel(batches, |batch| match self.client.txn(&batch)? {
                TxnOutcome::Applied(_) => Ok(()),
                TxnOutcome::RolledBack(e) => Err(Error::Protocol {
                    what: "staging a push".into(),
                    detail: describe(&batch, &e),
                }),
            })
        };
        // Batches go out as soon as a few are full, so a large push never sits in memory.
        let mut staged = || -> Result<usize> {
            let mut stage = TxnBatcher::new(0, 0);
            for (seq, op) in ops.iter().enumerate() {
                records.push(PlanRecord {
                    path: op.path.as_str().to_owned(),
                    delete: op.change == Change::Delete,
                    cas: op.cas,
                    flags: encode_flags(op.meta),
                    seq,
                });
                if op.change == Change::Delete {
                    expected.push(None);
                    continue;
                }
                let value = source.content(&op.path, op.meta)?;
                expected.push(Some(Written {
                    digest: digest(&value),
                    size: value.len() as u64,
                    meta: op.meta,
                    index: 0,
                }));
                let set = TxnOp::Set {
                    key: format!("{staging_dir}{seq:08}"),
                    value,
                    flags: encode_flags(op.meta),
                };
                if let (false, TxnOp::Set { key, value, flags }) = (stage.fits_alone(&set), &set) {
                    self.client.put_cas(key, value, *flags, 0)?;
                } else {
                    stage.push(set);
                }
                if stage.full_count() >= PARALLEL_TXNS {
                    send(stage.take_full())?;
                }
            }
            let plan = serde_json::to_vec(&records).unwrap_or_default();
            let chunks = plan.chunks(256 * 1024);
            let count = chunks.len();
            for (n, chunk) in chunks.enumerate() {
                stage.push(TxnOp::Set {
                    key: format!("{staging_dir}plan-{n:04}"),
                    value: chunk.to_vec(),
                    flags: 0,
                });
            }
            send(stage.into_batches())?;
            Ok(count)
        };
        let plan_chunks = match staged() {
            Ok(count) => count,
            Err(e) => {
                let _ = self.client.txn(std::slice::from_ref(&cleanup));
                return Err(e);
            }
        };

        // 2. Take the push marker, on condition that nobody pushed since the read.
        let marker_key = self.prefix.reserved(PUSH_MARKER);
        let marker = MarkerInfo {
            id: id.clone(),
            node: self.node.clone(),
            time: timestamp(),
            plan_chunks,
        };
        let head_check = match head {
            Some(h) => TxnOp::CheckIndex {
                key: self.prefix.reserved(HEAD),
                index: h.modify_index,
            },
            None => TxnOp::CheckNotExists {
                key: self.prefix.reserved(HEAD),
            },
        };
        let lock = vec![
            head_check,
            TxnOp::CheckNotExists {
                key: marker_key.clone(),
            },
            TxnOp::Lock {
                key: marker_key.clone(),
                value: serde_json::to_vec(&marker).unwrap_or_default(),
                session: session.to_owned(),
            },
        ];
        if let TxnOutcome::RolledBack(errors) = self.client.txn(&lock)? {
            let _ = self.client.txn(std::slice::from_ref(&cleanup));
            return Ok(Outcome::Stale(describe(&lock, &errors)));
        }

        // 3. Apply; 4. commit.
        let items: Vec<ApplyItem> = ops
            .iter()
            .zip(expected)
            .enumerate()
            .map(|(seq, (op, written))| ApplyItem {
                path: op.path.clone(),
                cas: op.cas,
                flags: encode_flags(op.meta),
                written,
                staged_key: format!("{staging_dir}{seq:08}"),
            })
            .collect();
        let content = |item: &ApplyItem| -> Result<Vec<u8>> {
            let meta = item.written.as_ref().map_or(Meta::file(0o644), |w| w.meta);
            let value = source.content(&item.path, meta)?;
            match &item.written {
                // The file changed since it was staged: apply exactly what was staged.
                Some(w) if digest(&value) != w.digest => {
                    staged_value(self.client, &item.staged_key)
                }
                _ => Ok(value),
            }
        };
        let commit =
            self.apply_and_commit(session, &marker_key, head, items, &staging_dir, &content)?;
        Ok(Outcome::Committed(commit))
    }

    /// Steps 3 and 4 of a staged push: write the files under the marker, then commit.
    fn apply_and_commit(
        &self,
        session: &str,
        marker_key: &str,
        head: Option<&Head>,
        items: Vec<ApplyItem>,
        staging_dir: &str,
        content: &(dyn Fn(&ApplyItem) -> Result<Vec<u8>> + Sync),
    ) -> Result<Commit> {
        let guard = TxnOp::CheckSession {
            key: marker_key.to_owned(),
            session: session.to_owned(),
        };
        let renewed = Mutex::new(Instant::now());
        // Items are batched by index and their values read batch by batch, so that a large push
        // never sits in memory at once; values too large for a transaction go on their own.
        let mut big = Vec::new();
        let mut batcher: TxnBatcher<usize> = TxnBatcher::new(1, 1024);
        for (i, item) in items.iter().enumerate() {
            let value_len = item.written.as_ref().map_or(0, |w| w.size as usize);
            let size = wire_size(self.prefix.key_for(&item.path).len(), value_len);
            if batcher.fits(size) {
                batcher.push_sized(i, size);
            } else {
                big.push(i);
            }
        }
        let batches = batcher.into_batches();
        let indexes: Mutex<HashMap<usize, u64>> = Mutex::new(HashMap::new());
        let skipped: Mutex<Vec<(RelPath, String)>> = Mutex::new(Vec::new());
        run_parallel(batches, |batch: Vec<usize>| {
            self.renew_if_due(session, &renewed)?;
            let mut members = batch;
            loop {
                let mut txn = vec![guard.clone()];
                for &i in &members {
                    txn.push(items[i].txn_op(self.prefix, content)?);
                }
                match self.client.txn(&txn)? {
                    TxnOutcome::Applied(results) => {
                        let index = results.iter().map(|e| e.modify_index).max().unwrap_or(0);
                        let mut map = indexes.lock().unwrap_or_else(|p| p.into_inner());
                        for &i in &members {
                            map.insert(i, index);
                        }
                        return Ok(());
                    }
                    TxnOutcome::RolledBack(errors) => {
                        let mut dropped = false;
                        for (op_index, what) in &errors {
                            if *op_index == 0 {
                                return Err(Error::Busy(format!(
                                    "lost the push lock (session ended) while applying: {what}"
                                )));
                            }
                            if let Some(&i) = members.get(op_index - 1) {
                                skipped
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push((items[i].path.clone(), what.clone()));
                                members.remove(op_index - 1);
                                dropped = true;
                            }
                        }
                        if !dropped || members.is_empty() {
                            return Ok(());
                        }
                    }
                }
            }
        })?;
        for i in big {
            self.renew_if_due(session, &renewed)?;
            let item = &items[i];
            let value = content(item)?;
            let key = self.prefix.key_for(&item.path);
            if self.client.put_cas(&key, &value, item.flags, item.cas)? {
                let (entry, _) = self.client.get(&key, None)?;
                let index = entry.map_or(0, |e| e.modify_index);
                indexes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(i, index);
            } else {
                skipped.lock().unwrap_or_else(|p| p.into_inner()).push((
                    item.path.clone(),
                    "changed in Consul during the push".into(),
                ));
            }
        }

        let skipped = skipped.into_inner().unwrap_or_else(|p| p.into_inner());
        let indexes = indexes.into_inner().unwrap_or_else(|p| p.into_inner());
        let done: Vec<(RelPath, bool)> = items
            .iter()
            .enumerate()
            .filter(|(i, _)| indexes.contains_key(i))
            .map(|(_, item)| (item.path.clone(), item.written.is_none()))
            .collect();
        let (commit, revision) = self.commit_ops(head, &done);
        let mut txn = vec![guard.clone()];
        txn.extend(commit);
        txn.push(TxnOp::Delete {
            key: marker_key.to_owned(),
        });
        txn.push(TxnOp::DeleteTree {
            prefix: staging_dir.to_owned(),
        });
        if let TxnOutcome::RolledBack(errors) = self.client.txn(&txn)? {
            return Err(Error::Busy(format!(
                "could not commit the push: {}; the next push completes it",
                describe(&txn, &errors)
            )));
        }
        let applied = items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let index = *indexes.get(&i)?;
                Some((item.path, item.written.map(|w| Written { index, ..w })))
            })
            .collect();
        Ok(Commit {
            revision,
            applied,
            skipped,
        })
    }

    fn renew_if_due(&self, session: &str, renewed: &Mutex<Instant>) -> Result<()> {
        let mut last = renewed.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() > SESSION_TTL / 3 {
            if !self.client.renew_session(session)? {
                return Err(Error::Busy(
                    "the push session ended before the push finished".into(),
                ));
            }
            *last = Instant::now();
        }
        Ok(())
    }

    /// Completes a push whose pusher died after taking the marker, from its staged data.
    /// Paths whose key changed since (another writer) are left as they are and reported.
    pub fn repair(&self, marker: &Marker) -> Result<Commit> {
        let marker_key = self.prefix.reserved(PUSH_MARKER);
        let Some(info) = &marker.info else {
            return Err(Error::Busy(format!(
                "the push marker {marker_key} cannot be read; check it and delete it by hand"
            )));
        };
        let staging_dir = self.prefix.reserved(&format!("{STAGING}/{}/", info.id));
        let mut plan_bytes: Vec<(String, Vec<u8>)> = Vec::new();
        self.client.list(&staging_dir, |entry| {
            let name = entry.key[staging_dir.len()..].to_owned();
            if name.starts_with("plan-") {
                plan_bytes.push((name, entry.value()?));
            }
            Ok(())
        })?;
        plan_bytes.sort();
        let plan: Vec<u8> = plan_bytes.into_iter().flat_map(|(_, b)| b).collect();
        let records: Vec<PlanRecord> = serde_json::from_slice(&plan).map_err(|e| {
            Error::Busy(format!(
                "the plan of the unfinished push {} is unreadable ({e}); check {staging_dir}",
                info.id
            ))
        })?;

        let session = self
            .client
            .create_session("fileconsul repair", SESSION_TTL, "release")?;
        let result = (|| {
            let take = vec![
                TxnOp::CheckIndex {
                    key: marker_key.clone(),
                    index: marker.modify_index,
                },
                TxnOp::Lock {
                    key: marker_key.clone(),
                    value: serde_json::to_vec(info).unwrap_or_default(),
                    session: session.clone(),
                },
            ];
            if let TxnOutcome::RolledBack(e) = self.client.txn(&take)? {
                return Err(Error::Busy(format!(
                    "another process is completing the unfinished push: {}",
                    describe(&take, &e)
                )));
            }
            let current = read_tree(
                self.client,
                self.prefix,
                &Filter::everything(),
                &SyncState::default(),
                |_, _, _| Ok(()),
            )?;
            let mut items = Vec::new();
            let mut skipped = Vec::new();
            for record in records {
                let Ok(path) = RelPath::parse(&record.path) else {
                    continue;
                };
                let staged_key = format!("{staging_dir}{:08}", record.seq);
                let now = current.files.get(&path);
                let written = if record.delete {
                    None
                } else {
                    let value = staged_value(self.client, &staged_key)?;
                    Some(Written {
                        digest: digest(&value),
                        size: value.len() as u64,
                        meta: crate::layout::decode_flags(record.flags)
                            .unwrap_or(Meta::file(0o644)),
                        index: 0,
                    })
                };
                let current_index = now.map_or(0, |e| e.modify_index);
                let already = match (&written, now) {
                    (None, None) => true,
                    (Some(w), Some(e)) => e.digest == w.digest && e.meta == w.meta,
                    _ => false,
                };
                if already {
                    continue;
                }
                if current_index != record.cas {
                    skipped.push((path, "changed in Consul since the push was staged".into()));
                    continue;
                }
                items.push(ApplyItem {
                    path,
                    cas: record.cas,
                    flags: record.flags,
                    written,
                    staged_key,
                });
            }
            let content = |item: &ApplyItem| staged_value(self.client, &item.staged_key);
            let mut commit = self.apply_and_commit(
                &session,
                &marker_key,
                current.head.as_ref(),
                items,
                &staging_dir,
                &content,
            )?;
            commit.skipped.extend(skipped);
            Ok(commit)
        })();
        let _ = self.client.destroy_session(&session);
        result
    }
}

struct ApplyItem {
    path: RelPath,
    cas: u64,
    flags: u64,
    written: Option<Written>,
    staged_key: String,
}

impl ApplyItem {
    fn txn_op(
        &self,
        prefix: &Prefix,
        content: &(dyn Fn(&ApplyItem) -> Result<Vec<u8>> + Sync),
    ) -> Result<TxnOp> {
        let key = prefix.key_for(&self.path);
        Ok(match &self.written {
            None => TxnOp::DeleteCas {
                key,
                index: self.cas,
            },
            Some(_) => TxnOp::Cas {
                key,
                value: content(self)?,
                flags: self.flags,
                index: self.cas,
            },
        })
    }
}

fn staged_value(client: &Client, key: &str) -> Result<Vec<u8>> {
    match client.get(key, None)? {
        (Some(entry), _) => entry.value(),
        (None, _) => Err(Error::Busy(format!("staged value {key} is missing"))),
    }
}

/// Runs `work` on every item with a few transactions in flight at once (Consul's Raft log batches
/// concurrent writes); the first error wins.
fn run_parallel<T: Send>(items: Vec<T>, work: impl Fn(T) -> Result<()> + Sync) -> Result<()> {
    let queue = Mutex::new(items.into_iter());
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_TXNS {
            scope.spawn(|| loop {
                if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some(item) = next else { return };
                if let Err(e) = work(item) {
                    if let Ok(mut f) = failure.lock() {
                        f.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Names the operations a rolled-back transaction failed on.
fn describe(txn: &[TxnOp], errors: &[(usize, String)]) -> String {
    errors
        .iter()
        .map(|(i, what)| match txn.get(*i) {
            Some(op) => format!("{} ({what})", op.key()),
            None => what.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
