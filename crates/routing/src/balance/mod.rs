//! Load-balancing algorithms. Each is an immutable selector built by the
//! control plane for one table; the request path only queries it, reading
//! per-server atomics (requests in flight, latency) where the algorithm needs
//! them. No lock anywhere.

pub mod hash;
mod maglev;
mod ring;
mod round_robin;
mod weighted;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use zkgate_config::{Balance, HashMethod};

pub use hash::hash64;
pub use maglev::Maglev;
pub use ring::Ring;
pub use round_robin::RoundRobin;
pub use weighted::{LeastConn, PowerOfTwo, WeightedChoice};

use crate::server::ServerState;

/// One backend's selector.
#[derive(Debug)]
pub enum Balancer {
    /// Smooth weighted round robin.
    RoundRobin(RoundRobin),
    /// Fewest requests in flight per weight.
    LeastConn(LeastConn),
    /// Power of two weighted random choices by requests in flight.
    Random(PowerOfTwo),
    /// Power of two choices by peak-EWMA latency × load.
    Ewma(PowerOfTwo),
    /// Consistent hashing of a request key; requests without one go round robin.
    Hash(HashTable, RoundRobin),
}

/// A consistent-hashing lookup.
#[derive(Debug)]
pub enum HashTable {
    /// Maglev.
    Maglev(Maglev),
    /// Ring.
    Ring(Ring),
}

impl Balancer {
    /// Builds the selector over `eligible` = (server index, weight, identity).
    pub fn new(
        balance: &Balance,
        method: HashMethod,
        eligible: &[(u32, u32, &str)],
        start: usize,
    ) -> Self {
        let weighted: Vec<(u32, u32)> = eligible.iter().map(|&(i, w, _)| (i, w)).collect();
        match balance {
            Balance::RoundRobin => Balancer::RoundRobin(RoundRobin::new(&weighted, start)),
            Balance::LeastConn => Balancer::LeastConn(LeastConn::new(&weighted)),
            Balance::Random => Balancer::Random(PowerOfTwo::new(&weighted)),
            Balance::Ewma => Balancer::Ewma(PowerOfTwo::new(&weighted)),
            Balance::Source | Balance::Uri | Balance::Header(_) | Balance::Cookie(_) => {
                let table = match method {
                    HashMethod::Maglev => HashTable::Maglev(Maglev::new(eligible)),
                    HashMethod::Ring => HashTable::Ring(Ring::new(eligible)),
                };
                Balancer::Hash(table, RoundRobin::new(&weighted, start))
            }
        }
    }

    /// The next server index; `key` is the request's hash key, when the
    /// algorithm hashes and the request has one.
    #[inline]
    pub fn pick(&self, servers: &[crate::Server], key: Option<u64>) -> Option<u32> {
        let state = |i: u32| -> &ServerState { &servers[i as usize].state };
        let weight = |i: u32| f64::from(servers[i as usize].weight.max(1));
        match self {
            Balancer::RoundRobin(rr) => rr.next(),
            Balancer::LeastConn(lc) => lc.pick(|i| state(i).active.get().max(0) as u64, random),
            // Requests in flight per unit of weight; idle servers tie, and a tie
            // keeps the weighted draw.
            Balancer::Random(p2c) => p2c.pick(
                |i| (state(i).active.get().max(0) as f64 / weight(i), 0.0),
                random,
            ),
            // Work in flight (latency × requests) per unit of weight; between
            // idle servers the faster one wins.
            Balancer::Ewma(p2c) => p2c.pick(
                |i| {
                    let s = state(i);
                    let latency = s.latency.nanos();
                    (latency * s.active.get().max(0) as f64 / weight(i), latency)
                },
                random,
            ),
            Balancer::Hash(table, fallback) => match key {
                Some(key) => match table {
                    HashTable::Maglev(m) => m.get(key),
                    HashTable::Ring(r) => r.get(key),
                },
                None => fallback.next(),
            },
        }
    }
}

/// Distinct seeds for each thread's generator.
static SEEDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        hash::mix(time ^ SEEDS.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed))
    });
}

/// A fast per-thread pseudo-random number (xorshift64*); not for secrets.
#[inline]
pub fn random() -> u64 {
    RNG.with(|state| {
        let mut x = state.get() | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests;
