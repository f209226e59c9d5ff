//! Clients of the upstreams that tools run on.
//!
//! - [`http`]: the envelope call of `POST /v1/tools/execute` over one shared HTTP client per
//!   upstream profile, with bounded retries;
//! - [`mcp`]: the MCP client (stdio, streamable HTTP, SSE): list a server's tools, call one;
//! - [`dns`]: upstream host names resolved and cached briefly (the pass-through's peers).
//!
//! (The pass-through's own upstream connections are Pingora's, in [`crate::gateway`].)

pub mod dns;
pub mod http;
pub mod mcp;
