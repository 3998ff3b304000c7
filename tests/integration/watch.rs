//! `fileconsul watch`, `fileconsul nodes` and `pull` as a Consul watch handler.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{freeze_push_midway, http, signal, wait_until, Cluster, Generations};

const CONVERGE: Duration = Duration::from_secs(20);

#[test]
fn a_push_arrives_on_watching_nodes_with_modes_and_symlinks() {
    let s = Cluster::shared().scenario("watch-arrives");
    let (n1, n2, n3) = (s.node(1), s.node(2), s.node(3));
    n1.write("README", "start\n");
    n1.fc(&["push"]).ok();
    let w2 = n2.watch(&[]);
    let w3 = n3.watch(&[]);
    assert_eq!(
        n2.read("README"),
        b"start\n",
        "the first pull did not happen"
    );
    n1.write("bin/check", "#!/bin/sh\nexit 0\n")
        .chmod("bin/check", 0o750);
    n1.symlink("check-now", "bin/check");
    n1.write("README", "changed\n");
    n1.fc(&["push"]).ok();
    for node in [&n2, &n3] {
        assert!(
            wait_until(CONVERGE, || node.exists("check-now")
                && node.read("README") == b"changed\n"),
            "not converged: {}",
            if node.dir == n2.dir {
                w2.log()
            } else {
                w3.log()
            }
        );
        assert_eq!(node.mode("bin/check"), 0o750);
        assert_eq!(
            fs::read_link(node.path("check-now")).unwrap().to_str(),
            Some("bin/check")
        );
    }
    // A delete travels too, and only the change was fetched (no second full read).
    n1.remove("README");
    n1.fc(&["push"]).ok();
    assert!(wait_until(CONVERGE, || !n2.exists("README") && !n3.exists("README")));
    assert_eq!(
        w2.log().matches("\"how\":\"full\"").count(),
        1,
        "{}",
        w2.log()
    );
}

#[test]
fn a_watcher_never_applies_half_a_push() {
    let s = Cluster::shared().scenario("watch-atomic");
    let (n1, n2) = (s.node(1), s.node(2));
    let tree = Generations::new(1500);
    tree.write(&n1, 1);
    n1.fc(&["push"]).ok();
    let w2 = n2.watch(&[]);
    tree.write(&n1, 2);
    let mut pusher = freeze_push_midway(&s, &n1, &tree, 2);
    // Sample the watcher's directory while Consul holds the half-applied tree.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert_eq!(
            tree.seen(&n2),
            ["1".to_owned()].into(),
            "watcher applied part of a push"
        );
    }
    signal(&pusher, "CONT");
    // While the rest is written, every sample taken before the commit (the marker still there
    // after the sample) shows the old tree only.
    let marker = format!("/v1/kv/{}/.fileconsul/push", s.prefix);
    let mut samples_before_commit = 0;
    loop {
        let g = tree.seen(&n2);
        if http(&n1.agent.http(), "GET", &marker, b"", None).0 != 200 {
            break;
        }
        assert_eq!(g, ["1".to_owned()].into(), "watcher applied part of a push");
        samples_before_commit += 1;
    }
    assert!(samples_before_commit > 0);
    // After the commit the watcher applies the push in one go.
    assert!(
        wait_until(CONVERGE, || tree.seen(&n2) == ["2".to_owned()].into()),
        "watcher did not converge: {}",
        w2.log()
    );
    assert!(pusher.wait().unwrap().success());
    assert!(wait_until(CONVERGE, || w2
        .log()
        .contains("\"revision\":2,")));
    assert_eq!(
        w2.log().matches("\"revision\":2,").count(),
        1,
        "{}",
        w2.log()
    );
}

#[test]
fn watchers_survive_agent_and_server_restarts() {
    let mut cluster = Cluster::builder().nodes(3).start();
    let prefix_owner = cluster.scenario("restarts");
    let s = &prefix_owner;
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("f", "0");
    n1.fc(&["push"]).ok();
    let w2 = n2.watch(&[]);
    let prefix = prefix_owner.prefix.clone();
    let root = prefix_owner.root.clone();
    let push = |cluster: &Cluster, content: &str| {
        fs::write(root.join("node1/f"), content).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_fileconsul"))
            .args([
                "--addr",
                &cluster.agents[0].http(),
                "--prefix",
                &prefix,
                "--basepath",
            ])
            .arg(root.join("node1"))
            .arg("push")
            .output()
            .unwrap();
        out.status.code()
    };
    let converged = |content: &str| {
        wait_until(Duration::from_secs(60), || {
            fs::read(root.join("node2/f")).ok().as_deref() == Some(content.as_bytes())
        })
    };
    // The watcher's own agent restarts.
    drop(prefix_owner);
    cluster.agents[1].restart();
    cluster.wait_ready(None);
    assert_eq!(push(&cluster, "1"), Some(0));
    assert!(
        converged("1"),
        "not converged after an agent restart: {}",
        w2.log()
    );
    // The server restarts (a leader election follows).
    cluster.agents[0].restart();
    cluster.wait_ready(None);
    assert_eq!(push(&cluster, "2"), Some(0));
    assert!(
        converged("2"),
        "not converged after a server restart: {}",
        w2.log()
    );
    assert!(
        w2.log().contains("\"event\":\"error\""),
        "the restarts went unnoticed: {}",
        w2.log()
    );
}

#[test]
fn sigterm_during_an_apply_ends_cleanly() {
    let s = Cluster::shared().scenario("watch-sigterm");
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("seed", "s");
    n1.fc(&["push"]).ok();
    let mut w2 = n2.watch(&[]);
    for i in 0..1500 {
        n1.write(
            &format!("d{}/f{i}", i % 9),
            format!("{i} {}\n", "y".repeat(1000)),
        );
    }
    n1.fc(&["push"]).ok();
    // Stop it as soon as it starts writing the new files.
    assert!(wait_until(CONVERGE, || n2.exists("d0")), "{}", w2.log());
    w2.signal("TERM");
    assert_eq!(w2.wait(Duration::from_secs(10)), Some(0), "{}", w2.log());
    let mut temps = Vec::new();
    let mut stack = vec![n2.dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else if entry.file_name().to_string_lossy().starts_with(".fctmp.") {
                temps.push(entry.path());
            }
        }
    }
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    assert!(w2.log().contains("\"event\":\"stopped\""));
    // Whatever it had applied, a pull completes it.
    n2.fc(&["pull"]).ok();
    assert_eq!(n2.read("d0/f0"), n1.read("d0/f0"));
}

#[test]
fn exec_runs_after_a_change_with_splay_and_failures_do_not_stop_the_watch() {
    let s = Cluster::shared().scenario("watch-exec");
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("a", "1");
    n1.fc(&["push"]).ok();
    let out = s.root.join("exec.out");
    let command = format!(
        "echo \"rev=$FILECONSUL_REVISION count=$FILECONSUL_CHANGED_COUNT paths=$(cat | tr '\\n' ,) at=$(date +%s%N)\" >> '{}'; exit 3",
        out.display()
    );
    let w2 = n2.watch(&["--exec", &command, "--splay", "1500ms"]);
    assert!(wait_until(CONVERGE, || fs::read_to_string(&out)
        .is_ok_and(|t| t.contains("paths=a,"))));
    n1.write("b", "2").write("c/d", "3");
    let pushed_at = Instant::now();
    let pushed_ns: u128 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    n1.fc(&["push"]).ok();
    assert!(
        wait_until(CONVERGE, || fs::read_to_string(&out)
            .is_ok_and(|t| t.contains("paths=b,c/d,"))),
        "{}",
        w2.log()
    );
    let elapsed = pushed_at.elapsed();
    let text = fs::read_to_string(&out).unwrap();
    let line = text.lines().find(|l| l.contains("paths=b,c/d,")).unwrap();
    assert!(line.contains("count=2"), "{line}");
    let at: u128 = line.rsplit("at=").next().unwrap().trim().parse().unwrap();
    assert!(at >= pushed_ns, "{line}");
    assert!(
        elapsed < Duration::from_secs(5),
        "splay of 1.5 s took {elapsed:?}"
    );
    // The command exits 3 each time: logged, and the watch goes on.
    assert!(
        w2.log().contains("\"event\":\"exec-failed\""),
        "{}",
        w2.log()
    );
    assert!(w2.log().contains("\"status\":3"), "{}", w2.log());
    n1.write("e", "4");
    n1.fc(&["push"]).ok();
    assert!(
        wait_until(CONVERGE, || n2.exists("e")),
        "the watch stopped after a failing command: {}",
        w2.log()
    );
}

#[test]
fn nodes_shows_watchers_current_and_a_killed_one_gone() {
    let s = Cluster::shared().scenario("watch-nodes");
    let (n1, n2, n3) = (s.node(1), s.node(2), s.node(3));
    n1.write("a", "1");
    n1.fc(&["push"]).ok();
    let w2 = n2.watch(&[]);
    let w3 = n3.watch(&[]);
    n1.write("a", "2");
    n1.fc(&["push"]).ok();
    let current = || {
        let json = n1.fc(&["--format", "json", "nodes"]).ok().json();
        json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["current"] == true && n["alive"] == true)
            .map(|n| n["node"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(CONVERGE, || current() == ["node2", "node3"]),
        "{:?}",
        current()
    );
    n1.fc(&["nodes"]).ok().stdout_has("current");
    // Killed outright: the record goes when its session times out (TTL 10 s, up to twice that).
    w3.signal("KILL");
    let gone = || {
        let json = n1.fc(&["--format", "json", "nodes"]).ok().json();
        let nodes = json["nodes"].as_array().unwrap().clone();
        !nodes
            .iter()
            .any(|n| n["node"] == "node3" && n["alive"] == true)
    };
    assert!(
        wait_until(Duration::from_secs(45), gone),
        "node3 still listed"
    );
    assert_eq!(current(), ["node2"]);
    drop(w2);
}

#[test]
fn pull_works_as_a_consul_watch_handler() {
    let s = Cluster::shared().scenario("consul-watch");
    let (n1, n3) = (s.node(1), s.node(3));
    n1.write("a", "1");
    n1.fc(&["push"]).ok();
    let handler = format!(
        "'{}' --addr {} --prefix {} --basepath '{}' pull",
        env!("CARGO_BIN_EXE_fileconsul"),
        n3.agent.http(),
        s.prefix,
        n3.dir.display()
    );
    let log = s.root.join("consul-watch.log");
    let mut watch = Command::new(crate::harness::consul_binary())
        .args([
            "watch",
            "-type=keyprefix",
            &format!("-prefix={}/", s.prefix),
        ])
        .arg(format!("-http-addr={}", n3.agent.http()))
        .arg(&handler)
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(s.root.join("consul-watch.err")).unwrap())
        .spawn()
        .unwrap();
    assert!(
        wait_until(CONVERGE, || n3.exists("a")),
        "first run of the handler"
    );
    for i in 0..3 {
        n1.write("a", format!("change {i}"));
        n1.write(&format!("many/f{i}"), "x");
        n1.fc(&["push"]).ok();
        assert!(
            wait_until(CONVERGE, || n3.read("a")
                == format!("change {i}").as_bytes()),
            "handler did not apply push {i}"
        );
    }
    // Nothing to do is exit 0, so `consul watch` keeps running.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        watch.try_wait().unwrap().is_none(),
        "consul watch stopped: {}",
        fs::read_to_string(s.root.join("consul-watch.err")).unwrap()
    );
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn push_and_pull_work_on_a_node_that_runs_a_watcher() {
    let s = Cluster::shared().scenario("watch-and-push");
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("a", "1");
    n1.fc(&["push"]).ok();
    let w2 = n2.watch(&[]);
    n2.write("from-node2", "edited where the watcher runs");
    let mut push = n2
        .command(&["push"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = push.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = push.kill();
            panic!("push blocked on a node running a watcher: {}", w2.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    n1.fc(&["pull"]).ok();
    assert_eq!(n1.read("from-node2"), b"edited where the watcher runs");
    // The watcher does not undo or trip over its own node's push.
    n1.write("a", "2");
    n1.fc(&["push"]).ok();
    assert!(
        wait_until(CONVERGE, || n2.read("a") == b"2"),
        "{}",
        w2.log()
    );
    assert_eq!(n2.read("from-node2"), b"edited where the watcher runs");
    n2.fc(&["pull"]).ok().stdout_has("Already up-to-date.");
    assert!(!w2.log().contains("\"conflicts\":[\""), "{}", w2.log());
}
