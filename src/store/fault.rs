//! Database errors that are faults of the machine, not of the request: a write refused by
//! a read-only server (a demoted primary, SQLSTATE 25006), a full disk under SQLite
//! (SQLITE_FULL, and its I/O relatives), a busy or locked SQLite file. They are answered
//! 503 with Retry-After, never 500.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{pg_failover, StoreError};

/// When a write last found the disk full (any store of the process).
static STORAGE_FULL_AT: Mutex<Option<Instant>> = Mutex::new(None);

fn note_storage_full() {
    *STORAGE_FULL_AT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
}

/// True when the disk filled after a connection of this `age` was opened. SQLite's
/// writer connection that saw SQLITE_FULL is not used again: one that went on writing
/// after it left WAL frames another process's recovery rejected (acknowledged changes
/// missing after a restart; tests/faults/sqlite_full.sh), so it is closed and reopened.
pub fn storage_full_since(age: Duration) -> bool {
    let last = *STORAGE_FULL_AT.lock().unwrap_or_else(|e| e.into_inner());
    match (last, Instant::now().checked_sub(age)) {
        (Some(full_at), Some(opened)) => full_at >= opened,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Retry soon: the database is switching, restarting or busy.
    Unavailable,
    /// The disk is full: writes fail until space returns.
    StorageFull,
}

impl Fault {
    pub fn into_error(self, err: sqlx::Error) -> StoreError {
        match self {
            Self::Unavailable => StoreError::Unavailable(err),
            Self::StorageFull => {
                note_storage_full();
                StoreError::StorageFull(err)
            }
        }
    }
}

/// SQLite's primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;

/// `code` is a PostgreSQL SQLSTATE or SQLite's (extended) result code as text.
pub fn classify(code: &str, message: &str) -> Option<Fault> {
    if code == "25006" {
        // cannot execute ... in a read-only transaction: we wrote to a demoted primary.
        pg_failover::report_trouble();
        return Some(Fault::Unavailable);
    }
    if code == "53100" {
        // PostgreSQL's disk_full.
        return Some(Fault::StorageFull);
    }
    // SQLite's codes are short numbers; PostgreSQL's SQLSTATEs are five characters.
    if code.len() >= 5 {
        return None;
    }
    let numeric: i64 = code.parse().ok()?;
    match numeric & 0xff {
        SQLITE_FULL => Some(Fault::StorageFull),
        // A write that found no space can surface as an I/O error (the WAL or the journal
        // could not grow).
        SQLITE_IOERR if message.contains("full") || message.contains("space") => {
            Some(Fault::StorageFull)
        }
        SQLITE_IOERR | SQLITE_BUSY | SQLITE_LOCKED => Some(Fault::Unavailable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_by_code() {
        assert_eq!(classify("25006", ""), Some(Fault::Unavailable));
        assert_eq!(classify("53100", ""), Some(Fault::StorageFull));
        assert_eq!(
            classify("13", "database or disk is full"),
            Some(Fault::StorageFull)
        );
        // SQLITE_IOERR_WRITE (778) with no space: full; other I/O errors: retry later.
        assert_eq!(classify("778", "disk I/O error"), Some(Fault::Unavailable));
        assert_eq!(
            classify("5", "database is locked"),
            Some(Fault::Unavailable)
        );
        assert_eq!(classify("2067", "UNIQUE constraint failed"), None);
        assert_eq!(classify("23505", ""), None);
        // A five-digit SQLSTATE whose low byte looks like SQLite's FULL is not one.
        assert_eq!(classify("10253", ""), None);
    }
}
