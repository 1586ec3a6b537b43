//! Business logic, independent of HTTP: handlers call these, these call the store.

pub mod account;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod credits;
pub mod email_change;
pub mod hasher_pool;
pub mod identity;
pub mod introspection;
pub mod mail;
pub mod mfa;
pub mod passwords;
pub mod pruning;
pub mod reads;
pub mod sessions;
pub mod signing_keys;
pub mod step_up;
pub mod tokens;
pub mod verified_cache;
pub mod webhooks;
