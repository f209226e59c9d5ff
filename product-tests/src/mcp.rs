//! `@modelcontextprotocol/server-everything`, a real MCP server not written by us.

use std::process::Command;

use crate::process::{
    Port, Proc, START_DEADLINE, port_open, repo_root, spawn_listening, spawn_on_free_port,
};

/// `@modelcontextprotocol/server-everything` (installed by `scripts/deps` under
/// `product-tests/mcp`), a real MCP server not written by us.
#[derive(Debug)]
pub struct McpEverything {
    pub proc: Proc,
    pub url: String,
}

impl McpEverything {
    /// The `node` command line of the stdio transport.
    pub fn stdio_command() -> (String, Vec<String>) {
        let bin = repo_root().join("product-tests/mcp/node_modules/.bin/mcp-server-everything");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/deps",
            bin.display()
        );
        (
            "node".into(),
            vec![bin.display().to_string(), "stdio".into()],
        )
    }

    /// Start the `streamableHttp` or `sse` transport on a free loopback port.
    pub fn start(mode: &str) -> Self {
        let (node, args) = Self::stdio_command();
        let preload = repo_root().join("product-tests/mcp/loopback.cjs");
        // It reads the port from `PORT` and says nothing when it listens: ready once the port
        // accepts connections.
        let (proc, port) = spawn_on_free_port(
            &format!("server-everything {mode}"),
            Port::Free,
            START_DEADLINE,
            |port| {
                let mut cmd = Command::new(&node);
                cmd.arg("--require")
                    .arg(&preload)
                    .arg(&args[0])
                    .arg(mode)
                    .env("PORT", port.to_string());
                cmd
            },
            |_, port| port_open(port).then_some(port),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let path = if mode == "sse" { "/sse" } else { "/mcp" };
        Self {
            proc,
            url: format!("http://127.0.0.1:{port}{path}"),
        }
    }
}

/// `product-tests/mcp-clients/keyed-server.mjs`: a streamable-HTTP MCP server made with the MCP
/// project's TypeScript SDK that knows its callers by `X-Api-Key` (`keys`: `{"<key>":
/// "<owner>"}`), binds each session to the owner that started it, and whose one tool,
/// `whoami`, answers the caller's owner and session. It logs one JSON line per request.
#[derive(Debug)]
pub struct KeyedMcp {
    pub proc: Proc,
    pub url: String,
}

impl KeyedMcp {
    pub fn start(keys: &serde_json::Value) -> Self {
        let dir = repo_root().join("product-tests/mcp-clients");
        assert!(
            dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
            "the TypeScript MCP SDK is missing: run scripts/deps"
        );
        let keys = keys.to_string();
        let (proc, url) = spawn_listening("the keyed MCP server", |port| {
            let mut cmd = Command::new("node");
            cmd.arg(dir.join("keyed-server.mjs"))
                .current_dir(&dir)
                .env("PORT", port.to_string())
                .env("KEYS", &keys);
            cmd
        });
        Self { proc, url }
    }

    /// The requests it received, as `{"method", "owner", "session"}`.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.proc
            .stdout()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
