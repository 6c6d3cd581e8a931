//! Statistical properties of every algorithm, with fixed seeds: weights are
//! honoured, load-aware ones move work away from busy or slow servers, and
//! consistent hashing moves few keys and agrees across instances.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use prometheus::Registry;
use zkgate_metrics::Metrics;

use super::hash::{hash64, SEED};
use crate::{ActiveRequest, Discovered, Resolved, RoutingTable, TableBuilder};

/// A table with one backend `b` of servers 127.0.0.1:(10000+i) with `weights`.
fn table(balance: &str, extra: &str, weights: &[u32]) -> RoutingTable {
    let servers: Vec<String> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{{ address: \"127.0.0.1:{}\", weight: {w} }}", 10_000 + i))
        .collect();
    let text = format!(
        "backends:\n  b:\n    balance: \"{balance}\"\n{extra}    servers: [{}]\n",
        servers.join(", ")
    );
    let config = zkgate_config::parse(&text, "t").unwrap();
    let resolved: Resolved = config.backends[0]
        .servers
        .iter()
        .map(|s| {
            (
                s.address.clone(),
                s.address.to_string().parse::<SocketAddr>().unwrap(),
            )
        })
        .collect();
    TableBuilder::new(Metrics::register(&Registry::new()).unwrap()).build(
        &config,
        &Discovered::new(),
        &resolved,
    )
}

fn index_of(addr: SocketAddr) -> usize {
    usize::from(addr.port() - 10_000)
}

/// Asserts each server's share of `counts` is within `tolerance` (relative) of its weight's share.
fn assert_shares(counts: &[usize], weights: &[u32], tolerance: f64) {
    let total: usize = counts.iter().sum();
    let weight_total: u32 = weights.iter().sum();
    for (i, (&count, &weight)) in counts.iter().zip(weights).enumerate() {
        let want = f64::from(weight) / f64::from(weight_total);
        let got = count as f64 / total as f64;
        assert!(
            (got - want).abs() <= want * tolerance,
            "server {i}: share {got:.3}, weight share {want:.3} (counts {counts:?})"
        );
    }
}

const WEIGHTS: [u32; 4] = [1, 2, 3, 4];

#[test]
fn round_robin_honours_weights_exactly_over_a_cycle() {
    let table = table("roundrobin", "", &WEIGHTS);
    let backend = table.backend("b").unwrap();
    let mut counts = [0; 4];
    for _ in 0..1000 {
        counts[index_of(backend.pick(None).unwrap().address())] += 1;
    }
    assert_eq!(counts, [100, 200, 300, 400]);
}

#[test]
fn leastconn_and_random_honour_weights_under_held_load_within_5_percent() {
    for balance in ["leastconn", "random", "ewma"] {
        let table = table(balance, "", &WEIGHTS);
        let backend = table.backend("b").unwrap();
        // Requests that stay in flight: the load these algorithms balance.
        let held: Vec<ActiveRequest> = (0..2000)
            .map(|_| backend.pick(None).unwrap().state.start_request())
            .collect();
        let mut counts = [0; 4];
        for request in &held {
            counts[index_of(request.server().address)] += 1;
        }
        assert_shares(&counts, &WEIGHTS, 0.05);
    }
}

#[test]
fn random_without_load_follows_weights_within_5_percent() {
    let table = table("random", "", &WEIGHTS);
    let backend = table.backend("b").unwrap();
    let mut counts = [0; 4];
    for _ in 0..40_000 {
        counts[index_of(backend.pick(None).unwrap().address())] += 1;
    }
    assert_shares(&counts, &WEIGHTS, 0.05);
}

#[test]
fn leastconn_sends_new_work_away_from_a_server_holding_long_requests() {
    let table = table("leastconn", "", &[1, 1, 1]);
    let backend = table.backend("b").unwrap();
    let busy = &backend.servers[0];
    let _long: Vec<ActiveRequest> = (0..5).map(|_| busy.state.start_request()).collect();
    for _ in 0..30 {
        let picked = backend.pick(None).unwrap();
        assert_ne!(picked.address(), busy.address());
        // Short requests that finish at once.
        drop(picked.state.start_request());
    }
}

#[test]
fn ewma_shifts_load_away_from_a_server_ten_times_slower() {
    let table = table("ewma", "", &[1, 1, 1, 1]);
    let backend = table.backend("b").unwrap();
    for (i, server) in backend.servers.iter().enumerate() {
        let rtt = if i == 0 {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(5)
        };
        server.state.latency.observe(rtt, std::time::Instant::now());
    }
    let mut counts = [0; 4];
    for _ in 0..20_000 {
        counts[index_of(backend.pick(None).unwrap().address())] += 1;
    }
    let slow_share = counts[0] as f64 / 20_000.0;
    // A fair share is 25%; with two choices the slow server only wins when drawn twice.
    assert!(
        slow_share < 0.10,
        "slow server got {slow_share:.3} of requests ({counts:?})"
    );
}

fn owner_map(table: &RoutingTable, keys: &[u64]) -> Vec<SocketAddr> {
    let backend = table.backend("b").unwrap();
    keys.iter()
        .map(|&k| backend.pick(Some(k)).unwrap().address())
        .collect()
}

fn keys() -> Vec<u64> {
    (0..100_000u64)
        .map(|i| hash64(&i.to_le_bytes(), SEED ^ 0xabc))
        .collect()
}

#[test]
fn consistent_hashing_moves_at_most_1_2_over_n_of_keys_when_one_server_changes() {
    let keys = keys();
    for method in ["maglev", "ring"] {
        for n in [10usize, 100] {
            let extra = format!("    hash_method: {method}\n");
            let before = owner_map(&table("source", &extra, &vec![1; n]), &keys);
            // One more server (added at the end).
            let grown = owner_map(&table("source", &extra, &vec![1; n + 1]), &keys);
            let moved = before.iter().zip(&grown).filter(|(a, b)| a != b).count() as f64
                / keys.len() as f64;
            assert!(
                moved <= 1.2 / (n + 1) as f64,
                "{method} n={n}: adding moved {moved:.4} of keys"
            );
            // One server fewer: the last one removed.
            let shrunk = owner_map(&table("source", &extra, &vec![1; n - 1]), &keys);
            let moved = before.iter().zip(&shrunk).filter(|(a, b)| a != b).count() as f64
                / keys.len() as f64;
            assert!(
                moved <= 1.2 / n as f64,
                "{method} n={n}: removing moved {moved:.4} of keys"
            );
        }
    }
}

#[test]
fn consistent_hashing_spreads_keys_by_weight() {
    let keys = keys();
    for method in ["maglev", "ring"] {
        let table = table("source", &format!("    hash_method: {method}\n"), &WEIGHTS);
        let mut counts = [0; 4];
        for addr in owner_map(&table, &keys) {
            counts[index_of(addr)] += 1;
        }
        assert_shares(
            &counts,
            &WEIGHTS,
            if method == "maglev" { 0.05 } else { 0.15 },
        );
    }
}

#[test]
fn two_independent_tables_map_every_key_identically() {
    let keys = keys();
    for method in ["maglev", "ring"] {
        let extra = format!("    hash_method: {method}\n");
        let a = owner_map(&table("uri", &extra, &[3, 1, 4, 1, 5, 9, 2, 6]), &keys);
        let b = owner_map(&table("uri", &extra, &[3, 1, 4, 1, 5, 9, 2, 6]), &keys);
        assert_eq!(a, b, "{method}");
    }
}

#[test]
fn a_hashing_backend_without_a_key_falls_back_to_round_robin() {
    let table = table("header(x-user)", "", &[1, 1]);
    let backend = table.backend("b").unwrap();
    let picks: HashMap<SocketAddr, usize> = (0..10).fold(HashMap::new(), |mut m, _| {
        *m.entry(backend.pick(None).unwrap().address()).or_default() += 1;
        m
    });
    assert_eq!(picks.values().copied().collect::<Vec<_>>(), [5, 5]);
}
