//! Every labelled metric family: its name, help text and labels, in one
//! table that registration reads.

use crate::names;

/// A labelled metric family.
pub(crate) struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

pub(crate) const DISCOVERY_KEEPING_LAST: Family = Family {
    name: names::DISCOVERY_KEEPING_LAST,
    help: "1 while ZooKeeper reports no members and the last set is kept (on_empty: keep_last)",
    labels: &["backend"],
};

pub(crate) const DISCOVERY_STALE: Family = Family {
    name: names::DISCOVERY_STALE,
    help: "1 while the backend serves its last-known members from state_dir, before ZooKeeper's first listing",
    labels: &["backend"],
};

pub(crate) const DISCOVERY_HELD_MEMBERS: Family = Family {
    name: names::DISCOVERY_HELD_MEMBERS,
    help: "Members ZooKeeper removed that the mass-removal guard (protect) keeps serving",
    labels: &["backend"],
};

pub(crate) const BACKEND_ZONE_REQUESTS_TOTAL: Family = Family {
    name: names::BACKEND_ZONE_REQUESTS_TOTAL,
    help: "Requests of a backend with locality: prefer_local, by zone (local or other)",
    labels: &["backend", "zone"],
};

pub(crate) const DISCOVERY_APPLIED_ZXID: Family = Family {
    name: names::DISCOVERY_APPLIED_ZXID,
    help: "The newest ZooKeeper transaction whose effect on the backend's members is in the routing table",
    labels: &["backend"],
};

pub(crate) const FLEET_ANNOUNCED: Family = Family {
    name: names::FLEET_ANNOUNCED,
    help: "1 while this instance's fleet znode exists (zookeeper.fleet)",
    labels: &[],
};

pub(crate) const ROUTE_SPLIT_REQUESTS_TOTAL: Family = Family {
    name: names::ROUTE_SPLIT_REQUESTS_TOTAL,
    help: "Requests a route's split sent to each of its backends",
    labels: &["frontend", "backend"],
};

pub(crate) const ROUTE_MIRRORED_TOTAL: Family = Family {
    name: names::ROUTE_MIRRORED_TOTAL,
    help: "Copies of requests made by a route's mirror, by result (answered, failed, too_large, dropped)",
    labels: &["frontend", "result"],
};

pub(crate) const COMPRESSED_RESPONSES_TOTAL: Family = Family {
    name: names::COMPRESSED_RESPONSES_TOTAL,
    help: "Answers a frontend compressed, by coding (zstd, br, gzip)",
    labels: &["frontend", "algorithm"],
};

pub(crate) const HTTP3_CONNECTIONS_TOTAL: Family = Family {
    name: names::HTTP3_CONNECTIONS_TOTAL,
    help: "QUIC connections established with a frontend's HTTP/3 listeners",
    labels: &["frontend"],
};

pub(crate) const DISCOVERY_MEMBERS: Family = Family {
    name: names::DISCOVERY_MEMBERS,
    help: "Members of a ZooKeeper-backed backend in use",
    labels: &["backend"],
};

pub(crate) const DISCOVERY_INVALID_MEMBERS: Family = Family {
    name: names::DISCOVERY_INVALID_MEMBERS,
    help: "Members skipped because their znode data does not parse",
    labels: &["backend"],
};

pub(crate) const FRONTEND_CONNECTIONS: Family = Family {
    name: names::FRONTEND_CONNECTIONS_TOTAL,
    help: "Client connections accepted",
    labels: &["frontend"],
};

pub(crate) const FRONTEND_ACTIVE_CONNECTIONS: Family = Family {
    name: names::FRONTEND_ACTIVE_CONNECTIONS,
    help: "Client connections open",
    labels: &["frontend"],
};

pub(crate) const FRONTEND_REQUESTS: Family = Family {
    name: names::FRONTEND_REQUESTS_TOTAL,
    help: "HTTP requests received",
    labels: &["frontend"],
};

pub(crate) const FRONTEND_BYTES_RECEIVED: Family = Family {
    name: names::FRONTEND_BYTES_RECEIVED_TOTAL,
    help: "Bytes read from clients",
    labels: &["frontend"],
};

pub(crate) const FRONTEND_BYTES_SENT: Family = Family {
    name: names::FRONTEND_BYTES_SENT_TOTAL,
    help: "Bytes written to clients",
    labels: &["frontend"],
};

pub(crate) const FRONTEND_DENIED: Family = Family {
    name: names::FRONTEND_DENIED_TOTAL,
    help: "Requests or connections refused by access lists, rate limits or per-client connection limits",
    labels: &["frontend", "reason"],
};

pub(crate) const TLS_HANDSHAKES: Family = Family {
    name: names::TLS_HANDSHAKES_TOTAL,
    help: "TLS handshakes with clients by result: ok (full), resumed, error, timeout",
    labels: &["frontend", "result"],
};

pub(crate) const BACKEND_RESPONSES: Family = Family {
    name: names::BACKEND_RESPONSES_TOTAL,
    help: "Responses sent to clients by status class",
    labels: &["backend", "code"],
};

pub(crate) const BACKEND_CONNECT_ERRORS: Family = Family {
    name: names::BACKEND_CONNECT_ERRORS_TOTAL,
    help: "Failed connections to servers",
    labels: &["backend"],
};

pub(crate) const BACKEND_RETRIES: Family = Family {
    name: names::BACKEND_RETRIES_TOTAL,
    help: "Requests retried on another server",
    labels: &["backend"],
};

pub(crate) const BACKEND_NO_SERVER: Family = Family {
    name: names::BACKEND_NO_SERVER_TOTAL,
    help: "Requests that found no usable server",
    labels: &["backend"],
};

pub(crate) const BACKEND_SERVERS: Family = Family {
    name: names::BACKEND_SERVERS,
    help: "Servers by state",
    labels: &["backend", "state"],
};

pub(crate) const SERVER_UP: Family = Family {
    name: names::SERVER_UP,
    help: "1 while the server can take new traffic",
    labels: &["backend", "server"],
};

pub(crate) const SERVER_WEIGHT: Family = Family {
    name: names::SERVER_WEIGHT,
    help: "Configured weight",
    labels: &["backend", "server"],
};

pub(crate) const SERVER_ACTIVE_REQUESTS: Family = Family {
    name: names::SERVER_ACTIVE_REQUESTS,
    help: "Requests or connections in flight",
    labels: &["backend", "server"],
};

pub(crate) const SERVER_HEALTH_CHECK_FAILURES: Family = Family {
    name: names::SERVER_HEALTH_CHECK_FAILURES_TOTAL,
    help: "Active health checks that failed",
    labels: &["backend", "server"],
};

pub(crate) const SERVER_REQUESTS: Family = Family {
    name: names::SERVER_REQUESTS_TOTAL,
    help: "Requests or connections sent",
    labels: &["backend", "server"],
};

pub(crate) const CONFIG_RELOADS: Family = Family {
    name: names::CONFIG_RELOADS_TOTAL,
    help: "Configuration reloads by result",
    labels: &["result"],
};

/// `zkgate_build_info`.
pub(crate) const BUILD_INFO: Family = Family {
    name: names::BUILD_INFO,
    help: "zkgate version",
    labels: &["version"],
};
