//! `fileconsul watch`: a long-running process that keeps the base directory in sync.
//!
//! It pulls once, then blocks on the head key (`.fileconsul/head`), which moves only when a push
//! commits. On each move it reads the change lists of the revisions it missed
//! (`.fileconsul/log/<rev>`) and fetches only the keys they name, in transactions guarded by
//! `check-index` on the head and `check-not-exists` on the push marker, so it applies whole pushes
//! and reads bytes in proportion to the change, not the tree. When the change lists do not cover
//! the gap (a watcher away for long, a foreign write, a reset index), it falls back to a full pull
//! with all of pull's safety rules.
//!
//! Blocking-query rules from Consul's documentation are kept: the index is reset when it goes
//! backwards, a query never blocks on index 0, wake-ups that bring no change are rate-limited
//! (token bucket: a burst of 3, then one every 2 s), the read
//! timeout covers the wait plus Consul's jitter, and errors back off exponentially with jitter.
//!
//! Each watcher records its node, base path and applied revision under `.fileconsul/nodes/`,
//! locked by a Consul session whose behaviour is `delete`, so the record of a watcher that dies
//! disappears when its session ends (see `fileconsul nodes`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::apply::{Blocked, LocalWriter};
use crate::consul::{Client, TxnOp, TxnOutcome};
use crate::error::{Error, Result};
use crate::layout::{KeyClass, Prefix, RelPath};
use crate::plan::{decide, Decision, Version};
use crate::push::{log_key, LogEntry};
use crate::remote::{check_entry, read_head, HeadInfo, HEAD, LOG, NODES, PUSH_MARKER};
use crate::state::{digest, now_ns, to_hex};
use crate::sync::{self, Context, PathChange, PullOptions, Report, Settings};
use crate::tree::{scan, scan_paths};

/// Options of `watch`.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Shell command run after each applied change (`sh -c`).
    pub exec: Option<String>,
    /// Upper bound of the random delay before the command runs.
    pub splay: Duration,
    /// Take Consul's version of conflicting files (as `pull --force`).
    pub force: bool,
    /// Log JSON Lines events instead of text.
    pub json_logs: bool,
    /// How long one blocking query waits (Consul caps it at 10 minutes).
    pub block: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            exec: None,
            splay: Duration::ZERO,
            force: false,
            json_logs: false,
            block: Duration::from_secs(300),
        }
    }
}

/// Logs to stderr, as text or as JSON Lines.
#[derive(Clone)]
pub struct Log {
    json: bool,
}

impl Log {
    pub fn new(json: bool) -> Log {
        Log { json }
    }

    pub fn event(&self, event: &str, fields: serde_json::Value) {
        let stderr = std::io::stderr();
        let mut out = stderr.lock();
        if self.json {
            let mut object = serde_json::Map::new();
            object.insert("ts".into(), serde_json::json!(now_ns() as f64 / 1e9));
            object.insert("event".into(), serde_json::json!(event));
            if let serde_json::Value::Object(map) = fields {
                object.extend(map);
            }
            let _ = writeln!(out, "{}", serde_json::Value::Object(object));
        } else {
            let mut line = format!("fileconsul watch: {event}");
            if let serde_json::Value::Object(map) = fields {
                for (k, v) in map {
                    match v {
                        serde_json::Value::String(s) => line.push_str(&format!(" {k}={s}")),
                        other => line.push_str(&format!(" {k}={other}")),
                    }
                }
            }
            let _ = writeln!(out, "{line}");
        }
    }
}

/// A small xorshift generator for jitter and splay (no need for cryptographic randomness).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        Jitter(((now_ns() as u64) ^ (u64::from(std::process::id()) << 32)) | 1)
    }
    fn below(&mut self, bound: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if bound.is_zero() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.0 % bound.as_nanos().max(1) as u64)
    }
}

/// Token bucket for wake-ups: bursts of `capacity`, then `rate` per second.
struct Bucket {
    tokens: f64,
    capacity: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(capacity: f64, rate: f64) -> Bucket {
        Bucket {
            tokens: capacity,
            capacity,
            rate,
            last: Instant::now(),
        }
    }
    /// How long to wait before the next wake-up may proceed.
    fn take(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Duration::ZERO
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            self.tokens = 0.0;
            Duration::from_secs_f64(wait)
        }
    }
}

/// Shared between the watch loop and the thread that waits for SIGINT/SIGTERM.
#[derive(Default)]
pub struct Stop {
    requested: AtomicBool,
    /// Held while files are being applied; a stop waits for it.
    applying: Mutex<()>,
    /// Run once when the stop is requested (ending the registry's session).
    hooks: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl Stop {
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Asks the loop to stop and waits until no apply is in progress.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        drop(self.applying.lock().unwrap_or_else(|p| p.into_inner()));
        let hooks = std::mem::take(&mut *self.hooks.lock().unwrap_or_else(|p| p.into_inner()));
        for hook in hooks {
            hook();
        }
    }

    fn on_stop(&self, hook: impl FnOnce() + Send + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(hook));
    }

    fn sleep(&self, duration: Duration) {
        let until = Instant::now() + duration;
        while !self.requested() && Instant::now() < until {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
    }
}

/// A watcher's record under `.fileconsul/nodes/`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeRecord {
    pub node: String,
    pub basepath: String,
    pub revision: u64,
    /// Unix seconds of the last applied revision.
    pub applied_at: u64,
    pub pid: u32,
}

fn unix_secs() -> u64 {
    (now_ns() / 1_000_000_000) as u64
}

/// The watcher's record, kept alive by a session renewed in the background.
struct Registry {
    client: Client,
    key: String,
    session: Arc<Mutex<Option<String>>>,
    record: Arc<Mutex<NodeRecord>>,
    log: Log,
}

const SESSION_TTL: Duration = Duration::from_secs(10);

impl Registry {
    fn start(
        client: &Client,
        prefix: &Prefix,
        record: NodeRecord,
        log: &Log,
        stop: Arc<Stop>,
    ) -> Registry {
        let id = &to_hex(&digest(record.basepath.as_bytes()))[..12];
        let registry = Registry {
            client: client.clone(),
            key: prefix.reserved(&format!("{NODES}/{}/{id}", record.node)),
            session: Arc::new(Mutex::new(None)),
            record: Arc::new(Mutex::new(record)),
            log: log.clone(),
        };
        {
            let (client, session) = (registry.client.clone(), registry.session.clone());
            stop.on_stop(move || close_session(&client, &session));
        }
        let (client, session, record, key, log) = (
            registry.client.clone(),
            registry.session.clone(),
            registry.record.clone(),
            registry.key.clone(),
            registry.log.clone(),
        );
        std::thread::spawn(move || {
            while !stop.requested() {
                if let Err(e) = renew(&client, &key, &session, &record) {
                    log.event(
                        "registry-error",
                        serde_json::json!({"error": e.to_string()}),
                    );
                }
                stop.sleep(SESSION_TTL / 3);
            }
        });
        registry
    }

    fn applied(&self, revision: u64) {
        {
            let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
            record.revision = revision;
            record.applied_at = unix_secs();
        }
        if let Err(e) = write_record(&self.client, &self.key, &self.session, &self.record) {
            self.log.event(
                "registry-error",
                serde_json::json!({"error": e.to_string()}),
            );
        }
    }

    /// Removes the record at once (on a clean stop) by ending the session.
    fn close(&self) {
        close_session(&self.client, &self.session);
    }
}

fn close_session(client: &Client, session: &Mutex<Option<String>>) {
    if let Some(id) = session.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = client.destroy_session(&id);
    }
}

fn renew(
    client: &Client,
    key: &str,
    session: &Mutex<Option<String>>,
    record: &Mutex<NodeRecord>,
) -> Result<()> {
    let current = session.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match current {
        Some(id) if client.renew_session(&id)? => Ok(()),
        _ => {
            // No session yet, or it ended (agent restart, network partition): start over.
            *session.lock().unwrap_or_else(|p| p.into_inner()) = None;
            write_record(client, key, session, record)
        }
    }
}

fn write_record(
    client: &Client,
    key: &str,
    session: &Mutex<Option<String>>,
    record: &Mutex<NodeRecord>,
) -> Result<()> {
    let mut guard = session.lock().unwrap_or_else(|p| p.into_inner());
    let id = match guard.as_ref() {
        Some(id) => id.clone(),
        None => {
            let id = client.create_session("fileconsul watch", SESSION_TTL, "delete")?;
            *guard = Some(id.clone());
            id
        }
    };
    let value =
        serde_json::to_vec(&*record.lock().unwrap_or_else(|p| p.into_inner())).unwrap_or_default();
    let op = TxnOp::Lock {
        key: key.to_owned(),
        value,
        session: id,
    };
    match client.txn(&[op])? {
        TxnOutcome::Applied(_) => Ok(()),
        TxnOutcome::RolledBack(errors) => {
            *guard = None;
            Err(Error::Busy(format!(
                "could not record this watcher at {key}: {errors:?}"
            )))
        }
    }
}

/// Runs `--exec` after changes, in its own thread: changes that arrive while the command runs (or
/// during the splay) are merged into the next run.
struct Exec {
    tx: Sender<(u64, Vec<String>)>,
}

impl Exec {
    fn start(command: String, splay: Duration, log: Log, settings: &Settings) -> Exec {
        let (tx, rx) = mpsc::channel::<(u64, Vec<String>)>();
        let prefix = settings.prefix.name().to_owned();
        let base = settings.base.display().to_string();
        std::thread::spawn(move || exec_loop(rx, &command, splay, &log, &prefix, &base));
        Exec { tx }
    }
}

fn exec_loop(
    rx: Receiver<(u64, Vec<String>)>,
    command: &str,
    splay: Duration,
    log: &Log,
    prefix: &str,
    base: &str,
) {
    let mut jitter = Jitter::new();
    while let Ok((mut revision, first)) = rx.recv() {
        let mut paths: BTreeMap<String, ()> = first.into_iter().map(|p| (p, ())).collect();
        let deadline = Instant::now() + jitter.below(splay);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((r, more)) => {
                    revision = r;
                    paths.extend(more.into_iter().map(|p| (p, ())));
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        while let Ok((r, more)) = rx.try_recv() {
            revision = r;
            paths.extend(more.into_iter().map(|p| (p, ())));
        }
        let list: Vec<String> = paths.into_keys().collect();
        let started = Instant::now();
        let child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("FILECONSUL_REVISION", revision.to_string())
            .env("FILECONSUL_PREFIX", prefix)
            .env("FILECONSUL_BASEPATH", base)
            .env("FILECONSUL_CHANGED_COUNT", list.len().to_string())
            .stdin(Stdio::piped())
            .spawn();
        let status = child.and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                let mut text = list.join("\n");
                text.push('\n');
                let _ = stdin.write_all(text.as_bytes());
            }
            child.wait()
        });
        match status {
            Ok(s) if s.success() => log.event(
                "exec",
                serde_json::json!({"revision": revision, "paths": list.len(), "status": 0,
                                   "ms": started.elapsed().as_millis() as u64}),
            ),
            Ok(s) => log.event(
                "exec-failed",
                serde_json::json!({"revision": revision, "status": s.code(),
                                   "error": format!("command exited with {s}")}),
            ),
            Err(e) => log.event(
                "exec-failed",
                serde_json::json!({"revision": revision, "error": e.to_string()}),
            ),
        }
    }
}

/// What one incremental step found.
enum Step {
    /// Applied revisions up to this one.
    Applied(u64, Box<Report>),
    /// Nothing to do.
    Nothing,
    /// A push is in progress: wait for the head to move again.
    Wait,
    /// The change lists do not cover the gap: do a full pull.
    Full(String),
}

/// The most `get` operations a fetch transaction carries (plus two checks).
const GETS_PER_TXN: usize = 62;

/// Applies the revisions after the state's one up to `head`, fetching only the keys they changed.
fn incremental(ctx: &Context, head: &HeadInfo, head_index: u64, force: bool) -> Result<Step> {
    let mut state = ctx.load_state()?;
    let Some(held) = state.revision else {
        return Ok(Step::Full("no sync state yet".into()));
    };
    if head.revision < held {
        return Ok(Step::Full(format!(
            "revision went back from {held} to {}",
            head.revision
        )));
    }
    if head.revision == held {
        return Ok(Step::Nothing);
    }
    if head.revision - held > GETS_PER_TXN as u64 {
        return Ok(Step::Full(format!(
            "{} revisions behind",
            head.revision - held
        )));
    }
    let head_key = ctx.prefix.reserved(HEAD);
    let marker_key = ctx.prefix.reserved(PUSH_MARKER);
    let guard = [
        TxnOp::CheckIndex {
            key: head_key.clone(),
            index: head_index,
        },
        TxnOp::CheckNotExists {
            key: marker_key.clone(),
        },
    ];
    // 1. The change lists of the missed revisions.
    let mut txn = guard.to_vec();
    for revision in held + 1..=head.revision {
        txn.push(TxnOp::Get {
            key: log_key(&ctx.prefix, revision),
        });
    }
    let logs = match ctx.client.txn(&txn)? {
        TxnOutcome::Applied(entries) => entries,
        TxnOutcome::RolledBack(errors) => return Ok(rolled_back(&errors)),
    };
    let mut net: BTreeMap<String, bool> = BTreeMap::new();
    // The checks return their entries too (with no value): keep the change lists only.
    let log_dir = ctx.prefix.reserved(&format!("{LOG}/"));
    for entry in logs.iter().filter(|e| e.key.starts_with(&log_dir)) {
        let log: LogEntry =
            serde_json::from_slice(&entry.value()?).map_err(|e| Error::Protocol {
                what: entry.key.clone(),
                detail: e.to_string(),
            })?;
        if log.full {
            return Ok(Step::Full(format!(
                "revision {} changed too much to list",
                log.revision
            )));
        }
        for path in log.set {
            net.insert(path, true);
        }
        for path in log.delete {
            net.insert(path, false);
        }
    }
    let mut changed: BTreeMap<RelPath, bool> = BTreeMap::new();
    for (path, set) in net {
        match RelPath::parse(&path) {
            Ok(p) if ctx.filter.includes(&p) => {
                changed.insert(p, set);
            }
            Ok(_) => {}
            Err(why) => return Ok(Step::Full(format!("change list names {path:?}: {why}"))),
        }
    }

    // 2. The changed keys, under the same guard, staged as they arrive.
    let local = scan_paths(&ctx.base, changed.keys(), &state)?;
    let mut writer = LocalWriter::new(&ctx.base);
    let mut deferred = Vec::new();
    let mut remote = BTreeMap::new();
    let sets: Vec<&RelPath> = changed
        .iter()
        .filter(|(_, set)| **set)
        .map(|(p, _)| p)
        .collect();
    let mut report = Report::new("watch", false);
    for chunk in sets.chunks(GETS_PER_TXN) {
        let mut txn = guard.to_vec();
        txn.extend(chunk.iter().map(|p| TxnOp::Get {
            key: ctx.prefix.key_for(p),
        }));
        let entries = match ctx.client.txn(&txn)? {
            TxnOutcome::Applied(entries) => entries,
            TxnOutcome::RolledBack(errors) => return Ok(rolled_back(&errors)),
        };
        for entry in entries {
            let KeyClass::File(path) = ctx.prefix.classify(&entry.key) else {
                continue;
            };
            let bytes = entry.value()?;
            let r = match check_entry(&path, &entry, Some(&bytes), None) {
                Ok(r) => r,
                Err(why) => return Ok(Step::Full(format!("key {}: {why}", entry.key))),
            };
            let decision = decide(
                state.files.get(path.as_str()).map(Version::from),
                local.files.get(&path).map(Version::from),
                Some(Version::from(&r)),
            );
            if matches!(decision, Decision::Pull(_))
                || (force && matches!(decision, Decision::Conflict(_)))
            {
                match writer.stage(&path, r.meta, &bytes) {
                    Ok(()) => {}
                    // The parent may be a file this change deletes: try again after deletions.
                    Err(Blocked::Parent(_)) => deferred.push((path.clone(), r.meta, bytes.clone())),
                    Err(Blocked::Io(e)) => return Err(e),
                }
            }
            remote.insert(path, r);
        }
    }

    // 3. Apply with pull's rules; record the new state.
    let planned: Vec<(RelPath, Decision)> = changed
        .keys()
        .map(|path| {
            let decision = decide(
                state.files.get(path.as_str()).map(Version::from),
                local.files.get(path).map(Version::from),
                remote.get(path).map(Version::from),
            );
            (path.clone(), decision)
        })
        .collect();
    sync::apply_plan(
        ctx,
        &mut state,
        sync::Apply {
            planned: &planned,
            local: &local.files,
            remote: &remote,
            guard: None,
            refused: &BTreeSet::new(),
        },
        writer,
        deferred,
        PullOptions {
            dry_run: false,
            force,
        },
        &mut report,
    );
    report.revision = head.revision;
    state.revision = Some(head.revision);
    ctx.state_dir.save(&mut state)?;
    Ok(Step::Applied(head.revision, Box::new(report)))
}

fn rolled_back(errors: &[(usize, String)]) -> Step {
    match errors.first().map(|(i, _)| *i) {
        // The head moved again: the next blocking query returns at once.
        Some(0) => Step::Wait,
        // A push is being applied: its commit will move the head.
        Some(1) => Step::Wait,
        // A change list was pruned, or a key was deleted by another writer.
        _ => Step::Full(
            errors
                .first()
                .map_or("transaction failed", |(_, w)| w.as_str())
                .to_owned(),
        ),
    }
}

fn paths_of(changes: &[PathChange]) -> Vec<String> {
    changes.iter().map(|c| c.path.clone()).collect()
}

/// Runs the watch until `stop` is requested. Errors from Consul are logged and retried; only
/// errors that retrying cannot fix (bad settings, the local directory) end the watch.
pub fn watch(settings: &Settings, options: &WatchOptions, stop: Arc<Stop>) -> Result<()> {
    let log = Log::new(options.json_logs);
    let ctx = Context::open(settings)?;
    let exec = options
        .exec
        .clone()
        .map(|cmd| Exec::start(cmd, options.splay, log.clone(), settings));
    let mut jitter = Jitter::new();
    let mut backoff = Duration::from_millis(250);
    // Wake-ups that brought no change (a timed-out or spurious return) are rate-limited; a moved
    // head is applied at once, since pushes already bound how often that happens.
    let mut bucket = Bucket::new(3.0, 0.5);
    let mut idle_wakeup = false;
    let mut index: u64 = 0;
    let mut need_full = true;
    let mut registry: Option<Registry> = None;
    let basepath = std::fs::canonicalize(&settings.base)
        .unwrap_or_else(|_| settings.base.clone())
        .display()
        .to_string();
    log.event(
        "started",
        serde_json::json!({"prefix": ctx.prefix.name(), "basepath": basepath, "agent": ctx.client.address()}),
    );

    while !stop.requested() {
        let result = (|| -> Result<()> {
            if registry.is_none() {
                let node = ctx.client.node_name()?;
                let record = NodeRecord {
                    node,
                    basepath: basepath.clone(),
                    revision: ctx.load_state()?.revision.unwrap_or(0),
                    applied_at: unix_secs(),
                    pid: std::process::id(),
                };
                registry = Some(Registry::start(
                    &ctx.client,
                    &ctx.prefix,
                    record,
                    &log,
                    stop.clone(),
                ));
            }
            let mut applied: Option<(u64, Report)> = None;
            if need_full {
                let (_, head_index) = read_head(&ctx.client, &ctx.prefix, None)?;
                let guard = stop.applying.lock().unwrap_or_else(|p| p.into_inner());
                if stop.requested() {
                    return Ok(());
                }
                // The base directory's lock is held only while applying, so that `push` and
                // `pull` can run on a node that runs a watcher.
                let _lock = ctx.state_dir.lock()?;
                let started = Instant::now();
                let state = ctx.load_state()?;
                let local = scan(&ctx.base, &ctx.filter, &state)?;
                let options = PullOptions {
                    dry_run: false,
                    force: options.force,
                };
                let report = sync::pull_with(&ctx, state, local, options)?;
                drop(guard);
                need_full = false;
                index = head_index;
                log_report(&log, "full", &report, started, ctx.client.bytes_read());
                applied = Some((report.revision, report));
            } else {
                if idle_wakeup {
                    let wait = bucket.take();
                    if !wait.is_zero() {
                        stop.sleep(wait);
                    }
                }
                let (head, new_index) = read_head(
                    &ctx.client,
                    &ctx.prefix,
                    Some((index.max(1), options.block)),
                )?;
                if stop.requested() {
                    return Ok(());
                }
                if new_index < index || new_index == 0 {
                    log.event(
                        "index-reset",
                        serde_json::json!({"from": index, "to": new_index}),
                    );
                    index = 0;
                    need_full = true;
                    return Ok(());
                }
                idle_wakeup = new_index == index;
                if idle_wakeup {
                    return Ok(());
                }
                index = new_index;
                let Some(head) = head else {
                    need_full = true;
                    return Ok(());
                };
                let guard = stop.applying.lock().unwrap_or_else(|p| p.into_inner());
                if stop.requested() {
                    return Ok(());
                }
                let started = Instant::now();
                let lock = ctx.state_dir.lock()?;
                let step = incremental(&ctx, &head.info, index, options.force)?;
                drop(lock);
                match step {
                    Step::Applied(revision, report) => {
                        drop(guard);
                        log_report(&log, "applied", &report, started, ctx.client.bytes_read());
                        applied = Some((revision, *report));
                    }
                    Step::Nothing => {}
                    Step::Wait => log.event(
                        "waiting",
                        serde_json::json!({"reason": "a push is being applied"}),
                    ),
                    Step::Full(reason) => {
                        log.event("full-read", serde_json::json!({"reason": reason}));
                        need_full = true;
                    }
                }
            }
            if let Some((revision, report)) = applied {
                if let Some(r) = &registry {
                    r.applied(revision);
                }
                if let (Some(exec), false) = (&exec, report.pull.is_empty()) {
                    let _ = exec.tx.send((revision, paths_of(&report.pull)));
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(e) => {
                // Settings and local filesystem errors do not heal by waiting.
                if matches!(e, Error::Config(_) | Error::Io { .. }) {
                    if let Some(r) = &registry {
                        r.close();
                    }
                    return Err(e);
                }
                let delay = backoff + jitter.below(backoff);
                log.event(
                    "error",
                    serde_json::json!({"error": e.to_string(), "retry_ms": delay.as_millis() as u64}),
                );
                stop.sleep(delay);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                need_full = need_full || matches!(e, Error::Busy(_));
            }
        }
    }
    if let Some(r) = &registry {
        r.close();
    }
    log.event("stopped", serde_json::json!({}));
    Ok(())
}

fn log_report(log: &Log, how: &str, report: &Report, started: Instant, bytes_read: u64) {
    let fields = serde_json::json!({
        "bytes_read": bytes_read,
        "how": how,
        "revision": report.revision,
        "changed": report.pull.len(),
        "conflicts": report.conflicts.iter().map(|c| c.path.clone()).collect::<Vec<_>>(),
        "failed": report.failed.iter().map(|n| format!("{}: {}", n.path, n.reason)).collect::<Vec<_>>(),
        "bad_keys": report.bad_keys.iter().map(|k| k.key.clone()).collect::<Vec<_>>(),
        "ms": started.elapsed().as_secs_f64() * 1000.0,
    });
    if !report.pull.is_empty() || how == "full" || !report.conflicts.is_empty() {
        log.event("applied", fields);
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it starts), runs `watch` in a
/// thread, and stops it cleanly when a signal arrives: the apply in progress finishes (no
/// temporary file is left), the watcher's record is removed, and the function returns `Ok`.
pub fn run_until_signal(settings: &Settings, options: &WatchOptions) -> Result<()> {
    // SAFETY: plain libc signal-set manipulation on local, initialized sets.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let stop = Arc::new(Stop::default());
    let (done_tx, done_rx) = mpsc::channel::<Result<()>>();
    {
        let (settings, options, stop) = (settings.clone(), options.clone(), stop.clone());
        std::thread::spawn(move || {
            let _ = done_tx.send(watch(&settings, &options, stop));
            // Wake the signal wait up so that the main thread returns the result.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
        });
    }
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` is a valid signal set; sigwait writes the signal number into `signal`.
    unsafe {
        libc::sigwait(&set, &mut signal);
    }
    if let Ok(result) = done_rx.try_recv() {
        return result;
    }
    // Waits for an apply in progress, then ends the registry's session. The loop may still be
    // inside a blocking query; nothing is being written, so leaving now is clean.
    stop.request();
    Log::new(options.json_logs).event("stopped", serde_json::json!({"signal": signal}));
    Ok(())
}

/// One watcher as `fileconsul nodes` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeStatus {
    #[serde(flatten)]
    pub record: NodeRecord,
    /// Whether the watcher holds Consul's current revision.
    pub current: bool,
    /// Whether the watcher's session still holds its record (a dead watcher's record goes away
    /// with its session; one left without holder shows as gone).
    pub alive: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodesReport {
    pub revision: u64,
    pub nodes: Vec<NodeStatus>,
}

/// `fileconsul nodes`: the watchers of the prefix, the revision each holds, and whether it is
/// current.
pub fn nodes(settings: &Settings) -> Result<NodesReport> {
    let client = Client::new(&settings.consul)?;
    let (head, _) = read_head(&client, &settings.prefix, None)?;
    let revision = head.map_or(0, |h| h.info.revision);
    let mut nodes = Vec::new();
    client.list(&settings.prefix.reserved(&format!("{NODES}/")), |entry| {
        if let Ok(record) = serde_json::from_slice::<NodeRecord>(&entry.value()?) {
            nodes.push(NodeStatus {
                current: record.revision == revision,
                alive: entry.is_locked(),
                record,
            });
        }
        Ok(())
    })?;
    nodes.sort_by(|a, b| {
        (&a.record.node, &a.record.basepath).cmp(&(&b.record.node, &b.record.basepath))
    });
    Ok(NodesReport { revision, nodes })
}
