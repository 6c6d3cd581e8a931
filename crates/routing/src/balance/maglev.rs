//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted: each
//! server claims table slots in proportion to its weight, following its own
//! permutation of the table. A lookup is one index; adding or removing one of
//! N servers moves about 1/N of the keys.

use super::hash::{hash64, SEED};

/// Table sizes (primes); the smallest one with `MIN_SLOTS_PER_SERVER` per
/// server is used (the largest for huge backends).
/// The largest (4 MiB) bounds memory and build time; from ~100 servers up a
/// server change moves a little more than 1/N of the keys (~1.4/N at 1,000).
const SIZES: [u64; 5] = [65_537, 131_071, 262_147, 524_287, 1_048_573];

/// Slots per server wanted: more slots spread weights more exactly and move
/// fewer keys when a server comes or goes (≤ 1.2/N up to 100 servers).
const MIN_SLOTS_PER_SERVER: u64 = 10_000;

/// A built lookup table: slot → server index.
#[derive(Debug)]
pub struct Maglev {
    table: Box<[u32]>,
}

impl Maglev {
    /// Builds the table for `(server index, weight, identity)`; weight-0
    /// servers are left out. `identity` is what places a server (its address).
    pub fn new(servers: &[(u32, u32, &str)]) -> Self {
        let servers: Vec<&(u32, u32, &str)> = servers.iter().filter(|s| s.1 > 0).collect();
        if servers.is_empty() {
            return Maglev {
                table: Box::new([]),
            };
        }
        let wanted = MIN_SLOTS_PER_SERVER * servers.len() as u64;
        let size = SIZES
            .iter()
            .copied()
            .find(|&m| m >= wanted)
            .unwrap_or(SIZES[SIZES.len() - 1]);
        let max_weight = u64::from(servers.iter().map(|s| s.1).max().unwrap_or(1));
        // (offset, skip, next position in the permutation, weight credit)
        let mut state: Vec<(u64, u64, u64, u64)> = servers
            .iter()
            .map(|s| {
                let offset = hash64(s.2.as_bytes(), SEED) % size;
                let skip = hash64(s.2.as_bytes(), SEED ^ 0x5bd1_e995) % (size - 1) + 1;
                (offset, skip, 0, 0)
            })
            .collect();
        let mut table = vec![u32::MAX; size as usize];
        let mut filled = 0u64;
        while filled < size {
            for (i, server) in servers.iter().enumerate() {
                let s = &mut state[i];
                s.3 += u64::from(server.1);
                if s.3 < max_weight {
                    continue;
                }
                s.3 -= max_weight;
                // Next free slot along this server's permutation.
                loop {
                    let slot = ((s.0 + s.2 * s.1) % size) as usize;
                    s.2 += 1;
                    if table[slot] == u32::MAX {
                        table[slot] = server.0;
                        filled += 1;
                        break;
                    }
                }
                if filled == size {
                    break;
                }
            }
        }
        Maglev {
            table: table.into_boxed_slice(),
        }
    }

    /// The server for a key hash, or `None` when there is no server.
    #[inline]
    pub fn get(&self, key: u64) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        Some(self.table[(key % self.table.len() as u64) as usize])
    }
}
