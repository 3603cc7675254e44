//! A small HTTP/1.1 file server on 127.0.0.1 for download tests: it honours
//! `Range`, counts requests, and can misbehave on purpose (cut a body, ignore
//! `Range`, answer slowly) so that the client's recovery is exercised over a
//! real socket.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Behaviour {
    /// Close the connection after this many body bytes, on the next `cuts` GETs.
    pub cut_after: Option<u64>,
    pub cuts: usize,
    /// Answer 200 with the whole file even when asked for a range.
    pub ignore_range: bool,
    /// Sleep between 64 KiB pieces of a body.
    pub delay: Option<Duration>,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    behaviour: HashMap<String, Behaviour>,
    /// (path, the Range header or "") of every GET, in order.
    log: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct Server {
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        Self { base, state }
    }

    /// Serves `bytes` at `/path`; returns its URL.
    pub fn put(&self, path: &str, bytes: Vec<u8>) -> String {
        self.state.lock().unwrap().files.insert(path.to_string(), bytes);
        format!("{}/{path}", self.base)
    }

    pub fn behave(&self, path: &str, b: Behaviour) {
        self.state.lock().unwrap().behaviour.insert(path.to_string(), b);
    }

    /// The Range header (or "") of every GET of `/path`.
    pub fn requests(&self, path: &str) -> Vec<String> {
        self.state.lock().unwrap().log.iter().filter(|(p, _)| p == path).map(|(_, r)| r.clone()).collect()
    }
}

fn serve(conn: TcpStream, st: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
    let mut range = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = v.trim().to_string();
        }
    }
    let mut out = conn;
    let (body, cut, ignore_range, delay) = {
        let mut s = st.lock().unwrap();
        s.log.push((path.clone(), range.clone()));
        let Some(body) = s.files.get(&path).cloned() else {
            return out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        };
        let b = s.behaviour.entry(path.clone()).or_default();
        let cut = if b.cuts > 0 {
            b.cuts -= 1;
            b.cut_after
        } else {
            None
        };
        (body, cut, b.ignore_range, b.delay)
    };
    let start = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|_| !ignore_range);
    let head = match start {
        Some(s) if s >= body.len() => {
            let h = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                body.len()
            );
            return out.write_all(h.as_bytes());
        }
        Some(s) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len() - 1,
            body.len(),
            body.len() - s
        ),
        None => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()),
    };
    out.write_all(head.as_bytes())?;
    let mut rest = &body[start.unwrap_or(0)..];
    if let Some(c) = cut {
        rest = &rest[..(c as usize).min(rest.len())];
    }
    for piece in rest.chunks(64 << 10) {
        out.write_all(piece)?;
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
    }
    out.flush()?;
    if cut.is_some() {
        // A cut, not a clean end: reset rather than close gracefully.
        let _ = out.shutdown(std::net::Shutdown::Both);
    }
    Ok(())
}
