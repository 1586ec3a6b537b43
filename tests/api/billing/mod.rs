//! Billing (DESIGN §9): plans, checkout against a local Stripe stand-in, webhooks signed
//! as Stripe signs them, refunds and disputes, and the Stripe calls against localstripe.

mod checkout;
mod correctness;
mod intake;
mod localstripe;
mod plans;
mod races;
mod refunds;
pub(crate) mod support;
mod webhooks;
