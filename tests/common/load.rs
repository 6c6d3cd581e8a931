//! Traffic that runs while zkgate changes under it, and the sockets it listens on.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zkgate_testkit::{http_get, wait_until};

/// The sockets listening on 127.0.0.1:`port`, by inode: the same set before
/// and after a change means the same sockets serve on.
pub fn listening_sockets(port: u16) -> BTreeSet<u64> {
    // `st` 0A is LISTEN.
    sockets("/proc/net/tcp", port, |state| state == "0A")
}

/// The UDP sockets bound to 127.0.0.1:`port`, by inode.
#[allow(dead_code)] // each test crate uses its own part of `common`
pub fn udp_sockets(port: u16) -> BTreeSet<u64> {
    sockets("/proc/net/udp", port, |_| true)
}

/// The sockets of `table` bound to 127.0.0.1:`port` whose state passes `state`.
fn sockets(table: &str, port: u16, state: impl Fn(&str) -> bool) -> BTreeSet<u64> {
    let table = std::fs::read_to_string(table).unwrap();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[1] == local && state(fields[3])).then(|| fields[9].parse().unwrap())
        })
        .collect()
}

/// Four clients, each sending one request per new connection until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16) -> Self {
        let addr = ([127, 0, 0, 1], port).into();
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..4)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match http_get(addr, "/").await {
                            Ok(reply) if reply.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(reply) => failed
                                .lock()
                                .unwrap()
                                .push(format!("status {}", reply.status)),
                            Err(err) => failed.lock().unwrap().push(format!("{err:?}")),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    /// How many requests have been answered with a 200 so far.
    pub fn answered(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until 50 more requests than now have been answered.
    pub async fn carries_on(&self) {
        let now = self.ok.load(Ordering::Relaxed);
        wait_until("50 more answers", Duration::from_secs(10), || async {
            (self.ok.load(Ordering::Relaxed) > now + 50).then_some(())
        })
        .await;
    }

    /// Stops the clients and returns every failure they saw.
    pub async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        std::mem::take(&mut *self.failed.lock().unwrap())
    }
}
