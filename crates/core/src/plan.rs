//! The three-way comparison of a path: what it is locally, what it is in Consul, and what it was
//! at the last sync. From these, [`decide`] tells which side changed: a change on one side only is
//! to be pushed or pulled; changes on both sides that differ are a conflict.
//!
//! A path the sync state does not know (first run, or new on both sides) has no common base: a
//! path on one side only is an addition on that side, and different contents are a conflict.
//! Nothing is ever deleted unless the sync state shows the path was there before.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::layout::{Meta, RelPath};
use crate::remote::RemoteEntry;
use crate::state::{Digest, StateEntry, SyncState};
use crate::tree::LocalEntry;

/// One side's version of a path: content and metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub digest: Digest,
    pub meta: Meta,
}

impl From<&LocalEntry> for Version {
    fn from(e: &LocalEntry) -> Self {
        Version {
            digest: e.digest,
            meta: e.meta,
        }
    }
}

impl From<&RemoteEntry> for Version {
    fn from(e: &RemoteEntry) -> Self {
        Version {
            digest: e.digest,
            meta: e.meta,
        }
    }
}

impl From<&StateEntry> for Version {
    fn from(e: &StateEntry) -> Self {
        Version {
            digest: e.digest,
            meta: e.meta(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Add,
    Modify,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictKind {
    /// Changed on both sides since the last sync (or, with no sync state, different on both).
    BothModified,
    /// Created on both sides with different contents.
    BothAdded,
    /// Deleted locally, changed in Consul.
    DeletedLocally,
    /// Changed locally, deleted in Consul.
    DeletedRemotely,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Both sides are the same.
    InSync,
    /// Only the local side changed.
    Push(Change),
    /// Only Consul's side changed.
    Pull(Change),
    Conflict(ConflictKind),
}

/// Decides what to do with one path from its three versions.
pub fn decide(base: Option<Version>, local: Option<Version>, remote: Option<Version>) -> Decision {
    if local == remote {
        return Decision::InSync;
    }
    let local_changed = local != base;
    let remote_changed = remote != base;
    match (local_changed, remote_changed) {
        (true, false) => Decision::Push(match (base, local) {
            (None, _) => Change::Add,
            (_, None) => Change::Delete,
            _ => Change::Modify,
        }),
        (false, true) => Decision::Pull(match (base, remote) {
            (None, _) => Change::Add,
            (_, None) => Change::Delete,
            _ => Change::Modify,
        }),
        _ => Decision::Conflict(match (base, local, remote) {
            (None, _, _) => ConflictKind::BothAdded,
            (_, None, _) => ConflictKind::DeletedLocally,
            (_, _, None) => ConflictKind::DeletedRemotely,
            _ => ConflictKind::BothModified,
        }),
    }
}

/// The decision for every path known to any of the three sides, in path order.
pub fn plan(
    state: &SyncState,
    local: &BTreeMap<RelPath, LocalEntry>,
    remote: &BTreeMap<RelPath, RemoteEntry>,
    include: impl Fn(&RelPath) -> bool,
) -> Vec<(RelPath, Decision)> {
    let mut paths: BTreeSet<RelPath> = local.keys().chain(remote.keys()).cloned().collect();
    for known in state.files.keys() {
        if let Ok(path) = RelPath::parse(known) {
            if include(&path) {
                paths.insert(path);
            }
        }
    }
    paths
        .into_iter()
        .map(|path| {
            let base = state.files.get(path.as_str()).map(Version::from);
            let decision = decide(
                base,
                local.get(&path).map(Version::from),
                remote.get(&path).map(Version::from),
            );
            (path, decision)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::digest;

    fn v(content: &str) -> Option<Version> {
        Some(Version {
            digest: digest(content.as_bytes()),
            meta: Meta::file(0o644),
        })
    }

    #[test]
    fn three_way_decisions() {
        use Change::*;
        use Decision::*;
        assert_eq!(decide(v("a"), v("a"), v("a")), InSync);
        assert_eq!(decide(v("a"), v("b"), v("a")), Push(Modify));
        assert_eq!(decide(v("a"), v("a"), v("b")), Pull(Modify));
        assert_eq!(decide(v("a"), None, v("a")), Push(Delete));
        assert_eq!(decide(v("a"), v("a"), None), Pull(Delete));
        assert_eq!(decide(None, v("a"), None), Push(Add));
        assert_eq!(decide(None, None, v("a")), Pull(Add));
        assert_eq!(
            decide(v("a"), v("b"), v("c")),
            Conflict(ConflictKind::BothModified)
        );
        assert_eq!(decide(v("a"), v("b"), v("b")), InSync);
        assert_eq!(
            decide(None, v("a"), v("b")),
            Conflict(ConflictKind::BothAdded)
        );
        assert_eq!(
            decide(v("a"), None, v("b")),
            Conflict(ConflictKind::DeletedLocally)
        );
        assert_eq!(
            decide(v("a"), v("b"), None),
            Conflict(ConflictKind::DeletedRemotely)
        );
        assert_eq!(decide(v("a"), None, None), InSync);
        // A mode change alone is a modification.
        let exec = Some(Version {
            digest: digest(b"a"),
            meta: Meta::file(0o755),
        });
        assert_eq!(decide(v("a"), exec, v("a")), Push(Modify));
    }
}
