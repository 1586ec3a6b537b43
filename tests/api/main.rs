//! The integration suite: the real application over real HTTP, on SQLite and PostgreSQL.

mod helpers;
mod smtp;

mod accounts;
mod admin;
mod auth;
mod cli;
mod contract;
mod crash;
mod credits;
mod email_flows;
mod logs;
mod ops;
mod protection;
mod scale_out;
mod sessions;
mod tokens;
