//! Shared pieces of the interop peers: the body pattern both sides can
//! check, TLS configuration from PEM files, and `Watched`, an I/O wrapper
//! that records how a connection ended (close_notify, FIN, reset, error)
//! so a swallowed error still shows.

use std::fs::File;
use std::io::{self, BufReader};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The body byte at offset `j` for `seed`: cheap, and different for
/// every offset modulo 2^32, so a shifted or repeated chunk is caught.
pub fn pattern_byte(seed: u32, j: usize) -> u8 {
    ((j as u32).wrapping_mul(2654435761).wrapping_add(seed.wrapping_mul(40503)) >> 24) as u8
}

pub fn pattern(seed: u32, n: usize) -> Vec<u8> {
    (0..n).map(|j| pattern_byte(seed, j)).collect()
}

pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{:02x}", b)).collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// Query parameter `k` of `q` ("a=1&b=2"), parsed as a number.
pub fn query_num(q: Option<&str>, k: &str) -> Option<u64> {
    q?.split('&').find_map(|kv| {
        let (a, b) = kv.split_once('=')?;
        if a == k {
            b.parse().ok()
        } else {
            None
        }
    })
}

pub fn load_certs(path: &str) -> io::Result<Vec<rustls::Certificate>> {
    let mut r = BufReader::new(File::open(path)?);
    let certs = rustls_pemfile::certs(&mut r)?;
    if certs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: no certificate", path)));
    }
    Ok(certs.into_iter().map(rustls::Certificate).collect())
}

pub fn load_key(path: &str) -> io::Result<rustls::PrivateKey> {
    let mut r = BufReader::new(File::open(path)?);
    loop {
        match rustls_pemfile::read_one(&mut r)? {
            Some(rustls_pemfile::Item::PKCS8Key(k))
            | Some(rustls_pemfile::Item::ECKey(k))
            | Some(rustls_pemfile::Item::RSAKey(k)) => return Ok(rustls::PrivateKey(k)),
            Some(_) => continue,
            None => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: no private key", path)))
            }
        }
    }
}

/// How a watched connection ended, as far as its reads and writes saw.
#[derive(Default, Debug)]
pub struct ConnRecord {
    pub id: u64,
    pub tls: bool,
    pub alpn: String,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// "close_notify" (TLS: the peer's close_notify, then EOF) or "fin"
    /// (plaintext EOF), set by the first read that returned nothing.
    pub eof: Option<&'static str>,
    /// The first read or write error, named.
    pub error: Option<String>,
    pub requests: u64,
    /// "self" when this side shut down first, "peer" when it had read
    /// the peer's end first, "" when it was dropped without a shutdown.
    pub closer: &'static str,
}

impl ConnRecord {
    pub fn json(&self, side: &str) -> String {
        format!(
            "{{\"event\":\"conn_end\",\"side\":\"{}\",\"id\":{},\"tls\":{},\"alpn\":\"{}\",\"requests\":{},\"bytes_read\":{},\"bytes_written\":{},\"eof\":\"{}\",\"closer\":\"{}\",\"error\":\"{}\"}}",
            side,
            self.id,
            self.tls,
            self.alpn,
            self.requests,
            self.bytes_read,
            self.bytes_written,
            self.eof.unwrap_or(""),
            self.closer,
            self.error.as_deref().unwrap_or("").replace('\\', "\\\\").replace('"', "'"),
        )
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Names an I/O error the way the tests look for it: a TLS stream that
/// ended without close_notify is rustls' UnexpectedEof.
pub fn name_io_error(tls: bool, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof if tls => {
            format!("missing close_notify: the peer ended the TLS stream without it (rustls UnexpectedEof: {})", e)
        }
        io::ErrorKind::ConnectionReset => format!("connection reset by peer: {}", e),
        k => format!("{:?}: {}", k, e),
    }
}

/// An AsyncRead + AsyncWrite that records into a shared ConnRecord; the
/// record is handed to `on_end` when the wrapper is dropped.
pub struct Watched<T> {
    inner: T,
    pub rec: Arc<Mutex<ConnRecord>>,
    on_end: Option<Box<dyn FnOnce(&ConnRecord) + Send + Sync>>,
    /// poll_shutdown: 0 not begun, 1 lingering for the peer's end, 2 done.
    shut: u8,
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// How long a shutdown waits for the peer's own end (close_notify or FIN)
/// so that how the peer closes is seen even when this side closed first.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(3);

impl<T> Watched<T> {
    pub fn new(inner: T, tls: bool, alpn: &str, on_end: Box<dyn FnOnce(&ConnRecord) + Send + Sync>) -> Self {
        let rec = ConnRecord {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            tls,
            alpn: alpn.to_string(),
            ..Default::default()
        };
        Watched { inner, rec: Arc::new(Mutex::new(rec)), on_end: Some(on_end), shut: 0, linger: None }
    }
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(&self.rec.lock().unwrap());
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let want = buf.remaining() > 0;
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let mut rec = self.rec.lock().unwrap();
        match &r {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                rec.bytes_read += n as u64;
                if n == 0 && want && rec.eof.is_none() && rec.error.is_none() {
                    rec.eof = Some(if rec.tls { "close_notify" } else { "fin" });
                }
            }
            Poll::Ready(Err(e)) => {
                if rec.error.is_none() {
                    rec.error = Some(format!("read: {}", name_io_error(rec.tls, e)));
                }
            }
            Poll::Pending => {}
        }
        r
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, b);
        let mut rec = self.rec.lock().unwrap();
        match &r {
            Poll::Ready(Ok(n)) => rec.bytes_written += *n as u64,
            Poll::Ready(Err(e)) => {
                if rec.error.is_none() {
                    rec.error = Some(format!("write: {}", name_io_error(rec.tls, e)));
                }
            }
            Poll::Pending => {}
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// The inner shutdown (close_notify, then FIN, over TLS), then a
    /// linger: read and discard until the peer's end, an error, or LINGER.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shut == 0 {
            let r = Pin::new(&mut self.inner).poll_shutdown(cx);
            let r = match r {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            {
                let mut rec = self.rec.lock().unwrap();
                if rec.closer.is_empty() {
                    rec.closer = if rec.eof.is_none() && rec.error.is_none() { "self" } else { "peer" };
                }
                if let Err(e) = &r {
                    // After the peer's own end (it may have closed its
                    // socket whole), our close_notify has nowhere to go:
                    // not an error of the peer's.
                    if rec.error.is_none() && rec.eof.is_none() {
                        rec.error = Some(format!("shutdown: {}", name_io_error(rec.tls, e)));
                    }
                }
            }
            self.shut = 1;
            self.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        while self.shut == 1 {
            {
                let rec = self.rec.lock().unwrap();
                if rec.eof.is_some() || rec.error.is_some() {
                    drop(rec);
                    self.shut = 2;
                    break;
                }
            }
            let mut buf = [0u8; 4096];
            let mut rb = ReadBuf::new(&mut buf);
            match AsyncRead::poll_read(self.as_mut(), cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => self.shut = 2,
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => self.shut = 2,
                Poll::Pending => {
                    if self.linger.as_mut().unwrap().as_mut().poll(cx).is_ready() {
                        self.shut = 2;
                    } else {
                        return Poll::Pending;
                    }
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}
