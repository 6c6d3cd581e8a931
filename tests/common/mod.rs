//! Shared by the end-to-end tests: the binary under test and config snippets.
#![allow(dead_code)]

use std::net::SocketAddr;

pub mod edge;
pub mod load;

/// The zkgate binary built for this test run.
pub const ZKGATE: &str = env!("CARGO_BIN_EXE_zkgate");

/// A YAML flow list of servers: `[{ address: "127.0.0.1:1", weight: 3 }, …]`.
pub fn servers(list: &[(SocketAddr, u32)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(addr, weight)| format!("{{ address: \"{addr}\", weight: {weight} }}"))
        .collect();
    format!("[{}]", items.join(", "))
}

/// One http frontend `web` on `port` in front of one backend `web` with `servers_yaml`.
pub fn web_config(port: u16, servers_yaml: &str) -> String {
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    servers: {servers_yaml}\n"
    )
}

/// Runs `zkgate check` on `yaml` (written as `broken.yaml`): whether it
/// passed, and what it printed on stderr, with the temporary path shown as
/// `broken.yaml`.
pub fn check(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, yaml).unwrap();
    let output = std::process::Command::new(ZKGATE)
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&output.stderr).replace(&*path.to_string_lossy(), "broken.yaml");
    (output.status.success(), text)
}

/// An address nothing listens on: bound, then released.
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A ZooKeeper client for the test's own writes.
pub async fn zk_client(zk: &zkgate_testkit::ZooKeeper) -> zookeeper_client::Client {
    zookeeper_client::Client::connect(&zk.connect_string())
        .await
        .expect("connect to ZooKeeper")
}

/// Creates `path` and its parents (persistent, open ACL) if missing.
pub async fn mkdir(client: &zookeeper_client::Client, path: &str) {
    let options =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    match client.mkdir(path, &options).await {
        Ok(()) | Err(zookeeper_client::Error::NodeExists) => {}
        Err(err) => panic!("mkdir {path}: {err}"),
    }
}

/// Creates `path` and its parents readable and writable only with the digest
/// `credentials` (`user:password`); returns the client that holds them.
pub async fn private_dir(
    zk: &zkgate_testkit::ZooKeeper,
    credentials: &str,
    path: &str,
) -> zookeeper_client::Client {
    let owner = zookeeper_client::Client::connector()
        .with_auth("digest", credentials.as_bytes())
        .connect(&zk.connect_string())
        .await
        .expect("connect to ZooKeeper");
    let private =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::creator_all());
    owner
        .mkdir(path, &private)
        .await
        .unwrap_or_else(|err| panic!("mkdir {path}: {err}"));
    owner
}

/// Creates a persistent znode `path` with `data` (parents must exist).
pub async fn create(client: &zookeeper_client::Client, path: &str, data: &[u8]) {
    let options =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client
        .create(path, data, &options)
        .await
        .unwrap_or_else(|err| panic!("create {path}: {err}"));
}

/// Registers a server in zkgate's native format under `path`.
pub async fn register(
    client: &zookeeper_client::Client,
    path: &str,
    addr: SocketAddr,
    weight: u32,
    state: &str,
) {
    mkdir(client, path).await;
    let data = format!(r#"{{"address":"{addr}","weight":{weight},"state":"{state}"}}"#);
    create(client, &format!("{path}/{addr}"), data.as_bytes()).await;
}

/// Rewrites a native member's weight and state.
pub async fn set_member(
    client: &zookeeper_client::Client,
    path: &str,
    addr: SocketAddr,
    weight: u32,
    state: &str,
) {
    let data = format!(r#"{{"address":"{addr}","weight":{weight},"state":"{state}"}}"#);
    client
        .set_data(&format!("{path}/{addr}"), data.as_bytes(), None)
        .await
        .unwrap_or_else(|err| panic!("set {path}/{addr}: {err}"));
}

/// Deletes a native member.
pub async fn unregister(client: &zookeeper_client::Client, path: &str, addr: SocketAddr) {
    client
        .delete(&format!("{path}/{addr}"), None)
        .await
        .unwrap_or_else(|err| panic!("delete {path}/{addr}: {err}"));
}

/// Sends `n` requests and counts answers by body (the server's name).
pub async fn spread(
    addr: SocketAddr,
    path: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let reply = zkgate_testkit::http_get(addr, path)
            .await
            .expect("request through zkgate");
        let key = if reply.status == 200 {
            reply.text()
        } else {
            reply.status.as_str().to_owned()
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Polls until `n` requests are answered exactly as `expected` (name → count).
pub async fn wait_for_spread(addr: SocketAddr, path: &str, expected: &[(&str, usize)]) {
    let want: std::collections::BTreeMap<String, usize> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    let n = want.values().sum();
    let mut last = std::collections::BTreeMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        last = spread(addr, path, n).await;
        if last == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("traffic never became {want:?}; last seen {last:?}");
}

/// zkgate (one worker) in front of `server` alone: zkgate and its address.
pub async fn zkgate_in_front_of(server: SocketAddr) -> (zkgate_testkit::Zkgate, SocketAddr) {
    zkgate_in_front_of_h(server, "http1").await
}

/// zkgate (one worker) in front of `server` alone, which speaks `protocol`
/// (`http1` or `http2`, cleartext): zkgate and its address.
pub async fn zkgate_in_front_of_h(
    server: SocketAddr,
    protocol: &str,
) -> (zkgate_testkit::Zkgate, SocketAddr) {
    let port = zkgate_testkit::free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    protocol: {protocol}\n    timeouts: {{ connect: 2s }}\n    servers: {}\n",
        servers(&[(server, 1)])
    );
    let zkgate =
        zkgate_testkit::Zkgate::start_with_env(ZKGATE, &config, &[("ZKGATE_WORKERS", "1")]).await;
    (zkgate, ([127, 0, 0, 1], port).into())
}

/// A recording origin's script: `200 ok` to everything.
pub fn answers_ok(_: &str) -> zkgate_testkit::Answer {
    zkgate_testkit::Answer::bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

/// The target of a request head.
pub fn path_of(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("/")
}

/// An HTTP/2 client (prior knowledge) on a new connection to `addr`.
#[allow(dead_code)]
pub async fn h2_sender<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// Sends `request` over a fresh connection to `addr`: HTTP/2 with prior
/// knowledge if `h2` (the request's URI then carries the authority),
/// HTTP/1.1 otherwise.
pub async fn send_on_new_connection(
    addr: SocketAddr,
    h2: bool,
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> http::Response<hyper::body::Incoming> {
    use hyper_util::rt::TokioIo;
    if h2 {
        return h2_sender(addr).await.send_request(request).await.unwrap();
    }
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    }
}

/// Reads an HTTP/1.1 answer with a `content-length`: its head and body.
pub async fn read_sized_answer<R: tokio::io::AsyncRead + Unpin>(read: &mut R) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..at]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .expect("a content-length")
                .parse()
                .unwrap();
            if got.len() >= at + 4 + length {
                return (head, got[at + 4..].to_vec());
            }
        }
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), read.read(&mut chunk))
            .await
            .expect("the answer goes on")
            .unwrap();
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
    }
}
