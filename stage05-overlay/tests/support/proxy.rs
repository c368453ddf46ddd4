//! A proxy in front of the registry that breaks what a test wants broken: each client
//! connection carries one request (the proxy asks the registry to close after it),
//! and the response to a request whose path holds `target` may be cut after some
//! bytes, stalled, or held until several such requests are in flight.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What to do to the responses of matching requests.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Only requests whose first line holds one of these `|`-separated words are
    /// touched.
    pub target: String,
    /// Cut the connection after this many bytes of the response...
    pub cut_after: Option<usize>,
    /// ...for this many matching requests (then pass them whole).
    pub cut_times: usize,
    /// Stop relaying after this many bytes, and say so; never go on.
    pub stall_after: Option<usize>,
    /// Hold matching responses until this many matching requests arrived (or 15 s).
    pub gate: Option<usize>,
}

#[derive(Default)]
struct State {
    /// Every request head seen, in order.
    heads: Vec<String>,
    matching: usize,
    cut: usize,
    stalled: usize,
    /// The gate opened because enough requests came (not by its timeout).
    gate_opened: bool,
    /// A held response went on because the gate's time ran out.
    gate_timed_out: bool,
    closing: bool,
}

pub struct Proxy {
    pub address: String,
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl Proxy {
    pub fn start(upstream: &str, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let address = listener.local_addr().expect("proxy address").to_string();
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let upstream = upstream.to_owned();
        let in_thread = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if in_thread.0.lock().unwrap().closing {
                    break;
                }
                let (upstream, faults, shared) =
                    (upstream.clone(), faults.clone(), Arc::clone(&in_thread));
                std::thread::spawn(move || relay(client, &upstream, &faults, &shared));
            }
        });
        Self { address, shared }
    }

    /// Every request head seen so far.
    pub fn heads(&self) -> Vec<String> {
        self.shared.0.lock().unwrap().heads.clone()
    }

    /// Waits until a response was stalled (at most 60 s).
    pub fn wait_stalled(&self) {
        let (lock, changed) = &*self.shared;
        let state = lock.lock().unwrap();
        let (state, timeout) = changed
            .wait_timeout_while(state, Duration::from_secs(60), |s| s.stalled == 0)
            .unwrap();
        assert!(
            !timeout.timed_out() && state.stalled > 0,
            "no response was stalled"
        );
    }

    /// Whether the gate opened because enough matching requests were in flight, and
    /// no held response went on for the gate's time running out.
    pub fn gate_opened(&self) -> bool {
        let state = self.shared.0.lock().unwrap();
        state.gate_opened && !state.gate_timed_out
    }

    /// How many matching requests arrived.
    pub fn matching(&self) -> usize {
        self.shared.0.lock().unwrap().matching
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let (lock, changed) = &*self.shared;
        lock.lock().unwrap().closing = true;
        changed.notify_all();
        // Wakes the accepting thread so that it sees `closing`.
        let _ = TcpStream::connect(&self.address);
    }
}

fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

fn relay(mut client: TcpStream, upstream: &str, faults: &Faults, shared: &(Mutex<State>, Condvar)) {
    let Some(head) = read_head(&mut client) else {
        return;
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let first_line = text.lines().next().unwrap_or_default().to_owned();
    let matches = !faults.target.is_empty()
        && faults
            .target
            .split('|')
            .any(|word| first_line.contains(word));
    let (lock, changed) = shared;
    let (cut, stall) = {
        let mut state = lock.lock().unwrap();
        state.heads.push(text.clone());
        if matches {
            state.matching += 1;
        }
        changed.notify_all();
        let cut = matches && faults.cut_after.is_some() && state.cut < faults.cut_times;
        if cut {
            state.cut += 1;
        }
        (
            cut.then_some(faults.cut_after).flatten(),
            matches.then_some(faults.stall_after).flatten(),
        )
    };
    if let (true, Some(gate)) = (matches, faults.gate) {
        let state = lock.lock().unwrap();
        let (mut state, _) = changed
            .wait_timeout_while(state, Duration::from_secs(15), |s| {
                s.matching < gate && !s.closing
            })
            .unwrap();
        if state.matching >= gate {
            state.gate_opened = true;
        } else {
            state.gate_timed_out = true;
        }
    }
    // One request per upstream connection: the registry closes it after answering.
    let rewritten: String = text
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let rewritten = rewritten.trim_end().to_owned() + "\r\nConnection: close\r\n\r\n";
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    if server.write_all(rewritten.as_bytes()).is_err() {
        return;
    }
    let limit = cut.or(stall).unwrap_or(usize::MAX);
    let mut sent = 0;
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = server.read(&mut buf) {
        if n == 0 {
            break;
        }
        let n = n.min(limit - sent);
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
        if sent >= limit {
            break;
        }
    }
    if stall.is_some() && sent >= limit {
        let mut state = lock.lock().unwrap();
        state.stalled += 1;
        changed.notify_all();
        // Holds the connection open, sending nothing, until the proxy is dropped or
        // two minutes pass.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !state.closing && Instant::now() < deadline {
            state = changed
                .wait_timeout(state, Duration::from_secs(1))
                .unwrap()
                .0;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}
