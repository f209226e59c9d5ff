//! A real OTLP/HTTP receiver: `oteltap` (PyPI, pinned in `product-tests/otlp/requirements.txt`,
//! installed by `scripts/deps` into `product-tests/otlp/venv`). It prints every log record and
//! span it receives as one JSON line (the OTLP JSON mapping) on stdout. It takes http/protobuf
//! only, uncompressed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{Port, Proc, port_open, repo_root, spawn_on_free_port};

pub struct OtlpReceiver {
    pub proc: Proc,
    pub port: u16,
}

fn python() -> PathBuf {
    let p = repo_root().join("product-tests/otlp/venv/bin/python");
    assert!(p.exists(), "{} is missing: run scripts/deps", p.display());
    p
}

impl OtlpReceiver {
    pub fn start() -> Self {
        Self::start_on(Port::Free)
    }

    /// A receiver on `port` (a restart after an outage: the runtime keeps its endpoint).
    pub fn start_on(port: Port) -> Self {
        let (proc, port) = spawn_on_free_port(
            "oteltap",
            port,
            Duration::from_secs(20),
            |port| {
                let mut c = Command::new(python());
                c.args(["-m", "oteltap", "--port", &port.to_string()])
                    .env("PYTHONUNBUFFERED", "1");
                c
            },
            |_, port| port_open(port).then_some(port),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self { proc, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lines(&self) -> Vec<Value> {
        self.proc
            .stdout()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    /// The log records received so far.
    pub fn logs(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|v| v.get("body").is_some() && v.get("severityNumber").is_some())
            .collect()
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|v| v.get("spanId").is_some() && v.get("name").is_some())
            .collect()
    }
}

/// An attribute's value of an OTLP JSON record (`stringValue` as is, `intValue` as its text).
pub fn otlp_attr(record: &Value, key: &str) -> Option<String> {
    record["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| {
            let v = &a["value"];
            v["stringValue"]
                .as_str()
                .map(str::to_string)
                .or_else(|| v["intValue"].as_str().map(str::to_string))
                .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
                .or_else(|| v["boolValue"].as_bool().map(|b| b.to_string()))
        })
}
