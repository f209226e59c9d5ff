//! Shared model of open-cli: the `.cli.json` configuration, the Normalized Tool Catalog (NTC)
//! and the wire types of the runtime's `/v1` HTTP API.
//!
//! Both the runtime (`open-cli-toolbox`) and the CLI (`open-cli`) use this crate, so the two
//! can never disagree about a key or a field. It does no network I/O.
//!
//! - [`load`]: read a `.cli.json` file ([`load::load_file`]) merged with its [`scopes`];
//! - [`text`]: one config file as text: bounded reading, JSON with positions, its paths;
//! - [`decode`] and [`reader`]: validation that reports every problem with its key path;
//! - [`model`]: the validated config types (no `Deserialize`; secrets redacted on output);
//! - [`ntc`]: the catalog types, serialised exactly as the contract's NTC;
//! - [`wire`]: request and response bodies of the runtime API, error codes.

pub mod decode;
pub mod diag;
pub mod files;
pub mod load;
pub mod model;
pub mod ntc;
pub mod reader;
pub mod scopes;
pub mod secrets;
pub mod show;
pub mod text;
pub mod wire;

pub use diag::{Diagnostic, Diagnostics};
pub use load::{LoadError, LoadedConfig, load_file};
pub use model::Config;
