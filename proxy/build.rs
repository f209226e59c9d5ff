//! The build's identity (`OPEN_CLI_BUILD_ID`): a hash of the runtime's and the config crate's
//! sources and of `Cargo.lock`. The catalog's entity tags include it
//! (`snapshot::catalog_digest`), so a build that renders or filters views differently never
//! answers 304 to a tag of another build's view, while replicas of one build share their tags.
//! FNV-1a (64 bits), not a cryptographic hash: it only has to tell builds apart, and a build
//! script that needs no dependency keeps the build as it is.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let inputs = [
        manifest.join("src"),
        manifest.join("../config/src"),
        manifest.join("../Cargo.lock"),
    ];
    let mut files = Vec::new();
    for input in &inputs {
        println!("cargo:rerun-if-changed={}", input.display());
        collect(input, &mut files);
    }
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for file in &files {
        let rel = file.strip_prefix(&manifest).unwrap_or(file);
        feed(rel.to_string_lossy().as_bytes());
        feed(&[0]);
        match std::fs::read(file) {
            Ok(bytes) => feed(&bytes),
            Err(e) => panic!("cannot read {}: {e}", file.display()),
        }
        feed(&[0]);
    }
    println!("cargo:rustc-env=OPEN_CLI_BUILD_ID={hash:016x}");
}

/// Every file under `path` (or `path` itself), when it exists.
fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
    } else if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            collect(&entry.path(), out);
        }
    }
}
