//! zkgate's routing table and everything it is built from: the control plane
//! compiles a `Config` into one immutable [`RoutingTable`]; the data plane only
//! reads it.

mod attempts;
mod backend;
pub mod balance;
mod build;
pub mod clock;
mod ewma;
mod locality;
mod outlier;
mod route;
mod routes;
mod server;
mod table;

pub use attempts::Attempts;
pub use backend::Backend;
pub use build::{Changed, Discovered, Resolved, TableBuilder};
pub use ewma::PeakEwma;
pub use outlier::Outlier;
pub use route::{Mirror, Redirect, RequestHeaders, Route, Rules, Split, Target};
pub use server::{
    ActiveRequest, FastHash, FastHasher, Health, HealthState, Server, ServerSource, ServerState,
};
pub use table::{Compressing, Frontend, FrontendId, RoutingTable};

#[cfg(test)]
mod tests;
