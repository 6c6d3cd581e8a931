//! The relay on real loopback sockets.

use super::pipe::SPARES;
use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Two connected sockets on loopback.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let near = TcpStream::connect(listener.local_addr().unwrap());
    let (near, far) = tokio::join!(near, listener.accept());
    (near.unwrap(), far.unwrap().0)
}

/// A tunnel between a client and a server: the client's and the
/// server's sockets, the relay's task and its two byte counters.
async fn tunnel(
    idle: Duration,
    split: Split,
) -> (
    TcpStream,
    TcpStream,
    tokio::task::JoinHandle<(u64, u64)>,
    [IntCounter; 2],
) {
    let (client, proxy_client) = pair().await;
    let (proxy_server, server) = pair().await;
    let counters = [
        IntCounter::new("received", "client to server").unwrap(),
        IntCounter::new("sent", "server to client").unwrap(),
    ];
    let counted = (Some(counters[0].clone()), Some(counters[1].clone()));
    let relay = tokio::spawn(async move {
        match split {
            Split::Plain => {
                let (client, server) = (proxy_client.into_split(), proxy_server.into_split());
                relay(client, server, idle, counted).await
            }
            // As the TLS and upgrade paths split their streams.
            Split::Shared => {
                let client = tokio::io::split(proxy_client);
                let server = tokio::io::split(proxy_server);
                relay(client, server, idle, counted).await
            }
        }
    });
    (client, server, relay, counters)
}

/// `len` bytes in a pattern that shows a lost or reordered chunk.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// How the tunnel's peers are split: as plain sockets (a waker per
/// direction, bulk spliced), or as streams (one waker, always copied).
#[derive(Clone, Copy, Debug)]
enum Split {
    Plain,
    Shared,
}

const BOTH: [Split; 2] = [Split::Plain, Split::Shared];
const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn each_direction_is_shut_down_on_its_own() {
    // A few bytes, copied; and 1 MiB, which fills the buffer and is spliced
    // between plain sockets from then on, to an odd length.
    for (up, down) in [(4, 5), ((1 << 20) + 3, (1 << 20) + 7)] {
        for split in BOTH {
            // An hour: no idle tick comes to poll a direction whose wake-up was lost.
            let (mut client, mut server, relay, counters) = tunnel(HOUR, split).await;
            let exchange = async {
                client.write_all(&payload(up, 1)).await.unwrap();
                client.shutdown().await.unwrap();
                let mut received = Vec::new();
                server.read_to_end(&mut received).await.unwrap();
                assert!(received == payload(up, 1), "{split:?}: {up} bytes up");
                // The other direction still carries bytes after the first ended.
                server.write_all(&payload(down, 2)).await.unwrap();
                drop(server);
                let mut answered = Vec::new();
                client.read_to_end(&mut answered).await.unwrap();
                assert!(answered == payload(down, 2), "{split:?}: {down} bytes down");
                relay.await.unwrap()
            };
            let copied = tokio::time::timeout(Duration::from_secs(10), exchange)
                .await
                .expect("each direction is woken when its bytes come");
            assert_eq!(copied, (up as u64, down as u64), "{split:?}");
            let counted = (counters[0].get(), counters[1].get());
            assert_eq!(counted, copied, "{split:?}");
        }
    }
}

#[tokio::test]
async fn a_quiet_tunnel_holds_no_pipe_after_a_burst() {
    // The relay runs on this test's thread, so its spares are this thread's.
    let spares = || SPARES.with_borrow(Vec::len);
    assert_eq!(spares(), 0);
    let (mut client, mut server, _relay, _) = tunnel(HOUR, Split::Plain).await;
    client.write_all(&payload(1 << 20, 4)).await.unwrap();
    let mut received = vec![0u8; 1 << 20];
    server.read_exact(&mut received).await.unwrap();
    assert!(received == payload(1 << 20, 4));
    let deadline = Instant::now() + Duration::from_secs(5);
    while spares() == 0 {
        assert!(Instant::now() < deadline, "the pipe was not handed back");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(spares(), 1, "one pipe, reused through the burst");
    // The next burst takes it again.
    client.write_all(&payload(1 << 20, 5)).await.unwrap();
    server.read_exact(&mut received).await.unwrap();
    assert!(received == payload(1 << 20, 5));
}

#[tokio::test]
async fn a_server_that_vanishes_mid_transfer_ends_the_tunnel() {
    for split in BOTH {
        let (client, mut server, relay, _) = tunnel(HOUR, split).await;
        let (mut from_client, mut to_server) = client.into_split();
        // The client streams until the relay stops taking its bytes.
        let streaming = tokio::spawn(async move {
            let chunk = payload(64 * 1024, 3);
            while to_server.write_all(&chunk).await.is_ok() {}
        });
        let mut first = vec![0u8; 256 * 1024];
        server.read_exact(&mut first).await.unwrap();
        drop(server);
        let (up, _) = tokio::time::timeout(Duration::from_secs(10), relay)
            .await
            .expect("the relay ends when the server is gone")
            .unwrap();
        assert!(up >= first.len() as u64, "{split:?}: {up} bytes up");
        let mut rest = Vec::new();
        assert_eq!(from_client.read_to_end(&mut rest).await.unwrap_or(0), 0);
        streaming.abort();
    }
}

#[tokio::test]
async fn both_directions_stream_at_once_past_full_socket_buffers() {
    // Each side writes 4 MiB before reading anything: the relay's writes
    // block both ways, and each must be woken when its socket drains.
    const SIZE: usize = 4 << 20;
    for split in BOTH {
        let (client, server, relay, _) = tunnel(HOUR, split).await;
        let exchange = |stream: TcpStream, fill: u8| async move {
            let (mut read, mut write) = stream.into_split();
            let writer = async move {
                write.write_all(&vec![fill; SIZE]).await.unwrap();
                write.shutdown().await.unwrap();
            };
            let reader = async move {
                let mut received = Vec::new();
                read.read_to_end(&mut received).await.unwrap();
                received
            };
            tokio::join!(writer, reader).1
        };
        let (at_client, at_server) = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(exchange(client, b'c'), exchange(server, b's'))
        })
        .await
        .expect("the relay moves 4 MiB each way");
        assert!(at_client.len() == SIZE && at_client.iter().all(|&b| b == b's'));
        assert!(at_server.len() == SIZE && at_server.iter().all(|&b| b == b'c'));
        assert_eq!(
            relay.await.unwrap(),
            (SIZE as u64, SIZE as u64),
            "{split:?}"
        );
    }
}

#[tokio::test]
async fn a_quiet_tunnel_closes_after_idle_and_a_busy_one_stays_open() {
    let idle = Duration::from_millis(200);
    for split in BOTH {
        let (mut client, mut server, relay, _) = tunnel(idle, split).await;
        // A byte every quarter of `idle`, for three times `idle`.
        let mut quiet_from = std::time::Instant::now();
        for _ in 0..12 {
            tokio::time::sleep(idle / 4).await;
            client.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).await.unwrap();
            quiet_from = std::time::Instant::now();
        }
        assert!(!relay.is_finished(), "{split:?}: closed while busy");
        let copied = tokio::time::timeout(Duration::from_secs(5), relay)
            .await
            .expect("the idle tunnel closes")
            .unwrap();
        assert!(
            quiet_from.elapsed() >= idle,
            "{split:?}: closed after {:?}",
            quiet_from.elapsed()
        );
        assert_eq!(copied, (12, 0));
        // Both peers see the close.
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
