//! A server's switched HTTP/2 stream (extended `CONNECT`, RFC 8441) as a
//! byte stream: DATA read are the tunnel's bytes, bytes written go as DATA
//! as the stream's window allows, and shutting down ends the stream. (A
//! tunnel dropped before both ends closed is reset by `h2` itself.)

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct H2Tunnel {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Read from the server and not yet taken.
    unread: Bytes,
}

impl H2Tunnel {
    pub fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Tunnel {
            send,
            recv,
            unread: Bytes::new(),
        }
    }
}

fn broken(err: h2::Error) -> io::Error {
    match err.get_io() {
        Some(io) => io::Error::new(io.kind(), err.to_string()),
        None => io::Error::new(io::ErrorKind::BrokenPipe, err),
    }
}

impl AsyncRead for H2Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.unread.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    this.unread = data;
                }
                Some(Err(err)) if err.is_reset() || err.is_go_away() => return Poll::Ready(Ok(())),
                Some(Err(err)) => return Poll::Ready(Err(broken(err))),
                // The server ended its side.
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.unread.len().min(buf.remaining());
        buf.put_slice(&this.unread[..n]);
        this.unread.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let send = &mut self.send;
        send.reserve_capacity(buf.len());
        let room = loop {
            match ready!(send.poll_capacity(cx)) {
                Some(Ok(0)) => continue,
                Some(Ok(room)) => break room,
                Some(Err(err)) => return Poll::Ready(Err(broken(err))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        };
        let n = room.min(buf.len());
        send.send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(broken)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Ending an already ended stream is no news.
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
