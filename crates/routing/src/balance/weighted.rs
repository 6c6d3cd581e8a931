//! Load-aware picks: least connections, and power of two random choices
//! (plain or peak-EWMA latency), all weight-aware and lock-free.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Servers a least-connections pick compares exactly; beyond this it takes
/// the best of a weighted sample, to keep a pick cheap on huge backends.
const EXACT_SCAN: usize = 256;
const SAMPLE: usize = 16;

/// Cumulative weights, for weighted random choice by binary search.
#[derive(Debug)]
pub struct WeightedChoice {
    /// (cumulative weight, server index)
    cumulative: Box<[(u64, u32)]>,
}

impl WeightedChoice {
    /// From `(server index, weight)`; weight-0 servers are left out.
    pub fn new(servers: &[(u32, u32)]) -> Self {
        let mut total = 0u64;
        let cumulative = servers
            .iter()
            .filter(|(_, w)| *w > 0)
            .map(|&(index, weight)| {
                total += u64::from(weight);
                (total, index)
            })
            .collect();
        WeightedChoice { cumulative }
    }

    /// Whether there is any server.
    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// Servers to choose from.
    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// A server chosen with probability proportional to its weight.
    #[inline]
    pub fn choose(&self, random: u64) -> Option<u32> {
        let total = self.cumulative.last()?.0;
        let target = random % total;
        let at = self
            .cumulative
            .partition_point(|&(cumulative, _)| cumulative <= target);
        Some(self.cumulative[at].1)
    }

    /// The `n`-th server in order (for scans).
    pub fn nth(&self, n: usize) -> u32 {
        self.cumulative[n].1
    }
}

/// Least connections: the server with the fewest requests in flight per unit
/// of weight; ties go round-robin.
#[derive(Debug)]
pub struct LeastConn {
    choice: WeightedChoice,
    weights: Box<[u32]>,
    cursor: AtomicUsize,
}

impl LeastConn {
    /// From `(server index, weight)`; weight-0 servers are left out.
    pub fn new(servers: &[(u32, u32)]) -> Self {
        let eligible: Vec<(u32, u32)> = servers.iter().copied().filter(|&(_, w)| w > 0).collect();
        LeastConn {
            choice: WeightedChoice::new(&eligible),
            weights: eligible.iter().map(|&(_, w)| w).collect(),
            cursor: AtomicUsize::new(0),
        }
    }

    /// Picks by `load(index)` (requests in flight), using `random` for large backends.
    #[inline]
    pub fn pick(&self, load: impl Fn(u32) -> u64, mut random: impl FnMut() -> u64) -> Option<u32> {
        let n = self.choice.len();
        if n == 0 {
            return None;
        }
        // (load + 1) / weight, compared by cross-multiplication.
        let better = |(la, wa): (u64, u64), (lb, wb): (u64, u64)| (la + 1) * wb < (lb + 1) * wa;
        let mut best: Option<(u32, (u64, u64))> = None;
        let mut consider = |index: u32, weight: u32| {
            let cost = (load(index), u64::from(weight));
            if best.is_none_or(|(_, b)| better(cost, b)) {
                best = Some((index, cost));
            }
        };
        if n <= EXACT_SCAN {
            let start = self.cursor.fetch_add(1, Relaxed);
            for k in 0..n {
                let i = (start + k) % n;
                consider(self.choice.nth(i), self.weights[i]);
            }
        } else {
            for _ in 0..SAMPLE {
                let r = random();
                let i = self
                    .choice
                    .cumulative
                    .partition_point(|&(c, _)| c <= r % self.choice.cumulative[n - 1].0);
                consider(self.choice.nth(i), self.weights[i]);
            }
        }
        best.map(|(index, _)| index)
    }
}

/// Power of two choices: two weighted random candidates, the cheaper wins.
#[derive(Debug)]
pub struct PowerOfTwo {
    choice: WeightedChoice,
}

impl PowerOfTwo {
    /// From `(server index, weight)`; weight-0 servers are left out.
    pub fn new(servers: &[(u32, u32)]) -> Self {
        PowerOfTwo {
            choice: WeightedChoice::new(servers),
        }
    }

    /// Picks the cheaper of two candidates by `cost(index)`, compared as
    /// (primary, tie-break); lower is better, a full tie keeps the first draw.
    #[inline]
    pub fn pick(
        &self,
        cost: impl Fn(u32) -> (f64, f64),
        mut random: impl FnMut() -> u64,
    ) -> Option<u32> {
        let a = self.choice.choose(random())?;
        let b = self.choice.choose(random())?;
        if a == b {
            return Some(a);
        }
        let (ca, cb) = (cost(a), cost(b));
        Some(if cb.0 < ca.0 || (cb.0 == ca.0 && cb.1 < ca.1) {
            b
        } else {
            a
        })
    }
}
