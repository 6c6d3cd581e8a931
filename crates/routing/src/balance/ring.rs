//! Consistent hashing on a ring (ketama-style): each server owns points in
//! proportion to its weight; a key goes to the first point at or after its
//! hash. Adding or removing one of N servers moves about 1/N of the keys.

use super::hash::{hash64, SEED};

/// Points of a server of the highest weight.
const POINTS_PER_SERVER: u64 = 160;
/// Upper bound on points, so huge backends stay small.
const MAX_POINTS: u64 = 1 << 20;

/// A built ring: sorted (point, server index).
#[derive(Debug)]
pub struct Ring {
    points: Box<[(u64, u32)]>,
}

impl Ring {
    /// Builds the ring for `(server index, weight, identity)`; weight-0 servers are left out.
    pub fn new(servers: &[(u32, u32, &str)]) -> Self {
        let servers: Vec<&(u32, u32, &str)> = servers.iter().filter(|s| s.1 > 0).collect();
        let max_weight = u64::from(servers.iter().map(|s| s.1).max().unwrap_or(1));
        let per_server = POINTS_PER_SERVER.min((MAX_POINTS / servers.len().max(1) as u64).max(1));
        let mut points = Vec::new();
        for &&(index, weight, identity) in &servers {
            let count = (per_server * u64::from(weight)).div_ceil(max_weight).max(1);
            for k in 0..count {
                let mut key = Vec::with_capacity(identity.len() + 8);
                key.extend_from_slice(identity.as_bytes());
                key.extend_from_slice(&k.to_le_bytes());
                points.push((hash64(&key, SEED), index));
            }
        }
        points.sort_unstable();
        Ring {
            points: points.into_boxed_slice(),
        }
    }

    /// The server for a key hash, or `None` when there is no server.
    #[inline]
    pub fn get(&self, key: u64) -> Option<u32> {
        if self.points.is_empty() {
            return None;
        }
        let at = self.points.partition_point(|&(point, _)| point < key);
        Some(self.points[at % self.points.len()].1)
    }
}
