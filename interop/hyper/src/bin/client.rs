//! hyper 0.14 + rustls 0.20 client for sluice's interop tests.
//!
//!   client --addr HOST:PORT --proto h1|h2|h2c [--tls --sni NAME --ca FILE]
//!          [--mix load|close|slow|die|bytes] [--requests N] [--concurrency C]
//!          [--conns K] [--idle-ms D] [--trailers] [--expect-trailers] [--size N]
//!
//! It reads every body to its end, checks every checksum, and exits 1
//! naming each TLS, protocol or content error: a TLS stream that ends
//! without close_notify included (rustls' UnexpectedEof, seen by the I/O
//! wrapper even where hyper swallows it). With --mix die it exits 0 only if
//! the response body ended in an error, never a clean end. Its last stdout
//! line is a JSON summary.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::{Bytes, HttpBody};
use hyper::client::conn::{Builder, SendRequest};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Body, Method, Request, Version};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::sync::Mutex as AsyncMutex;
use tokio_rustls::TlsConnector;

use sluice_interop_hyper::*;

#[derive(Clone)]
struct Args {
    addr: String,
    proto: String,
    tls: bool,
    sni: String,
    ca: Option<String>,
    mix: String,
    requests: usize,
    concurrency: usize,
    conns: usize,
    idle_ms: u64,
    trailers: bool,
    expect_trailers: bool,
    size: usize,
}

fn die_usage(msg: &str) -> ! {
    eprintln!("client: {}", msg);
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        addr: String::new(),
        proto: "h1".into(),
        tls: false,
        sni: "localhost".into(),
        ca: None,
        mix: "load".into(),
        requests: 100,
        concurrency: 8,
        conns: 1,
        idle_ms: 0,
        trailers: false,
        expect_trailers: false,
        size: 1 << 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| die_usage(&format!("{} needs a value", f)));
        match f.as_str() {
            "--addr" => a.addr = val(),
            "--proto" => a.proto = val(),
            "--tls" => a.tls = true,
            "--sni" => a.sni = val(),
            "--ca" => a.ca = Some(val()),
            "--mix" => a.mix = val(),
            "--requests" => a.requests = val().parse().unwrap_or_else(|_| die_usage("--requests")),
            "--concurrency" => a.concurrency = val().parse().unwrap_or_else(|_| die_usage("--concurrency")),
            "--conns" => a.conns = val().parse().unwrap_or_else(|_| die_usage("--conns")),
            "--idle-ms" => a.idle_ms = val().parse().unwrap_or_else(|_| die_usage("--idle-ms")),
            "--size" => a.size = val().parse().unwrap_or_else(|_| die_usage("--size")),
            "--trailers" => a.trailers = true,
            "--expect-trailers" => a.expect_trailers = true,
            _ => die_usage(&format!("unknown flag {}", f)),
        }
    }
    if a.addr.is_empty() {
        die_usage("--addr is required");
    }
    if !matches!(a.proto.as_str(), "h1" | "h2" | "h2c") {
        die_usage("--proto must be h1, h2 or h2c");
    }
    if a.proto == "h2c" && a.tls {
        die_usage("h2c is plaintext: drop --tls");
    }
    if a.concurrency == 0 || a.conns == 0 {
        die_usage("--concurrency and --conns must be positive");
    }
    a
}

/// What the run saw, shared by the workers.
#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    conns: AtomicU64,
    heads: AtomicUsize,
    errors: Mutex<Vec<String>>,
    /// Connection ends as the I/O wrapper saw them.
    ends: Mutex<Vec<ConnRecord>>,
    expected_errors: Mutex<Vec<String>>,
    /// --mix die: a connection that ends in an error is the point.
    conn_errors_expected: bool,
}

impl Stats {
    fn conn_fail(&self, s: String) {
        if self.conn_errors_expected {
            self.expected_errors.lock().unwrap().push(s);
        } else {
            self.fail(s);
        }
    }

    fn fail(&self, s: String) {
        let mut e = self.errors.lock().unwrap();
        // The first errors name the problem; a flood of the same one does not help.
        if e.len() < 20 {
            eprintln!("ERROR: {}", s);
        }
        e.push(s);
    }
}

struct Client {
    a: Args,
    tls: Option<TlsConnector>,
    stats: Arc<Stats>,
}

impl Client {
    async fn connect(&self) -> Result<SendRequest<Body>, String> {
        let tcp = TcpStream::connect(&self.a.addr).await.map_err(|e| format!("connect {}: {}", self.a.addr, e))?;
        let _ = tcp.set_nodelay(true);
        let h2 = self.a.proto != "h1";
        let mut b = Builder::new();
        b.http2_only(h2);
        let stats = self.stats.clone();
        let on_end = Box::new(move |r: &ConnRecord| {
            stats.ends.lock().unwrap().push(ConnRecord {
                id: r.id,
                tls: r.tls,
                alpn: r.alpn.clone(),
                bytes_read: r.bytes_read,
                bytes_written: r.bytes_written,
                eof: r.eof,
                error: r.error.clone(),
                requests: r.requests,
                closer: r.closer,
            })
        });
        self.stats.conns.fetch_add(1, Ordering::Relaxed);
        let stats = self.stats.clone();
        if let Some(tc) = &self.tls {
            let name = rustls::ServerName::try_from(self.a.sni.as_str()).map_err(|e| format!("--sni: {}", e))?;
            let t = tc.connect(name, tcp).await.map_err(|e| format!("TLS handshake: {}", name_io_error(true, &e)))?;
            let alpn = t.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
            let want = if h2 { "h2" } else { "http/1.1" };
            if alpn != want {
                return Err(format!("ALPN: the server chose {:?}, want {:?}", alpn, want));
            }
            let io = Watched::new(t, true, &alpn, on_end);
            let (s, conn) = b.handshake(io).await.map_err(|e| format!("HTTP handshake: {}", e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    stats.conn_fail(format!("connection: {}", describe(&e)));
                }
            });
            Ok(s)
        } else {
            let io = Watched::new(tcp, false, "", on_end);
            let (s, conn) = b.handshake(io).await.map_err(|e| format!("HTTP handshake: {}", e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    stats.conn_fail(format!("connection: {}", describe(&e)));
                }
            });
            Ok(s)
        }
    }

    /// A sender that is ready for a request: the slot's, or a new
    /// connection when the slot's has closed (Connection: close, an idle
    /// close, a GOAWAY). The lock is held only to get a request going.
    async fn send(&self, slot: &AsyncMutex<Option<SendRequest<Body>>>, req: Request<Body>) -> Result<hyper::Response<Body>, String> {
        let fut = {
            let mut g = slot.lock().await;
            let ready = match g.as_mut() {
                Some(s) => std::future::poll_fn(|cx| s.poll_ready(cx)).await.is_ok(),
                None => false,
            };
            if !ready {
                *g = Some(self.connect().await?);
                let s = g.as_mut().unwrap();
                std::future::poll_fn(|cx| s.poll_ready(cx)).await.map_err(|e| format!("new connection not ready: {}", describe(&e)))?;
            }
            g.as_mut().unwrap().send_request(req)
        };
        fut.await.map_err(|e| format!("response: {}", describe(&e)))
    }
}

/// A hyper error with its causes: the TLS cause is often two levels down.
fn describe(e: &hyper::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            s.push_str(&format!(": {}", name_io_error(true, io)));
        } else {
            s.push_str(&format!(": {}", c));
        }
        src = c.source();
    }
    s
}

/// Request i of a load mix: most small, some 64 KiB, 2% 1 MiB; GETs and
/// uploads alternate; uploads stream in chunks, some with a length.
struct Plan {
    upload: bool,
    size: usize,
    chunked: bool,
    slow: bool,
}

fn plan(i: usize, max: usize) -> Plan {
    let size = match i % 50 {
        0 | 1 => max,
        2..=6 => 64 * 1024,
        7 => 0,
        _ => (i * 7919) % 16384,
    };
    Plan { upload: i % 2 == 1, size: size.min(max), chunked: i % 4 == 3 || i % 4 == 2, slow: i % 100 == 9 }
}

async fn read_body(mut body: Body, expect_trailers: bool) -> Result<(Vec<u8>, Option<HeaderMap>), String> {
    let mut got = Vec::new();
    while let Some(c) = body.data().await {
        match c {
            Ok(c) => got.extend_from_slice(&c),
            Err(e) => return Err(format!("body after {} bytes: {}", got.len(), describe(&e))),
        }
    }
    let tr = body.trailers().await.map_err(|e| format!("trailers: {}", describe(&e)))?;
    if expect_trailers && tr.is_none() {
        return Err("no trailers".into());
    }
    Ok((got, tr))
}

fn check_header(h: &HeaderMap, k: &str, want: &str, what: &str) -> Result<(), String> {
    match h.get(k) {
        Some(v) if v.as_bytes() == want.as_bytes() => Ok(()),
        Some(v) => Err(format!("{}: {} is {:?}, want {}", what, k, v, want)),
        None => Err(format!("{}: no {}", what, k)),
    }
}

async fn one(c: &Client, slot: &AsyncMutex<Option<SendRequest<Body>>>, i: usize) -> Result<(), String> {
    let a = &c.a;
    let version = if a.proto == "h1" { Version::HTTP_11 } else { Version::HTTP_2 };
    let scheme = if a.tls { "https" } else { "http" };
    let base = format!("{}://{}", scheme, a.sni);
    let b = Request::builder().version(version);
    let b = if version == Version::HTTP_11 { b.header("host", a.sni.as_str()) } else { b };
    match a.mix.as_str() {
        "load" => {
            let p = plan(i, a.size);
            if p.slow {
                return get_check(c, slot, b.uri(format!("{}/slow?chunks=5&ms=20&size=4096&seed={}", base, i)), i).await;
            }
            if !p.upload {
                let ch = if p.chunked { "&chunked=1" } else { "" };
                return get_check(c, slot, b.uri(format!("{}/bytes?n={}&seed={}{}", base, p.size, i, ch)), i).await;
            }
            let data = pattern(i as u32 + 7, p.size);
            let sum = sha256_hex(&data);
            let (mut tx, body) = Body::channel();
            let mut b = b.method(Method::POST).uri(format!("{}/echo", base));
            if !p.chunked {
                b = b.header("content-length", p.size);
            }
            let req = b.body(body).unwrap();
            let trailers = a.trailers && p.chunked;
            let up = data.clone();
            let sum2 = sum.clone();
            let sender = tokio::spawn(async move {
                for ch in up.chunks(16 * 1024) {
                    tx.send_data(Bytes::copy_from_slice(ch)).await.map_err(|e| format!("upload: {}", e))?;
                }
                if trailers {
                    let mut t = HeaderMap::new();
                    t.insert("x-upload-sha256", HeaderValue::from_str(&sum2).unwrap());
                    tx.send_trailers(t).await.map_err(|e| format!("upload trailers: {}", e))?;
                }
                Ok::<(), String>(())
            });
            let resp = c.send(slot, req).await?;
            c.stats.heads.fetch_add(1, Ordering::Relaxed);
            let st = resp.status();
            let (parts, body) = resp.into_parts();
            let (got, tr) = read_body(body, a.expect_trailers).await?;
            sender.await.map_err(|e| format!("upload task: {}", e))??;
            if st != 200 {
                return Err(format!("POST /echo {} bytes: status {}: {}", p.size, st, String::from_utf8_lossy(&got)));
            }
            c.stats.bytes_up.fetch_add(p.size as u64, Ordering::Relaxed);
            c.stats.bytes_down.fetch_add(got.len() as u64, Ordering::Relaxed);
            let what = format!("POST /echo #{} ({} bytes{})", i, p.size, if p.chunked { ", streamed" } else { "" });
            check_header(&parts.headers, "x-request-sha256", &sum, &what)?;
            if got.len() != data.len() || got != data {
                return Err(format!("{}: echoed {} bytes, sha256 {}, want {} bytes, {}", what, got.len(), sha256_hex(&got), data.len(), sum));
            }
            if a.expect_trailers {
                let tr = tr.unwrap();
                check_header(&tr, "x-body-sha256", &sum, &format!("{} trailers", what))?;
                if trailers {
                    check_header(&tr, "x-echo-trailer", &sum, &format!("{} trailers", what))?;
                }
            }
            Ok(())
        }
        "bytes" => get_check(c, slot, b.uri(format!("{}/bytes?n={}&seed={}", base, a.size, i)), i).await,
        "close" => get_check(c, slot, b.uri(format!("{}/close?n={}&seed={}", base, (i * 7919) % 65536, i)), i).await,
        "slow" => get_check(c, slot, b.uri(format!("{}/slow?chunks=20&ms=100&size=2048&seed={}", base, i)), i).await,
        "die" => {
            let req = b.uri(format!("{}/die?n={}&seed={}", base, a.size, i)).body(Body::empty()).unwrap();
            let resp = c.send(slot, req).await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    c.stats.expected_errors.lock().unwrap().push(format!("response head: {}", e));
                    return Ok(());
                }
            };
            match read_body(resp.into_body(), false).await {
                Ok((got, _)) => Err(format!(
                    "/die: the body ended cleanly after {} of {} bytes: a truncated response looked whole",
                    got.len(),
                    a.size
                )),
                Err(e) => {
                    c.stats.expected_errors.lock().unwrap().push(e);
                    Ok(())
                }
            }
        }
        m => Err(format!("unknown --mix {}", m)),
    }
}

async fn get_check(c: &Client, slot: &AsyncMutex<Option<SendRequest<Body>>>, b: hyper::http::request::Builder, i: usize) -> Result<(), String> {
    let req = b.body(Body::empty()).unwrap();
    let what = format!("GET {} #{}", req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""), i);
    let resp = c.send(slot, req).await?;
    c.stats.heads.fetch_add(1, Ordering::Relaxed);
    let st = resp.status();
    let (parts, body) = resp.into_parts();
    let (got, tr) = read_body(body, c.a.expect_trailers).await.map_err(|e| format!("{}: {}", what, e))?;
    if st != 200 {
        return Err(format!("{}: status {}: {}", what, st, String::from_utf8_lossy(&got)));
    }
    c.stats.bytes_down.fetch_add(got.len() as u64, Ordering::Relaxed);
    let mut h = Sha256::new();
    h.update(&got);
    let sum = hex(&h.finalize());
    check_header(&parts.headers, "x-body-sha256", &sum, &what)?;
    if let Some(tr) = tr.as_ref().filter(|_| c.a.expect_trailers) {
        check_header(tr, "x-body-sha256", &sum, &format!("{} trailers", what))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let a = parse_args();
    let tls = if a.tls {
        let mut roots = rustls::RootCertStore::empty();
        let ca = a.ca.as_deref().unwrap_or_else(|| die_usage("--tls needs --ca"));
        for c in load_certs(ca).unwrap_or_else(|e| die_usage(&format!("--ca: {}", e))) {
            roots.add(&c).unwrap_or_else(|e| die_usage(&format!("--ca: {}", e)));
        }
        let mut cfg = rustls::ClientConfig::builder().with_safe_defaults().with_root_certificates(roots).with_no_client_auth();
        cfg.alpn_protocols = vec![if a.proto == "h2" { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
        Some(TlsConnector::from(Arc::new(cfg)))
    } else {
        None
    };
    let stats = Arc::new(Stats { conn_errors_expected: a.mix == "die", ..Default::default() });
    let c = Arc::new(Client { a: a.clone(), tls, stats: stats.clone() });
    let nslots = if a.proto == "h1" { a.concurrency } else { a.conns };
    let slots: Arc<Vec<AsyncMutex<Option<SendRequest<Body>>>>> = Arc::new((0..nslots).map(|_| AsyncMutex::new(None)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let heads_want = a.requests.min(a.concurrency);
    let st2 = stats.clone();
    let heads_watch = tokio::spawn(async move {
        // One line once every worker's first response head is in: the
        // drain test signals sluice only then.
        loop {
            if st2.heads.load(Ordering::Relaxed) >= heads_want {
                println!("HEADS {}", heads_want);
                let _ = std::io::stdout().flush();
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut workers = Vec::new();
    for w in 0..a.concurrency {
        let (c, slots, next) = (c.clone(), slots.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let slot = &slots[w % slots.len()];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= c.a.requests {
                    return;
                }
                if i >= c.a.concurrency && c.a.idle_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(c.a.idle_ms)).await;
                }
                match one(&c, slot, i).await {
                    Ok(()) => {
                        c.stats.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => c.stats.fail(format!("request {}: {}", i, e)),
                }
            }
        }));
    }
    for w in workers {
        if let Err(e) = w.await {
            stats.fail(format!("worker: {}", e));
        }
    }
    heads_watch.abort();
    // Close our connections ourselves, then give their tasks a moment to
    // report how they ended.
    for s in slots.iter() {
        s.lock().await.take();
    }
    // Each connection's shutdown lingers for sluice's own end (close_notify
    // or FIN): wait for every one to report, a little past the linger.
    let wait_until = Instant::now() + LINGER + Duration::from_secs(2);
    while (stats.ends.lock().unwrap().len() as u64) < stats.conns.load(Ordering::Relaxed) && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let ends = std::mem::take(&mut *stats.ends.lock().unwrap());
    let (mut close_notify, mut fin) = (0, 0);
    for r in &ends {
        match r.eof {
            Some("close_notify") => close_notify += 1,
            Some("fin") => fin += 1,
            _ => {}
        }
        if let Some(e) = &r.error {
            stats.conn_fail(format!("connection {} ({} bytes read): {}", r.id, r.bytes_read, e));
        }
    }
    let errors = stats.errors.lock().unwrap().clone();
    let expected = stats.expected_errors.lock().unwrap().clone();
    if a.mix == "die" && expected.is_empty() && errors.is_empty() {
        stats.fail("/die: no error seen".into());
    }
    for e in &expected {
        println!("EXPECTED-ERROR {}", e);
    }
    let errors = stats.errors.lock().unwrap().clone();
    println!(
        "{{\"requests\":{},\"ok\":{},\"errors\":{},\"conns\":{},\"conn_ends\":{},\"close_notify\":{},\"fin\":{},\"bytes_up\":{},\"bytes_down\":{},\"ms\":{}}}",
        a.requests,
        stats.ok.load(Ordering::Relaxed),
        errors.len(),
        stats.conns.load(Ordering::Relaxed),
        ends.len(),
        close_notify,
        fin,
        stats.bytes_up.load(Ordering::Relaxed),
        stats.bytes_down.load(Ordering::Relaxed),
        start.elapsed().as_millis()
    );
    let _ = std::io::stdout().flush();
    std::process::exit(if errors.is_empty() { 0 } else { 1 });
}
