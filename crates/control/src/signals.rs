//! Signal handling (`docs/operations.md` says what each signal does).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The signals zkgate acts on. Their handlers are installed first thing at
/// start, so that one sent while zkgate starts is acted on once it runs,
/// instead of killing it (the default action of SIGHUP and SIGUSR2).
pub(crate) struct Signals {
    pub hangup: Signal,
    pub terminate: Signal,
    pub interrupt: Signal,
    pub upgrade: Signal,
}

impl Signals {
    /// Installs the handlers; deliveries wait in the streams until read.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            upgrade: signal(SignalKind::user_defined2())?,
        })
    }
}
