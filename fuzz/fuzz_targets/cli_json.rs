//! `.cli.json` decoding: JSON with positions, then validation of every key
//! (`open_cli_config::load::parse_str` → `text::parse_json` → `decode::decode`).
//! Also the relaxed check (`decode::check_relaxed`) the scope merge uses, and the validated
//! config's redacted JSON form. No input may panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

/// `FUZZ_SHOW=1`: print each input's outcome (to check seeds: `cargo fuzz run cli_json FILE`).
fn show() -> bool {
    static SHOW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("FUZZ_SHOW").is_some())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/.cli.json");
    match open_cli_config::load::parse_str(text, path) {
        Ok(config) => {
            if show() {
                eprintln!("valid config");
            }
            // The validated model serialises (secrets redacted) and re-validates.
            if let Ok(json) = serde_json::to_string(&config) {
                let _ = open_cli_config::load::parse_str(&json, path);
            }
        }
        Err(e) => {
            let message = e.to_string();
            if show() {
                eprintln!("{message}");
            }
        }
    }
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = open_cli_config::decode::check_relaxed(&doc);
    }
});
