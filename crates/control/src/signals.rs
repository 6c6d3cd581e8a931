//! Signal handling (`docs/operations.md` says what each signal does).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The signals zkgate acts on. Their handlers are installed first thing,
/// before the configuration is read, so that one sent while zkgate starts
/// is acted on once it runs, instead of ending it (the default action of
/// each of them).
pub struct Signals {
    pub(crate) hangup: Signal,
    pub(crate) terminate: Signal,
    pub(crate) interrupt: Signal,
    pub(crate) successor: Signal,
}

impl Signals {
    /// Installs the handlers (inside a tokio runtime); deliveries wait until
    /// the control plane runs.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            successor: signal(SignalKind::user_defined2())?,
        })
    }
}
