//! A real Redis server (Debian's, linked by `scripts/deps` into `product-tests/redis/bin`), on
//! a free loopback port, without persistence: the shared rate-limit store.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::process::{Port, Proc, START_DEADLINE, repo_root, spawn_on_free_port};

#[derive(Debug)]
pub struct Redis {
    pub proc: Proc,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_on(Port::Free)
    }

    /// Start on `port` (`Port::Fixed`: again where a stopped one was; empty, nothing is saved).
    pub fn start_on(port: Port) -> Self {
        let bin = repo_root().join("product-tests/redis/bin/redis-server");
        assert!(bin.exists(), "redis-server is missing: run scripts/deps");
        let (proc, port) = spawn_on_free_port(
            "redis-server",
            port,
            START_DEADLINE,
            |port| {
                let mut cmd = Command::new(&bin);
                cmd.args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]);
                cmd
            },
            |_, port| (ping(port) == Some(true)).then_some(port),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self { proc, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// Whether a server on `port` answers `PING` with `PONG`; `None` when none listens.
pub fn ping(port: u16) -> Option<bool> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).ok()?;
    Some(buf[..n].starts_with(b"+PONG"))
}
