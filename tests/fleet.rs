//! A fleet of zkgates on one ZooKeeper ensemble (`zookeeper.fleet`): each
//! announces itself with the zxid it applied per backend; `zkgate server
//! set --wait-fleet` returns once every instance routes by the change, and
//! names the ones that do not; `zkgate fleet status` shows who is behind.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use zkgate_testkit::{free_port, wait_until, HttpServer, Zkgate, ZooKeeper};

use common::*;

const PATH: &str = "/services/web";
const FLEET: &str = "/zkgate/fleet";

fn config(zk: &str, port: u16, name: &str) -> String {
    format!(
        "zone: z1\nzookeeper:\n  connect: \"{zk}\"\n  session_timeout: 10s\n  fleet: {{ path: {FLEET}, name: {name} }}\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    zookeeper: {{ path: {PATH} }}\n"
    )
}

fn zkgate_cli(args: &[&str]) -> Output {
    Command::new(ZKGATE)
        .args(args)
        .output()
        .expect("run zkgate")
}

/// `zkgate server set … --weight W --wait-fleet` for `server`.
fn set_weight(connect: &str, server: &str, weight: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "server",
        "set",
        "--zk",
        connect,
        "--path",
        PATH,
        server,
        "--weight",
        weight,
        "--wait-fleet",
        FLEET,
    ];
    args.extend_from_slice(extra);
    zkgate_cli(&args)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_waited_for_until_every_instance_routes_by_it() {
    let zk = ZooKeeper::ensemble();
    let client = zk_client(&zk).await;
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    register(&client, PATH, a.addr, 1, "ready").await;
    register(&client, PATH, b.addr, 1, "ready").await;
    let connect = zk.connect_string();
    let mut fleet = Vec::new();
    for name in ["edge-1", "edge-2", "edge-3"] {
        let port = free_port();
        let zkgate = Zkgate::start(ZKGATE, &config(&connect, port, name)).await;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        fleet.push((zkgate, addr));
    }
    let status = zkgate_cli(&["fleet", "status", "--zk", &connect, "--path", FLEET]);
    let shown = text(&status);
    assert!(status.status.success(), "{shown}");
    for name in ["edge-1", "edge-2", "edge-3"] {
        assert!(shown.contains(name), "{shown}");
    }
    assert!(shown.contains("fleet agrees: 3 instances"), "{shown}");

    // Reweighted and waited for: every instance routes by it on return.
    let b_addr = b.addr.to_string();
    let set = set_weight(&connect, &b_addr, "3", &[]);
    assert!(set.status.success(), "{}", text(&set));
    for (_, addr) in &fleet {
        let seen = spread(*addr, "/", 40).await;
        assert_eq!(
            (seen.get("a"), seen.get("b")),
            (Some(&10), Some(&30)),
            "{seen:?}"
        );
    }

    // One instance frozen: the wait gives up naming it (exit 3), and the
    // fleet's status says it is behind.
    fleet[2].0.signal("STOP");
    let set = set_weight(&connect, &b_addr, "1", &["--timeout", "2s"]);
    let said = text(&set);
    assert_eq!(set.status.code(), Some(3), "{said}");
    assert!(
        said.contains("edge-3") && !said.contains("edge-1"),
        "{said}"
    );
    let status = text(&zkgate_cli(&[
        "fleet", "status", "--zk", &connect, "--path", FLEET,
    ]));
    assert!(
        status.contains("fleet disagrees: edge-3 is behind on /services/web"),
        "{status}"
    );
    fleet[2].0.signal("CONT");
    wait_until("edge-3 to catch up", Duration::from_secs(10), || async {
        let status = text(&zkgate_cli(&[
            "fleet", "status", "--zk", &connect, "--path", FLEET,
        ]));
        status.contains("fleet agrees").then_some(())
    })
    .await;

    // A name already live is a start error.
    let clash = Zkgate::spawn_with_env(ZKGATE, &config(&connect, free_port(), "edge-1"), &[]);
    let mut clash = clash;
    let exit = clash.exited(Duration::from_secs(15)).await;
    assert!(!exit.success());
    assert!(
        clash.log().contains("the fleet name is taken"),
        "{}",
        clash.log()
    );

    // An instance that stops leaves the fleet.
    let (mut gone, _) = fleet.remove(0);
    assert!(gone.terminate().success());
    wait_until(
        "edge-1's announcement gone",
        Duration::from_secs(10),
        || async {
            client
                .check_stat(&format!("{FLEET}/edge-1"))
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
}

/// A member whose znode is not named after its address (as a deploy tool
/// may name it): `--wait-fleet` waits for the write to that znode, so an
/// instance that cannot apply it is named (it was not waited for at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_a_member_named_otherwise_is_waited_for() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let server = HttpServer::start("a").await;
    mkdir(&client, PATH).await;
    let data = format!(r#"{{"address":"{}","weight":1}}"#, server.addr);
    create(&client, &format!("{PATH}/member-1"), data.as_bytes()).await;
    let connect = zk.connect_string();
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(&connect, port, "edge-1")).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(spread(addr, "/", 4).await.get("a"), Some(&4));

    let set = set_weight(&connect, &server.addr.to_string(), "5", &[]);
    assert!(set.status.success(), "{}", text(&set));

    zkgate.signal("STOP");
    let set = set_weight(
        &connect,
        &server.addr.to_string(),
        "7",
        &["--timeout", "2s"],
    );
    let said = text(&set);
    zkgate.signal("CONT");
    assert_eq!(set.status.code(), Some(3), "{said}");
    assert!(said.contains("edge-1"), "{said}");
    let written = client
        .get_data(&format!("{PATH}/member-1"))
        .await
        .unwrap()
        .0;
    assert!(String::from_utf8_lossy(&written).contains("\"weight\":7"));
}

/// A reload that changes the `zookeeper` section opens a new session and
/// ends the old one with all it ran: the announcement under the old name
/// goes, and the ensemble serves one session for zkgate, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_renames_the_instance_ends_the_old_session_and_its_announcement() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let server = HttpServer::start("a").await;
    register(&client, PATH, server.addr, 1, "ready").await;
    let connect = zk.connect_string();
    let port = free_port();
    let short = |name: &str| config(&connect, port, name).replace("10s", "2s");
    let zkgate = Zkgate::start(ZKGATE, &short("edge-1")).await;
    let announced = |name: &'static str| {
        let client = &client;
        async move { client.check_stat(&format!("{FLEET}/{name}")).await.ok()? }
    };
    wait_until("edge-1 announced", Duration::from_secs(10), || async {
        announced("edge-1").await.map(|_| ())
    })
    .await;
    let sessions = || {
        zkgate_testkit::zookeeper::four_letter(zk.client_addr(0).port(), "mntr").and_then(|mntr| {
            mntr.lines()
                .find_map(|l| l.strip_prefix("zk_num_alive_connections"))
                .and_then(|n| n.trim().parse::<u32>().ok())
        })
    };
    // The test's own session, zkgate's, and the one asking.
    let before = sessions();
    assert!(before.is_some());

    zkgate.reload(&short("edge-2")).await;
    wait_until(
        "edge-2 announced, edge-1 gone",
        Duration::from_secs(15),
        || async {
            let renamed =
                announced("edge-2").await.is_some() && announced("edge-1").await.is_none();
            renamed.then_some(())
        },
    )
    .await;
    wait_until(
        "the old session closed",
        Duration::from_secs(15),
        || async { (sessions() == before).then_some(()) },
    )
    .await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(spread(addr, "/", 4).await.get("a"), Some(&4));
}
