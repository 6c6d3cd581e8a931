//! Proves the ZooKeeper harness itself: real servers that take writes, fire
//! watches, survive a node's death, and can have a session expired.

use std::time::Duration;

use zkgate_testkit::{wait_until, Relay, ZooKeeper};
use zookeeper_client::{Acls, Client, CreateMode, EventType, SessionState};

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_server_takes_writes_and_fires_watches() {
    let zk = ZooKeeper::standalone();
    assert_eq!(zk.mode(0).as_deref(), Some("standalone"));
    let client = Client::connect(&zk.connect_string()).await.unwrap();
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/smoke", b"one", &persistent).await.unwrap();
    let (data, _, watcher) = client.get_and_watch_data("/smoke").await.unwrap();
    assert_eq!(data, b"one");
    client.set_data("/smoke", b"two", None).await.unwrap();
    let event = tokio::time::timeout(TIMEOUT, watcher.changed())
        .await
        .unwrap();
    assert_eq!(event.event_type, EventType::NodeDataChanged);
    assert_eq!(client.get_data("/smoke").await.unwrap().0, b"two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_keeps_serving_a_client_while_any_one_node_is_down() {
    let mut zk = ZooKeeper::ensemble();
    let modes: Vec<String> = (0..3).filter_map(|i| zk.mode(i)).collect();
    assert_eq!(
        modes.iter().filter(|m| *m == "leader").count(),
        1,
        "{modes:?}"
    );
    let client = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&zk.connect_string())
        .await
        .unwrap();
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/failover", b"", &persistent).await.unwrap();
    // Whichever node the client is attached to, one of these kills cuts it off.
    for node in 0..3 {
        zk.kill(node);
        let path = format!("/failover/after-kill-{node}");
        wait_until(
            &format!("a write with node {node} down"),
            TIMEOUT,
            || async {
                match client.create(&path, b"", &persistent).await {
                    Ok(_) | Err(zookeeper_client::Error::NodeExists) => Some(()),
                    Err(_) => None,
                }
            },
        )
        .await;
        zk.restart(node);
    }
    let children = client.list_children("/failover").await.unwrap();
    assert_eq!(children.len(), 3, "{children:?}");
    assert_eq!(client.state(), SessionState::SyncConnected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_session_ends_the_session_and_its_ephemeral_nodes() {
    let zk = ZooKeeper::standalone();
    // The victim talks through a relay, paused while its session is taken
    // over, so it cannot win the connection back in between.
    let relay = Relay::start(zk.client_addr(0)).await;
    let victim = Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(&relay.addr.to_string())
        .await
        .unwrap();
    let observer = Client::connect(&zk.connect_string()).await.unwrap();
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    victim.create("/mine", b"", &ephemeral).await.unwrap();
    let mut states = victim.state_watcher();

    relay.pause();
    zk.expire_session(victim.session().clone()).await;
    assert!(
        observer.check_stat("/mine").await.unwrap().is_none(),
        "ephemeral node outlived its session"
    );
    relay.resume();

    let state = tokio::time::timeout(TIMEOUT, async {
        loop {
            let state = states.changed().await;
            if state.is_terminated() {
                return state;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(state, SessionState::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_standalone_server_comes_back_with_its_data() {
    let mut zk = ZooKeeper::standalone();
    {
        let client = Client::connect(&zk.connect_string()).await.unwrap();
        let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
        client
            .create("/durable", b"kept", &persistent)
            .await
            .unwrap();
    }
    zk.kill(0);
    assert!(zk.mode(0).is_none());
    zk.restart(0);
    let client = Client::connect(&zk.connect_string()).await.unwrap();
    assert_eq!(client.get_data("/durable").await.unwrap().0, b"kept");
}
