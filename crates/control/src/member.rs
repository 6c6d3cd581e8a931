//! One member of a ZooKeeper-backed backend, as the control plane keeps
//! it: what its znode says, and the zxid of the write it reflects.

use zkgate_config::{AdminState, ServerConfig};

/// A member as last read, with the zxid of the write it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The server it names.
    pub server: ServerConfig,
    /// The ZooKeeper transaction that last wrote its znode.
    pub zxid: i64,
}

impl Member {
    /// Whether it takes traffic (`ready`).
    pub fn ready(&self) -> bool {
        self.server.state == AdminState::Ready
    }
}
