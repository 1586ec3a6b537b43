//! The integration suite: the real application over real HTTP, on SQLite and PostgreSQL.

mod helpers;
mod smtp;

mod accounts;
mod admin;
mod auth;
mod billing;
mod cli;
mod cli_safety;
mod contract;
mod crash;
mod credits;
mod email_flows;
mod hardening;
mod hardening_server;
mod import_fastapi;
mod joined_reads;
mod logs;
mod oidc;
mod ops;
mod password_hashing;
mod protection;
mod readme;
mod round_trips;
mod scale_out;
mod sessions;
mod tokens;
mod web;
mod web_account;
mod web_billing;
mod web_browser;
mod web_driver;
mod web_providers;
