//! `zkgate server …` and `zkgate register` against a real ZooKeeper.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use zkgate_testkit::{send_signal, wait_until, HttpServer, ZooKeeper};

use common::*;

fn zkgate(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(ZKGATE)
        .args(args)
        .output()
        .expect("run zkgate");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn data_of(client: &zookeeper_client::Client, node: &str) -> Option<String> {
    match client.get_data(node).await {
        Ok((data, _)) => Some(String::from_utf8_lossy(&data).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_list_set_and_remove_edit_members_in_zookeeper() {
    let zk = ZooKeeper::standalone();
    let connect = zk.connect_string();
    let client = zk_client(&zk).await;

    let (ok, out, err) = zkgate(&[
        "server",
        "add",
        "--zk",
        &connect,
        "--path",
        "/services/web",
        "10.0.0.5:8080",
        "--weight",
        "10",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "added /services/web/10.0.0.5:8080 (weight 10, ready)"
    );
    let node = "/services/web/10.0.0.5:8080";
    assert_eq!(
        data_of(&client, node).await.unwrap(),
        r#"{"address":"10.0.0.5:8080","weight":10,"state":"ready"}"#
    );

    // A member written by hand with zkCli's habits shows up too, and one
    // in a zone says it.
    create(&client, "/services/web/10.0.0.6:8080", b"").await;
    create(
        &client,
        "/services/web/10.0.0.7:8080",
        br#"{"address":"10.0.0.7:8080","zone":"us-east-1b"}"#,
    )
    .await;
    let (ok, out, _) = zkgate(&[
        "server",
        "list",
        "--zk",
        &connect,
        "--path",
        "/services/web",
    ]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[1].starts_with("10.0.0.5:8080")
            && lines[1].contains(" 10  ready  -            zkgate     no"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("10.0.0.6:8080")
            && lines[2].contains("  1  ready  -            zkgate"),
        "{out}"
    );
    assert!(lines[3].contains("ready  us-east-1b   zkgate"), "{out}");
    client
        .delete("/services/web/10.0.0.7:8080", None)
        .await
        .unwrap();

    let (ok, out, err) = zkgate(&[
        "server",
        "set",
        "--zk",
        &connect,
        "--path",
        "/services/web",
        "10.0.0.5:8080",
        "--state",
        "drain",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "10.0.0.5:8080 now has weight 10, drain");
    let (ok, _, err) = zkgate(&[
        "server",
        "set",
        "--zk",
        &connect,
        "--path",
        "/services/web",
        "10.0.0.6:8080",
        "--weight",
        "0",
    ]);
    assert!(ok, "{err}");
    assert!(data_of(&client, "/services/web/10.0.0.6:8080")
        .await
        .unwrap()
        .contains(r#""weight":0"#));

    let (ok, out, _) = zkgate(&[
        "server",
        "remove",
        "--zk",
        &connect,
        "--path",
        "/services/web",
        "10.0.0.5:8080",
    ]);
    assert!(ok);
    assert_eq!(out.trim(), format!("removed {node}"));
    assert!(data_of(&client, node).await.is_none());
}

#[test]
fn bad_arguments_and_unreachable_zookeeper_are_one_clear_line() {
    let dead = dead_addr().to_string();
    for (args, expected) in [
        (
            vec!["server", "add", "--zk", &dead, "--path", "/s", "nowhere"],
            "invalid server address `nowhere`",
        ),
        (
            vec![
                "server",
                "add",
                "--zk",
                &dead,
                "--path",
                "services",
                "10.0.0.1:80",
            ],
            "--path must be an absolute znode path",
        ),
        (
            vec![
                "server",
                "set",
                "--zk",
                &dead,
                "--path",
                "/s",
                "10.0.0.1:80",
            ],
            "nothing to change",
        ),
        (
            vec!["server", "list", "--zk", &dead, "--path", "/s"],
            "cannot connect to ZooKeeper",
        ),
        (
            vec!["server", "list", "--zk", "zk1", "--path", "/s"],
            "--zk: `zk1` has no port",
        ),
    ] {
        let (ok, _, err) = zkgate(&args);
        assert!(!ok, "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("zkgate: ") && err.contains(expected),
            "{args:?}: {err}"
        );
    }
    let (ok, _, err) = zkgate(&[
        "server",
        "add",
        "--zk",
        &dead,
        "--path",
        "/s",
        "10.0.0.1:80",
        "--weight",
        "300",
    ]);
    assert!(!ok);
    assert!(err.contains("use 0 to 256"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sets_of_different_fields_are_both_applied() {
    let zk = ZooKeeper::standalone();
    let connect = zk.connect_string();
    let client = zk_client(&zk).await;
    let (ok, _, err) = zkgate(&[
        "server",
        "add",
        "--zk",
        &connect,
        "--path",
        "/services/web",
        "10.0.0.5:8080",
    ]);
    assert!(ok, "{err}");
    for round in 0..5u32 {
        let weight = (round + 2).to_string();
        let state = if round % 2 == 0 { "drain" } else { "maint" };
        let set = |field: &str, value: &str| {
            Command::new(ZKGATE)
                .args([
                    "server",
                    "set",
                    "--zk",
                    &connect,
                    "--path",
                    "/services/web",
                    "10.0.0.5:8080",
                    field,
                    value,
                ])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        };
        let (mut a, mut b) = (set("--weight", &weight), set("--state", state));
        assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
        let data = data_of(&client, "/services/web/10.0.0.5:8080")
            .await
            .unwrap();
        assert!(
            data.contains(&format!(r#""weight":{weight}"#)) && data.contains(state),
            "round {round} lost an update: {data}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_add_lasts_until_ctrl_c() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let mut holder = Command::new(ZKGATE)
        .args([
            "server",
            "add",
            "--zk",
            &zk.connect_string(),
            "--path",
            "/services/web",
            "10.0.0.7:80",
            "--ephemeral",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node = "/services/web/10.0.0.7:80";
    let stat = wait_until("the ephemeral member", Duration::from_secs(10), || async {
        client.check_stat(node).await.ok().flatten()
    })
    .await;
    assert_ne!(stat.ephemeral_owner, 0);
    send_signal(holder.id(), "INT");
    assert!(holder.wait().unwrap().success());
    assert!(client.check_stat(node).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_follows_the_local_health_check() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let server = HttpServer::start("app").await;
    let check = format!("http://{}/healthz", server.addr);
    let address = server.addr.to_string();
    let mut sidecar = Command::new(ZKGATE)
        .args([
            "register",
            "--zk",
            &zk.connect_string(),
            "--path",
            "/services/app",
            "--address",
            &address,
        ])
        .args([
            "--check",
            &check,
            "--interval",
            "100ms",
            "--rise",
            "2",
            "--fall",
            "2",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node = format!("/services/app/{address}");
    let present = |want: bool| {
        let (client, node) = (&client, node.clone());
        async move {
            wait_until(
                if want {
                    "registration"
                } else {
                    "deregistration"
                },
                Duration::from_secs(10),
                || async {
                    (client.check_stat(&node).await.ok().flatten().is_some() == want).then_some(())
                },
            )
            .await
        }
    };
    present(true).await;
    server.set_healthy(false);
    present(false).await;
    server.set_healthy(true);
    present(true).await;
    send_signal(sidecar.id(), "TERM");
    assert!(sidecar.wait().unwrap().success());
    assert!(client.check_stat(&node).await.unwrap().is_none());

    let (ok, _, err) = zkgate(&[
        "register",
        "--zk",
        "127.0.0.1:1",
        "--path",
        "/s",
        "--address",
        "10.0.0.1:80",
        "--check",
        "ftp://x",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--check must be http://host[:port]/path or tcp://host:port"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_other_writers_and_tools_are_left_as_they_were() {
    let zk = ZooKeeper::standalone();
    let connect = zk.connect_string();
    let client = zk_client(&zk).await;
    let zk_args = ["--zk", connect.as_str()];

    // `set` keeps the fields it does not know.
    let node = "/native/web/10.0.0.7:80";
    mkdir(&client, "/native/web").await;
    create(
        &client,
        node,
        br#"{"address":"10.0.0.7:80","weight":3,"zone":"us-east-1a","tags":["canary"],"later":{"x":1}}"#,
    )
    .await;
    let (ok, _, err) = zkgate(
        &[
            &["server", "set"][..],
            &zk_args,
            &["--path", "/native/web", "10.0.0.7:80", "--weight", "5"],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    let data = data_of(&client, node).await.unwrap();
    for kept in [
        r#""zone":"us-east-1a""#,
        r#""tags":["canary"]"#,
        r#""later":{"x":1}"#,
        r#""weight":5"#,
    ] {
        assert!(data.contains(kept), "{kept} in {data}");
    }

    // A missing path is named; an unreadable child says why.
    let (ok, _, err) =
        zkgate(&[&["server", "list"][..], &zk_args, &["--path", "/nowhere"]].concat());
    assert!(!ok);
    assert!(err.contains("/nowhere does not exist"), "{err}");
    create(&client, "/native/web/garbage", b"{not json").await;
    let (ok, out, _) = zkgate(
        &[
            &["server", "list"][..],
            &zk_args,
            &["--path", "/native/web"],
        ]
        .concat(),
    );
    assert!(ok);
    let garbage = out.lines().find(|l| l.contains("garbage")).unwrap();
    assert!(
        garbage.contains("unreadable") && garbage.contains('('),
        "{out}"
    );

    // A path of Curator members: `add` refuses (unless --force), and so
    // does `remove` for a Curator member, as `set` does.
    mkdir(&client, "/curator/web").await;
    create(
        &client,
        "/curator/web/abc",
        br#"{"name":"web","id":"abc","address":"10.0.0.8","port":80,"sslPort":null,"payload":null,"registrationTimeUTC":0,"serviceType":"DYNAMIC","uriSpec":null}"#,
    )
    .await;
    let add = |force: bool| {
        let mut args = [
            &["server", "add"][..],
            &zk_args,
            &["--path", "/curator/web", "10.0.0.9:80"],
        ]
        .concat();
        if force {
            args.push("--force");
        }
        zkgate(&args)
    };
    let (ok, _, err) = add(false);
    assert!(!ok);
    assert!(
        err.contains("holds members in the curator format") && err.contains("--force"),
        "{err}"
    );
    assert!(client
        .check_stat("/curator/web/10.0.0.9:80")
        .await
        .unwrap()
        .is_none());
    let (ok, _, err) = add(true);
    assert!(ok, "{err}");
    for command in ["remove", "set"] {
        let mut args = [
            &["server", command][..],
            &zk_args,
            &["--path", "/curator/web", "10.0.0.8:80"],
        ]
        .concat();
        if command == "set" {
            args.extend(["--weight", "2"]);
        }
        let (ok, _, err) = zkgate(&args);
        assert!(!ok, "{command}");
        assert!(
            err.contains("not in zkgate's format (curator)"),
            "{command}: {err}"
        );
    }
    assert!(client
        .check_stat("/curator/web/abc")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_leaves_a_member_it_did_not_create_alone() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let server = HttpServer::start("app").await;
    let address = server.addr.to_string();
    let node = format!("/services/app/{address}");
    mkdir(&client, "/services/app").await;
    let theirs = format!(r#"{{"address":"{address}","weight":9}}"#);
    create(&client, &node, theirs.as_bytes()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("register.log");
    let mut sidecar = Command::new(ZKGATE)
        .args([
            "register",
            "--zk",
            &zk.connect_string(),
            "--path",
            "/services/app",
        ])
        .args([
            "--address",
            &address,
            "--weight",
            "2",
            "--interval",
            "100ms",
        ])
        .args(["--check", &format!("tcp://{address}"), "--rise", "1"])
        .env("ZKGATE_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let said = wait_until_or_timeout(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("did not create")
    })
    .await;
    assert!(
        said,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    send_signal(sidecar.id(), "TERM");
    assert!(sidecar.wait().unwrap().success());
    // Still there, as it was.
    assert_eq!(data_of(&client, &node).await.unwrap(), theirs);
}

/// Polls `done` until it holds or `within` passes; whether it held.
async fn wait_until_or_timeout(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}
