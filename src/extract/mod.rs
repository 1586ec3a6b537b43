//! Extractors: request bodies that fail with the contract's 422 shape, and the access
//! levels of DESIGN §5 as types a handler asks for.

mod access;
mod billing;
pub mod body;
mod internal;
mod storable;

pub use crate::caller::Caller;
pub use access::{Admin, VerifiedUser};
pub use billing::{BillingCaller, BillingQuery, NamesUser};
pub use body::{AppJson, AppQuery, JsonOrForm, OptionalJson};
pub use internal::InternalService;
