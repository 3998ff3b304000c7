//! The three verbs: `status`, `push` and `pull`. Each reads the local tree, Consul's tree (one
//! recursive read) and the sync state, plans every path three-way, and for push and pull applies
//! the plan and records the new sync state. The result is a [`Report`], rendered by `output`.
//!
//! Safety rules enforced here:
//! * a read that shows a push in progress is never applied: the run waits for the push to commit
//!   (up to `Settings::wait`), and an abandoned push is an error until a push repairs it;
//! * nothing is deleted locally unless Consul's head is present and not older than the revision
//!   of the last sync, so an emptied, replaced or restored prefix never turns into mass deletion;
//! * a local file that cannot be read as a shareable file is never overwritten by a pull.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::apply::{self, Blocked, LocalWriter};
use crate::consul::{Client, ConsulConfig};
use crate::error::{Error, ExitCode, Result};
use crate::filter::Filter;
use crate::layout::{Kind, Meta, Prefix, RelPath, MAX_VALUE_SIZE};
use crate::plan::{plan, Change, ConflictKind, Decision, Version};
use crate::push::{ContentSource, Outcome, PushOp, Pusher};
use crate::remote::{read_head, read_tree, BadKey, RemoteEntry, RemoteTree, HEAD};
use crate::state::{StateDir, StateEntry, SyncState};
use crate::tree::{read_content, scan, LocalEntry, LocalTree, Refusal};

/// What every verb needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub consul: ConsulConfig,
    pub prefix: Prefix,
    pub base: PathBuf,
    /// Path patterns limiting the run (empty: everything).
    pub patterns: Vec<String>,
    /// How long to wait for another node's push in progress to commit.
    pub wait: Duration,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PathChange {
    pub path: String,
    pub change: Change,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Conflict {
    pub path: String,
    pub kind: ConflictKind,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Note {
    pub path: String,
    pub reason: String,
}

/// What a verb found and did. Empty lists are left out of the JSON output.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub dry_run: bool,
    /// Consul's tree revision after the run (0: no fileconsul head yet).
    pub revision: u64,
    /// status: changes to push; push: changes pushed (or to push, with --dry-run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub push: Vec<PathChange>,
    /// status: changes to pull; pull: changes pulled (or to pull, with --dry-run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pull: Vec<PathChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
    /// `pull --force`: where the replaced local versions were kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Note>,
    /// Local deletions not applied, with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Note>,
    /// Local paths that cannot be shared.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Note>,
    /// Keys in Consul that cannot be files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bad_keys: Vec<BadKey>,
    /// Paths whose local write or delete failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Note>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Report {
    pub(crate) fn new(command: &'static str, dry_run: bool) -> Report {
        Report {
            command,
            dry_run,
            ..Report::default()
        }
    }

    /// The exit status: local failures, then conflicts, then refused paths or keys, then (with
    /// `changes_exit_code`) pending changes.
    pub fn exit_code(&self, changes_exit_code: bool) -> ExitCode {
        if !self.failed.is_empty() {
            ExitCode::LocalIo
        } else if !self.conflicts.is_empty() {
            ExitCode::Conflict
        } else if !self.refused.is_empty() || !self.bad_keys.is_empty() {
            ExitCode::Refused
        } else if changes_exit_code && (!self.push.is_empty() || !self.pull.is_empty()) {
            ExitCode::ChangesPending
        } else {
            ExitCode::Success
        }
    }

    fn add_refusals(&mut self, refused: &[Refusal]) {
        self.refused.extend(refused.iter().map(|r| Note {
            path: r.path.clone(),
            reason: r.reason.clone(),
        }));
    }
}

pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) prefix: Prefix,
    pub(crate) base: PathBuf,
    pub(crate) filter: Filter,
    pub(crate) state_dir: StateDir,
    datacenter: Option<String>,
    wait: Duration,
}

impl Context {
    pub(crate) fn open(settings: &Settings) -> Result<Context> {
        Ok(Context {
            client: Client::new(&settings.consul)?,
            prefix: settings.prefix.clone(),
            base: settings.base.clone(),
            filter: Filter::new(&settings.base, &settings.patterns)?,
            state_dir: StateDir::new(&settings.base),
            datacenter: settings.consul.datacenter.clone(),
            wait: settings.wait,
        })
    }

    pub(crate) fn load_state(&self) -> Result<SyncState> {
        self.state_dir
            .load(self.prefix.name(), self.datacenter.as_deref())
    }

    /// Decides whether a read can be used: `Ok(true)` when no push is in progress, `Ok(false)`
    /// after waiting for a push in progress to move the head (read again), an error when the push
    /// was abandoned or did not finish within the wait.
    fn settle(&self, remote: &RemoteTree, deadline: Instant) -> Result<bool> {
        let Some(marker) = &remote.marker else {
            return Ok(true);
        };
        let who = marker
            .info
            .as_ref()
            .map(|i| format!("push {} from {} (started at {})", i.id, i.node, i.time))
            .unwrap_or_else(|| "a push".into());
        if !marker.live {
            return Err(Error::Busy(format!(
                "{who} under {} did not finish (its pusher is gone); local files are kept; \
                 the next `fileconsul push` completes it",
                self.prefix.dir()
            )));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::Busy(format!(
                "{who} under {} is still being applied; local files are kept; retry later",
                self.prefix.dir()
            )));
        }
        let head_index = remote
            .head
            .as_ref()
            .map_or(remote.read_index, |h| h.modify_index);
        self.client.get(
            &self.prefix.reserved(HEAD),
            Some((head_index.max(1), remaining.min(Duration::from_secs(60)))),
        )?;
        Ok(false)
    }
}

/// Why local deletions must not be applied, if they must not.
fn deletion_guard(state: &SyncState, remote: &RemoteTree, prefix: &Prefix) -> Option<String> {
    match (state.revision, &remote.head) {
        (None, _) => None,
        (Some(r), None) => Some(format!(
            "Consul has no fileconsul head under {} (last sync was at revision {r}): the prefix \
             was emptied or replaced outside fileconsul, so nothing is deleted",
            prefix.dir()
        )),
        (Some(r), Some(h)) if h.info.revision < r => Some(format!(
            "Consul's tree went back from revision {r} to {} (restored?), so nothing is deleted",
            h.info.revision
        )),
        _ => None,
    }
}

pub(crate) fn state_entry(remote: &RemoteEntry, mtime_ns: i64) -> StateEntry {
    StateEntry {
        digest: remote.digest,
        kind: remote.meta.kind,
        mode: remote.meta.mode,
        size: remote.size,
        mtime_ns,
        index: remote.modify_index,
    }
}

pub(crate) fn local_mtime(base: &Path, path: &RelPath) -> i64 {
    fs::symlink_metadata(base.join(path.as_str()))
        .map(|md| md.mtime().saturating_mul(1_000_000_000) + md.mtime_nsec())
        .unwrap_or(0)
}

/// Records in the state every path that is the same on both sides.
fn record_in_sync(
    state: &mut SyncState,
    planned: &[(RelPath, Decision)],
    local: &BTreeMap<RelPath, LocalEntry>,
    remote: &BTreeMap<RelPath, RemoteEntry>,
) {
    for (path, decision) in planned {
        if *decision != Decision::InSync {
            continue;
        }
        match (local.get(path), remote.get(path)) {
            (Some(l), Some(r)) => {
                state
                    .files
                    .insert(path.as_str().to_owned(), state_entry(r, l.mtime_ns));
            }
            _ => {
                state.files.remove(path.as_str());
            }
        }
    }
}

pub(crate) fn conflict(path: &RelPath, kind: ConflictKind) -> Conflict {
    Conflict {
        path: path.to_string(),
        kind,
    }
}

pub(crate) fn change(path: &RelPath, change: Change) -> PathChange {
    PathChange {
        path: path.to_string(),
        change,
    }
}

/// `fileconsul status`: what would be pushed, pulled, and what conflicts.
pub fn status(settings: &Settings) -> Result<Report> {
    let ctx = Context::open(settings)?;
    let state = ctx.load_state()?;
    let local = scan(&ctx.base, &ctx.filter, &state)?;
    let deadline = Instant::now() + ctx.wait;
    let remote = loop {
        let remote = read_tree(&ctx.client, &ctx.prefix, &ctx.filter, &state, |_, _, _| {
            Ok(())
        })?;
        if ctx.settle(&remote, deadline)? {
            break remote;
        }
    };
    let mut report = Report::new("status", false);
    report.revision = remote.revision();
    report.add_refusals(&local.refused);
    report.warnings = local.warnings.clone();
    report.bad_keys = remote.bad_keys.clone();
    let guard = deletion_guard(&state, &remote, &ctx.prefix);
    let refused: BTreeSet<&str> = local.refused.iter().map(|r| r.path.as_str()).collect();
    for (path, decision) in plan(&state, &local.files, &remote.files, |p| {
        ctx.filter.includes(p)
    }) {
        if refused.contains(path.as_str()) {
            continue;
        }
        match decision {
            Decision::InSync => {}
            Decision::Push(c) => report.push.push(change(&path, c)),
            Decision::Pull(Change::Delete) if guard.is_some() => report.held.push(Note {
                path: path.to_string(),
                reason: guard.clone().unwrap_or_default(),
            }),
            Decision::Pull(c) => report.pull.push(change(&path, c)),
            Decision::Conflict(k) => report.conflicts.push(conflict(&path, k)),
        }
    }
    Ok(report)
}

struct LocalSource<'a> {
    base: &'a Path,
}

impl ContentSource for LocalSource<'_> {
    fn content(&self, path: &RelPath, meta: Meta) -> Result<Vec<u8>> {
        let bytes = read_content(&self.base.join(path.as_str()), meta.kind)?;
        if meta.kind == Kind::File && bytes.len() as u64 > MAX_VALUE_SIZE {
            return Err(Error::Refused(format!(
                "{path}: grew to {} bytes during the push, over Consul's value limit of \
                 {MAX_VALUE_SIZE} bytes",
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}

/// Options of `push`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushOptions {
    pub dry_run: bool,
}

/// `fileconsul push`: writes local changes to Consul as one revision.
pub fn push(settings: &Settings, options: PushOptions) -> Result<Report> {
    let ctx = Context::open(settings)?;
    let _lock = ctx.state_dir.lock()?;
    let mut state = ctx.load_state()?;
    let local = scan(&ctx.base, &ctx.filter, &state)?;
    let mut report = Report::new("push", options.dry_run);
    report.warnings = local.warnings.clone();
    if !local.refused.is_empty() {
        let list = local
            .refused
            .iter()
            .map(|r| format!("  {}: {}", r.path, r.reason))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Error::Refused(format!(
            "nothing was pushed; these paths cannot be shared (fix them or list them in \
             .fileconsulignore):\n{list}"
        )));
    }
    let deadline = Instant::now() + ctx.wait;
    let mut node: Option<String> = None;
    let mut attempts = 0;
    // The first attempt skips the recursive read when nobody pushed since the last sync.
    let mut full_read = false;
    loop {
        attempts += 1;
        let known = if full_read {
            None
        } else {
            remote_as_recorded(&ctx, &state)?
        };
        let remote = match known {
            Some(remote) => remote,
            None => read_tree(&ctx.client, &ctx.prefix, &ctx.filter, &state, |_, _, _| {
                Ok(())
            })?,
        };
        full_read = true;
        if let Some(marker) = remote.marker.as_ref().filter(|m| !m.live) {
            let pusher = Pusher {
                client: &ctx.client,
                prefix: &ctx.prefix,
                node: node_name(&ctx.client, &mut node)?,
            };
            if options.dry_run {
                report
                    .warnings
                    .push("an unfinished push is in Consul; a real push completes it first".into());
            } else {
                let repaired = pusher.repair(marker)?;
                report.warnings.push(format!(
                    "completed an unfinished push as revision {} ({} paths)",
                    repaired.revision,
                    repaired.applied.len()
                ));
                continue;
            }
        } else if !ctx.settle(&remote, deadline)? {
            continue;
        }
        report.bad_keys = remote.bad_keys.clone();
        report.revision = remote.revision();
        let planned = plan(&state, &local.files, &remote.files, |p| {
            ctx.filter.includes(p)
        });
        let mut ops = Vec::new();
        report.push.clear();
        report.conflicts.clear();
        for (path, decision) in &planned {
            match decision {
                Decision::Push(c) => {
                    let meta = local.files.get(path).map_or(Meta::file(0o644), |l| l.meta);
                    let cas = remote.files.get(path).map_or(0, |r| r.modify_index);
                    ops.push(PushOp {
                        path: path.clone(),
                        change: *c,
                        meta,
                        cas,
                    });
                    report.push.push(change(path, *c));
                }
                Decision::Conflict(k) => report.conflicts.push(conflict(path, *k)),
                Decision::InSync | Decision::Pull(_) => {}
            }
        }
        if options.dry_run {
            return Ok(report);
        }
        record_in_sync(&mut state, &planned, &local.files, &remote.files);
        if ops.is_empty() {
            if deletion_guard(&state, &remote, &ctx.prefix).is_none() && remote.head.is_some() {
                state.revision = state.revision.max(Some(remote.revision()));
            }
            ctx.state_dir.save(&mut state)?;
            return Ok(report);
        }
        let pusher = Pusher {
            client: &ctx.client,
            prefix: &ctx.prefix,
            node: node_name(&ctx.client, &mut node)?,
        };
        match pusher.push(remote.head.as_ref(), &ops, &LocalSource { base: &ctx.base })? {
            Outcome::Stale(why) => {
                if attempts >= 5 {
                    return Err(Error::Busy(format!(
                        "Consul's tree kept changing during the push ({why}); nothing of it was \
                         written; retry"
                    )));
                }
                continue;
            }
            Outcome::Committed(commit) => {
                report.revision = commit.revision;
                let skipped: BTreeSet<&RelPath> = commit.skipped.iter().map(|(p, _)| p).collect();
                report
                    .push
                    .retain(|c| !skipped.iter().any(|p| p.as_str() == c.path));
                for (path, why) in &commit.skipped {
                    report
                        .conflicts
                        .push(conflict(path, ConflictKind::BothModified));
                    report.warnings.push(format!("{path}: not pushed, {why}"));
                }
                for (path, written) in commit.applied {
                    match written {
                        None => {
                            state.files.remove(path.as_str());
                        }
                        Some(w) => {
                            let mtime = local.files.get(&path).map_or(0, |l| l.mtime_ns);
                            state.files.insert(
                                path.as_str().to_owned(),
                                StateEntry {
                                    digest: w.digest,
                                    kind: w.meta.kind,
                                    mode: w.meta.mode,
                                    size: w.size,
                                    mtime_ns: mtime,
                                    index: w.index,
                                },
                            );
                        }
                    }
                }
                if deletion_guard(&state, &remote, &ctx.prefix).is_none() {
                    state.revision = Some(commit.revision);
                }
                ctx.state_dir.save(&mut state)?;
                return Ok(report);
            }
        }
    }
}

/// Consul's tree as the sync state recorded it, when the head shows that no push happened since
/// the last sync (`None` otherwise). A push planned on it costs one small read instead of a read
/// of the whole prefix. It is safe: every write is conditional on the recorded `ModifyIndex`, so a
/// key another tool changed fails the transaction, and the push then reads everything.
fn remote_as_recorded(ctx: &Context, state: &SyncState) -> Result<Option<RemoteTree>> {
    let Some(revision) = state.revision else {
        return Ok(None);
    };
    let (Some(head), index) = read_head(&ctx.client, &ctx.prefix, None)? else {
        return Ok(None);
    };
    if head.info.revision != revision {
        return Ok(None);
    }
    let mut tree = RemoteTree {
        head: Some(head),
        read_index: index,
        ..RemoteTree::default()
    };
    for (path, known) in &state.files {
        let Ok(path) = RelPath::parse(path) else {
            continue;
        };
        if ctx.filter.includes(&path) {
            let remote = RemoteEntry {
                meta: known.meta(),
                size: known.size,
                digest: known.digest,
                modify_index: known.index,
            };
            tree.files.insert(path, remote);
        }
    }
    Ok(Some(tree))
}

fn node_name(client: &Client, cache: &mut Option<String>) -> Result<String> {
    if let Some(name) = cache {
        return Ok(name.clone());
    }
    let name = client.node_name()?;
    *cache = Some(name.clone());
    Ok(name)
}

/// Options of `pull`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullOptions {
    pub dry_run: bool,
    /// Take Consul's version of conflicting paths, keeping a copy of the local one.
    pub force: bool,
}

/// `fileconsul pull`: applies Consul's changes to the local tree.
pub fn pull(settings: &Settings, options: PullOptions) -> Result<Report> {
    let ctx = Context::open(settings)?;
    let _lock = ctx.state_dir.lock()?;
    let state = ctx.load_state()?;
    let local = scan(&ctx.base, &ctx.filter, &state)?;
    pull_with(&ctx, state, local, options)
}

pub(crate) fn pull_with(
    ctx: &Context,
    mut state: SyncState,
    local: LocalTree,
    options: PullOptions,
) -> Result<Report> {
    let mut report = Report::new("pull", options.dry_run);
    report.warnings = local.warnings.clone();
    let refused: BTreeSet<String> = local.refused.iter().map(|r| r.path.clone()).collect();
    let deadline = Instant::now() + ctx.wait;
    let (remote, writer, deferred) = loop {
        let mut writer = LocalWriter::new(&ctx.base);
        let mut deferred: Vec<(RelPath, Meta, Vec<u8>)> = Vec::new();
        let remote = read_tree(
            &ctx.client,
            &ctx.prefix,
            &ctx.filter,
            &state,
            |path, entry, bytes| {
                if options.dry_run || refused.contains(path.as_str()) {
                    return Ok(());
                }
                let decision = crate::plan::decide(
                    state.files.get(path.as_str()).map(Version::from),
                    local.files.get(path).map(Version::from),
                    Some(Version::from(entry)),
                );
                let wanted = matches!(decision, Decision::Pull(_))
                    || (options.force && matches!(decision, Decision::Conflict(_)));
                if !wanted {
                    return Ok(());
                }
                match writer.stage(path, entry.meta, bytes) {
                    Ok(()) => Ok(()),
                    // The parent may be a file this pull deletes: try again after the deletes.
                    Err(Blocked::Parent(_)) => {
                        deferred.push((path.clone(), entry.meta, bytes.to_vec()));
                        Ok(())
                    }
                    Err(Blocked::Io(e)) => Err(e),
                }
            },
        )?;
        if ctx.settle(&remote, deadline)? {
            break (remote, writer, deferred);
        }
    };
    report.revision = remote.revision();
    report.bad_keys = remote.bad_keys.clone();
    report.add_refusals(&local.refused);
    let guard = deletion_guard(&state, &remote, &ctx.prefix);
    let planned = plan(&state, &local.files, &remote.files, |p| {
        ctx.filter.includes(p)
    });
    apply_plan(
        ctx,
        &mut state,
        Apply {
            planned: &planned,
            local: &local.files,
            remote: &remote.files,
            guard: guard.as_deref(),
            refused: &refused,
        },
        writer,
        deferred,
        options,
        &mut report,
    );
    if options.dry_run {
        return Ok(report);
    }
    if guard.is_none() && remote.head.is_some() {
        state.revision = Some(remote.revision());
    }
    ctx.state_dir.save(&mut state)?;
    Ok(report)
}

/// What a pull applies: the decision for each path and the versions it was made from.
pub(crate) struct Apply<'a> {
    pub(crate) planned: &'a [(RelPath, Decision)],
    pub(crate) local: &'a BTreeMap<RelPath, LocalEntry>,
    pub(crate) remote: &'a BTreeMap<RelPath, RemoteEntry>,
    /// Why local deletions must be held back, if they must.
    pub(crate) guard: Option<&'a str>,
    /// Local paths that cannot be shared: never overwritten.
    pub(crate) refused: &'a BTreeSet<String>,
}

/// Applies pull decisions locally, shared by `pull` and `watch`: deletions (and, with `force`,
/// local versions moved aside) first, then the files staged in `writer` are renamed in, then the
/// `deferred` ones (whose parent was in the way until the deletions). Records in `state` what is
/// now the same on both sides and lists in `report` what was pulled, kept, held or failed.
pub(crate) fn apply_plan(
    ctx: &Context,
    state: &mut SyncState,
    apply: Apply<'_>,
    writer: LocalWriter,
    deferred: Vec<(RelPath, Meta, Vec<u8>)>,
    options: PullOptions,
    report: &mut Report,
) {
    let stamp = crate::state::now_ns().to_string();

    // Deletions (and local versions moved aside) first, then the staged files are renamed in.
    let mut pulled: BTreeMap<RelPath, Change> = BTreeMap::new();
    for (path, decision) in apply.planned {
        if apply.refused.contains(path.as_str()) {
            continue;
        }
        match decision {
            Decision::Pull(Change::Delete) => {
                if let Some(reason) = apply.guard {
                    report.held.push(Note {
                        path: path.to_string(),
                        reason: reason.to_owned(),
                    });
                } else if options.dry_run {
                    pulled.insert(path.clone(), Change::Delete);
                } else {
                    match apply::delete(&ctx.base, path) {
                        Ok(()) => {
                            pulled.insert(path.clone(), Change::Delete);
                        }
                        Err(e) => report.failed.push(Note {
                            path: path.to_string(),
                            reason: e.to_string(),
                        }),
                    }
                }
            }
            Decision::Pull(c) => {
                pulled.insert(path.clone(), *c);
            }
            Decision::Conflict(kind) if options.force && !options.dry_run => {
                let copy = ctx.state_dir.conflict_copy(&stamp, path.as_str());
                if let Err(e) = apply::keep_copy(&ctx.base, path, &copy) {
                    report.failed.push(Note {
                        path: path.to_string(),
                        reason: format!("could not keep a copy, left alone: {e}"),
                    });
                    continue;
                }
                report.kept.push(Note {
                    path: path.to_string(),
                    reason: copy.display().to_string(),
                });
                if *kind == ConflictKind::DeletedRemotely {
                    if let Err(e) = apply::delete(&ctx.base, path) {
                        report.failed.push(Note {
                            path: path.to_string(),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                    pulled.insert(path.clone(), Change::Delete);
                } else {
                    pulled.insert(path.clone(), Change::Modify);
                }
            }
            Decision::Conflict(kind) => report.conflicts.push(conflict(path, *kind)),
            Decision::InSync | Decision::Push(_) => {}
        }
    }
    if options.dry_run {
        report.pull = pulled.iter().map(|(p, c)| change(p, *c)).collect();
        return;
    }
    let (mut written, mut failed) = writer.commit();
    if !deferred.is_empty() {
        let mut retry = LocalWriter::new(&ctx.base);
        for (path, meta, bytes) in deferred {
            match retry.stage(&path, meta, &bytes) {
                Ok(()) => {}
                Err(Blocked::Parent(why)) => failed.push((
                    path.clone(),
                    Error::Refused(format!("{path}: not written, {why}")),
                )),
                Err(Blocked::Io(e)) => failed.push((path, e)),
            }
        }
        let (more, more_failed) = retry.commit();
        written.extend(more);
        failed.extend(more_failed);
    }
    let written: BTreeSet<RelPath> = written.into_iter().collect();
    for (path, e) in failed {
        pulled.remove(&path);
        report.failed.push(Note {
            path: path.to_string(),
            reason: e.to_string(),
        });
    }
    // Record what is now the same on both sides.
    record_in_sync(state, apply.planned, apply.local, apply.remote);
    for (path, c) in &pulled {
        if *c == Change::Delete {
            state.files.remove(path.as_str());
        } else if let Some(r) = apply.remote.get(path) {
            if written.contains(path) {
                let mtime = local_mtime(&ctx.base, path);
                state
                    .files
                    .insert(path.as_str().to_owned(), state_entry(r, mtime));
            }
        }
    }
    report.pull = pulled
        .iter()
        .filter(|(p, c)| **c == Change::Delete || written.contains(*p))
        .map(|(p, c)| change(p, *c))
        .collect();
}
