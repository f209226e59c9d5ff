//! One module per command group; each returns the text to print.

pub mod auth;
pub mod catalog;
pub mod config;
pub mod dynamic;
pub mod exec;
pub mod flags;
pub mod leaf;
pub mod runtime;
pub mod tool;
