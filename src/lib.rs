//! auth-service: accounts, sessions and a credits ledger behind one HTTP API.
//! The contract is the OpenAPI document (/openapi.json); README.md and docs/ for operation.

pub mod app;
pub mod caller;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod extract;
pub mod healthcheck;
pub mod import;
pub mod protection;
pub mod routes;
pub mod secret;
pub mod services;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;
