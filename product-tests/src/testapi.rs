//! The demo upstream, `open-cli-testapi` (a workspace binary): plain HTTP or HTTPS with a
//! fresh test CA, optional documents under `/docs/`, and a record of the requests it got.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{Proc, bin, spawn_listening};

/// The demo upstream (`open-cli-testapi`) on an ephemeral port.
#[derive(Debug)]
pub struct TestApi {
    pub proc: Proc,
    pub url: String,
    /// For an HTTPS instance: the PEM of the CA that issued its certificate.
    pub ca_pem: Option<Vec<u8>>,
}

impl TestApi {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Also serve the files of `dir` under `/docs/` (ETag, Last-Modified, 304s, sidecars).
    pub fn start_with_docs(dir: &Path) -> Self {
        Self::start_with(&["--docs", dir.to_str().expect("utf-8 path")])
    }

    /// Serve HTTPS (ALPN h2 and http/1.1) as `https://localhost:PORT`, with a certificate
    /// for `localhost` issued by a fresh test CA whose PEM is written to `dir/ca.pem` (and kept
    /// in [`TestApi::ca_pem`]). Certificates come from the `openssl` command line.
    pub fn start_tls(dir: &Path) -> Self {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl (scripts/deps installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=open-cli test CA",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat());
        fs::write(
            dir.join("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
        )
        .expect("write server.ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        let cert = dir.join("server.pem");
        let key = dir.join("server.key");
        let mut api = Self::start_with(&[
            "--tls-cert",
            cert.to_str().expect("utf-8 path"),
            "--tls-key",
            key.to_str().expect("utf-8 path"),
        ]);
        api.ca_pem = Some(fs::read(dir.join("ca.pem")).expect("ca.pem"));
        api
    }

    /// A client for this instance (trusting its CA when it serves HTTPS).
    pub fn client(&self) -> reqwest::blocking::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
        if let Some(pem) = &self.ca_pem {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(pem).expect("CA PEM"));
        }
        b.build().expect("http client")
    }

    fn start_with(extra: &[&str]) -> Self {
        let (proc, url) = spawn_listening("testapi", |port| {
            let mut cmd = Command::new(bin("open-cli-testapi"));
            cmd.args(["--addr", &format!("127.0.0.1:{port}")])
                .args(extra);
            cmd
        });
        Self {
            proc,
            url,
            ca_pem: None,
        }
    }

    /// Its OpenAPI document (YAML, `servers` pointing at this instance).
    pub fn spec_yaml(&self) -> String {
        self.client()
            .get(format!("{}/openapi.yaml", self.url))
            .send()
            .and_then(|r| r.text())
            .expect("spec")
    }

    pub fn spec_json(&self) -> Value {
        self.client()
            .get(format!("{}/openapi.json", self.url))
            .send()
            .and_then(|r| r.json())
            .expect("spec")
    }

    /// Requests this upstream received, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.client()
            .get(format!("{}/_debug/requests", self.url))
            .send()
            .and_then(|r| r.json())
            .expect("requests")
    }

    /// Requests for one path.
    pub fn requests_for(&self, path: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"] == path)
            .collect()
    }
}
