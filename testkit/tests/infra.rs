//! Smoke tests of the real-infrastructure helpers: a redis-server that answers and stops, and
//! an haproxy that rotates every request, even on one keep-alive connection.

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
