//! Every exit status of the table in the README and `--help`.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::Cluster;

fn fileconsul(args: &[&str]) -> crate::harness::Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fileconsul"))
        .args(args)
        .env_remove("CONSUL_HTTP_ADDR")
        .env_remove("CONSUL_HTTP_TOKEN")
        .output()
        .unwrap();
    crate::harness::Run::from(out, args)
}

#[test]
fn exit_0_and_1_success_and_pending_changes() {
    let s = Cluster::shared().scenario("exit-01");
    let n1 = s.node(1);
    n1.fc(&["status", "--exit-code"])
        .code(0)
        .stdout_has("Already up-to-date.");
    n1.write("f", "1");
    n1.fc(&["status"]).code(0);
    n1.fc(&["status", "--exit-code"]).code(1);
    n1.fc(&["push"]).code(0);
    n1.fc(&["push"]).code(0).stdout_has("Already up-to-date.");
    n1.fc(&["status", "--exit-code"]).code(0);
    s.node(2).fc(&["status", "--exit-code"]).code(1);
}

#[test]
fn exit_2_usage_errors() {
    fileconsul(&["status", "--no-such-flag"]).code(2);
    fileconsul(&["frobnicate"]).code(2);
    fileconsul(&[]).code(2);
    fileconsul(&["--prefix", "/", "status"])
        .code(2)
        .stderr_has("prefix");
    fileconsul(&["--timeout", "-1", "status"]).code(2);
    fileconsul(&["--addr", "unix:///tmp/consul.sock", "status"]).code(2);
    let help = fileconsul(&["--help"]);
    help.code(0)
        .stdout_has("Exit status:")
        .stdout_has("3  Consul unreachable");
}

#[test]
fn exit_3_consul_unreachable_or_hanging() {
    let dir = tempfile_dir("exit-3");
    // Nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let run = fileconsul(&["--addr", &addr, "--basepath", &dir, "status"]);
    run.code(3).stderr_has("cannot reach Consul");
    // An agent that accepts and never answers: a timeout, not a hang.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hanging.local_addr().unwrap().to_string();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hanging.incoming().take(4) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let started = Instant::now();
    fileconsul(&[
        "--addr",
        &addr,
        "--timeout",
        "1",
        "--basepath",
        &dir,
        "pull",
    ])
    .code(3);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The environment variable is honoured like the Consul CLI's.
    let out = Command::new(env!("CARGO_BIN_EXE_fileconsul"))
        .args(["--basepath", &dir, "--timeout", "1", "status"])
        .env("CONSUL_HTTP_ADDR", format!("http://{addr}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&addr));
    drop(holder);
}

#[test]
fn exit_4_conflicts() {
    let s = Cluster::shared().scenario("exit-4");
    let (n1, n2) = (s.node(1), s.node(2));
    n1.write("f", "base");
    n1.fc(&["push"]).ok();
    n2.fc(&["pull"]).ok();
    n1.write("f", "one");
    n1.fc(&["push"]).ok();
    n2.write("f", "two");
    n2.fc(&["push"]).code(4);
    n2.fc(&["pull"]).code(4);
    let json = n2.fc(&["--format", "json", "status"]).code(4).json();
    assert_eq!(json["conflicts"][0]["path"], "f");
    assert_eq!(json["conflicts"][0]["kind"], "both-modified");
}

#[test]
fn exit_5_permission_denied_by_acl_and_the_token_is_never_shown() {
    let cluster = Cluster::builder()
        .nodes(1)
        .acl_master("root-secret-token")
        .start();
    let s = cluster.scenario("exit-5");
    let n1 = s.node(1);
    n1.write("f", "1");
    n1.fc(&["push"]).code(5).stderr_has("403");
    let bad = n1.fc_with(&["push"], &[("CONSUL_HTTP_TOKEN", "wrong-secret-token")]);
    bad.code(5);
    assert!(
        !bad.stderr.contains("wrong-secret-token") && !bad.stdout.contains("wrong-secret-token")
    );
    n1.fc_with(&["push"], &[("CONSUL_HTTP_TOKEN", "root-secret-token")])
        .ok();
    let token_file = s.root.join("token");
    std::fs::write(&token_file, "root-secret-token\n").unwrap();
    n1.fc(&["--token-file", token_file.to_str().unwrap(), "status"])
        .ok();
    n1.fc_with(
        &["status"],
        &[("CONSUL_HTTP_TOKEN_FILE", token_file.to_str().unwrap())],
    )
    .ok();
    let help = fileconsul(&["--help"]);
    assert!(!help.stdout.contains("root-secret-token"));
}

#[test]
fn exit_6_local_filesystem_errors() {
    let s = Cluster::shared().scenario("exit-6");
    let n1 = s.node(1);
    let not_a_dir = s.root.join("plain-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let out = n1
        .command(&["status"])
        .args(["--basepath", not_a_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain-file"));
}

#[test]
fn exit_7_refused_files_and_keys() {
    let s = Cluster::shared().scenario("exit-7");
    let n1 = s.node(1);
    n1.write("big", vec![0u8; 600 * 1024]);
    n1.fc(&["push"]).code(7).stderr_has("big");
    n1.fc(&["status"]).code(7);
    std::fs::remove_file(n1.path("big")).unwrap();
    // A key Consul's UI would never make, but another tool could: refused, the rest applied.
    s.kv_put("ok", b"fine");
    let n2 = s.node(2);
    let ops = format!(
        r#"[{{"KV":{{"Verb":"set","Key":"{}/x/../../evil","Value":"eA=="}}}}]"#,
        s.prefix
    );
    let (code, _) = crate::harness::http(&n2.agent.http(), "PUT", "/v1/txn", ops.as_bytes(), None);
    assert_eq!(code, 200);
    n2.fc(&["pull"]).code(7).stderr_has("x/../../evil");
    assert_eq!(n2.read("ok"), b"fine");
}

fn tempfile_dir(name: &str) -> String {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}

#[test]
fn tls_settings_follow_the_consul_cli_environment() {
    let cluster = Cluster::builder().nodes(1).tls().start();
    let s = cluster.scenario("tls");
    let n1 = s.node(1);
    n1.write("f", "over https");
    let dir = cluster.tls_dir();
    let https = format!("https://{}:8501", cluster.agents[0].addr);
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (ca, cert, key) = (
        file("consul-agent-ca.pem"),
        file("dc1-client-consul-0.pem"),
        file("dc1-client-consul-0-key.pem"),
    );
    let run = |env: &[(&str, &str)], args: &[&str]| {
        // No --addr: CONSUL_HTTP_ADDR is what is tested here.
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fileconsul"));
        cmd.args([
            "--prefix",
            &s.prefix,
            "--basepath",
            n1.dir.to_str().unwrap(),
        ]);
        cmd.args(args).env_remove("CONSUL_HTTP_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        crate::harness::Run::from(cmd.output().unwrap(), args)
    };
    let full = [
        ("CONSUL_HTTP_ADDR", https.as_str()),
        ("CONSUL_CACERT", ca.as_str()),
        ("CONSUL_CLIENT_CERT", cert.as_str()),
        ("CONSUL_CLIENT_KEY", key.as_str()),
    ];
    run(&full, &["push"])
        .ok()
        .stdout_has("push new file:      f");
    assert_eq!(s.kv_get("f").unwrap(), b"over https");
    // No client certificate: the agent refuses the handshake.
    run(&full[..2], &["status"]).code(3);
    // No CA: the agent's certificate is not trusted.
    run(&[full[0], full[2], full[3]], &["status"])
        .code(3)
        .stderr_has("UnknownIssuer");
    // CONSUL_HTTP_SSL with a bare address, and verification off.
    let bare = format!("{}:8501", cluster.agents[0].addr);
    let insecure = [
        ("CONSUL_HTTP_ADDR", bare.as_str()),
        ("CONSUL_HTTP_SSL", "true"),
        ("CONSUL_HTTP_SSL_VERIFY", "false"),
        ("CONSUL_CLIENT_CERT", cert.as_str()),
        ("CONSUL_CLIENT_KEY", key.as_str()),
    ];
    run(&insecure, &["status"])
        .ok()
        .stdout_has("Already up-to-date.");
    // A client certificate without its key is a usage error.
    run(&[full[0], full[2]], &["status"]).code(2);
}
