//! hyper 0.14 + rustls 0.20 origin server for sluice's interop tests.
//!
//!   server --proto h1|h2c|tls [--cert FILE --key FILE] [--listen ADDR]
//!
//! h1: plaintext HTTP/1.1; h2c: HTTP/2 with prior knowledge; tls: TLS with
//! ALPN h2 and http/1.1. It prints `LISTEN addr` first, then one JSON line
//! per connection end (how it ended: close_notify, fin, an error). SIGTERM
//! or SIGINT: stop accepting, shut every connection down gracefully, print
//! `SHUTDOWN`, exit 0.
//!
//! Endpoints:
//!   /bytes?n=N[&seed=S][&chunked=1]  N pattern bytes (content-length, or streamed)
//!   /echo                            the request body back; x-request-sha256; h2: trailers
//!   /slow?chunks=K&ms=D&size=S       K chunks of S bytes, D ms apart
//!   /close?n=N                       like /bytes, with `Connection: close` (h1)
//!   /die?n=N                         announces N bytes, sends a quarter, then the process exits

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Bytes, HttpBody};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::server::conn::Http;
use hyper::service::service_fn;
use hyper::{Body, Method, Request, Response, StatusCode, Version};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use sluice_interop_hyper::*;

const CHUNK: usize = 16 * 1024;

fn emit(line: &str) {
    let out = std::io::stdout();
    let mut l = out.lock();
    let _ = writeln!(l, "{}", line);
    let _ = l.flush();
}

struct Args {
    proto: String,
    listen: String,
    cert: Option<String>,
    key: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args { proto: String::new(), listen: "127.0.0.1:0".into(), cert: None, key: None };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| die_usage(&format!("{} needs a value", f)));
        match f.as_str() {
            "--proto" => a.proto = val(),
            "--listen" => a.listen = val(),
            "--cert" => a.cert = Some(val()),
            "--key" => a.key = Some(val()),
            _ => die_usage(&format!("unknown flag {}", f)),
        }
    }
    match a.proto.as_str() {
        "h1" | "h2c" => {}
        "tls" if a.cert.is_some() && a.key.is_some() => {}
        "tls" => die_usage("--proto tls needs --cert and --key"),
        _ => die_usage("--proto must be h1, h2c or tls"),
    }
    a
}

fn die_usage(msg: &str) -> ! {
    eprintln!("server: {}", msg);
    std::process::exit(2)
}

fn body_headers(b: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-body-sha256", HeaderValue::from_str(&sha256_hex(b)).unwrap());
    h
}

/// A streamed body: chunks, an optional pause between them, trailers
/// on HTTP/2 (hyper's HTTP/1.1 server cannot send trailers).
fn stream_body(data: Vec<u8>, chunk: usize, pause: Duration, trailers: Option<HeaderMap>) -> Body {
    let (mut tx, body) = Body::channel();
    tokio::spawn(async move {
        for c in data.chunks(chunk.max(1)) {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            if tx.send_data(Bytes::copy_from_slice(c)).await.is_err() {
                return;
            }
        }
        if let Some(t) = trailers {
            let _ = tx.send_trailers(t).await;
        }
    });
    body
}

async fn handle(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let h2 = req.version() == Version::HTTP_2;
    let q = req.uri().query().map(|s| s.to_string());
    let q = q.as_deref();
    let n = query_num(q, "n").unwrap_or(0) as usize;
    let seed = query_num(q, "seed").unwrap_or(0) as u32;
    let path = req.uri().path().to_string();
    let resp = match (req.method(), path.as_str()) {
        (_, "/bytes") | (_, "/close") => {
            let data = pattern(seed, n);
            let sum = sha256_hex(&data);
            let mut r = Response::builder().header("x-body-sha256", &sum);
            if path == "/close" {
                r = r.header("connection", "close");
            }
            let body = if query_num(q, "chunked") == Some(1) || h2 {
                let tr = if h2 { Some(body_headers(&data)) } else { None };
                if !h2 {
                    stream_body(data, CHUNK, Duration::ZERO, None)
                } else {
                    r = r.header("content-length", n);
                    stream_body(data, CHUNK, Duration::ZERO, tr)
                }
            } else {
                Body::from(data)
            };
            r.body(body).unwrap()
        }
        (&Method::POST, "/echo") | (&Method::PUT, "/echo") => {
            let mut body = req.into_body();
            let mut got = Vec::new();
            let mut hash = Sha256::new();
            while let Some(c) = body.data().await {
                match c {
                    Ok(c) => {
                        hash.update(&c);
                        got.extend_from_slice(&c);
                    }
                    Err(e) => {
                        return Ok(text(StatusCode::BAD_REQUEST, format!("reading the request body: {}\n", e)));
                    }
                }
            }
            let sum = hex(&hash.finalize());
            let trailers = match body.trailers().await {
                Ok(t) => t,
                Err(e) => return Ok(text(StatusCode::BAD_REQUEST, format!("reading request trailers: {}\n", e))),
            };
            let mut echo_trailer = None;
            if let Some(t) = &trailers {
                if let Some(v) = t.get("x-upload-sha256") {
                    if v.as_bytes() != sum.as_bytes() {
                        return Ok(text(
                            StatusCode::BAD_REQUEST,
                            format!("trailer x-upload-sha256 {:?} but the body hashes to {}\n", v, sum),
                        ));
                    }
                    echo_trailer = Some(v.clone());
                }
            }
            let r = Response::builder()
                .header("x-request-sha256", &sum)
                .header("x-request-bytes", got.len())
                .header("x-request-trailers", if trailers.is_some() { "1" } else { "0" });
            if h2 {
                let mut tr = body_headers(&got);
                if let Some(v) = echo_trailer {
                    tr.insert("x-echo-trailer", v);
                }
                let len = got.len();
                r.header("content-length", len).body(stream_body(got, CHUNK, Duration::ZERO, Some(tr))).unwrap()
            } else {
                r.body(Body::from(got)).unwrap()
            }
        }
        (_, "/slow") => {
            let chunks = query_num(q, "chunks").unwrap_or(10) as usize;
            let ms = query_num(q, "ms").unwrap_or(100);
            let size = query_num(q, "size").unwrap_or(1024) as usize;
            let data = pattern(seed, chunks * size);
            let tr = if h2 { Some(body_headers(&data)) } else { None };
            Response::builder()
                .header("x-body-sha256", sha256_hex(&data))
                .body(stream_body(data, size, Duration::from_millis(ms), tr))
                .unwrap()
        }
        (_, "/die") => {
            let data = pattern(seed, n);
            let (mut tx, body) = Body::channel();
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::copy_from_slice(&data[..n / 4])).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                emit("DYING");
                std::process::exit(3);
            });
            Response::builder()
                .header("content-length", n)
                .header("x-body-sha256", sha256_hex(&pattern(seed, n)))
                .body(body)
                .unwrap()
        }
        _ => text(StatusCode::NOT_FOUND, format!("no such endpoint {}\n", path)),
    };
    Ok(resp)
}

fn text(code: StatusCode, s: String) -> Response<Body> {
    Response::builder().status(code).header("content-type", "text/plain").body(Body::from(s)).unwrap()
}

async fn serve<I>(io: I, h2: bool, h1: bool, mut stop: watch::Receiver<bool>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut http = Http::new();
    http.http1_only(h1).http2_only(h2);
    let conn = http.serve_connection(io, service_fn(handle));
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    emit(&format!("{{\"event\":\"conn_error\",\"error\":\"{}\"}}", e.to_string().replace('"', "'")));
                }
                return;
            }
            c = stop.changed(), if !stopping => {
                if c.is_err() || *stop.borrow() {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

fn watched<T>(io: T, tls: bool, alpn: &str) -> Watched<T> {
    Watched::new(io, tls, alpn, Box::new(|r: &ConnRecord| emit(&r.json("server"))))
}

async fn accept_one(tcp: TcpStream, proto: Arc<String>, acceptor: Option<TlsAcceptor>, stop: watch::Receiver<bool>) {
    let _ = tcp.set_nodelay(true);
    match proto.as_str() {
        "h1" => serve(watched(tcp, false, ""), false, true, stop).await,
        "h2c" => serve(watched(tcp, false, "h2c"), true, false, stop).await,
        _ => {
            let tls = match acceptor.unwrap().accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    emit(&format!("{{\"event\":\"handshake_error\",\"error\":\"{}\"}}", e.to_string().replace('"', "'")));
                    return;
                }
            };
            let alpn = tls.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
            let alpn = alpn.unwrap_or_default();
            let h2 = alpn == "h2";
            serve(watched(tls, true, &alpn), h2, !h2, stop).await
        }
    }
}

#[tokio::main]
async fn main() {
    let a = parse_args();
    let acceptor = if a.proto == "tls" {
        let certs = load_certs(a.cert.as_deref().unwrap()).unwrap_or_else(|e| die_usage(&format!("--cert: {}", e)));
        let key = load_key(a.key.as_deref().unwrap()).unwrap_or_else(|e| die_usage(&format!("--key: {}", e)));
        let mut cfg = rustls::ServerConfig::builder()
            .with_safe_defaults()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap_or_else(|e| die_usage(&format!("--cert/--key: {}", e)));
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Some(TlsAcceptor::from(Arc::new(cfg)))
    } else {
        None
    };
    let addr: SocketAddr = a.listen.parse().unwrap_or_else(|_| die_usage("--listen must be host:port"));
    let ln = TcpListener::bind(addr).await.unwrap_or_else(|e| die_usage(&format!("--listen: {}", e)));
    emit(&format!("LISTEN {}", ln.local_addr().unwrap()));

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut term = signal(SignalKind::terminate()).unwrap();
    let mut int = signal(SignalKind::interrupt()).unwrap();
    let proto = Arc::new(a.proto);
    let mut tasks = Vec::new();
    loop {
        tokio::select! {
            r = ln.accept() => match r {
                Ok((tcp, _)) => {
                    tasks.retain(|t: &tokio::task::JoinHandle<()>| !t.is_finished());
                    tasks.push(tokio::spawn(accept_one(tcp, proto.clone(), acceptor.clone(), stop_rx.clone())));
                }
                Err(e) => emit(&format!("{{\"event\":\"accept_error\",\"error\":\"{}\"}}", e)),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(ln);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    emit("SHUTDOWN");
}
