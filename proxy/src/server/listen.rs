//! The listening sockets: one per serving thread, so that the kernel spreads connections
//! evenly over the threads.
//!
//! Why not one shared socket: every serving thread's accept loop waits on the same socket,
//! all of them wake for a new connection, and the first to run accepts everything that is
//! queued. When a client opens its connections in a burst (a load generator, an agent's
//! connection pool), one thread often gets all of them and the others idle: measured with
//! `wrk -c50` on two threads (per-thread CPU time), about one 5 s round in four put every
//! connection on one thread, for the bare Pingora hop as for the runtime, and those rounds
//! served 7–30% fewer requests than the others of their run.
//!
//! How: each thread gets its own socket, all bound to the same address with `SO_REUSEPORT`,
//! and the kernel picks a socket for each new connection by a hash of its addresses
//! (evenly, independent of which thread happens to be running). This is what nginx's
//! `reuseport` and Envoy's worker listeners do.
//!
//! Safety: a socket with `SO_REUSEPORT` would normally *join* an existing listener with the
//! option on the same port (same user only) instead of failing, so a second runtime started
//! by mistake on a busy port would silently receive a share of the first one's connections.
//! To keep "address in use" an error, the first socket is bound **without** the option (so
//! the bind fails if anything listens there) and only then gets it, before `listen`; the
//! others join it. A second runtime's first bind fails the same way.
//! With one thread there is one socket and no `SO_REUSEPORT` at all.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

/// The accept backlog of each socket (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// Binds `count` (at least one) non-blocking listening sockets to `addr`. With port 0 the
/// kernel picks the port once and every socket shares it. Errors name the address.
pub fn bind(addr: &str, count: usize) -> Result<Vec<TcpListener>, String> {
    let candidates: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?
        .collect();
    // Like std's `TcpListener::bind`: the first address that binds.
    let mut last_error = None;
    for candidate in candidates {
        match bind_first(candidate, count > 1) {
            Ok(first) => {
                return join(first, count).map_err(|e| format!("cannot listen on {addr}: {e}"));
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => format!("cannot listen on {addr}: {e}"),
        None => format!("cannot listen on {addr}: the name resolves to no address"),
    })
}

fn socket_for(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // What std's `TcpListener::bind` does on Unix: restart on a port with connections still
    // in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The first socket: bound without `SO_REUSEPORT`, so that a port anything already listens
/// on is refused; given the option before `listen` when others are to join it.
fn bind_first(addr: SocketAddr, shared: bool) -> std::io::Result<Socket> {
    let socket = socket_for(addr)?;
    socket.bind(&addr.into())?;
    if shared {
        socket.set_reuse_port(true)?;
    }
    socket.listen(BACKLOG)?;
    Ok(socket)
}

fn join(first: Socket, count: usize) -> std::io::Result<Vec<TcpListener>> {
    let bound = first
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("the listening socket has no IP address"))?;
    let mut listeners = Vec::with_capacity(count);
    listeners.push(TcpListener::from(first));
    for _ in 1..count {
        let socket = socket_for(bound)?;
        socket.set_reuse_port(true)?;
        socket.bind(&bound.into())?;
        socket.listen(BACKLOG)?;
        listeners.push(TcpListener::from(socket));
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    fn accepted(listener: &TcpListener) -> usize {
        let mut n = 0;
        loop {
            match listener.accept() {
                Ok(_) => n += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
                Err(e) => panic!("accept failed: {e}"),
            }
        }
    }

    #[test]
    fn connections_are_spread_over_the_sockets() {
        let listeners = bind("127.0.0.1:0", 2).unwrap();
        let addr = listeners[0].local_addr().unwrap();
        assert_eq!(listeners[1].local_addr().unwrap(), addr, "one port for all");
        // A burst of connections, as a client pool opens them. One shared socket would hand
        // them all to whichever thread accepts first; here each socket has its own queue.
        let clients: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut counts = [0usize; 2];
        let deadline = Instant::now() + Duration::from_secs(10);
        while counts.iter().sum::<usize>() < clients.len() {
            assert!(Instant::now() < deadline, "accepted only {counts:?} of 64");
            for (i, l) in listeners.iter().enumerate() {
                counts[i] += accepted(l);
            }
            std::thread::yield_now();
        }
        // The kernel hashes each connection's addresses; all 64 on one socket has a chance of
        // 2^-63.
        assert!(counts.iter().all(|&n| n > 0), "uneven: {counts:?}");
    }

    #[test]
    fn a_busy_port_is_refused_even_by_a_group() {
        let first = bind("127.0.0.1:0", 2).unwrap();
        let addr = first[0].local_addr().unwrap().to_string();
        for count in [1, 2] {
            let err = bind(&addr, count).unwrap_err();
            assert!(
                err.starts_with(&format!("cannot listen on {addr}: ")),
                "{err}"
            );
            assert!(err.contains("in use"), "{err}");
        }
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = plain.local_addr().unwrap().to_string();
        assert!(bind(&addr, 2).unwrap_err().contains("in use"));
    }

    #[test]
    fn one_thread_gets_one_socket_without_sharing() {
        let one = bind("127.0.0.1:0", 1).unwrap();
        assert_eq!(one.len(), 1);
        let socket = socket2::SockRef::from(&one[0]);
        assert!(!socket.reuse_port().unwrap());
        let err = bind("127.0.0.1", 1).unwrap_err();
        assert!(err.starts_with("cannot listen on 127.0.0.1: "), "{err}");
    }
}
