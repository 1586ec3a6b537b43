//! What a verified Stripe event does to the database: finding its user, its plan and
//! payment, and writing its ledger rows. Run on the event's own transaction (`$conn`) by
//! `BillingStore::apply_stripe_event` in billing.rs.

/// The payment a refund or dispute refers to.
#[derive(sqlx::FromRow)]
pub(in crate::store) struct PaymentRow {
    pub id: i64,
    pub user_id: i64,
    pub reference: String,
    pub amount: i64,
    pub credits: i64,
    pub amount_refunded: i64,
    pub credits_clawed_back: i64,
}

/// Credits to take back once `refunded` of `amount` has been refunded in total.
pub(in crate::store) fn clawback_target(credits: i64, amount: i64, refunded: i64) -> i64 {
    if refunded <= 0 {
        return 0;
    }
    if amount <= 0 || refunded >= amount {
        return credits;
    }
    // Rounded down: a partial refund never takes more than its share.
    i64::try_from(i128::from(credits) * i128::from(refunded) / i128::from(amount))
        .unwrap_or(credits)
}

macro_rules! impl_billing_effects {
    ($store:ty, $conn:ty) => {
        impl $store {
            /// The user an event is about: by recorded customer, else by the user id we put
            /// in the object's metadata (then the customer is recorded for that user).
            async fn billing_owner(
                conn: &mut $conn,
                owner: &EventOwner,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<i64>> {
                if let Some(customer) = &owner.customer_id {
                    let found: Option<i64> = sqlx::query_scalar(
                        "SELECT user_id FROM billing_customers WHERE stripe_customer_id = $1",
                    )
                    .bind(customer)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                let Some(user_id) = owner.user_id else {
                    return Ok(None);
                };
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                if exists.is_none() {
                    return Ok(None);
                }
                if let Some(customer) = &owner.customer_id {
                    sqlx::query(
                        "INSERT INTO billing_customers (user_id, stripe_customer_id, created_at) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(user_id)
                    .bind(customer)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(Some(user_id))
            }

            async fn billing_plan(
                conn: &mut $conn,
                plan_id: Option<&str>,
                price_id: Option<&str>,
            ) -> StoreResult<Option<Plan>> {
                if let Some(id) = plan_id {
                    let plan = sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if plan.is_some() {
                        return Ok(plan);
                    }
                }
                match price_id {
                    Some(price) => Ok(sqlx::query_as(&format!(
                        "SELECT {PLAN_COLUMNS} FROM plans WHERE stripe_price_id = $1"
                    ))
                    .bind(price)
                    .fetch_optional(&mut *conn)
                    .await?),
                    None => Ok(None),
                }
            }

            /// A ledger row, the balance change and the audit row. `amount` is positive;
            /// the kind says which way it moves the balance. No floor: only refunds and
            /// disputes debit here, and those may go below zero.
            #[allow(clippy::too_many_arguments)]
            async fn billing_ledger(
                conn: &mut $conn,
                low_balance: Option<i64>,
                user_id: i64,
                kind: CreditKind,
                amount: i64,
                reference: &str,
                description: &str,
                event: &'static str,
                details: serde_json::Value,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let delta = if kind.debits() { -amount } else { amount };
                // A grant that 64 bits cannot hold changes nothing: the event's whole
                // transaction is dropped (its id too, so a redelivery may apply later).
                let balance: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO credit_balances (user_id, balance, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET balance = credit_balances.balance + excluded.balance, \
                     updated_at = excluded.updated_at \
                     WHERE excluded.balance <= 0 OR credit_balances.balance <= 9223372036854775807 - excluded.balance \
                     RETURNING balance",
                )
                .bind(user_id)
                .bind(delta)
                .bind(now)
                .fetch_optional(&mut *conn)
                .await?;
                let balance = balance.ok_or(StoreError::BalanceOverflow)?;
                let row: CreditTransaction = sqlx::query_as(&format!(
                    "INSERT INTO credit_transactions (user_id, amount, transaction_type, reference_id, \
                     description, balance_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     RETURNING {CREDIT_COLUMNS}"
                ))
                .bind(user_id)
                .bind(amount)
                .bind(kind.as_str())
                .bind(reference)
                .bind(description)
                .bind(balance)
                .bind(now)
                .fetch_one(&mut *conn)
                .await?;
                insert_event!(&mut *conn, &$crate::store::Event::credit_transaction(&row));
                if kind.debits() && low_balance.is_some() {
                    let held: i64 = sqlx::query_scalar($crate::store::sql::holds::HELD_SUM)
                        .bind(user_id)
                        .bind(now)
                        .fetch_one(&mut *conn)
                        .await?;
                    let crossed = $crate::store::Event::low_balance_crossed(
                        low_balance, user_id, balance + amount - held, balance - held, now,
                    );
                    if let Some(low) = crossed {
                        insert_event!(&mut *conn, &low);
                    }
                }
                let activity = Activity {
                    user_id: Some(user_id),
                    event,
                    ip: None,
                    user_agent: None,
                    details: details.to_string(),
                    created_at: now,
                };
                insert_activity!(&mut *conn, activity, Some(user_id));
                Ok(())
            }

            async fn billing_payment(
                conn: &mut $conn,
                charge_id: Option<&str>,
                payment_intent: Option<&str>,
                invoice_id: Option<&str>,
            ) -> StoreResult<Option<PaymentRow>> {
                // Locked for the rest of the event's transaction: concurrent refunds and
                // disputes of one payment are applied one after the other, each seeing what
                // the one before took back (SQLite's single writer already serialises them).
                Ok(sqlx::query_as(&format!(
                    "SELECT id, user_id, reference, amount, credits, amount_refunded, credits_clawed_back \
                     FROM payments WHERE id = (SELECT id FROM payments \
                     WHERE charge_id = $1 OR payment_intent = $2 OR reference = $3 ORDER BY id LIMIT 1) {}",
                    Self::LOCK_ROWS
                ))
                .bind(charge_id)
                .bind(payment_intent)
                .bind(invoice_id)
                .fetch_optional(&mut *conn)
                .await?)
            }

            /// Applies one effect on the event's transaction: (outcome, user, detail).
            async fn billing_effect(
                conn: &mut $conn,
                event: &IncomingEvent,
                effect: &EventEffect,
                low_balance: Option<i64>,
            ) -> StoreResult<(EventOutcome, Option<i64>, Option<String>)> {
                let now = event.received_at;
                match effect {
                    EventEffect::Ignore(why) => Ok((EventOutcome::Ignored, None, Some((*why).to_owned()))),
                    EventEffect::Grant(g) => {
                        let Some(user_id) = Self::billing_owner(conn, &g.owner, now).await? else {
                            return Ok((EventOutcome::Unmatched, None, Some("no user for this customer".into())));
                        };
                        let Some(plan) = Self::billing_plan(conn, g.plan_id.as_deref(), g.price_id.as_deref()).await? else {
                            return Ok((EventOutcome::Unmatched, Some(user_id), Some("no plan for this price".into())));
                        };
                        let inserted: Option<i64> = sqlx::query_scalar(
                            "INSERT INTO payments (user_id, reference, kind, plan_id, payment_intent, charge_id, \
                             amount, currency, credits, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                             ON CONFLICT (reference) DO NOTHING RETURNING id",
                        )
                        .bind(user_id)
                        .bind(&g.reference)
                        .bind(g.kind.as_str())
                        .bind(&plan.id)
                        .bind(&g.payment_intent)
                        .bind(&g.charge_id)
                        .bind(g.amount)
                        .bind(&g.currency)
                        .bind(plan.credits)
                        .bind(now)
                        .fetch_optional(&mut *conn)
                        .await?;
                        if inserted.is_none() {
                            return Ok((EventOutcome::Duplicate, Some(user_id), Some(format!("{} already granted", g.reference))));
                        }
                        let details = serde_json::json!({
                            "plan_id": plan.id, "reference": g.reference, "credits": plan.credits,
                            "transaction_type": g.kind.as_str(), "stripe_event": event.id,
                        });
                        Self::billing_ledger(conn, low_balance, user_id, g.kind, plan.credits, &g.reference,
                            &format!("{} ({})", plan.name, plan.id), "billing_grant", details, now).await?;
                        insert_event!(&mut *conn, &$crate::store::Event::payment_succeeded(user_id, &g.reference, g.amount, &g.currency, plan.credits, &plan.id));
                        Ok((EventOutcome::Applied, Some(user_id), None))
                    }
                    EventEffect::Subscription(s) => {
                        let known: Option<i64> = sqlx::query_scalar(
                            "SELECT user_id FROM billing_subscriptions WHERE stripe_subscription_id = $1",
                        )
                        .bind(&s.subscription_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                        let user_id = match known {
                            Some(id) => id,
                            None => match Self::billing_owner(conn, &s.owner, now).await? {
                                Some(id) => id,
                                None => return Ok((EventOutcome::Unmatched, None, Some("no user for this customer".into()))),
                            },
                        };
                        let plan = Self::billing_plan(conn, s.plan_id.as_deref(), s.price_id.as_deref()).await?;
                        // The WHERE makes "newer wins" atomic: an older event updates nothing.
                        let changed: Option<i64> = sqlx::query_scalar(
                            "INSERT INTO billing_subscriptions (stripe_subscription_id, user_id, plan_id, status, \
                             current_period_end, cancel_at_period_end, last_event_created, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                             ON CONFLICT (stripe_subscription_id) DO UPDATE SET \
                             plan_id = COALESCE(excluded.plan_id, billing_subscriptions.plan_id), \
                             status = excluded.status, \
                             current_period_end = COALESCE(excluded.current_period_end, billing_subscriptions.current_period_end), \
                             cancel_at_period_end = excluded.cancel_at_period_end, \
                             last_event_created = excluded.last_event_created, updated_at = excluded.updated_at \
                             WHERE billing_subscriptions.last_event_created <= excluded.last_event_created \
                             RETURNING user_id",
                        )
                        .bind(&s.subscription_id)
                        .bind(user_id)
                        .bind(plan.map(|p| p.id))
                        .bind(&s.status)
                        .bind(s.current_period_end)
                        .bind(s.cancel_at_period_end)
                        .bind(event.created)
                        .bind(now)
                        .fetch_optional(&mut *conn)
                        .await?;
                        match changed {
                            Some(_) => {
                                insert_event!(&mut *conn, &$crate::store::Event::subscription_updated(user_id, &s.subscription_id, &s.status, s.cancel_at_period_end));
                                Ok((EventOutcome::Applied, Some(user_id), None))
                            }
                            None => Ok((EventOutcome::Ignored, Some(user_id), Some("older than the state already applied".into()))),
                        }
                    }
                    EventEffect::PaymentFailed { owner, subscription_id } => {
                        // Like the subscription events: one older than the state applied
                        // last (a retry of an old invoice's failure) changes nothing.
                        let changed: Option<i64> = sqlx::query_scalar(
                            "UPDATE billing_subscriptions SET status = 'past_due', updated_at = $2, \
                             last_event_created = $3 \
                             WHERE stripe_subscription_id = $1 AND last_event_created <= $3 RETURNING user_id",
                        )
                        .bind(subscription_id)
                        .bind(now)
                        .bind(event.created)
                        .fetch_optional(&mut *conn)
                        .await?;
                        let known: Option<i64> = match changed {
                            Some(_) => None,
                            None => sqlx::query_scalar(
                                "SELECT user_id FROM billing_subscriptions WHERE stripe_subscription_id = $1",
                            )
                            .bind(subscription_id)
                            .fetch_optional(&mut *conn)
                            .await?,
                        };
                        if let Some(user_id) = known {
                            return Ok((EventOutcome::Ignored, Some(user_id), Some("older than the state already applied".into())));
                        }
                        match changed {
                            Some(user_id) => Ok((EventOutcome::Applied, Some(user_id), None)),
                            None => {
                                let user = Self::billing_owner(conn, owner, now).await?;
                                Ok((EventOutcome::Unmatched, user, Some("unknown subscription".into())))
                            }
                        }
                    }
                    EventEffect::Refund { charge_id, payment_intent, invoice_id, amount, amount_refunded } => {
                        let Some(p) = Self::billing_payment(conn, Some(charge_id), payment_intent.as_deref(), invoice_id.as_deref()).await? else {
                            return Ok((EventOutcome::Unmatched, None, Some("no payment for this charge".into())));
                        };
                        let paid = if p.amount > 0 { p.amount } else { *amount };
                        let refunded = (*amount_refunded).max(p.amount_refunded);
                        // Never more than what is left of the grant.
                        let claw = clawback_target(p.credits, paid, refunded).min(p.credits) - p.credits_clawed_back;
                        sqlx::query(
                            "UPDATE payments SET amount_refunded = $2, charge_id = COALESCE(charge_id, $3), \
                             credits_clawed_back = credits_clawed_back + $4 WHERE id = $1",
                        )
                        .bind(p.id)
                        .bind(refunded)
                        .bind(charge_id)
                        .bind(claw.max(0))
                        .execute(&mut *conn)
                        .await?;
                        if claw <= 0 {
                            return Ok((EventOutcome::Ignored, Some(p.user_id), Some("nothing newly refunded".into())));
                        }
                        let reference = format!("{charge_id}:{refunded}");
                        let details = serde_json::json!({
                            "payment": p.reference, "charge": charge_id, "amount_refunded": refunded,
                            "credits": claw, "stripe_event": event.id,
                        });
                        Self::billing_ledger(conn, low_balance, p.user_id, CreditKind::Refund, claw, &reference,
                            &format!("Refund of {}", p.reference), "billing_clawback", details, now).await?;
                        insert_event!(&mut *conn, &$crate::store::Event::payment_refunded(p.user_id, &p.reference, refunded, claw));
                        Ok((EventOutcome::Applied, Some(p.user_id), None))
                    }
                    EventEffect::Dispute { dispute_id, charge_id, payment_intent } => {
                        let Some(p) = Self::billing_payment(conn, charge_id.as_deref(), payment_intent.as_deref(), None).await? else {
                            return Ok((EventOutcome::Unmatched, None, Some("no payment for this charge".into())));
                        };
                        let claw = p.credits - p.credits_clawed_back;
                        if claw <= 0 {
                            return Ok((EventOutcome::Ignored, Some(p.user_id), Some("already taken back".into())));
                        }
                        sqlx::query("UPDATE payments SET credits_clawed_back = credits WHERE id = $1")
                            .bind(p.id)
                            .execute(&mut *conn)
                            .await?;
                        let details = serde_json::json!({
                            "payment": p.reference, "dispute": dispute_id, "credits": claw, "stripe_event": event.id,
                        });
                        Self::billing_ledger(conn, low_balance, p.user_id, CreditKind::Refund, claw, dispute_id,
                            &format!("Dispute of {}", p.reference), "billing_clawback", details, now).await?;
                        Ok((EventOutcome::Applied, Some(p.user_id), None))
                    }
                }
            }
        }
    };
}

pub(in crate::store) use impl_billing_effects;

#[cfg(test)]
mod tests {
    use super::clawback_target;

    #[test]
    fn clawback_is_proportional_and_rounded_down() {
        assert_eq!(clawback_target(10_000, 1_000, 0), 0);
        assert_eq!(clawback_target(10_000, 1_000, 500), 5_000);
        assert_eq!(clawback_target(10_000, 900, 300), 3_333);
        assert_eq!(clawback_target(10_000, 1_000, 1_000), 10_000);
        assert_eq!(
            clawback_target(10_000, 1_000, 5_000),
            10_000,
            "never more than granted"
        );
        assert_eq!(
            clawback_target(10_000, 0, 1),
            10_000,
            "a free payment refunded"
        );
        assert_eq!(
            clawback_target(i64::MAX, i64::MAX - 1, i64::MAX - 2),
            i64::MAX - 2,
            "no overflow"
        );
    }
}
