//! Smooth weighted round robin, lock-free.
//!
//! The control plane precomputes one full cycle of picks (Σ weights long,
//! after dividing by their gcd) in which each server's picks are spread evenly:
//! its k-th pick sits at virtual time (2k+1)/(2·weight). The request path then
//! only does one `fetch_add` on a cursor — weights 5:1 interleave as
//! `A A A B A A` rather than bursting.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Cycles longer than this are scaled down (keeping ratios within ~1%) so a
/// huge backend cannot make the table enormous.
const MAX_CYCLE: u64 = 1 << 20;

/// One precomputed round-robin cycle over server indexes.
#[derive(Debug)]
pub struct RoundRobin {
    cycle: Box<[u32]>,
    cursor: AtomicUsize,
}

/// One pick of a cycle: a server's `k`-th, at virtual time
/// `numerator / (2 * weight)` with `numerator = 2k + 1`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Pick {
    numerator: u64,
    weight: u64,
    server: u32,
}

impl Pick {
    /// Earlier time first; ties go to the lower index, so the cycle is
    /// deterministic.
    fn order(&self, other: &Self) -> Ordering {
        (self.numerator * other.weight)
            .cmp(&(other.numerator * self.weight))
            .then(self.server.cmp(&other.server))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Every pick of one cycle (`total` of them), in time order. The picks are
/// dealt into `total` buckets by the floor of `time × total` (a counting
/// sort: the bucket order is the time order), then each bucket, holding a
/// pick or two on average, is ordered exactly. Linear in the cycle's
/// length, where merging the servers' sequences through a heap costs a
/// logarithm of the server count per pick (~4 ms for 10,000 servers).
fn merged_picks(weights: &[(u32, u64)], total: u64) -> Vec<u32> {
    let buckets = total as usize;
    let bucket = |numerator: u64, weight: u64| (numerator * total / (2 * weight)) as usize;
    let mut starts = vec![0u32; buckets + 1];
    for &(_, weight) in weights {
        for k in 0..weight {
            starts[bucket(2 * k + 1, weight) + 1] += 1;
        }
    }
    for i in 0..buckets {
        starts[i + 1] += starts[i];
    }
    let mut next = starts.clone();
    let empty = Pick {
        numerator: 0,
        weight: 1,
        server: 0,
    };
    let mut picks = vec![empty; buckets];
    for &(server, weight) in weights {
        for k in 0..weight {
            let numerator = 2 * k + 1;
            let at = &mut next[bucket(numerator, weight)];
            picks[*at as usize] = Pick {
                numerator,
                weight,
                server,
            };
            *at += 1;
        }
    }
    for window in starts.windows(2) {
        let bucket = &mut picks[window[0] as usize..window[1] as usize];
        if bucket.len() > 1 {
            bucket.sort_unstable_by(Pick::order);
        }
    }
    picks.into_iter().map(|pick| pick.server).collect()
}

impl RoundRobin {
    /// Builds the cycle for `(server index, weight)` pairs; weight-0 entries are
    /// left out. `start` offsets the cursor so that successive tables do not all
    /// begin with the same server.
    pub fn new(weighted: &[(u32, u32)], start: usize) -> Self {
        let mut weights: Vec<(u32, u64)> = weighted
            .iter()
            .filter(|(_, w)| *w > 0)
            .map(|&(i, w)| (i, u64::from(w)))
            .collect();
        let divisor = weights.iter().fold(0, |g, &(_, w)| gcd(g, w)).max(1);
        let mut total: u64 = 0;
        for (_, w) in &mut weights {
            *w /= divisor;
            total += *w;
        }
        if total > MAX_CYCLE {
            for (_, w) in &mut weights {
                *w = (*w * MAX_CYCLE / total).max(1);
            }
            total = weights.iter().map(|&(_, w)| w).sum();
        }
        let cycle = merged_picks(&weights, total);
        let len = cycle.len().max(1);
        RoundRobin {
            cycle: cycle.into_boxed_slice(),
            cursor: AtomicUsize::new(start % len),
        }
    }

    /// The next server index, or `None` when no server has weight.
    #[inline]
    pub fn next(&self) -> Option<u32> {
        if self.cycle.is_empty() {
            return None;
        }
        let n = self.cursor.fetch_add(1, Relaxed);
        Some(self.cycle[n % self.cycle.len()])
    }

    /// Length of one full cycle.
    pub fn cycle_len(&self) -> usize {
        self.cycle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(rr: &RoundRobin, n: usize) -> Vec<u32> {
        (0..n).map(|_| rr.next().unwrap()).collect()
    }

    #[test]
    fn weights_five_to_one_interleave_instead_of_bursting() {
        let rr = RoundRobin::new(&[(0, 5), (1, 1)], 0);
        assert_eq!(picks(&rr, 6), [0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn a_full_cycle_gives_each_server_exactly_its_weight() {
        let rr = RoundRobin::new(&[(0, 3), (1, 2), (2, 1), (3, 0)], 4);
        assert_eq!(rr.cycle_len(), 6);
        let cycle = picks(&rr, 6);
        for (server, weight) in [(0, 3), (1, 2), (2, 1), (3, 0)] {
            assert_eq!(cycle.iter().filter(|&&s| s == server).count(), weight);
        }
    }

    #[test]
    fn common_factors_are_divided_out() {
        let rr = RoundRobin::new(&[(0, 200), (1, 100)], 0);
        assert_eq!(rr.cycle_len(), 3);
    }

    #[test]
    fn the_cycle_is_the_exact_time_order_of_every_pick() {
        // Against a plain sort of every pick by its exact time.
        let weights: Vec<(u32, u32)> = (0..300).map(|i| (i, 1 + (i * 7919) % 23)).collect();
        let rr = RoundRobin::new(&weights, 0);
        let mut expected: Vec<Pick> = weights
            .iter()
            .flat_map(|&(server, weight)| {
                (0..u64::from(weight)).map(move |k| Pick {
                    numerator: 2 * k + 1,
                    weight: u64::from(weight),
                    server,
                })
            })
            .collect();
        expected.sort_by(Pick::order);
        let expected: Vec<u32> = expected.iter().map(|p| p.server).collect();
        assert_eq!(picks(&rr, expected.len()), expected);
    }

    #[test]
    fn no_weight_means_no_server() {
        assert_eq!(RoundRobin::new(&[(0, 0)], 0).next(), None);
        assert_eq!(RoundRobin::new(&[], 0).next(), None);
    }

    #[test]
    fn huge_cycles_are_scaled_down_keeping_every_server() {
        let weights: Vec<(u32, u32)> = (0..10_000).map(|i| (i, 200 + (i % 57))).collect();
        let rr = RoundRobin::new(&weights, 0);
        assert!(rr.cycle_len() as u64 <= MAX_CYCLE + 10_000);
        let mut seen = vec![false; 10_000];
        for _ in 0..rr.cycle_len() {
            seen[rr.next().unwrap() as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
