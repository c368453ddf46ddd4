//! Relaying one TCP connection to another inside the kernel: `splice(2)` through a
//! pipe, one thread per direction, and the socket options that let the kernel do it
//! well.
//!
//! A relay should be invisible: it sends what it is given, when it is given it. Two
//! of TCP's defaults get in the way of that, and one of the host's may:
//!
//! - Nagle's algorithm holds a small segment back while an earlier one is unacknowledged.
//!   The client chose for its own hop (an interactive one sets `TCP_NODELAY`); a
//!   relay that holds back again adds the peer's delayed ACK, about 40 ms, to every
//!   "write, write, read" exchange. So both sockets get `TCP_NODELAY`.
//! - `SPLICE_F_MORE` says "more is coming": TCP then keeps a partial segment corked.
//!   For a request that is all there is, nothing more comes, and it waits about
//!   200 ms per hop. So the relay passes no such hint; the kernel still sets it itself
//!   between the pages of one `splice` call.
//! - A host whose default congestion control is BBR paces every connection: it spaces
//!   the segments out in time with a timer, which on a connection that never leaves
//!   the machine has no queue to protect and only costs CPU (a quarter of what a
//!   relayed byte costs, measured). Such a connection gets `reno`, which every kernel
//!   has and lets every user choose. A connection from another machine keeps the
//!   host's choice.

use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::sys::socket::{self, Shutdown, sockopt};
use nix::unistd::pipe2;

/// The pipe between two sockets: 1 MiB (`/proc/sys/fs/pipe-max-size`'s default).
/// Smaller pipes cost more CPU per byte (a quarter more at 256 KiB, measured).
const PIPE_SIZE: i32 = 1 << 20;

// ANCHOR: relay
/// Carries bytes both ways between `client` and `inside` until each side has ended
/// its direction; every half-close is passed on to the other side.
pub fn both_ways(client: TcpStream, inside: TcpStream) {
    for stream in [&client, &inside] {
        // Best effort: the relay works without them, only slower.
        let _ = stream.set_nodelay(true);
        if is_local(stream) {
            let _ = socket::setsockopt(stream, sockopt::TcpCongestion, &"reno".into());
        }
    }
    let (Ok(client2), Ok(inside2)) = (client.try_clone(), inside.try_clone()) else {
        return;
    };
    std::thread::spawn(move || pump(client.into(), inside.into()));
    std::thread::spawn(move || pump(inside2.into(), client2.into()));
}

/// Both ends on this machine: the peer on a loopback address or on our own.
fn is_local(stream: &TcpStream) -> bool {
    match (stream.peer_addr(), stream.local_addr()) {
        (Ok(peer), Ok(local)) => {
            let peer = peer.ip().to_canonical();
            peer.is_loopback() || peer == local.ip().to_canonical()
        }
        _ => false,
    }
}

/// Moves bytes from `from` to `to` with splice(2), through a pipe, without copying
/// them into user space; at end-of-file, shuts `to` down for writing, as the peer did.
/// An error either way ends the direction the same way.
fn pump(from: OwnedFd, to: OwnedFd) {
    let Ok((pipe_read, pipe_write)) = pipe2(OFlag::O_CLOEXEC) else {
        return;
    };
    // A larger pipe moves more per system call (the default holds 64 KiB); the kernel
    // may refuse the size, and the default still works.
    let chunk = fcntl(pipe_write.as_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE))
        .map_or(1 << 16, |size| size as usize);
    let flags = SpliceFFlags::SPLICE_F_MOVE;
    'copy: loop {
        let mut left = match splice(from.as_fd(), None, pipe_write.as_fd(), None, chunk, flags) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while left > 0 {
            match splice(pipe_read.as_fd(), None, to.as_fd(), None, left, flags) {
                Ok(0) | Err(_) => break 'copy,
                Ok(n) => left -= n,
            }
        }
    }
    let _ = socket::shutdown(to.as_raw_fd(), Shutdown::Write);
}
// ANCHOR_END: relay

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, Shutdown, TcpListener};
    use std::time::{Duration, Instant};

    /// Two ends of a connection on the loopback.
    fn connection() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (far, _) = listener.accept().unwrap();
        (near, far)
    }

    /// A client and a server with a relay between them.
    fn relayed() -> (TcpStream, TcpStream) {
        let (client, relay_client) = connection();
        let (relay_inside, server) = connection();
        assert!(is_local(&relay_client) && is_local(&relay_inside));
        both_ways(relay_client, relay_inside);
        (client, server)
    }

    #[test]
    fn carries_both_ways_and_passes_on_each_half_close() {
        let (mut client, mut server) = relayed();
        client.write_all(b"request").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"request");
        // The other direction is still open, until the server ends it too.
        server.write_all(b"answer").unwrap();
        server.shutdown(Shutdown::Write).unwrap();
        got.clear();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"answer");
    }

    /// A request written in two pieces is answered in microseconds, not in the 40 ms
    /// of Nagle's algorithm against a delayed ACK, or the 200 ms of a corked segment.
    #[test]
    fn small_messages_are_not_held_back() {
        let (mut client, mut server) = relayed();
        client.set_nodelay(true).unwrap();
        server.set_nodelay(true).unwrap();
        std::thread::spawn(move || {
            let mut request = [0u8; 10];
            while server.read_exact(&mut request).is_ok() {
                if server.write_all(&request).is_err() {
                    break;
                }
            }
        });
        let mut times: Vec<Duration> = (0..11)
            .map(|_| {
                let start = Instant::now();
                client.write_all(b"hello").unwrap();
                client.write_all(b"world").unwrap();
                let mut answer = [0u8; 10];
                client.read_exact(&mut answer).unwrap();
                assert_eq!(&answer, b"helloworld");
                start.elapsed()
            })
            .collect();
        times.sort();
        assert!(times[5] < Duration::from_millis(20), "{times:?}");
    }
}
