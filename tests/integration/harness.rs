//! A small fluent helper that runs real Consul agents on free loopback addresses and runs the
//! `fileconsul` binary against them.
//!
//! * [`Cluster::shared`] starts one 3-agent cluster per test binary (a server and two clients),
//!   reused by every test; each test takes its own [`Scenario`] (a unique prefix and one
//!   directory per node), so tests run in parallel without touching each other.
//! * [`Cluster::builder`] starts a dedicated cluster (for ACLs, or to restart agents); it stops
//!   when dropped, also when the test panics.
//! * Every agent runs under a watchdog shell that kills it as soon as the test process is gone,
//!   even after a SIGKILL; a run also removes the cluster directories of earlier, dead runs.

#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const PORTS: [u16; 6] = [8500, 8501, 8300, 8301, 8302, 8600];

fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn clusters_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clusters")
}

/// The consul binary, installed by the project's script if it is not on PATH.
pub fn consul_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(project_root().join("scripts/install-consul.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/install-consul.sh");
        assert!(out.status.success(), "installing consul failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Stops agents that crashed runs left behind and removes their directories.
fn sweep_dead_clusters() {
    let Ok(entries) = fs::read_dir(clusters_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner: u32 = name
            .split('-')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if owner == 0 || pid_alive(owner) {
            continue;
        }
        for pidfile in fs::read_dir(entry.path()).into_iter().flatten().flatten() {
            let path = pidfile.path().join("agent.pid");
            if let Ok(pid) = fs::read_to_string(&path) {
                let pid = pid.trim();
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&*entry.path().to_string_lossy()) {
                    let _ = Command::new("kill").arg("-9").arg(pid).status();
                }
            }
        }
        let _ = fs::remove_dir_all(entry.path());
    }
}

/// A block of loopback addresses whose Consul ports are all free.
fn free_addresses(count: usize) -> Vec<String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let seed = std::process::id() as usize;
    for attempt in 0..200 {
        let n = NEXT.fetch_add(1, Ordering::SeqCst) + attempt;
        let second = 20 + (seed + n * 7) % 200;
        let third = (seed / 200 + n * 13) % 250;
        let addrs: Vec<String> = (0..count)
            .map(|i| format!("127.{second}.{third}.{}", 11 + i))
            .collect();
        let free = addrs.iter().all(|a| {
            PORTS.iter().all(|p| {
                TcpListener::bind((a.as_str(), *p)).is_ok()
                    && UdpSocket::bind((a.as_str(), *p)).is_ok()
            })
        });
        if free {
            return addrs;
        }
    }
    panic!("no free loopback addresses for a Consul cluster");
}

pub struct Agent {
    pub name: String,
    pub addr: String,
    pub data_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Agent {
    /// The agent's HTTP address, host:port.
    pub fn http(&self) -> String {
        format!("{}:8500", self.addr)
    }

    fn spawn(&mut self) {
        let consul = consul_binary();
        let mut script = format!("'{}' agent", consul.display());
        for a in &self.args {
            script.push_str(&format!(" '{a}'"));
        }
        // The watchdog: the agent dies when the test process (the owner) is gone.
        let watchdog = format!(
            "{script} >'{dir}/agent.log' 2>&1 & agent=$!; echo $agent >'{dir}/agent.pid'; \
             trap 'kill $agent 2>/dev/null; exit 0' TERM INT; \
             while kill -0 {owner} 2>/dev/null && kill -0 $agent 2>/dev/null; do sleep 0.3; done; \
             kill $agent 2>/dev/null; \
             for i in $(seq 30); do kill -0 $agent 2>/dev/null || exit 0; sleep 0.1; done; \
             kill -9 $agent 2>/dev/null",
            dir = self.data_dir.display(),
            owner = std::process::id(),
        );
        let child = Command::new("bash")
            .arg("-c")
            .arg(watchdog)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start consul agent");
        self.child = Some(child);
    }

    /// Stops the agent (SIGTERM, then SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as i32;
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = child.wait();
        // The agent itself may outlive the shell by a moment.
        if let Ok(pid) = fs::read_to_string(self.data_dir.join("agent.pid")) {
            let pid: i32 = pid.trim().parse().unwrap_or(0);
            if pid > 0 {
                for _ in 0..100 {
                    if !pid_alive(pid as u32) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Starts the agent again with the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

pub struct Cluster {
    pub agents: Vec<Agent>,
    dir: PathBuf,
}

pub struct ClusterBuilder {
    nodes: usize,
    acl_master: Option<String>,
    tls: bool,
}

impl ClusterBuilder {
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Turns ACLs on with default-deny and this master token.
    pub fn acl_master(mut self, token: &str) -> Self {
        self.acl_master = Some(token.to_owned());
        self
    }

    /// Serves HTTPS on port 8501 too, with certificates from `consul tls`, requiring a client
    /// certificate (HTTP on 8500 stays, for set-up). The files land in [`Cluster::tls_dir`].
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    pub fn start(self) -> Cluster {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        sweep_dead_clusters();
        let addrs = free_addresses(self.nodes);
        let dir = clusters_dir().join(format!(
            "{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        if self.tls {
            let consul = consul_binary();
            let mut create = vec![
                vec!["tls", "ca", "create"],
                vec!["tls", "cert", "create", "-client"],
            ];
            let mut server = vec!["tls", "cert", "create", "-server"];
            let ip_flags: Vec<String> = addrs
                .iter()
                .map(|a| format!("-additional-ipaddress={a}"))
                .collect();
            server.extend(ip_flags.iter().map(String::as_str));
            create.push(server);
            for args in create {
                let out = Command::new(&consul)
                    .args(&args)
                    .current_dir(&dir)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "consul {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let mut agents = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let name = format!("node{}", i + 1);
            let data_dir = dir.join(&name);
            fs::create_dir_all(&data_dir).unwrap();
            let mut args = vec![
                format!("-node={name}"),
                format!("-bind={addr}"),
                format!("-client={addr}"),
                format!("-data-dir={}", data_dir.display()),
                "-disable-host-node-id".into(),
                "-log-level=warn".into(),
                "-hcl=performance { raft_multiplier = 1 }".into(),
            ];
            if i == 0 {
                args.push("-server".into());
                args.push("-bootstrap-expect=1".into());
            } else {
                args.push(format!("-retry-join={}", addrs[0]));
                args.push("-retry-interval=1s".into());
            }
            if let Some(token) = &self.acl_master {
                args.push(format!(
                    "-hcl=acl {{ enabled = true default_policy = \"deny\" \
                     tokens {{ master = \"{token}\" agent = \"{token}\" }} }}"
                ));
            }
            if self.tls {
                args.push(format!(
                    "-hcl=ports {{ https = 8501 }} verify_incoming_https = true \
                     ca_file = \"{d}/consul-agent-ca.pem\" \
                     cert_file = \"{d}/dc1-server-consul-0.pem\" \
                     key_file = \"{d}/dc1-server-consul-0-key.pem\"",
                    d = dir.display()
                ));
            }
            let mut agent = Agent {
                name,
                addr: addr.clone(),
                data_dir,
                args,
                child: None,
            };
            agent.spawn();
            agents.push(agent);
        }
        let cluster = Cluster { agents, dir };
        cluster.wait_ready(self.acl_master.as_deref());
        cluster
    }
}

/// A raw HTTP request to an agent (for set-up and checks the CLI does not do).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    token: Option<&str>,
) -> (u16, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "--max-time",
        "5",
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("X-Consul-Token: {t}")]);
    }
    if !body.is_empty() {
        cmd.args(["--data-binary", "@-"]);
    }
    cmd.arg(format!("http://{addr}{path}"));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("curl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(body);
    }
    let out = child.wait_with_output().expect("curl");
    let mut raw = out.stdout;
    let split = raw.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&raw[split..])
        .trim()
        .parse()
        .unwrap_or(0);
    raw.truncate(split);
    (code, raw)
}

impl Cluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            nodes: 3,
            acl_master: None,
            tls: false,
        }
    }

    /// Where the CA, client and server certificates of a `.tls()` cluster are.
    pub fn tls_dir(&self) -> &Path {
        &self.dir
    }

    /// The 3-agent cluster shared by the tests of this binary.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(|| Cluster::builder().nodes(3).start())
    }

    /// Waits until every agent answers and can write to the KV store.
    pub fn wait_ready(&self, token: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for agent in &self.agents {
            loop {
                let (code, _) = http(
                    &agent.http(),
                    "PUT",
                    "/v1/kv/fileconsul-test-ready",
                    b"1",
                    token,
                );
                if code == 200 {
                    break;
                }
                if Instant::now() > deadline {
                    let log =
                        fs::read_to_string(agent.data_dir.join("agent.log")).unwrap_or_default();
                    panic!("agent {} not ready after 60 s; log:\n{log}", agent.name);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// A fresh scenario: a unique prefix and one empty directory per node.
    pub fn scenario(&self, name: &str) -> Scenario<'_> {
        let prefix = format!("t/{name}-{}", std::process::id());
        let root = self.dir.join("scenarios").join(name);
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        Scenario {
            cluster: self,
            prefix,
            root,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.stop();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One test's share of a cluster: its prefix and its node directories.
pub struct Scenario<'c> {
    pub cluster: &'c Cluster,
    pub prefix: String,
    pub root: PathBuf,
}

impl Scenario<'_> {
    /// Node `n` (1-based): its agent and its own base directory.
    pub fn node(&self, n: usize) -> Node<'_> {
        let dir = self.root.join(format!("node{n}"));
        fs::create_dir_all(&dir).unwrap();
        Node {
            scenario: self,
            agent: &self.cluster.agents[n - 1],
            dir,
        }
    }

    /// Another base directory served by node `n`'s agent (a second reader on one node).
    pub fn extra(&self, n: usize, name: &str) -> Node<'_> {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).unwrap();
        Node {
            scenario: self,
            agent: &self.cluster.agents[n - 1],
            dir,
        }
    }

    pub fn key(&self, path: &str) -> String {
        format!("{}/{path}", self.prefix)
    }

    /// Consul's value of a key under the prefix (`None` if absent), read raw.
    pub fn kv_get(&self, path: &str) -> Option<Vec<u8>> {
        let (code, body) = http(
            &self.cluster.agents[0].http(),
            "GET",
            &format!("/v1/kv/{}?raw", self.key(path)),
            b"",
            None,
        );
        (code == 200).then_some(body)
    }

    /// Every file value under the prefix (bookkeeping left out), with one recursive read.
    pub fn kv_values(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        use base64::Engine as _;
        let (code, body) = http(
            &self.cluster.agents[0].http(),
            "GET",
            &format!("/v1/kv/{}/?recurse", self.prefix),
            b"",
            None,
        );
        if code != 200 {
            return Default::default();
        }
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
        entries
            .into_iter()
            .filter_map(|e| {
                let key = e["Key"]
                    .as_str()?
                    .strip_prefix(&format!("{}/", self.prefix))?
                    .to_owned();
                if key.starts_with(".fileconsul/") {
                    return None;
                }
                let value = base64::engine::general_purpose::STANDARD
                    .decode(e["Value"].as_str().unwrap_or(""))
                    .unwrap();
                Some((key, value))
            })
            .collect()
    }

    /// Every key under the prefix.
    pub fn kv_keys(&self) -> Vec<String> {
        let (code, body) = http(
            &self.cluster.agents[0].http(),
            "GET",
            &format!("/v1/kv/{}/?keys", self.prefix),
            b"",
            None,
        );
        if code != 200 {
            return Vec::new();
        }
        serde_json::from_slice(&body).unwrap()
    }

    /// Writes a key under the prefix directly (as another tool would).
    pub fn kv_put(&self, path: &str, value: &[u8]) {
        let (code, _) = http(
            &self.cluster.agents[0].http(),
            "PUT",
            &format!("/v1/kv/{}", self.key(path)),
            value,
            None,
        );
        assert_eq!(code, 200);
    }
}

/// A tree of `files` files whose content names a generation, to see whether a reader ever holds
/// two generations at once.
pub struct Generations {
    pub files: usize,
    padding: String,
}

impl Generations {
    pub fn new(files: usize) -> Generations {
        Generations {
            files,
            padding: "x".repeat(1500),
        }
    }

    fn path(i: usize) -> String {
        format!("d{}/f{i}", i % 7)
    }

    pub fn write(&self, node: &Node, generation: u32) {
        for i in 0..self.files {
            node.write(
                &Self::path(i),
                format!("generation {generation} of {i} {}\n", self.padding),
            );
        }
    }

    /// The generations found in a node's directory ("missing" for an absent file).
    pub fn seen(&self, node: &Node) -> std::collections::BTreeSet<String> {
        (0..self.files)
            .map(|i| match fs::read_to_string(node.path(&Self::path(i))) {
                Ok(text) => text.split(' ').nth(1).unwrap_or("?").to_owned(),
                Err(_) => "missing".to_owned(),
            })
            .collect()
    }

    /// How many files Consul holds in `generation`.
    pub fn in_consul(&self, scenario: &Scenario, generation: u32) -> usize {
        let marker = format!("generation {generation} ");
        scenario
            .kv_values()
            .values()
            .filter(|v| v.starts_with(marker.as_bytes()))
            .count()
    }
}

/// Starts `fileconsul push` on `node` and freezes it (SIGSTOP) once it holds the push marker and
/// Consul holds part of generation `generation`: a half-applied tree. SIGCONT resumes it.
pub fn freeze_push_midway(
    scenario: &Scenario,
    node: &Node,
    tree: &Generations,
    generation: u32,
) -> Child {
    let mut pusher = node
        .command(&["push"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let marker = format!("/v1/kv/{}/.fileconsul/push", scenario.prefix);
    loop {
        let (code, _) = http(&node.agent.http(), "GET", &marker, b"", None);
        if code == 200 {
            signal(&pusher, "STOP");
            let written = tree.in_consul(scenario, generation);
            if written > 0 && written < tree.files {
                return pusher;
            }
            signal(&pusher, "CONT");
        }
        assert!(
            pusher.try_wait().unwrap().is_none(),
            "the push finished before it could be observed"
        );
    }
}

/// Sends a signal (`"TERM"`, `"STOP"`, …) to a child process.
pub fn signal(child: &Child, name: &str) {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
}

pub struct Node<'s> {
    scenario: &'s Scenario<'s>,
    pub agent: &'s Agent,
    pub dir: PathBuf,
}

impl Node<'_> {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
        self
    }

    pub fn chmod(&self, rel: &str, mode: u32) -> &Self {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }

    pub fn remove(&self, rel: &str) -> &Self {
        fs::remove_file(self.path(rel)).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    pub fn mode(&self, rel: &str) -> u32 {
        fs::symlink_metadata(self.path(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// `fileconsul --addr <this agent> --prefix <scenario> --basepath <this node> ARGS`.
    pub fn fc(&self, args: &[&str]) -> Run {
        self.fc_with(args, &[])
    }

    pub fn fc_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().expect("run fileconsul"), args)
    }

    /// Starts `fileconsul ... watch ARGS` with its log (JSON Lines) in the node's parent dir.
    pub fn watch(&self, args: &[&str]) -> Watcher {
        let log = self.dir.with_extension("watch.log");
        let mut full = vec!["--format", "json", "watch"];
        full.extend_from_slice(args);
        let child = self
            .command(&full)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let watcher = Watcher { child, log };
        assert!(
            wait_until(Duration::from_secs(30), || watcher
                .log()
                .contains("\"how\":\"full\"")),
            "the watcher did not start: {}",
            watcher.log()
        );
        watcher
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fileconsul"));
        cmd.arg("--addr")
            .arg(self.agent.http())
            .arg("--prefix")
            .arg(&self.scenario.prefix)
            .arg("--basepath")
            .arg(&self.dir)
            .args(args)
            .env_remove("CONSUL_HTTP_ADDR")
            .env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("CONSUL_HTTP_TOKEN_FILE")
            .stdin(Stdio::null());
        cmd
    }
}

/// A long-running `fileconsul watch`, killed when dropped (also when the test panics).
pub struct Watcher {
    pub child: Child,
    pub log: PathBuf,
}

impl Watcher {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"TERM"`, `"KILL"`, …).
    pub fn signal(&self, name: &str) {
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to end and returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The result of one `fileconsul` run, with assertions that print everything on failure.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    args: String,
}

impl Run {
    pub fn from(out: Output, args: &[&str]) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.join(" "),
        }
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "`fileconsul {}` exited {}, expected {expected}\nstdout:\n{}\nstderr:\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout of `fileconsul {}` lacks {needle:?}:\n{}\nstderr:\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr of `fileconsul {}` lacks {needle:?}:\n{}",
            self.args,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}
