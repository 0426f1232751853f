//! The client side of the `ohm` binary: `ohm sql`, `deploy`, `drop`,
//! `call`, `status` and `tenant create`. Owns flags, output formatting and
//! exit statuses; talks to a node only through `crate::driver`. Must not be
//! used by the node itself.
//!
//! ```text
//!   flags/env/ohm-data --connect--> ClientConfig --> driver::Client
//!   stdin/-c/-f --sql--> statements --> Client::sql --format--> stdout
//! ```

pub mod admin;
pub mod check;
pub mod cluster;
pub mod connect;
pub mod demo;
pub mod format;
pub mod load;
pub mod migrate;
pub mod script;
pub mod sql;

pub use admin::{CallArgs, DeployArgs, DropArgs, StatusArgs, TenantCreateArgs, TenantQuotaArgs};
pub use connect::{ConnectArgs, TokenRole};
pub use sql::SqlArgs;
