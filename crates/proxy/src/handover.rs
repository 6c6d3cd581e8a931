//! Passing listening sockets from one zkgate process to the next over a Unix
//! socket (`SCM_RIGHTS`), as HAProxy's `expose-fd listeners` and Pingora's
//! upgrade socket do.
//!
//! SO_REUSEPORT alone lets a new process bind the same ports, but the old
//! one must then close its listening sockets, and Linux resets a connection
//! whose handshake completes on a listener in the instant it closes, even
//! with `net.ipv4.tcp_migrate_req`. A socket handed over is never closed:
//! both processes hold it, the old one stops accepting on it and exits, and
//! the new one goes on accepting from the same queue.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use socket2::{Socket, Type};

/// Descriptors sent per message (the kernel takes at most 253).
const PER_MESSAGE: usize = 128;
/// The one byte of each message: whether more messages follow.
const MORE: u8 = b'+';
const LAST: u8 = b'.';
/// How long a hand-over may take either side.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Listening sockets taken over from the previous process, by address:
/// TCP listeners, and the UDP sockets of HTTP/3 listeners.
#[derive(Debug, Default)]
pub struct Inherited {
    by_address: HashMap<SocketAddr, Vec<std::net::TcpListener>>,
    udp: HashMap<SocketAddr, std::net::UdpSocket>,
}

impl Inherited {
    /// Takes the sockets listening on `address`, if any were handed over.
    pub fn take(&mut self, address: SocketAddr) -> Vec<std::net::TcpListener> {
        self.by_address.remove(&address).unwrap_or_default()
    }

    /// Takes the UDP socket bound to `address`, if one was handed over.
    pub fn take_udp(&mut self, address: SocketAddr) -> Option<std::net::UdpSocket> {
        self.udp.remove(&address)
    }

    /// How many sockets are left untaken.
    pub fn len(&self) -> usize {
        self.by_address.values().map(Vec::len).sum::<usize>() + self.udp.len()
    }

    /// Whether every socket was taken (or none handed over).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The addresses of the sockets left untaken.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.by_address
            .keys()
            .chain(self.udp.keys())
            .copied()
            .collect()
    }
}

/// Sends `sockets` on `stream`: messages of up to 128 descriptors (`PER_MESSAGE`),
/// the last one marked.
pub fn send(stream: &UnixStream, sockets: &[BorrowedFd<'_>]) -> io::Result<()> {
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut chunks = sockets.chunks(PER_MESSAGE).peekable();
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let marker = if chunks.peek().is_some() { MORE } else { LAST };
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(PER_MESSAGE))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !chunk.is_empty() && !control.push(SendAncillaryMessage::ScmRights(chunk)) {
            return Err(io::Error::other("hand-over message too large"));
        }
        let sent = sendmsg(
            stream,
            &[IoSlice::new(&[marker])],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        if sent != 1 {
            return Err(io::Error::other("hand-over message cut short"));
        }
        if marker == LAST {
            return Ok(());
        }
    }
}

/// Receives the sockets [`send`] sent on `stream`. Anything but listening
/// TCP sockets and bound UDP sockets is refused (and closed).
pub fn receive(stream: &UnixStream) -> io::Result<Inherited> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut inherited = Inherited::default();
    loop {
        let mut marker = [0u8; 1];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(PER_MESSAGE))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut marker)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        // Owned at once, so that every descriptor received is closed on any error.
        let fds: Vec<OwnedFd> = control
            .drain()
            .filter_map(|message| match message {
                RecvAncillaryMessage::ScmRights(fds) => Some(fds),
                _ => None,
            })
            .flatten()
            .collect();
        if received.bytes == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the previous process closed the hand-over early",
            ));
        }
        for fd in fds {
            inherited.add(Socket::from(fd))?;
        }
        match marker[0] {
            LAST => return Ok(inherited),
            MORE => continue,
            _ => return Err(io::Error::other("not a zkgate hand-over")),
        }
    }
}

impl Inherited {
    /// Files a socket received, by kind and address.
    fn add(&mut self, socket: Socket) -> io::Result<()> {
        let kind = socket.r#type()?;
        let listening = kind == Type::STREAM && socket.is_listener()?;
        if !listening && kind != Type::DGRAM {
            return Err(io::Error::other("handed a socket that is not listening"));
        }
        let address = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("handed a socket that is not TCP/IP or UDP/IP"))?;
        socket.set_nonblocking(true)?;
        if kind == Type::DGRAM {
            self.udp.insert(address, socket.into());
        } else {
            self.by_address
                .entry(address)
                .or_default()
                .push(socket.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn listening_sockets_arrive_by_address_and_keep_accepting() {
        let first = crate::accept::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = first.local_addr().unwrap();
        let second = crate::accept::bind(address).unwrap();
        // More than one message's worth, to cover the continuation.
        let others: Vec<_> = (0..PER_MESSAGE + 3)
            .map(|_| crate::accept::bind("127.0.0.1:0".parse().unwrap()).unwrap())
            .collect();
        let (old, new) = UnixStream::pair().unwrap();
        let mut all = vec![first.as_fd(), second.as_fd()];
        all.extend(others.iter().map(AsFd::as_fd));
        send(&old, &all).unwrap();
        let mut inherited = receive(&new).unwrap();
        assert_eq!(inherited.len(), PER_MESSAGE + 5);

        let taken = inherited.take(address);
        assert_eq!(taken.len(), 2);
        assert_eq!(inherited.len(), PER_MESSAGE + 3);
        // The sender closes its copies: the sockets live on in the receiver.
        drop((first, second));
        let mut client = std::net::TcpStream::connect(address).unwrap();
        client.write_all(b"hi").unwrap();
        let accepted = loop {
            if let Some(stream) = taken.iter().find_map(|l| l.accept().ok()) {
                break stream.0;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        accepted.set_nonblocking(false).unwrap();
        let mut got = [0u8; 2];
        (&accepted).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
    }

    #[test]
    fn udp_sockets_arrive_by_address_and_keep_receiving() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap();
        let (old, new) = UnixStream::pair().unwrap();
        send(&old, &[socket.as_fd()]).unwrap();
        let mut inherited = receive(&new).unwrap();
        assert_eq!(inherited.addresses(), [address]);
        let taken = inherited.take_udp(address).expect("the UDP socket");
        assert!(inherited.is_empty());
        drop(socket);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"hi", address).unwrap();
        taken.set_nonblocking(false).unwrap();
        taken
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = [0u8; 2];
        assert_eq!(taken.recv(&mut got).unwrap(), 2);
        assert_eq!(&got, b"hi");
    }

    #[test]
    fn an_empty_hand_over_is_one_message() {
        let (old, new) = UnixStream::pair().unwrap();
        send(&old, &[]).unwrap();
        assert!(receive(&new).unwrap().is_empty());
    }

    #[test]
    fn anything_but_a_listening_socket_is_refused() {
        let (old, new) = UnixStream::pair().unwrap();
        let (file_like, _peer) = UnixStream::pair().unwrap();
        send(&old, &[file_like.as_fd()]).unwrap();
        let err = receive(&new).unwrap_err();
        assert!(err.to_string().contains("not listening"), "{err}");
    }

    #[test]
    fn a_peer_that_hangs_up_is_an_error() {
        let (old, new) = UnixStream::pair().unwrap();
        drop(old);
        assert_eq!(
            receive(&new).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn a_peer_speaking_something_else_is_an_error() {
        let (mut old, new) = UnixStream::pair().unwrap();
        old.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
        let err = receive(&new).unwrap_err();
        assert!(err.to_string().contains("not a zkgate hand-over"), "{err}");
    }
}
