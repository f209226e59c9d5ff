//! The audit log file: rotation by size and age, retention, gzip, and reopening on request
//! (SIGUSR1, for an operator's own `logrotate`).
//!
//! The spool writes whole batches of lines and then calls `flush`; rotation and reopening
//! happen only there, between batches, so no line is ever split across two files. Before a
//! file is given up it is synced, so `durability: always` holds across a rotation. A rotated
//! file is renamed `<name>.<UTC time>-<nnn>` (numbered within the second),
//! compressed in the background when asked (`.gz`, the uncompressed file removed once the
//! compressed one is complete and synced), and retention then deletes the oldest rotated files
//! beyond `keep` and those older than `keepDays`. Every file is mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use open_cli_config::model::AuditRotation;

use crate::spool::Output;

/// The live audit file and its rotation rules.
pub struct AuditFile {
    path: PathBuf,
    file: std::fs::File,
    /// Bytes in `file`.
    size: u64,
    opened: SystemTime,
    rotation: AuditRotation,
    /// Set by [`Reopen::request`]: reopen `path` after the current batch.
    reopen: Arc<AtomicBool>,
}

/// A handle that asks the writer to reopen the file (SIGUSR1).
#[derive(Debug, Clone)]
pub struct Reopen(Arc<AtomicBool>);

impl Reopen {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for AuditFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditFile")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish()
    }
}

impl AuditFile {
    pub fn open(path: &Path, rotation: &AuditRotation) -> std::io::Result<(Self, Reopen)> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        let reopen = Arc::new(AtomicBool::new(false));
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
                size,
                opened: SystemTime::now(),
                rotation: rotation.clone(),
                reopen: Arc::clone(&reopen),
            },
            Reopen(reopen),
        ))
    }

    fn due(&self) -> bool {
        let by_size = self.rotation.max_bytes.is_some_and(|m| self.size >= m);
        let by_age = self.rotation.max_age_hours.is_some_and(|h| {
            self.opened
                .elapsed()
                .is_ok_and(|e| e >= Duration::from_secs(h * 3600))
        });
        by_size || by_age
    }

    /// Between batches: rotate when due, reopen when asked.
    fn between_batches(&mut self) -> std::io::Result<()> {
        if self.due() {
            self.file.sync_data()?;
            let rotated = rotated_name(&self.path);
            std::fs::rename(&self.path, &rotated)?;
            self.swap_file()?;
            let (dir, rotation) = (self.path.clone(), self.rotation.clone());
            // Compression and retention off the writer thread: a large file takes a while.
            std::thread::Builder::new()
                .name("audit-rotate".into())
                .spawn(move || after_rotation(&dir, &rotated, &rotation))?;
        } else if self.reopen.swap(false, Ordering::SeqCst) {
            self.file.sync_data()?;
            self.swap_file()?;
        }
        Ok(())
    }

    fn swap_file(&mut self) -> std::io::Result<()> {
        self.file = open_append(&self.path)?;
        self.size = self.file.metadata()?.len();
        self.opened = SystemTime::now();
        Ok(())
    }
}

impl Write for AuditFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    /// The end of a batch (see the module docs).
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.between_batches()
    }
}

impl Output for AuditFile {
    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

pub fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// `<path>.<UTC time>-<nnn>`, numbered within the second, so names sort in rotation order.
fn rotated_name(path: &Path) -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    // One past the highest number of this second among the rotated files (not the first
    // free one: retention may have freed a lower number, which would sort a newer file first).
    let prefix = format!("{}.{stamp}-", path.display());
    let next = rotated_files(path)
        .iter()
        .filter_map(|f| {
            let rest = f.to_str()?.strip_prefix(&prefix)?;
            rest.get(..3)?.parse::<u32>().ok()
        })
        .max()
        .map_or(0, |n| n + 1);
    format!("{prefix}{next:03}").into()
}

/// The rotated files of `path`, oldest first (their names sort by time).
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix) && !n.ends_with(".tmp"))
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

fn after_rotation(path: &Path, rotated: &Path, rotation: &AuditRotation) {
    // One at a time: retention must never delete a file another thread is compressing.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !rotated.exists() {
        return; // retention of a later rotation already removed it
    }
    if rotation.compress
        && let Err(e) = compress(rotated)
    {
        tracing::warn!(file = %rotated.display(), error = %e, "cannot compress a rotated audit file");
    }
    retain(path, rotation);
}

/// `<file>.gz` from `file` (written to `.gz.tmp`, synced, renamed), then `file` removed.
fn compress(file: &Path) -> std::io::Result<()> {
    let gz = PathBuf::from(format!("{}.gz", file.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", file.display()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        std::io::copy(&mut std::fs::File::open(file)?, &mut enc)?;
        enc.finish()?.sync_all()?;
    }
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(file)
}

/// Delete rotated files beyond `keep` (oldest first) and older than `keepDays`.
fn retain(path: &Path, rotation: &AuditRotation) {
    let files = rotated_files(path);
    let mut doomed: Vec<&PathBuf> = Vec::new();
    if let Some(keep) = rotation.keep {
        let extra = files.len().saturating_sub(keep as usize);
        doomed.extend(files.iter().take(extra));
    }
    if let Some(days) = rotation.keep_days {
        let limit = Duration::from_secs(days * 86_400);
        doomed.extend(files.iter().filter(|f| {
            std::fs::metadata(f)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > limit))
        }));
    }
    for f in doomed {
        if let Err(e) = std::fs::remove_file(f)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %f.display(), error = %e, "cannot delete a rotated audit file");
        }
    }
}

/// The lines of an audit file, plain or gzip (by its `.gz` name).
pub fn read_text(file: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(file)?;
    if file.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)?;
        Ok(text)
    } else {
        String::from_utf8(bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of_all(path: &Path) -> Vec<String> {
        let mut all = Vec::new();
        for f in rotated_files(path).iter().chain([&path.to_path_buf()]) {
            all.extend(read_text(f).unwrap().lines().map(str::to_string));
        }
        all
    }

    /// Wait (with a deadline) until the background compression and retention are done.
    fn settled(path: &Path, files: usize) -> Vec<PathBuf> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = rotated_files(path);
            if now.len() == files && now.iter().all(|f| f.extension().is_some_and(|e| e == "gz")) {
                return now;
            }
            assert!(std::time::Instant::now() < deadline, "{now:?}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn files_rotate_between_batches_compress_and_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let rotation = AuditRotation {
            max_bytes: Some(1000),
            keep: Some(2),
            compress: true,
            ..Default::default()
        };
        let (mut f, _) = AuditFile::open(&path, &rotation).unwrap();
        let mut written = Vec::new();
        for batch in 0..10 {
            for i in 0..10 {
                let line = format!(
                    "{{\"batch\":{batch},\"line\":{i},\"pad\":\"{}\"}}\n",
                    "x".repeat(20)
                );
                f.write_all(line.as_bytes()).unwrap();
                written.push(line.trim_end().to_string());
            }
            f.flush().unwrap();
        }
        let rotated = settled(&path, 2);
        use std::os::unix::fs::PermissionsExt;
        for r in &rotated {
            assert_eq!(
                std::fs::metadata(r).unwrap().permissions().mode() & 0o777,
                0o600
            );
            // Whole batches per file: every line parses.
            for l in read_text(r).unwrap().lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap();
            }
        }
        // The kept files and the live one end with the newest lines, in order, none torn.
        let all = lines_of_all(&path);
        assert!(written.ends_with(&all), "{all:?}");
        assert!(all.len() >= 20, "{}", all.len());
    }

    #[test]
    fn a_reopen_request_starts_a_new_file_after_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (mut f, reopen) = AuditFile::open(&path, &AuditRotation::default()).unwrap();
        f.write_all(b"one\n").unwrap();
        f.flush().unwrap();
        // logrotate moves the file, then signals.
        std::fs::rename(&path, dir.path().join("moved.log")).unwrap();
        reopen.request();
        f.write_all(b"two\n").unwrap();
        f.flush().unwrap();
        f.write_all(b"three\n").unwrap();
        f.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("moved.log")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }

    #[test]
    fn files_rotate_by_age_and_old_rotated_files_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        // A rotated file from 40 days ago.
        let old = dir.path().join("audit.log.20261027T000000Z-000");
        std::fs::write(&old, "old\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(40 * 86_400))
            .unwrap();
        let rotation = AuditRotation {
            max_age_hours: Some(1),
            keep_days: Some(30),
            ..Default::default()
        };
        let (mut f, _) = AuditFile::open(&path, &rotation).unwrap();
        f.write_all(b"young\n").unwrap();
        f.flush().unwrap();
        assert!(
            rotated_files(&path).contains(&old),
            "not yet an hour old: no rotation"
        );
        // The live file was opened two hours ago.
        f.opened = SystemTime::now() - Duration::from_secs(2 * 3600);
        f.write_all(b"aged\n").unwrap();
        f.flush().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let rotated = loop {
            let now = rotated_files(&path);
            if !now.contains(&old) {
                break now;
            }
            assert!(std::time::Instant::now() < deadline, "{now:?}");
            std::thread::yield_now();
        };
        assert_eq!(rotated.len(), 1, "{rotated:?}");
        assert_eq!(read_text(&rotated[0]).unwrap(), "young\naged\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
