//! Consul's side of the tree: one recursive read of `<prefix>/`, streamed, sorted into files,
//! fileconsul's bookkeeping (head, push marker) and keys that cannot be files.
//!
//! A value is decoded and hashed only when its `ModifyIndex` differs from the one in the sync
//! state; otherwise the digest recorded at the last sync is reused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::consul::{Client, KvEntry, ReadIndex};
use crate::error::Result;
use crate::filter::Filter;
use crate::layout::{decode_flags, resolve_link_target, KeyClass, Kind, Meta, Prefix, RelPath};
use crate::state::{digest, Digest, SyncState};

/// Name of the head key (`<prefix>/.fileconsul/head`), written by every push at its commit point.
pub const HEAD: &str = "head";
/// Name of the push marker, present while a multi-transaction push is being applied.
pub const PUSH_MARKER: &str = "push";
/// Directory of staged pushes (`<prefix>/.fileconsul/staging/<push id>/`).
pub const STAGING: &str = "staging";
/// Directory of per-revision change lists (`<prefix>/.fileconsul/log/<revision>`).
pub const LOG: &str = "log";
/// Directory of watcher records (`<prefix>/.fileconsul/nodes/<node>`).
pub const NODES: &str = "nodes";

/// A file or symlink as stored in Consul.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub meta: Meta,
    pub size: u64,
    pub digest: Digest,
    pub modify_index: u64,
}

/// The value of the head key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadInfo {
    pub revision: u64,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub info: HeadInfo,
    pub modify_index: u64,
}

/// The value of the push marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerInfo {
    pub id: String,
    pub node: String,
    pub time: String,
    /// Number of `plan-N` keys in the staging directory.
    pub plan_chunks: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub info: Option<MarkerInfo>,
    pub modify_index: u64,
    /// `false` when the pusher's session has ended: the push was abandoned.
    pub live: bool,
}

/// A key under the prefix that cannot be a file under the base directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadKey {
    pub key: String,
    pub reason: String,
}

/// One consistent read of the prefix.
#[derive(Debug, Default)]
pub struct RemoteTree {
    pub files: BTreeMap<RelPath, RemoteEntry>,
    pub head: Option<Head>,
    pub marker: Option<Marker>,
    pub bad_keys: Vec<BadKey>,
    pub read_index: ReadIndex,
}

impl RemoteTree {
    pub fn revision(&self) -> u64 {
        self.head.as_ref().map_or(0, |h| h.info.revision)
    }
}

/// Reads the head key alone (with `block`, as a blocking query): the head if it exists and can be
/// read, and the `X-Consul-Index` of the answer. An unreadable head counts as none.
pub fn read_head(
    client: &Client,
    prefix: &Prefix,
    block: Option<(ReadIndex, std::time::Duration)>,
) -> Result<(Option<Head>, ReadIndex)> {
    let (entry, index) = client.get(&prefix.reserved(HEAD), block)?;
    let head = match entry {
        Some(e) => serde_json::from_slice::<HeadInfo>(&e.value()?)
            .ok()
            .map(|info| Head {
                info,
                modify_index: e.modify_index,
            }),
        None => None,
    };
    Ok((head, index))
}

/// Checks an entry's flags and value and makes a [`RemoteEntry`] from it, or says why the key
/// cannot be a file. `value` is the decoded value (`None`: reuse what the state knows).
pub fn check_entry(
    path: &RelPath,
    entry: &KvEntry,
    value: Option<&[u8]>,
    known: Option<(Digest, u64)>,
) -> Result<RemoteEntry, String> {
    let meta = decode_flags(entry.flags)?;
    let (digest, size) = match value {
        Some(bytes) => {
            if meta.kind == Kind::Symlink {
                let target = std::str::from_utf8(bytes)
                    .map_err(|_| "symlink target is not UTF-8".to_owned())?;
                resolve_link_target(path, target).map_err(|why| format!("symlink {why}"))?;
            }
            (digest(bytes), bytes.len() as u64)
        }
        None => known.ok_or_else(|| "no content known".to_owned())?,
    };
    Ok(RemoteEntry {
        meta,
        size,
        digest,
        modify_index: entry.modify_index,
    })
}

/// Reads the whole prefix. `on_content` is called with the decoded value of every file whose
/// content is not already known from the sync state (new or changed in Consul); it may keep or
/// write the bytes. Bookkeeping keys other than the head and the push marker are skipped.
pub fn read_tree(
    client: &Client,
    prefix: &Prefix,
    filter: &Filter,
    state: &SyncState,
    mut on_content: impl FnMut(&RelPath, &RemoteEntry, &[u8]) -> Result<()>,
) -> Result<RemoteTree> {
    let mut tree = RemoteTree::default();
    tree.read_index = client.list(prefix.dir(), |entry| {
        match prefix.classify(&entry.key) {
            KeyClass::Folder => {}
            KeyClass::Invalid(reason) => tree.bad_keys.push(BadKey {
                key: entry.key.clone(),
                reason,
            }),
            KeyClass::Reserved(name) if name == HEAD => {
                let info = serde_json::from_slice::<HeadInfo>(&entry.value()?).ok();
                // A head that cannot be read counts as no head: nothing is deleted on its word.
                tree.head = info.map(|info| Head {
                    info,
                    modify_index: entry.modify_index,
                });
            }
            KeyClass::Reserved(name) if name == PUSH_MARKER => {
                tree.marker = Some(Marker {
                    info: serde_json::from_slice(&entry.value()?).ok(),
                    modify_index: entry.modify_index,
                    live: entry.is_locked(),
                });
            }
            KeyClass::Reserved(_) => {}
            KeyClass::File(path) => {
                if !filter.includes(&path) {
                    return Ok(());
                }
                let known = state
                    .files
                    .get(path.as_str())
                    .filter(|k| k.index == entry.modify_index)
                    .filter(|k| decode_flags(entry.flags).ok() == Some(k.meta()))
                    .map(|k| (k.digest, k.size));
                let checked = if known.is_some() {
                    check_entry(&path, &entry, None, known)
                } else {
                    let bytes = entry.value()?;
                    let checked = check_entry(&path, &entry, Some(&bytes), None);
                    if let Ok(remote) = &checked {
                        // A local failure here (a pull writing the file) ends the read.
                        on_content(&path, remote, &bytes)?;
                    }
                    checked
                };
                match checked {
                    Ok(remote) => {
                        tree.files.insert(path, remote);
                    }
                    Err(reason) => tree.bad_keys.push(BadKey {
                        key: entry.key.clone(),
                        reason,
                    }),
                }
            }
        }
        Ok(())
    })?;
    Ok(tree)
}
