//! Backends that follow ZooKeeper, end to end: a real ZooKeeper, real
//! servers, the zkgate binary.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zkgate_testkit::{free_port, http_get, wait_until, HttpServer, Zkgate, ZooKeeper};

use common::*;

fn zk_config(zk_connect: &str, port: u16, backend_zk: &str, extra_zk: &str) -> String {
    format!(
        "zookeeper:\n  connect: \"{zk_connect}\"\n  session_timeout: 4s\n{extra_zk}frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    zookeeper: {backend_zk}\n"
    )
}

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_follows_servers_added_reweighted_drained_and_removed_in_zookeeper() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    register(&client, "/services/web", a.addr, 1, "ready").await;
    let port = free_port();
    let zkgate = Zkgate::start(
        ZKGATE,
        &zk_config(&zk.connect_string(), port, "{ path: /services/web }", ""),
    )
    .await;
    let addr = local(port);
    assert_eq!(spread(addr, "/", 4).await.get("a"), Some(&4));

    register(&client, "/services/web", b.addr, 3, "ready").await;
    wait_for_spread(addr, "/", &[("a", 10), ("b", 30)]).await;

    set_member(&client, "/services/web", a.addr, 1, "drain").await;
    wait_for_spread(addr, "/", &[("b", 20)]).await;

    set_member(&client, "/services/web", a.addr, 2, "ready").await;
    set_member(&client, "/services/web", b.addr, 0, "ready").await;
    wait_for_spread(addr, "/", &[("a", 20)]).await;

    set_member(&client, "/services/web", b.addr, 1, "ready").await;
    set_member(&client, "/services/web", a.addr, 1, "maint").await;
    wait_for_spread(addr, "/", &[("b", 20)]).await;

    unregister(&client, "/services/web", b.addr).await;
    wait_for_spread(addr, "/", &[("503", 5)]).await;

    let metrics = zkgate.metrics().await;
    assert!(
        metrics.contains("zkgate_zookeeper_connected 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zkgate_discovery_members{backend=\"web\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("zkgate_zookeeper_watch_events_total 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_under_steady_load_during_500_membership_changes() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let (a, b, c) = (
        HttpServer::start("a").await,
        HttpServer::start("b").await,
        HttpServer::start("c").await,
    );
    register(&client, "/services/web", a.addr, 1, "ready").await;
    let port = free_port();
    let _zkgate = Zkgate::start(
        ZKGATE,
        &zk_config(&zk.connect_string(), port, "{ path: /services/web }", ""),
    )
    .await;
    let addr = local(port);

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (done, ok, failed) = (done.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    match http_get(addr, "/").await {
                        Ok(reply) if reply.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    // Server a stays ready throughout; b and c come, go, drain and change weight.
    let mut present = [false, false];
    let churned = [b.addr, c.addr];
    for change in 0..500usize {
        let which = change % 2;
        let server = churned[which];
        match (change / 2) % 5 {
            0 | 3 if !present[which] => {
                register(
                    &client,
                    "/services/web",
                    server,
                    1 + (change % 7) as u32,
                    "ready",
                )
                .await;
                present[which] = true;
            }
            1 if present[which] => {
                set_member(
                    &client,
                    "/services/web",
                    server,
                    (change % 5) as u32,
                    "ready",
                )
                .await
            }
            2 if present[which] => set_member(&client, "/services/web", server, 2, "drain").await,
            4 if present[which] => {
                unregister(&client, "/services/web", server).await;
                present[which] = false;
            }
            _ => {
                set_member(
                    &client,
                    "/services/web",
                    a.addr,
                    1 + (change % 3) as u32,
                    "ready",
                )
                .await
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(ok > 100, "only {ok} requests ran during the changes");
    assert!(
        b.requests() + c.requests() > 0,
        "churned servers never got traffic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_format_registers_servers_and_a_malformed_sibling_is_skipped() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let servers = [
        HttpServer::start("native").await,
        HttpServer::start("finagle").await,
        HttpServer::start("finagle-stopping").await,
        HttpServer::start("curator").await,
        HttpServer::start("nerve").await,
        HttpServer::start("nerve-b64").await,
    ];
    for path in ["/native", "/aurora/web", "/curator/web", "/nerve/web"] {
        mkdir(&client, path).await;
    }
    // zkgate: address as the znode name, empty data (what `zkCli.sh create -e … ""` makes).
    create(&client, &format!("/native/{}", servers[0].addr), b"").await;
    create(&client, "/native/garbage", b"{not json").await;
    // Finagle serverset.
    let finagle = |addr: SocketAddr, status: &str| {
        format!(
            r#"{{"serviceEndpoint":{{"host":"{}","port":{}}},"additionalEndpoints":{{"http":{{"host":"{}","port":{}}}}},"status":"{status}","shard":0}}"#,
            addr.ip(),
            addr.port(),
            addr.ip(),
            addr.port()
        )
    };
    create(
        &client,
        "/aurora/web/member_0000000000",
        finagle(servers[1].addr, "ALIVE").as_bytes(),
    )
    .await;
    create(
        &client,
        "/aurora/web/member_0000000001",
        finagle(servers[2].addr, "STOPPING").as_bytes(),
    )
    .await;
    create(
        &client,
        "/aurora/web/member_0000000002",
        b"{\"status\":\"ALIVE\"}",
    )
    .await;
    // Curator ServiceInstance.
    let curator = format!(
        r#"{{"name":"web","id":"3b1f","address":"{}","port":{},"sslPort":null,"payload":null,"registrationTimeUTC":1732252800000,"serviceType":"DYNAMIC","uriSpec":null}}"#,
        servers[3].addr.ip(),
        servers[3].addr.port()
    );
    create(&client, "/curator/web/3b1f", curator.as_bytes()).await;
    // Nerve: JSON data, and path encoding with empty data.
    let nerve = |addr: SocketAddr, name: &str| {
        format!(
            r#"{{"host":"{}","port":{},"name":"{name}","weight":1}}"#,
            addr.ip(),
            addr.port()
        )
    };
    create(
        &client,
        "/nerve/web/i-1_0000000001",
        nerve(servers[4].addr, "i-1").as_bytes(),
    )
    .await;
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE.encode(nerve(servers[5].addr, "i-2"))
    };
    create(
        &client,
        &format!("/nerve/web/base64_{}_{encoded}_0000000002", encoded.len()),
        b"",
    )
    .await;

    let port = free_port();
    let config = format!(
        r#"zookeeper:
  connect: "{}"
frontends:
  web:
    bind: ["127.0.0.1:{port}"]
    routes:
      - {{ path_prefix: /finagle, backend: finagle }}
      - {{ path_prefix: /curator, backend: curator }}
      - {{ path_prefix: /nerve, backend: nerve }}
    default_backend: native
backends:
  native: {{ zookeeper: {{ path: /native }} }}
  finagle: {{ zookeeper: {{ path: /aurora/web, format: serverset, endpoint: http }} }}
  curator: {{ zookeeper: {{ path: /curator/web, format: curator }} }}
  nerve: {{ zookeeper: {{ path: /nerve/web, format: nerve }} }}
"#,
        zk.connect_string()
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = local(port);
    assert_eq!(spread(addr, "/", 3).await.get("native"), Some(&3));
    assert_eq!(spread(addr, "/finagle", 4).await.get("finagle"), Some(&4));
    assert_eq!(spread(addr, "/curator", 2).await.get("curator"), Some(&2));
    let nerve_spread = spread(addr, "/nerve", 4).await;
    assert_eq!(
        (nerve_spread.get("nerve"), nerve_spread.get("nerve-b64")),
        (Some(&2), Some(&2))
    );
    assert_eq!(
        servers[2].requests(),
        0,
        "a STOPPING Finagle member got traffic"
    );

    assert_eq!(
        zkgate
            .metric(r#"zkgate_discovery_invalid_members{backend="native"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        zkgate
            .metric(r#"zkgate_discovery_invalid_members{backend="finagle"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        zkgate
            .metric(r#"zkgate_discovery_members{backend="finagle"}"#)
            .await,
        Some(2.0)
    );
    let log = zkgate.log();
    assert_eq!(log.matches("skipping member").count(), 2, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptying_a_backend_keeps_the_last_members_unless_told_to_apply() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let server = HttpServer::start("s").await;
    register(&client, "/keep", server.addr, 1, "ready").await;
    register(&client, "/apply", server.addr, 1, "ready").await;
    let port = free_port();
    let config = format!(
        r#"zookeeper:
  connect: "{}"
frontends:
  web:
    bind: ["127.0.0.1:{port}"]
    routes: [{{ path_prefix: /apply, backend: apply }}]
    default_backend: keep
backends:
  keep: {{ zookeeper: {{ path: /keep }} }}
  apply: {{ zookeeper: {{ path: /apply, on_empty: apply }} }}
"#,
        zk.connect_string()
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = local(port);
    unregister(&client, "/keep", server.addr).await;
    client.delete("/keep", None).await.unwrap();
    unregister(&client, "/apply", server.addr).await;
    wait_for_spread(addr, "/apply", &[("503", 3)]).await;
    wait_until(
        "keep_last to be reported",
        Duration::from_secs(10),
        || async {
            (zkgate
                .metric(r#"zkgate_discovery_keeping_last{backend="keep"}"#)
                .await
                == Some(1.0))
            .then_some(())
        },
    )
    .await;
    assert_eq!(spread(addr, "/", 5).await.get("s"), Some(&5));
    assert!(zkgate.log().contains("keeping the last ones in service"));

    // Members coming back replace the kept set.
    let other = HttpServer::start("t").await;
    register(&client, "/keep", other.addr, 1, "ready").await;
    wait_for_spread(addr, "/", &[("t", 4)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_servers_serve_while_zookeeper_is_unreachable_and_ready_says_why() {
    let port = free_port();
    let dead_zk = common::dead_addr();
    let fallback = HttpServer::start("static").await;
    let config = format!(
        "zookeeper:\n  connect: \"{dead_zk}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    servers: {}\n    zookeeper: {{ path: /services/web }}\n",
        servers(&[(fallback.addr, 1)])
    );
    let zkgate = Zkgate::start_alive(ZKGATE, &config).await;
    let ready = http_get(zkgate.admin, "/ready").await.unwrap();
    assert_eq!(ready.status, 503);
    assert!(
        ready
            .text()
            .contains("backend web has not synced from ZooKeeper yet"),
        "{}",
        ready.text()
    );
    assert_eq!(spread(local(port), "/", 3).await.get("static"), Some(&3));
    assert_eq!(zkgate.metric("zkgate_zookeeper_connected").await, Some(0.0));
    // New connections waited for ZooKeeper only briefly.
    let log = zkgate.log();
    assert!(
        log.contains("accepting before the ZooKeeper-backed backends have synced"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_start_answers_its_first_connections_from_zookeeper_members_not_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let member = HttpServer::start("member").await;
    register(&client, "/services/web", member.addr, 1, "ready").await;
    let port = free_port();
    let config = zk_config(&zk.connect_string(), port, "{ path: /services/web }", "");
    let mut zkgate = Zkgate::spawn_with_env(ZKGATE, &config, &[]);

    // Connect from the first moment the port takes connections: before the
    // backend's first listing has arrived.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut connections = Vec::new();
    while connections.len() < 20 {
        match tokio::net::TcpStream::connect(local(port)).await {
            Ok(stream) => connections.push(stream),
            Err(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "zkgate never listened"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let mut answers = Vec::new();
    for mut stream in connections {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answers.push(answer.lines().next().unwrap_or_default().to_owned());
    }
    zkgate.wait_ready().await;
    let log = zkgate.log();
    assert!(
        log.contains("new connections wait for the ZooKeeper-backed backends' first listing"),
        "{log}"
    );
    // Only a ZooKeeper slower than the hold (a loaded machine) lets one through early, and says so.
    if !log.contains("accepting before the ZooKeeper-backed backends have synced") {
        assert!(
            answers.iter().all(|status| status == "HTTP/1.1 200 OK"),
            "{answers:?}\n{log}"
        );
        assert!(
            log.contains("ZooKeeper-backed backends synced: accepting"),
            "{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroot_and_digest_auth_reach_members_only_the_user_may_read() {
    let zk = ZooKeeper::standalone();
    let server = HttpServer::start("private").await;
    let owner = private_dir(&zk, "zkgate:s3cret", "/prod/services/web").await;
    let private =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::creator_all());
    owner
        .create(
            &format!("/prod/services/web/{}", server.addr),
            b"",
            &private,
        )
        .await
        .unwrap();
    // Without the credentials the member cannot even be listed.
    let stranger = zk_client(&zk).await;
    assert!(stranger.list_children("/prod/services/web").await.is_err());

    std::env::set_var("ZKGATE_TEST_ZK_PASSWORD", "s3cret");
    let port = free_port();
    let auth = "  chroot: /prod\n  auth: { user: zkgate, password_env: ZKGATE_TEST_ZK_PASSWORD }\n";
    let _zkgate = Zkgate::start(
        ZKGATE,
        &zk_config(&zk.connect_string(), port, "{ path: /services/web }", auth),
    )
    .await;
    assert_eq!(spread(local(port), "/", 3).await.get("private"), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_member_deploy_costs_a_handful_of_table_builds() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    mkdir(&client, "/services/big").await;
    let port = free_port();
    let config = format!(
        "zookeeper:\n  connect: \"{}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: idle\nbackends:\n  idle: {{ servers: [] }}\n  big:\n    zookeeper: {{ path: /services/big }}\n",
        zk.connect_string()
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let swaps_before = zkgate
        .metric("zkgate_routing_table_swaps_total")
        .await
        .unwrap();

    // A deploy: 1,000 registrations landing together (loopback addresses; no traffic goes there).
    let options =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    for batch in (0..1000).collect::<Vec<u32>>().chunks(250) {
        let mut writer = client.new_multi_writer();
        for i in batch {
            writer
                .add_create(
                    &format!("/services/big/127.3.{}.{}:8080", i / 250, i % 250 + 1),
                    b"",
                    &options,
                )
                .unwrap();
        }
        writer.commit().await.unwrap();
    }
    wait_until(
        "all 1,000 members in service",
        Duration::from_secs(30),
        || async {
            (zkgate
                .metric(r#"zkgate_discovery_members{backend="big"}"#)
                .await
                == Some(1000.0))
            .then_some(())
        },
    )
    .await;
    let builds = zkgate
        .metric("zkgate_routing_table_swaps_total")
        .await
        .unwrap()
        - swaps_before;
    assert!(
        builds <= 10.0,
        "{builds} table builds for one 1,000-member deploy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_member_cuts_neither_its_requests_nor_its_tcp_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let (web, echo) = (
        HttpServer::start("web").await,
        zkgate_testkit::TcpServer::start("echo").await,
    );
    register(&client, "/services/web", web.addr, 1, "ready").await;
    register(&client, "/services/echo", echo.addr, 1, "ready").await;
    let (http_port, tcp_port) = (free_port(), free_port());
    let config = format!(
        r#"zookeeper:
  connect: "{}"
frontends:
  web: {{ bind: ["127.0.0.1:{http_port}"], default_backend: web }}
  echo: {{ bind: ["127.0.0.1:{tcp_port}"], mode: tcp, default_backend: echo }}
backends:
  web: {{ zookeeper: {{ path: /services/web, on_empty: apply }} }}
  echo: {{ mode: tcp, zookeeper: {{ path: /services/echo, on_empty: apply }} }}
"#,
        zk.connect_string()
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let slow = tokio::spawn(async move { http_get(local(http_port), "/delay/1500").await });
    let mut tunnel = tokio::net::TcpStream::connect(local(tcp_port))
        .await
        .unwrap();
    tunnel.write_all(b"before").await.unwrap();
    let mut echoed = [0u8; 6];
    tunnel.read_exact(&mut echoed).await.unwrap();
    wait_until(
        "the slow request to reach the server",
        Duration::from_secs(5),
        || async { (web.requests() == 1).then_some(()) },
    )
    .await;

    unregister(&client, "/services/web", web.addr).await;
    unregister(&client, "/services/echo", echo.addr).await;
    wait_for_spread(local(http_port), "/", &[("503", 2)]).await;

    let finished = slow.await.unwrap().unwrap();
    assert_eq!(
        (finished.status.as_u16(), finished.text().as_str()),
        (200, "web")
    );
    tunnel.write_all(b"after").await.unwrap();
    tunnel.shutdown().await.unwrap();
    let mut rest = String::new();
    tunnel.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "afterserved-by echo\n");
}
