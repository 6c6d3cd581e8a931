//! zkgate's routing table and everything it is built from: the control plane
//! compiles a `Config` into one immutable [`RoutingTable`]; the data plane only
//! reads it.

mod attempts;
pub mod balance;
mod build;
pub mod clock;
mod ewma;
mod locality;
mod outlier;
mod server;
mod table;

pub use attempts::Attempts;
pub use build::{Changed, Discovered, Resolved, TableBuilder};
pub use ewma::PeakEwma;
pub use outlier::Outlier;
pub use server::{
    ActiveRequest, FastHash, FastHasher, Health, HealthState, Server, ServerSource, ServerState,
};
pub use table::{Backend, Frontend, FrontendId, RequestHeaders, RoutingTable};

#[cfg(test)]
mod tests;
