//! `auth-service import-fastapi --from POSTGRES_URL`: copies the original FastAPI service's
//! users (bcrypt hashes kept: they log in unchanged and are re-hashed at the next login
//! when PASSWORD_HASH differs), verification and admin flags, balances and credit history
//! into this service's database.
//!
//! Idempotent: users are matched by username and email, each original transaction is
//! written with reference `import:<original id>` (a second run finds it and skips it), and
//! the balance is brought to the original's by one adjustment whose reference names the
//! target. The original's schema changed over its migrations: columns are found through
//! information_schema and their known variants accepted.

mod source;

use anyhow::Context;

use crate::domain::{Email, Username};
use crate::services::audit;
use crate::store::{self, Activity, CreditKind, NewCredit, NewUser, Store, UserFlags};

pub use source::{SourceTransaction, SourceUser};

/// What a run did, printed at the end.
#[derive(Debug, Default)]
pub struct Report {
    pub users_created: u64,
    pub users_existing: u64,
    pub transactions_written: u64,
    pub transactions_existing: u64,
    pub balances_adjusted: u64,
    pub skipped: Vec<String>,
}

pub async fn import_fastapi(source_url: &str, target: &dyn Store) -> anyhow::Result<Report> {
    let source = source::Source::connect(source_url).await?;
    let users = source.users().await?;
    let mut report = Report::default();
    for user in users {
        let Some(target_id) = import_user(target, &user, &mut report).await? else {
            continue;
        };
        let transactions = source.transactions_of(user.id).await?;
        for t in &transactions {
            import_transaction(target, target_id, t, &mut report).await?;
        }
        let original = match source.balance_of(user.id).await? {
            Some(cents) => cents,
            None => transactions.iter().map(|t| t.signed_cents()).sum(),
        };
        adjust_balance(target, target_id, user.id, original, &mut report).await?;
    }
    Ok(report)
}

/// An audit row for an imported change (`user_id` None: the store fills in the new user).
fn activity(event: &'static str, user_id: Option<i64>, details: serde_json::Value) -> Activity {
    Activity {
        user_id,
        event,
        ip: None,
        user_agent: None,
        details: details.to_string(),
        created_at: store::now(),
    }
}

/// The target user's id, creating the user when new; None (with a reason) when skipped.
async fn import_user(
    target: &dyn Store,
    user: &SourceUser,
    report: &mut Report,
) -> anyhow::Result<Option<i64>> {
    let skip = |report: &mut Report, reason: String| {
        report
            .skipped
            .push(format!("user {} ({:?}): {reason}", user.id, user.username));
        Ok(None)
    };
    let username = match Username::parse(&user.username) {
        Ok(u) => u,
        Err(e) => return skip(report, format!("invalid username: {e}")),
    };
    let email = match Email::parse(&user.email) {
        Ok(e) => e,
        Err(e) => return skip(report, format!("invalid email: {e}")),
    };
    let by_name = target.user_by_username(&username.key()).await?;
    let by_email = target.user_by_email(email.as_str()).await?;
    match (by_name, by_email) {
        (Some(a), Some(b)) if a.id == b.id => {
            report.users_existing += 1;
            return Ok(Some(a.id));
        }
        (Some(_), _) => return skip(report, "username taken by another account".into()),
        (None, Some(_)) => return skip(report, "duplicate email (another account has it)".into()),
        (None, None) => {}
    }
    if !user.password_hash.starts_with("$2") {
        return skip(report, "password hash is not bcrypt".into());
    }
    let new_user = NewUser {
        username_key: username.key(),
        username: username.into(),
        email: email.into(),
        password_hash: user.password_hash.clone(),
        is_admin: user.is_admin,
        is_verified: user.is_verified,
        created_at: user.created_at.unwrap_or_else(store::now),
    };
    let details = serde_json::json!({ "imported_from": "fastapi", "original_id": user.id });
    let created = match target
        .create_user(
            &new_user,
            None,
            &[],
            &activity(audit::REGISTER, None, details.clone()),
        )
        .await
    {
        Ok(created) => created,
        Err(store::StoreError::EmailTaken) => return skip(report, "duplicate email".into()),
        Err(store::StoreError::UsernameTaken) => return skip(report, "duplicate username".into()),
        Err(e) => return Err(e.into()),
    };
    if !user.is_active {
        let flags = UserFlags {
            is_admin: None,
            is_active: Some(false),
            is_verified: None,
        };
        target
            .update_user_flags(
                created.id,
                &flags,
                &activity(audit::ADMIN_UPDATE, Some(created.id), details),
            )
            .await?;
    }
    report.users_created += 1;
    Ok(Some(created.id))
}

async fn import_transaction(
    target: &dyn Store,
    user_id: i64,
    t: &SourceTransaction,
    report: &mut Report,
) -> anyhow::Result<()> {
    let cents = t.signed_cents();
    if cents == 0 {
        report
            .skipped
            .push(format!("transaction {}: zero amount", t.id));
        return Ok(());
    }
    let kind = if cents < 0 {
        CreditKind::Used
    } else {
        CreditKind::Added
    };
    let reference = format!("import:{}", t.id);
    if target
        .credit_by_reference(user_id, kind, &reference)
        .await?
        .is_some()
    {
        report.transactions_existing += 1;
        return Ok(());
    }
    let credit = NewCredit {
        user_id,
        kind,
        amount: cents.abs(),
        reference_id: Some(reference),
        description: t.description.clone(),
        created_at: t.created_at.unwrap_or_else(store::now),
    };
    let event = if cents < 0 {
        audit::CREDITS_USE
    } else {
        audit::CREDITS_ADD
    };
    let details = serde_json::json!({ "imported_from": "fastapi", "original_id": t.id });
    match target.apply_credit(&credit, &activity(event, Some(user_id), details)).await? {
        Some(_) => report.transactions_written += 1,
        // The original let balances drift (floats, races): a spend it allowed may not fit
        // here; the balance adjustment below makes the end balance equal anyway.
        None => report.skipped.push(format!(
            "transaction {}: spend larger than the balance at that point (balance adjusted instead)",
            t.id
        )),
    }
    Ok(())
}

async fn adjust_balance(
    target: &dyn Store,
    user_id: i64,
    original_user_id: i64,
    original_cents: i64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let current = target
        .credit_balance(user_id)
        .await?
        .map_or(0, |(cents, _)| cents);
    let diff = original_cents - current;
    if diff == 0 {
        return Ok(());
    }
    let kind = if diff < 0 {
        CreditKind::Used
    } else {
        CreditKind::Added
    };
    let credit = NewCredit {
        user_id,
        kind,
        amount: diff.abs(),
        reference_id: Some(format!(
            "import:balance:{original_user_id}:{original_cents}:{current}"
        )),
        description: Some("balance carried over from the original service".into()),
        created_at: store::now(),
    };
    let event = if diff < 0 {
        audit::CREDITS_USE
    } else {
        audit::CREDITS_ADD
    };
    let details = serde_json::json!({ "imported_from": "fastapi", "balance_adjustment": true });
    target
        .apply_credit(&credit, &activity(event, Some(user_id), details))
        .await?
        .with_context(|| format!("user {original_user_id}: could not set the balance"))?;
    report.balances_adjusted += 1;
    Ok(())
}
