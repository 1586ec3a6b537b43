//! Requests run to completion on a task of their own.
//!
//! hyper drops a request's future when its client disconnects (and the timeout layer
//! drops it after `REQUEST_TIMEOUT`). A future dropped between a transaction's `BEGIN` and
//! its `COMMIT` is the one way a transaction could outlive its request: sqlx counts a
//! transaction only once `BEGIN` has been answered, so a `begin()` dropped after `BEGIN`
//! went out returns the connection to the pool inside a transaction nobody will ever end
//! (every later statement on it runs, uncommitted, inside that transaction and keeps its
//! row locks). Rather than guard each of the store's transactions, the handler itself is
//! spawned here, below every layer that might drop it: a client that goes away drops only
//! the `JoinHandle`, and the handler, with whatever transaction it has open, finishes
//! exactly as if the client had waited. Code added later (holds, outgoing webhooks) gets
//! the same guarantee by being a route.
//!
//! The cost is one task spawn per request. The work of an abandoned request is not saved,
//! but it never was the bound: the connection cap, the per-IP limits and the hashing
//! semaphore bound the work a client can start.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::error_body;

/// Runs the rest of the request on its own task (in the request's span) and waits for it.
pub async fn run_to_completion(request: Request, next: Next) -> Response {
    let handler = tokio::spawn(next.run(request).in_current_span());
    match handler.await {
        Ok(response) => response,
        // The panic goes on to the catch-panic layer outside, which answers 500.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime shutting down cancels the task.
        Err(_) => error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "The server is shutting down",
        )
        .into_response(),
    }
}
