//! Per-client limits that outlive routing tables: open connections and a
//! token bucket per (frontend, client address). Sharded maps keep the hot
//! path to one short, rarely contended lock; idle entries are evicted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use zkgate_config::RateLimit;
use zkgate_routing::balance::hash::client_key;
use zkgate_routing::FrontendId;

const SHARDS: usize = 64;
/// A shard this large drops its idle buckets.
const EVICT_ABOVE: usize = 4096;

type Key = (FrontendId, IpAddr);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Connection counts and rate buckets by client.
pub struct ClientLimits {
    connections: Vec<Mutex<HashMap<Key, u32>>>,
    buckets: Vec<Mutex<HashMap<Key, Bucket>>>,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            connections: (0..SHARDS).map(|_| Mutex::default()).collect(),
            buckets: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

fn shard(ip: IpAddr) -> usize {
    (client_key(ip) % SHARDS as u64) as usize
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts one open connection of a client until dropped.
pub struct ClientSlot {
    limits: Arc<ClientLimits>,
    key: Key,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.limits.connections[shard(self.key.1)]);
        if let Some(count) = map.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl ClientLimits {
    /// A slot for a new connection, or `None` if the client already has `max` open.
    pub fn connect(
        self: &Arc<Self>,
        frontend: FrontendId,
        ip: IpAddr,
        max: u32,
    ) -> Option<ClientSlot> {
        let key = (frontend, ip);
        let mut map = lock(&self.connections[shard(ip)]);
        let count = map.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            limits: Arc::clone(self),
            key,
        })
    }

    /// Takes one token for a request; `Err` holds how long until one is free.
    pub fn take(&self, frontend: FrontendId, ip: IpAddr, limit: RateLimit) -> Result<(), Duration> {
        let rate = f64::from(limit.requests_per_second);
        let capacity = rate + f64::from(limit.burst);
        let now = Instant::now();
        let mut map = lock(&self.buckets[shard(ip)]);
        if map.len() > EVICT_ABOVE {
            // A bucket idle long enough to be full again carries no state.
            let full_after = Duration::from_secs_f64(capacity / rate);
            map.retain(|_, bucket| now.duration_since(bucket.refilled) < full_after);
        }
        let bucket = map.entry((frontend, ip)).or_insert(Bucket {
            tokens: capacity,
            refilled: now,
        });
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_count_per_client_and_free_on_drop() {
        let limits = Arc::new(ClientLimits::default());
        let (fe, a, b) = (
            FrontendId(0),
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
        );
        let first = limits.connect(fe, a, 2).unwrap();
        let _second = limits.connect(fe, a, 2).unwrap();
        assert!(limits.connect(fe, a, 2).is_none());
        assert!(limits.connect(fe, b, 2).is_some());
        drop(first);
        assert!(limits.connect(fe, a, 2).is_some());
    }

    #[test]
    fn buckets_allow_rate_plus_burst_then_refuse() {
        let limits = ClientLimits::default();
        let limit = RateLimit {
            requests_per_second: 5,
            burst: 5,
        };
        let ip = "10.0.0.1".parse().unwrap();
        let allowed = (0..20)
            .filter(|_| limits.take(FrontendId(0), ip, limit).is_ok())
            .count();
        assert_eq!(allowed, 10);
        let wait = limits.take(FrontendId(0), ip, limit).unwrap_err();
        assert!(wait <= Duration::from_millis(200), "{wait:?}");
        // Another client is unaffected.
        assert!(limits
            .take(FrontendId(0), "10.0.0.2".parse().unwrap(), limit)
            .is_ok());
    }
}
