//! Faults the service survives (DESIGN §17) that fit in the test suite: a multi-host
//! DATABASE_URL with a dead host, a server that turns read-only and back, a full disk
//! under SQLite, SMTP that stops answering. The failover of a real pg_auto_failover
//! cluster and of Redis Sentinel are in tests/faults/ (run by `.ci/checks.d/70-faults.sh`).

mod disk_full;
mod multi_host;
mod stalled_receivers;
