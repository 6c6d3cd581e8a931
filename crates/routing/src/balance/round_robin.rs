//! Smooth weighted round robin, lock-free.
//!
//! The control plane precomputes one full cycle of picks (Σ weights long,
//! after dividing by their gcd) in which each server's picks are spread evenly:
//! its k-th pick sits at virtual time (2k+1)/(2·weight). The request path then
//! only does one `fetch_add` on a cursor — weights 5:1 interleave as
//! `A A A B A A` rather than bursting.

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

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Every pick of one cycle (`total` of them), in time order: dealt into
/// `total` slots of time by a counting sort (the slot of a pick is the floor
/// of `time × total`), picks of one slot in server order. Within a slot the
/// order is immaterial to smoothness (the picks are due at once), and the
/// build is linear in the cycle's length, two passes over the servers'
/// picks: merging the servers' sequences exactly through a heap cost a
/// logarithm of the server count per pick (~4 ms for 10,000 servers).
fn merged_picks(weights: &[(u32, u64)], total: u64) -> Vec<u32> {
    let slots = total as usize;
    let mut next = vec![0u32; slots + 1];
    for &(_, weight) in weights {
        for slot in slots_of(weight, total) {
            next[slot + 1] += 1;
        }
    }
    for i in 0..slots {
        next[i + 1] += next[i];
    }
    let mut cycle = vec![0u32; slots];
    for &(server, weight) in weights {
        for slot in slots_of(weight, total) {
            let at = &mut next[slot];
            cycle[*at as usize] = server;
            *at += 1;
        }
    }
    cycle
}

/// The slots of a server's picks in one cycle: its `k`-th pick is due at
/// `(2k + 1) / (2 · weight)` of the cycle, in slot
/// `floor((2k + 1) · total / (2 · weight))`, stepped without a division
/// per pick.
fn slots_of(weight: u64, total: u64) -> impl Iterator<Item = usize> {
    let divisor = 2 * weight;
    // From one pick to the next the dividend grows by 2 · total: `step`
    // whole slots and `carry` over.
    let (step, carry) = (2 * total / divisor, 2 * total % divisor);
    let (mut slot, mut remainder) = (total / divisor, total % divisor);
    (0..weight).map(move |_| {
        let at = slot as usize;
        slot += step;
        remainder += carry;
        if remainder >= divisor {
            remainder -= divisor;
            slot += 1;
        }
        at
    })
}

impl RoundRobin {
    /// Builds the cycle for `(server index, weight)` pairs; weight-0 entries are
    /// left out. `start` offsets the cursor so that successive tables do not all
    /// begin with the same server.
    pub fn new(weighted: &[(u32, u32)], start: usize) -> Self {
        let mut weights: Vec<(u32, u64)> = Vec::with_capacity(weighted.len());
        weights.extend(
            weighted
                .iter()
                .filter(|(_, w)| *w > 0)
                .map(|&(i, w)| (i, u64::from(w))),
        );
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
    fn every_pick_comes_in_the_time_slot_it_is_due() {
        let weights: Vec<(u32, u32)> = (0..300).map(|i| (i, 1 + (i * 7919) % 23)).collect();
        let rr = RoundRobin::new(&weights, 0);
        let total: u64 = weights.iter().map(|&(_, w)| u64::from(w)).sum();
        assert_eq!(rr.cycle_len() as u64, total);
        // Server s's k-th pick is due at (2k + 1) / (2 w) of the cycle: the
        // slots the picks are due in never go back along the cycle.
        let mut seen = vec![0u64; weights.len()];
        let mut last = 0;
        for position in 0..total {
            let server = rr.next().unwrap() as usize;
            let (k, w) = (seen[server], u64::from(weights[server].1));
            seen[server] += 1;
            let slot = (2 * k + 1) * total / (2 * w);
            assert!(slot >= last, "pick {position} goes back in time");
            last = slot;
            assert!(k < w, "server {server} picked more than its weight");
        }
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
