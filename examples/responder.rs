//! A minimal HTTP/1.1 origin for load benchmarks (`benches/compare.sh`): on
//! every port given, answers `GET /1m` with 1 MiB and anything else with a
//! 64-byte body, keep-alive, on one thread (`zkgate_testkit::responder`).
//!
//!     cargo run --release --example responder -- 18101 18102 18103
//!     cargo run --release --example responder -- 19000-19999   # a range

fn main() -> std::io::Result<()> {
    let usage = "usage: responder PORT|FIRST-LAST…";
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .flat_map(|arg| zkgate_testkit::responder::parse_ports(&arg).expect(usage))
        .collect();
    assert!(!ports.is_empty(), "{usage}");
    zkgate_testkit::responder::serve(ports)
}
