//! systemd's readiness protocol (`sd_notify`): with `Type=notify` systemd
//! learns when zkgate serves, when it is stopping, and which process is the
//! service's main one after an in-place upgrade. Without `NOTIFY_SOCKET` in
//! the environment (not started by systemd) this does nothing.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use tracing::warn;

/// Sends `state` (`KEY=value` lines) to systemd, if it is listening.
pub fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(err) = try_send(path.as_bytes(), state) {
        warn!(error = %err, "could not notify systemd");
    }
}

fn try_send(path: &[u8], state: &str) -> std::io::Result<()> {
    let address = match path.strip_prefix(b"@") {
        // A socket in the abstract namespace.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(OsStr::from_bytes(path))?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;

    #[test]
    fn states_reach_a_socket_by_path_or_in_the_abstract_namespace() {
        let dir = std::env::temp_dir().join(format!("zkgate-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let by_path = UnixDatagram::bind(&path).unwrap();
        try_send(path.as_os_str().as_bytes(), "READY=1\nMAINPID=7").unwrap();
        let mut buffer = [0u8; 64];
        let n = by_path.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nMAINPID=7");
        std::fs::remove_dir_all(&dir).ok();

        let name = format!("zkgate-notify-test-{}", std::process::id());
        let abstract_address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let in_abstract = UnixDatagram::bind_addr(&abstract_address).unwrap();
        try_send(format!("@{name}").as_bytes(), "STOPPING=1").unwrap();
        let n = in_abstract.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        assert!(try_send(b"/nonexistent/zkgate/notify.sock", "READY=1").is_err());
    }
}
