//! Reading small local files that a config names (the config's scope files, `file` secrets,
//! `caFile` bundles, token files, local OpenAPI documents) without trusting what is there.
//!
//! Why one function: a path may name a FIFO (the open alone blocks until a writer appears,
//! and a read then blocks forever), a device (`/dev/zero` never ends), a directory or a file
//! that keeps growing. Each read site once did `std::fs::read` and inherited all of that
//! (issue 15, items 1 and 2). Here the file is opened non-blocking (a FIFO cannot hold the
//! open) and without becoming a controlling terminal, its type is checked on the opened
//! handle (no window between a check and the open), and the size bound applies while
//! reading, so nothing can make the read take more than `max` bytes of memory.

use std::io::Read;
use std::path::Path;

/// The bound for a `file` secret or a token file: 1 MiB (secrets are bytes to kilobytes).
pub const MAX_SECRET_BYTES: u64 = 1024 * 1024;
/// The bound for a `caFile` PEM bundle: 16 MiB (the whole Mozilla bundle is about 220 KiB).
pub const MAX_CA_BYTES: u64 = 16 * 1024 * 1024;

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// Not a regular file: what it is instead ("a FIFO", "a directory", …).
    NotRegular(&'static str),
    /// Larger than the bound (in bytes).
    TooLarge(u64),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => e.fmt(f),
            Self::NotRegular(what) => write!(f, "it is {what}; only regular files are read"),
            Self::TooLarge(max) => write!(f, "it is larger than {max} bytes"),
        }
    }
}

impl std::error::Error for ReadError {}

/// The bytes of the regular file at `path`, at most `max` of them (see the module docs).
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    let kind = file.metadata().map_err(ReadError::Io)?.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular(if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        }));
    }
    let mut body = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(ReadError::Io)?;
    if body.len() as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    Ok(body)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, max: u64) -> Result<String, ReadError> {
    String::from_utf8(read_regular(path, max)?).map_err(|_| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it is not UTF-8 text",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_bound_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(read_regular(&file, 7).unwrap(), b"s3cret\n");
        assert!(matches!(
            read_regular(&file, 6),
            Err(ReadError::TooLarge(6))
        ));
        assert_eq!(read_regular_text(&file, 100).unwrap(), "s3cret\n");

        let err = read_regular(dir.path(), 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "it is a directory; only regular files are read"
        );
        // A device that never ends, and a FIFO with no writer: refused at once.
        let err = read_regular(Path::new("/dev/zero"), 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "it is a device; only regular files are read"
        );
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = read_regular(&fifo, 100).unwrap_err();
        assert_eq!(err.to_string(), "it is a FIFO; only regular files are read");
        // A symlink to a regular file is read (Kubernetes mounts secrets that way).
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_regular(&link, 100).unwrap(), b"s3cret\n");
        assert!(matches!(
            read_regular(&dir.path().join("missing"), 100),
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
        ));
    }
}
