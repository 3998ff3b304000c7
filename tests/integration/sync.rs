//! status, push and pull across nodes of a real cluster.

use std::fs;
use std::process::Command;

use crate::harness::{freeze_push_midway, http, signal, Cluster, Generations};

#[test]
fn the_original_scenario_across_two_nodes() {
    let s = Cluster::shared().scenario("scenario");
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("bin/ntp", "#!/bin/sh\nntpd -q\n")
        .chmod("bin/ntp", 0o755);
    n1.write(
        "config/service/ntp.json",
        "{\"service\":{\"name\":\"ntp\"}}\n",
    );
    n1.fc(&["status"])
        .ok()
        .stdout_has("Changes to be pushed:")
        .stdout_has("add remote file:    bin/ntp")
        .stdout_has("add remote file:    config/service/ntp.json");
    n1.fc(&["push"])
        .ok()
        .stdout_has("push new file:      bin/ntp");
    n1.fc(&["status"]).ok().stdout_has("Already up-to-date.");
    n2.fc(&["status"])
        .ok()
        .stdout_has("add local file:     bin/ntp");
    n2.fc(&["pull"])
        .ok()
        .stdout_has("Synchronize remote files:")
        .stdout_has("new file:   bin/ntp");
    assert_eq!(
        n2.read("config/service/ntp.json"),
        n1.read("config/service/ntp.json")
    );

    // Edit on node 2, push there, pull it back on node 1.
    n2.write("bin/apache2", "#!/bin/sh\napache2ctl start\n");
    n2.write("bin/ntp", "#!/bin/sh\nntpd -q -g\n");
    n2.fc(&["push"])
        .ok()
        .stdout_has("push modified file: bin/ntp")
        .stdout_has("push new file:      bin/apache2");
    n1.fc(&["status"])
        .ok()
        .stdout_has("Changes to be pulled:")
        .stdout_has("modify local file:  bin/ntp")
        .stdout_has("add local file:     bin/apache2");
    n1.fc(&["pull"]).ok().stdout_has("modified:   bin/ntp");
    assert_eq!(n1.read("bin/ntp"), b"#!/bin/sh\nntpd -q -g\n");
    assert_eq!(n1.mode("bin/ntp"), 0o755, "a content change kept the mode");
    n1.fc(&["pull"]).ok().stdout_has("Already up-to-date.");
    // JSON for scripts.
    let json = n2.fc(&["--format", "json", "status"]).ok().json();
    assert_eq!(json["command"], "status");
    assert!(json["revision"].as_u64().unwrap() >= 2);
    assert!(json.get("push").is_none() && json.get("pull").is_none());
}

#[test]
fn exec_bits_and_symlinks_arrive_intact() {
    let s = Cluster::shared().scenario("modes");
    let (n1, n3) = (s.node(1), s.node(3));
    n1.write("bin/check", "#!/bin/sh\nexit 0\n")
        .chmod("bin/check", 0o750);
    n1.write("etc/secret.conf", "x")
        .chmod("etc/secret.conf", 0o600);
    n1.symlink("bin/check-alias", "check");
    n1.symlink("current", "etc/secret.conf");
    n1.symlink("dangling", "bin/nothing-here");
    n1.fc(&["push"])
        .ok()
        .stderr_has("dangling: dangling symlink");
    n3.fc(&["pull"]).ok();
    assert_eq!(n3.mode("bin/check"), 0o750);
    assert_eq!(n3.mode("etc/secret.conf"), 0o600);
    assert_eq!(
        fs::read_link(n3.path("bin/check-alias")).unwrap().to_str(),
        Some("check")
    );
    assert_eq!(
        fs::read_link(n3.path("current")).unwrap().to_str(),
        Some("etc/secret.conf")
    );
    assert_eq!(
        fs::read_link(n3.path("dangling")).unwrap().to_str(),
        Some("bin/nothing-here")
    );
    // The link is stored as a link (its target), not as a copy of what it points to.
    assert_eq!(s.kv_get("bin/check-alias").unwrap(), b"check");
    // A mode change alone travels too.
    n1.chmod("bin/check", 0o755);
    n1.fc(&["push"])
        .ok()
        .stdout_has("push modified file: bin/check");
    n3.fc(&["pull"]).ok();
    assert_eq!(n3.mode("bin/check"), 0o755);
    // A link leaving the tree is refused before anything is written.
    n1.symlink("escape", "../../../etc/passwd");
    n1.write("new-file", "n");
    n1.fc(&["push"])
        .code(7)
        .stderr_has("escape")
        .stderr_has("leaves the tree");
    assert!(
        s.kv_get("new-file").is_none(),
        "a refused push wrote something"
    );
}

#[test]
fn bytes_survive_byte_for_byte() {
    let s = Cluster::shared().scenario("bytes");
    let (n1, n2) = (s.node(1), s.node(2));
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    n1.write("blob.bin", &binary);
    n1.write("crlf.txt", "line one\r\nline two  \r\n\r\n");
    n1.write("spaces.yml", "  leading:\n    - x   \n\t\ttabs\t\n   ");
    n1.write("empty", "");
    n1.write("no-newline", "end");
    n1.write("dir with space/ü ñ.txt", "unicode name");
    n1.fc(&["push"]).ok();
    assert_eq!(
        s.kv_get("crlf.txt").unwrap(),
        b"line one\r\nline two  \r\n\r\n",
        "raw value in Consul"
    );
    n2.fc(&["pull"]).ok();
    for f in [
        "blob.bin",
        "crlf.txt",
        "spaces.yml",
        "empty",
        "no-newline",
        "dir with space/ü ñ.txt",
    ] {
        assert_eq!(n2.read(f), n1.read(f), "{f} differs");
    }
}

#[test]
fn the_prefix_is_a_directory_boundary() {
    let s = Cluster::shared().scenario("boundary");
    let n1 = s.node(1);
    let agent = n1.agent.http();
    let sibling = format!("{}2/x", s.prefix);
    let longer = format!("{}le", s.prefix);
    for key in [&sibling, &longer] {
        assert_eq!(
            http(&agent, "PUT", &format!("/v1/kv/{key}"), b"keep me", None).0,
            200
        );
    }
    n1.write("a", "1").write("ab", "2");
    n1.fc(&["push"]).ok();
    n1.remove("a");
    n1.fc(&["push"]).ok().stdout_has("push deleted file:  a");
    assert!(s.kv_get("a").is_none());
    assert_eq!(s.kv_get("ab").unwrap(), b"2", "deleting `a` deleted `ab`");
    for key in [&sibling, &longer] {
        let (code, body) = http(&agent, "GET", &format!("/v1/kv/{key}?raw"), b"", None);
        assert_eq!(
            (code, body.as_slice()),
            (200, b"keep me".as_slice()),
            "{key} was touched"
        );
    }
    let n2 = s.node(2);
    n2.fc(&["pull"]).ok();
    assert!(!n2.exists("2") && !n2.exists("le") && n2.exists("ab"));
}

#[test]
fn deletes_travel_and_touch_nothing_else() {
    let s = Cluster::shared().scenario("deletes");
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("keep/a", "a")
        .write("gone/b", "b")
        .write("gone/c", "c");
    n1.fc(&["push"]).ok();
    n2.fc(&["pull"]).ok();
    n2.write("local-only", "never pushed");
    n1.remove("gone/b");
    n1.fc(&["status"])
        .ok()
        .stdout_has("delete remote file: gone/b");
    n1.fc(&["push"])
        .ok()
        .stdout_has("push deleted file:  gone/b");
    n2.fc(&["status"])
        .ok()
        .stdout_has("delete local file:  gone/b");
    n2.fc(&["pull"]).ok().stdout_has("deleted:    gone/b");
    assert!(!n2.exists("gone/b"));
    assert!(n2.exists("gone/c") && n2.exists("keep/a"));
    assert_eq!(n2.read("local-only"), b"never pushed");
    // The last file of a directory goes with its directory.
    n1.remove("gone/c");
    n1.fc(&["push"]).ok();
    n2.fc(&["pull"]).ok();
    assert!(!n2.exists("gone"), "empty directory left behind");
    let mut keys = s.kv_keys();
    keys.retain(|k| !k.contains("/.fileconsul/"));
    assert_eq!(keys, vec![s.key("keep/a")]);
}

#[test]
fn pull_never_deletes_a_file_that_was_never_pushed() {
    let s = Cluster::shared().scenario("never-pushed");
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("shared", "s");
    n1.fc(&["push"]).ok();
    n2.write("mine", "unpushed").write("shared", "s");
    n2.fc(&["pull"]).ok();
    assert_eq!(n2.read("mine"), b"unpushed");
    n2.fc(&["status"])
        .ok()
        .stdout_has("add remote file:    mine");
    // A push from a node that had not pulled does not wipe what it lacks.
    let n3 = s.node(3);
    n3.write("other", "o");
    n3.fc(&["push"]).ok();
    assert_eq!(s.kv_get("shared").unwrap(), b"s");
    // An emptied prefix is never taken as "delete everything".
    let (code, _) = http(
        &n1.agent.http(),
        "DELETE",
        &format!("/v1/kv/{}/?recurse", s.prefix),
        b"",
        None,
    );
    assert_eq!(code, 200);
    n2.fc(&["pull"])
        .ok()
        .stdout_has("kept local file:    shared")
        .stderr_has("nothing is deleted");
    assert!(n2.exists("shared") && n2.exists("mine"));
}

#[test]
fn two_nodes_editing_one_file_conflict_and_nothing_is_lost() {
    let s = Cluster::shared().scenario("conflict");
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("app.conf", "v1\n").write("other", "o");
    n1.fc(&["push"]).ok();
    n2.fc(&["pull"]).ok();
    n1.write("app.conf", "from node 1\n");
    n2.write("app.conf", "from node 2\n").write("other", "o2");
    n1.fc(&["push"]).ok();
    let keys_before = s.kv_keys();
    let run = n2.fc(&["push"]);
    run.code(4).stdout_has("both modified:      app.conf");
    assert_eq!(
        s.kv_get("app.conf").unwrap(),
        b"from node 1\n",
        "the push overwrote a change it had not seen"
    );
    assert_eq!(
        s.kv_get("other").unwrap(),
        b"o2",
        "the non-conflicting path was pushed"
    );
    assert_eq!(
        s.kv_keys().len(),
        keys_before.len() + 1,
        "one new revision log entry only"
    );
    n2.fc(&["status"])
        .code(4)
        .stdout_has("both modified:      app.conf");
    // The default pull leaves the local change alone.
    n2.fc(&["pull"]).code(4);
    assert_eq!(n2.read("app.conf"), b"from node 2\n");
    // --force takes Consul's version and keeps the local one.
    let forced = n2.fc(&["pull", "--force"]);
    forced.ok().stderr_has("kept your version of app.conf at ");
    assert_eq!(n2.read("app.conf"), b"from node 1\n");
    let kept = forced
        .stderr
        .split("kept your version of app.conf at ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    assert_eq!(fs::read(kept).unwrap(), b"from node 2\n");
    n2.fc(&["status"]).ok().stdout_has("Already up-to-date.");
}

#[test]
fn keys_escaping_the_base_directory_are_refused() {
    let s = Cluster::shared().scenario("escape");
    let n2 = s.node(2);
    let outside = s.root.join("outside");
    // The HTTP KV endpoint cleans `..` away; the transaction endpoint does not.
    let b64 = |v: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(v)
    };
    let ops = serde_json::json!([
        {"KV": {"Verb": "set", "Key": format!("{}/../outside/pwned", s.prefix), "Value": b64(b"x")}},
        {"KV": {"Verb": "set", "Key": format!("{}/a/../../../outside/pwned2", s.prefix), "Value": b64(b"x")}},
        {"KV": {"Verb": "set", "Key": format!("{}/link", s.prefix), "Value": b64(b"../../outside"),
                "Flags": 0xFC01_0000_0000_2000u64}},
        {"KV": {"Verb": "set", "Key": format!("{}/fine.txt", s.prefix), "Value": b64(b"ok")}},
    ]);
    let (code, body) = http(
        &n2.agent.http(),
        "PUT",
        "/v1/txn",
        &serde_json::to_vec(&ops).unwrap(),
        None,
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let run = n2.fc(&["pull"]);
    run.code(7)
        .stderr_has("../outside/pwned")
        .stderr_has("`..` path component")
        .stderr_has("leaves the tree");
    assert_eq!(n2.read("fine.txt"), b"ok", "the good key was still applied");
    assert!(
        !outside.exists(),
        "something was written outside the base directory"
    );
    assert!(!n2.exists("link"));
}

#[test]
fn a_file_over_the_value_limit_is_refused_before_anything_is_written() {
    let s = Cluster::shared().scenario("too-large");
    let n1 = s.node(1);
    n1.write("small", "s");
    n1.write("huge.bin", vec![1u8; 512 * 1024 + 1]);
    n1.fc(&["push"])
        .code(7)
        .stderr_has("huge.bin")
        .stderr_has("524288");
    assert!(
        s.kv_keys().is_empty(),
        "a refused push wrote {:?}",
        s.kv_keys()
    );
    // Exactly at the limit is fine (and needs the plain KV endpoint, not a transaction).
    n1.write("huge.bin", vec![2u8; 512 * 1024]);
    n1.fc(&["push"]).ok();
    assert_eq!(s.kv_get("huge.bin").unwrap().len(), 512 * 1024);
    let n2 = s.node(2);
    n2.fc(&["pull"]).ok();
    assert_eq!(n2.read("huge.bin"), vec![2u8; 512 * 1024]);
}

#[test]
fn a_large_push_is_never_seen_half_applied() {
    let s = Cluster::shared().scenario("atomic");
    let (n1, n2) = (s.node(1), s.node(2));
    // Large enough that the push spans many transactions.
    let tree = Generations::new(1500);
    tree.write(&n1, 1);
    n1.fc(&["push"]).ok();
    n2.fc(&["pull"]).ok();
    tree.write(&n1, 2);
    let mut pusher = freeze_push_midway(&s, &n1, &tree, 2);
    // Consul holds a half-applied tree now; no reader may apply it.
    n2.fc(&["pull", "--wait", "1"])
        .code(3)
        .stderr_has("still being applied");
    n2.fc(&["status", "--wait", "1"]).code(3);
    assert_eq!(tree.seen(&n2), ["1".to_owned()].into());
    signal(&pusher, "CONT");
    // A reader that waits gets the whole push once it commits.
    n2.fc(&["pull", "--wait", "30"]).ok();
    assert!(pusher.wait().unwrap().success());
    assert_eq!(tree.seen(&n2), ["2".to_owned()].into());
    // Nothing of the protocol is left behind.
    let keys = s.kv_keys();
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("/.fileconsul/staging") || k.ends_with("/.fileconsul/push")),
        "{keys:?}"
    );
}

#[test]
fn an_abandoned_push_keeps_readers_files_and_the_next_push_completes_it() {
    let s = Cluster::shared().scenario("abandoned");
    let (n1, n2) = (s.node(1), s.node(2));
    let files = 2000;
    for i in 0..files {
        n1.write(&format!("d{}/f{i}", i % 10), format!("old {i}\n"));
    }
    n1.fc(&["push"]).ok();
    n2.fc(&["pull"]).ok();
    for i in 0..files {
        n1.write(&format!("d{}/f{i}", i % 10), format!("new {i}\n"));
    }
    // Kill the pusher once it holds the push marker, and end its session as its TTL would.
    let mut pusher = n1.command(&["push"]).spawn().unwrap();
    let marker = format!("/v1/kv/{}/.fileconsul/push", s.prefix);
    let session = loop {
        let (code, body) = http(&n1.agent.http(), "GET", &marker, b"", None);
        if code == 200 {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            break v[0]["Session"].as_str().unwrap().to_owned();
        }
        assert!(
            pusher.try_wait().unwrap().is_none(),
            "push finished before it could be interrupted"
        );
    };
    Command::new("kill")
        .arg("-9")
        .arg(pusher.id().to_string())
        .status()
        .unwrap();
    let _ = pusher.wait();
    http(
        &n1.agent.http(),
        "PUT",
        &format!("/v1/session/destroy/{session}"),
        b"",
        None,
    );

    n2.fc(&["pull"]).code(3).stderr_has("did not finish");
    n2.fc(&["status"]).code(3);
    for i in 0..files {
        assert_eq!(
            n2.read(&format!("d{}/f{i}", i % 10)),
            format!("old {i}\n").as_bytes()
        );
    }
    // The next push (from any node) completes the abandoned one from its staged data.
    let n3 = s.node(3);
    n3.write("unrelated", "u");
    n3.fc(&["push"])
        .ok()
        .stderr_has("completed an unfinished push");
    n2.fc(&["pull"]).ok();
    for i in 0..files {
        assert_eq!(
            n2.read(&format!("d{}/f{i}", i % 10)),
            format!("new {i}\n").as_bytes()
        );
    }
    assert_eq!(n2.read("unrelated"), b"u");
    n1.fc(&["status"]).ok();
}

#[test]
fn path_patterns_and_ignore_file_limit_a_run() {
    let s = Cluster::shared().scenario("patterns");
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("config/a.json", "a")
        .write("config/b.json", "b")
        .write("bin/x", "x");
    n1.write(".fileconsulignore", "*.swp\n")
        .write("config/a.json.swp", "junk");
    n1.fc(&["status", "config/*"])
        .ok()
        .stdout_has("config/a.json");
    let status = n1.fc(&["status", "config/*"]);
    assert!(
        !status.stdout.contains("bin/x") && !status.stdout.contains(".swp"),
        "{}",
        status.stdout
    );
    n1.fc(&["push", "config/*"]).ok();
    assert!(s.kv_get("config/a.json").is_some() && s.kv_get("bin/x").is_none());
    assert!(s.kv_get("config/a.json.swp").is_none());
    n1.fc(&["push", "--dry-run"])
        .ok()
        .stdout_has("push new file:      bin/x")
        .stderr_has("dry run");
    assert!(s.kv_get("bin/x").is_none(), "--dry-run wrote");
    n2.fc(&["pull", "--dry-run"])
        .ok()
        .stdout_has("config/a.json");
    assert!(!n2.exists("config/a.json"), "--dry-run wrote");
}

#[test]
fn a_key_changed_by_another_tool_is_never_overwritten() {
    let s = Cluster::shared().scenario("foreign-write");
    let n1 = s.node(1);
    n1.write("f", "pushed\n").write("g", "g\n");
    n1.fc(&["push"]).ok();
    // Another tool writes the key; fileconsul's head does not move.
    s.kv_put("f", b"written by consul kv put\n");
    n1.write("f", "edited locally\n").write("g", "g2\n");
    n1.fc(&["push"]).code(4).stdout_has("both modified:      f");
    assert_eq!(s.kv_get("f").unwrap(), b"written by consul kv put\n");
    assert_eq!(s.kv_get("g").unwrap(), b"g2\n");
    n1.fc(&["status"])
        .code(4)
        .stdout_has("both modified:      f");
}

#[test]
fn concurrent_pushers_never_overwrite_each_other() {
    let s = Cluster::shared().scenario("concurrent");
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("shared.conf", "base\n");
    n1.fc(&["push"]).ok();
    n2.fc(&["pull"]).ok();
    for round in 0..3 {
        // Different files at the same moment: both land.
        n1.write(&format!("one-{round}"), "1");
        n2.write(&format!("two-{round}"), "2");
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| n1.fc(&["push"]).code);
            let b = scope.spawn(|| n2.fc(&["push"]).code);
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!((a, b), (0, 0));
        assert!(
            s.kv_get(&format!("one-{round}")).is_some()
                && s.kv_get(&format!("two-{round}")).is_some()
        );
        // The same file at the same moment: one wins, the other is refused, nothing is lost.
        n1.fc(&["pull"]).ok();
        n2.fc(&["pull"]).ok();
        let mine = |n: u32| format!("round {round} from node {n}\n");
        n1.write("shared.conf", mine(1));
        n2.write("shared.conf", mine(2));
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| n1.fc(&["push"]).code);
            let b = scope.spawn(|| n2.fc(&["push"]).code);
            (a.join().unwrap(), b.join().unwrap())
        });
        let stored = String::from_utf8(s.kv_get("shared.conf").unwrap()).unwrap();
        match (a, b) {
            (0, 4) => assert_eq!(stored, mine(1)),
            (4, 0) => assert_eq!(stored, mine(2)),
            other => panic!("exit codes {other:?}: exactly one push must win"),
        }
        // The loser still has its version and sees the conflict.
        let loser = if a == 4 { &n1 } else { &n2 };
        loser
            .fc(&["status"])
            .code(4)
            .stdout_has("both modified:      shared.conf");
        loser.fc(&["pull", "--force"]).ok();
        let winner = if a == 4 { &n2 } else { &n1 };
        winner.fc(&["pull"]).ok();
    }
}
