//! Business logic, independent of HTTP: handlers call these, these call the store.

pub mod account;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod credits;
pub mod email_change;
pub mod mail;
pub mod passwords;
pub mod pruning;
pub mod tokens;
