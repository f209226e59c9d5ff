//! Replacing the binary of a running runtime without refusing a connection.
//!
//! - **SIGUSR2** (`systemctl reload`-style, or `kill -USR2 <pid>` after the new binary was put
//!   in place of the old file): the runtime starts the binary at the path it was itself
//!   started from, with the same arguments, and hands it its listening sockets: their
//!   descriptors stay open across `exec` and their numbers go in `OPEN_CLI_LISTEN_FDS`
//!   (`7,8`), its own PID in `OPEN_CLI_UPGRADE_FROM`.
//! - The **successor** starts like any runtime (config loaded, catalog built; a broken config
//!   or binary stops there, and the old process, which never stopped serving, logs that the
//!   upgrade failed), but serves on the inherited sockets instead of binding: both processes
//!   accept from the same kernel queues, so no connection is refused and none is lost. Once it
//!   serves and has written `runtime.json`, it sends SIGTERM to its predecessor, which drains
//!   and exits as on any SIGTERM, leaving `runtime.json` (now the successor's) in place.
//! - **systemd socket activation** takes the same path: `LISTEN_FDS` descriptors from 3, when
//!   `LISTEN_PID` is this process (a `.socket` unit keeps the port open across restarts).
//!
//! Why hand sockets over rather than bind the new process with `SO_REUSEPORT`: a second
//! socket group on the port would split the kernel's queues, and connections queued on the old
//! process's sockets when it closes them would be reset.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The binary's path as it was started (not `/proc/self/exe`, which keeps naming the old file
/// after it was replaced).
static EXE: OnceLock<PathBuf> = OnceLock::new();

const LISTEN_FDS: &str = "OPEN_CLI_LISTEN_FDS";
const UPGRADE_FROM: &str = "OPEN_CLI_UPGRADE_FROM";

/// Remember the binary's path; call first thing at start-up.
pub fn remember_exe() {
    if let Ok(p) = std::env::current_exe() {
        let _ = EXE.set(p);
    }
}

/// The listening sockets handed to this process (by a predecessor, or by systemd), if any.
pub fn inherited() -> Result<Option<Vec<TcpListener>>, String> {
    let fds: Vec<RawFd> = if let Ok(list) = std::env::var(LISTEN_FDS) {
        list.split(',')
            .map(|s| {
                s.trim()
                    .parse::<RawFd>()
                    .map_err(|_| format!("{LISTEN_FDS}=`{list}`: not a list of descriptors"))
            })
            .collect::<Result<_, _>>()?
    } else if std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id())
    {
        let n: RawFd = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or("LISTEN_PID is this process, but LISTEN_FDS is not a number")?;
        (3..3 + n).collect()
    } else {
        return Ok(None);
    };
    if fds.is_empty() {
        return Err(format!("{LISTEN_FDS} names no descriptor"));
    }
    let mut listeners = Vec::with_capacity(fds.len());
    for fd in fds {
        let socket = socket2::Socket::from(take_fd(fd)?);
        let listening = socket.r#type().ok() == Some(socket2::Type::STREAM)
            && socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .is_some();
        if !listening {
            return Err(format!("inherited descriptor {fd} is not a TCP socket"));
        }
        socket
            .set_nonblocking(true)
            .and_then(|()| socket.set_cloexec(true))
            .map_err(|e| format!("inherited descriptor {fd}: {e}"))?;
        listeners.push(TcpListener::from(socket));
    }
    Ok(Some(listeners))
}

/// Take ownership of an inherited descriptor, after checking it is open.
#[allow(unsafe_code)]
fn take_fd(fd: RawFd) -> Result<OwnedFd, String> {
    // SAFETY: `fcntl(F_GETFD)` on a descriptor number only reads its flags and fails (EBADF)
    // when it is not open; the borrow ends with the call.
    let open = fd >= 3
        && nix::fcntl::fcntl(
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_GETFD,
        )
        .is_ok();
    if !open {
        return Err(format!("inherited descriptor {fd} is not open"));
    }
    // SAFETY: the descriptor was handed to this process (`OPEN_CLI_LISTEN_FDS` or systemd's
    // `LISTEN_FDS`), is open (checked above), and nothing else in this process owns it: it is
    // taken exactly once, here, at start-up.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// SIGUSR2: start the successor with the listening sockets `fds`; its PID. A thread reaps it
/// and reports it if it exits (an upgrade that failed; this process keeps serving).
pub fn spawn_successor(fds: &[RawFd]) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let exe = EXE.get().ok_or("the binary's path is unknown")?;
    let list = fds
        .iter()
        .map(|fd| fd.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let keep: Vec<RawFd> = fds.to_vec();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(LISTEN_FDS, &list)
        .env(UPGRADE_FROM, std::process::id().to_string())
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the child between fork and exec and only calls fcntl(2),
    // which is async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &keep {
                let flags = nix::fcntl::fcntl(
                    std::os::fd::BorrowedFd::borrow_raw(*fd),
                    nix::fcntl::FcntlArg::F_GETFD,
                )
                .map_err(std::io::Error::from)?;
                let mut flags = nix::fcntl::FdFlag::from_bits_truncate(flags);
                flags.remove(nix::fcntl::FdFlag::FD_CLOEXEC);
                nix::fcntl::fcntl(
                    std::os::fd::BorrowedFd::borrow_raw(*fd),
                    nix::fcntl::FcntlArg::F_SETFD(flags),
                )
                .map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let pid = child.id();
    std::thread::Builder::new()
        .name("open-cli-upgrade".into())
        .spawn(move || {
            if let Ok(status) = child.wait() {
                tracing::error!(pid, %status, "the upgraded runtime exited before taking over; this one keeps serving");
            }
        })
        .map_err(|e| format!("cannot watch the successor: {e}"))?;
    Ok(pid)
}

/// A successor that now serves: tell the predecessor to drain and exit.
pub fn take_over() {
    let Some(pid) = std::env::var(UPGRADE_FROM)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    // Only our own parent: a stale or forged variable must not make us signal another process.
    if nix::unistd::getppid().as_raw() != pid {
        tracing::warn!(
            pid,
            "{UPGRADE_FROM} is not this process's parent; not signalled"
        );
        return;
    }
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    ) {
        Ok(()) => tracing::info!(
            predecessor = pid,
            "took over the listening sockets; the predecessor drains and exits"
        ),
        Err(e) => tracing::warn!(predecessor = pid, error = %e, "cannot signal the predecessor"),
    }
}

/// The descriptors of `listeners`, for [`spawn_successor`].
pub fn fds(listeners: &[TcpListener]) -> Vec<RawFd> {
    listeners.iter().map(AsRawFd::as_raw_fd).collect()
}
