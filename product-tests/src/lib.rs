//! Harness for black-box tests of the real binaries.
//!
//! Every process runs on an ephemeral port with its own temp directory, is waited for with a
//! deadline (never a fixed sleep), is killed on drop, and has its stdout/stderr printed when
//! the test fails. Binaries are found in `OPEN_CLI_BIN_DIR`, else in the target directory this
//! test binary runs from (`.ci/run` builds them first).
//!
//! One module per counterpart, all re-exported here:
//! - [`process`]: binaries, deadlines ([`wait_for`]), the [`Proc`] child, the one way every
//!   server is started ([`spawn_on_free_port`]), [`run`] to completion, [`http`].
//! - [`runtime`]: `open-cli-toolbox` ([`Runtime`]), its [`Fixture`] and config, checks of its
//!   answers.
//! - [`testapi`]: the demo upstream ([`TestApi`]).
//! - [`oidc`]: an OpenID provider ([`Oidc`]), a bearer-token gate ([`BearerGate`]), keys.
//! - [`broker`]: the deployment example's delegation broker ([`Broker`]) and demo upstream
//!   ([`DemoApi`]).
//! - [`mcp`]: a real MCP server ([`McpEverything`]).
//! - [`prism`]: a mock upstream generated from a document ([`Prism`]).
//! - [`mod@cli`]: the `open-cli` client ([`cli()`]).
//! - [`mod@redis`]: a Redis server ([`Redis`]), the shared rate-limit store.
//! - [`pki`]: certificate chains made in the test ([`Ca`]) and HTTPS clients that trust them.
//! - [`audit`]: audit files read as typed rows ([`AuditRow`], [`read_audit`]), and the load
//!   the crash tests kill the runtime under ([`Load`]).

pub mod audit;
pub mod broker;
pub mod cli;
pub mod load;
pub mod mcp;
pub mod oidc;
pub mod otlp;
pub mod pki;
pub mod prism;
pub mod process;
pub mod redis;
pub mod runtime;
pub mod testapi;

pub use audit::*;
pub use broker::{Broker, DemoApi};
pub use cli::*;
pub use load::*;
pub use mcp::*;
pub use oidc::*;
pub use otlp::*;
pub use pki::*;
pub use prism::*;
pub use process::*;
pub use redis::*;
pub use runtime::*;
pub use testapi::*;
