//! Zone-aware routing (`locality: prefer_local`): a backend's eligible
//! servers split into this instance's zone and the others, each with a
//! balancer of the backend's algorithm (a hash ring per zone, so a key
//! keeps its server while its zone is healthy). Requests stay local while
//! the zone's ready weight is at least `min_local_healthy` of its
//! configured weight; below that, the local share falls in proportion
//! (ready share / `min_local_healthy`) and the rest spills over to the
//! other zones, by their weights (Envoy's zone-aware routing, without its
//! control plane). A request with a hash key goes to the side its key
//! hashes to, so keys stay put while the split holds.

use prometheus::IntCounter;
use zkgate_config::{Balance, HashMethod, Locality};

use crate::balance::{hash, random, Balancer};
use crate::server::Server;

/// The two sides of a zone-aware backend.
pub(crate) struct Zoned {
    local: Option<Balancer>,
    other: Option<Balancer>,
    /// The share of requests that stay local, out of 2^32.
    local_share: u64,
    /// `zkgate_backend_zone_requests_total{zone="local"|"other"}`.
    requests: [IntCounter; 2],
}

/// What to build a zone-aware backend from.
pub(crate) struct Sides<'a> {
    pub balance: &'a Balance,
    pub method: HashMethod,
    /// Eligible (server index, weight, identity), as for one balancer.
    pub eligible: &'a [(u32, u32, &'a str)],
    pub start: usize,
}

impl Zoned {
    /// Splits `sides.eligible` by whether each server is in `zone`.
    pub(crate) fn new(
        locality: &Locality,
        zone: &str,
        servers: &[Server],
        sides: Sides<'_>,
        requests: [IntCounter; 2],
    ) -> Self {
        let in_zone = |s: &Server| s.zone.as_deref() == Some(zone);
        let (local, other): (Vec<_>, Vec<_>) = sides
            .eligible
            .iter()
            .partition(|&&(i, _, _)| in_zone(&servers[i as usize]));
        let configured: u64 = servers
            .iter()
            .filter(|s| in_zone(s))
            .map(|s| u64::from(s.weight))
            .sum();
        let ready: u64 = local.iter().map(|&(_, w, _)| u64::from(w)).sum();
        let local_share = share(
            ready,
            configured,
            locality.min_local_healthy_percent,
            other.is_empty(),
        );
        let balancer = |side: &[(u32, u32, &str)]| {
            (!side.is_empty())
                .then(|| Balancer::new(sides.balance, sides.method, side, sides.start))
        };
        Zoned {
            local: balancer(&local),
            other: balancer(&other),
            local_share,
            requests,
        }
    }

    /// The next server index (see the module's comment).
    #[inline]
    pub(crate) fn pick(&self, servers: &[Server], key: Option<u64>) -> Option<u32> {
        // The high 32 bits of a draw, against the share.
        let draw = match key {
            Some(key) => hash::mix(key ^ 0x6c6f_6361_6c69_7479) >> 32,
            None => random() >> 32,
        };
        let local_first = draw < self.local_share;
        let (first, second) = if local_first {
            ((&self.local, 0), (&self.other, 1))
        } else {
            ((&self.other, 1), (&self.local, 0))
        };
        for (side, counter) in [first, second] {
            if let Some(index) = side.as_ref().and_then(|b| b.pick(servers, key)) {
                self.requests[counter].inc();
                return Some(index);
            }
        }
        None
    }

    /// The share of requests that stay local, 0.0 to 1.0.
    pub(crate) fn local_share(&self) -> f64 {
        self.local_share as f64 / FULL as f64
    }
}

const FULL: u64 = 1 << 32;

/// The local share, out of 2^32: all while `ready` is at least `min` percent
/// of `configured`, else in proportion; all if there is nowhere else to go.
fn share(ready: u64, configured: u64, min_percent: u8, no_other: bool) -> u64 {
    if no_other {
        return FULL;
    }
    if ready == 0 || configured == 0 {
        return 0;
    }
    // ready / configured ≥ min / 100, in integers.
    if ready * 100 >= configured * u64::from(min_percent) {
        return FULL;
    }
    // (ready / configured) / (min / 100) of FULL.
    (ready * 100 * FULL) / (configured * u64::from(min_percent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_share_follows_the_rule() {
        let full = FULL as f64;
        // Healthy enough: everything local.
        assert_eq!(share(3, 3, 70, false), FULL);
        assert_eq!(share(70, 100, 70, false), FULL);
        // 1 of 3 ready, 70 % needed: (1/3) / 0.7 ≈ 47.6 % stays.
        let one_of_three = share(1, 3, 70, false) as f64 / full;
        assert!((one_of_three - 0.476).abs() < 0.001, "{one_of_three}");
        // Nothing local, or no local servers: everything elsewhere.
        assert_eq!(share(0, 3, 70, false), 0);
        assert_eq!(share(0, 0, 70, false), 0);
        // Nowhere else to go: local.
        assert_eq!(share(1, 3, 70, true), FULL);
        // 0 % needed: local while anything local is ready.
        assert_eq!(share(1, 3, 0, false), FULL);
    }
}
