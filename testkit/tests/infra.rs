//! Smoke tests of the real-infrastructure helpers: a redis-server that answers and stops, and
//! an haproxy that rotates every request, even on one keep-alive connection, and passes SSE
//! events on as they come.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use mcp_testkit::haproxy::Haproxy;
use mcp_testkit::redis_server::{ping, RedisServer};

/// One RESP command, its first reply line.
fn command(addr: SocketAddr, args: &[&str]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    if line.starts_with('$') && line.trim() != "$-1" {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    line.trim_end().to_string()
}

#[test]
fn redis_server_answers_keeps_nothing_on_disk_and_stops_on_drop() {
    let mut redis = RedisServer::start();
    let addr = redis.addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(command(addr, &["SET", "k", "v"]), "+OK");
    assert_eq!(command(addr, &["GET", "k"]), "v");

    // A restart on the same port comes back empty: nothing was persisted.
    redis.kill();
    assert!(ping(addr).is_err(), "killed means gone");
    redis.restart().unwrap();
    assert_eq!(command(addr, &["GET", "k"]), "$-1");

    drop(redis);
    assert!(TcpStream::connect(addr).is_err(), "dropped means stopped");
}

/// A tiny HTTP/1.1 backend answering every request, keep-alive, with its own name.
fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || serve(conn, name));
        }
    });
    addr
}

fn serve(conn: TcpStream, name: &str) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        // Headers only: the test sends GETs without bodies.
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
            name.len()
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// Sends one GET on `s` and returns the body (Content-Length framed).
fn get(s: &mut BufReader<TcpStream>) -> String {
    s.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut len = 0;
    let mut line = String::new();
    loop {
        line.clear();
        s.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

#[test]
fn haproxy_rotates_every_request_across_its_backends() {
    let lb = Haproxy::start(&[backend("b0"), backend("b1"), backend("b2")]);
    let conn = TcpStream::connect(lb.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut conn = BufReader::new(conn);
    let seen: Vec<String> = (0..6).map(|_| get(&mut conn)).collect();
    // Round-robin on ONE keep-alive connection: no stickiness.
    let first = &seen[..3];
    let mut sorted = first.to_vec();
    sorted.sort();
    assert_eq!(sorted, ["b0", "b1", "b2"], "{seen:?}\n{}", lb.report());
    assert_eq!(&seen[3..], first, "the rotation repeats: {seen:?}");

    let addr = lb.addr();
    drop(lb);
    assert!(TcpStream::connect(addr).is_err(), "dropped means stopped");
}

/// A backend that answers with an SSE stream: one event at once, then holds the stream open
/// until `release` is dropped.
fn sse_backend(release: std::sync::mpsc::Receiver<()>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (conn, _) = l.accept().unwrap();
        let mut w = conn.try_clone().unwrap();
        let mut r = BufReader::new(conn);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            line.clear();
        }
        let event = "data: one\n\n";
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                    Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
        w.write_all(format!("{head}{:x}\r\n{event}\r\n", event.len()).as_bytes())
            .unwrap();
        let _ = release.recv();
    });
    addr
}

#[test]
fn haproxy_passes_an_sse_event_on_while_the_stream_stays_open() {
    let (hold, release) = std::sync::mpsc::channel::<()>();
    let lb = Haproxy::start(&[sse_backend(release)]);
    let mut conn = TcpStream::connect(lb.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("data: one\n\n") {
        let n = conn
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("no event through haproxy ({e}): {got:?}"));
        assert!(n > 0, "stream closed before the event: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    drop(hold);
}
