//! A minimal WebSocket (RFC 6455) echo server and client on loopback: enough
//! to prove the handshake and frames pass through a proxy both ways.

use std::net::SocketAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::accept::spawn_accept_loop;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a key.
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    STANDARD.encode(sha.digest().bytes())
}

/// An echo server: answers every text frame with `<name>: <text>`; stops when dropped.
pub struct WebSocketServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for WebSocketServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebSocketServer {
    /// Starts a server called `name`.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let name = name.to_owned();
        let task = spawn_accept_loop(listener, move |stream| {
            let name = name.clone();
            async move {
                // A failed exchange just ends this test connection.
                serve(stream, &name).await.ok();
            }
        });
        WebSocketServer { addr, task }
    }
}

async fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn serve(stream: TcpStream, name: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader).await?;
    let key = header(&head, "sec-websocket-key")
        .unwrap_or_default()
        .to_owned();
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    reader.get_mut().write_all(reply.as_bytes()).await?;
    loop {
        let Some(text) = read_frame(&mut reader).await? else {
            return Ok(());
        };
        let answer = format!("{name}: {text}");
        write_frame(reader.get_mut(), answer.as_bytes(), None).await?;
    }
}

/// Reads one text frame (unmasking it); `None` on a close frame.
pub(crate) async fn read_frame<R: AsyncReadExt + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<String>> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).await?;
    if head[0] & 0x0f == 0x8 {
        return Ok(None);
    }
    let masked = head[1] & 0x80 != 0;
    let mut length = u64::from(head[1] & 0x7f);
    if length == 126 {
        let mut ext = [0u8; 2];
        reader.read_exact(&mut ext).await?;
        length = u64::from(u16::from_be_bytes(ext));
    } else if length == 127 {
        let mut ext = [0u8; 8];
        reader.read_exact(&mut ext).await?;
        length = u64::from_be_bytes(ext);
    }
    let mut mask = [0u8; 4];
    if masked {
        reader.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; length as usize];
    reader.read_exact(&mut payload).await?;
    if masked {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    Ok(Some(String::from_utf8_lossy(&payload).into_owned()))
}

pub(crate) async fn write_frame<W: AsyncWriteExt + Unpin>(
    writer: &mut W,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut frame = vec![0x81u8];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    writer.write_all(&frame).await
}

/// A stream a WebSocket client speaks over: a socket, or an HTTP/2 stream.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A client's side of an upgraded WebSocket connection.
pub struct WebSocketClient {
    reader: BufReader<Box<dyn Io>>,
}

impl WebSocketClient {
    /// Connects to `addr` and upgrades `path` to WebSocket (checking the accept key).
    pub async fn connect(addr: SocketAddr, path: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        let mut stream = BufReader::new(stream);
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.get_mut().write_all(request.as_bytes()).await?;
        let head = read_head(&mut stream).await?;
        let status = head.first().cloned().unwrap_or_default();
        if !status.starts_with("HTTP/1.1 101")
            || header(&head, "sec-websocket-accept") != Some(accept_key(key).as_str())
        {
            return Err(std::io::Error::other(format!(
                "no WebSocket handshake: {head:?}"
            )));
        }
        // Bytes read past the head were none: the server waits for a frame.
        Ok(WebSocketClient::over(stream.into_inner()))
    }

    /// A client over a stream that already switched to WebSocket.
    pub fn over(io: impl Io + 'static) -> Self {
        WebSocketClient {
            reader: BufReader::new(Box::new(io)),
        }
    }

    /// Sends a text message and reads the answer (`None`: the connection closed).
    pub async fn exchange(&mut self, message: &str) -> std::io::Result<Option<String>> {
        write_frame(
            self.reader.get_mut(),
            message.as_bytes(),
            Some([0x12, 0x34, 0x56, 0x78]),
        )
        .await?;
        read_frame(&mut self.reader).await
    }
}

/// Connects to `addr`, upgrades `path` to WebSocket (checking the accept
/// key), sends each message and returns the answers.
pub async fn echo(addr: SocketAddr, path: &str, messages: &[&str]) -> std::io::Result<Vec<String>> {
    let mut client = WebSocketClient::connect(addr, path).await?;
    let mut answers = Vec::new();
    for message in messages {
        match client.exchange(message).await? {
            Some(answer) => answers.push(answer),
            None => break,
        }
    }
    Ok(answers)
}
