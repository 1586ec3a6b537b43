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

use crate::domain::{check_bcrypt_hash, is_storable, Email, Username, MAX_CREDITS_CENTS};
use crate::services::audit;
use crate::services::credits::MAX_DESCRIPTION_CHARS;
use crate::store::{self, Activity, CreditKind, NewCredit, NewUser, Store, User, UserFlags};

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
            Some(Ok(cents)) => cents,
            Some(Err(why)) => {
                report.skipped.push(format!(
                    "balance of user {}: {why} (left at the sum of the imported history)",
                    user.id
                ));
                continue;
            }
            None => transactions
                .iter()
                .filter_map(|t| t.signed_cents().ok())
                .sum(),
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
    let (Some(username), Some(email), Some(hash)) =
        (&user.username, &user.email, &user.password_hash)
    else {
        return skip(report, "username, email or password hash is NULL".into());
    };
    let username = match Username::parse(username) {
        Ok(u) => u,
        Err(e) => return skip(report, format!("invalid username: {e}")),
    };
    let email = match Email::parse(email) {
        Ok(e) => e,
        Err(e) => return skip(report, format!("invalid email: {e}")),
    };
    if let Err(why) = check_bcrypt_hash(hash) {
        return skip(report, format!("password hash refused: {why}"));
    }
    let by_name = target.user_by_username(&username.key()).await?;
    let by_email = target.user_by_email(email.as_str()).await?;
    match (by_name, by_email) {
        (Some(a), Some(b)) if a.id == b.id => {
            // Same username and email is not enough: someone may have registered them here
            // first. Only the account an earlier run created gets the original's credits.
            if is_the_imported_account(target, &a, user.id, hash).await? {
                report.users_existing += 1;
                return Ok(Some(a.id));
            }
            return skip(
                report,
                format!(
                    "conflict: account {} here has this username and email but was not \
                     imported from the original (registered here, {}); nothing merged",
                    a.id,
                    if a.is_verified {
                        "another password"
                    } else {
                        "unverified"
                    }
                ),
            );
        }
        (Some(_), _) => return skip(report, "username taken by another account".into()),
        (None, Some(_)) => return skip(report, "duplicate email (another account has it)".into()),
        (None, None) => {}
    }
    let new_user = NewUser {
        username_key: username.key(),
        username: username.into(),
        email: email.into(),
        password_hash: hash.clone(),
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
    let cents = match t.signed_cents() {
        Ok(cents) => cents,
        Err(why) => {
            report.skipped.push(format!("transaction {}: {why}", t.id));
            return Ok(());
        }
    };
    if let Some(d) = &t.description {
        if d.chars().count() > MAX_DESCRIPTION_CHARS || !is_storable(d) {
            report.skipped.push(format!(
                "transaction {}: description of {} bytes is over {MAX_DESCRIPTION_CHARS} \
                 characters or holds NUL",
                t.id,
                d.len()
            ));
            return Ok(());
        }
    }
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
    match target
        .apply_credit(&credit, &activity(event, Some(user_id), details))
        .await
    {
        Ok(Some(_)) => report.transactions_written += 1,
        Err(store::StoreError::InvalidData(e)) => report
            .skipped
            .push(format!("transaction {}: refused by the database: {e}", t.id)),
        Err(e) => return Err(e.into()),
        // The original let balances drift (floats, races): a spend it allowed may not fit
        // here; the balance adjustment below makes the end balance equal anyway.
        Ok(None) => report.skipped.push(format!(
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
    if diff.abs() > MAX_CREDITS_CENTS || original_cents < 0 {
        report.skipped.push(format!(
            "balance of user {original_user_id}: {original_cents} cents cannot be carried over \
             (negative, or an adjustment over 1e12)"
        ));
        return Ok(());
    }
    match target
        .apply_credit(&credit, &activity(event, Some(user_id), details))
        .await
    {
        Ok(Some(_)) => report.balances_adjusted += 1,
        Ok(None) | Err(store::StoreError::InvalidData(_)) => report.skipped.push(format!(
            "balance of user {original_user_id}: could not be set to {original_cents} cents"
        )),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// True when `account` is the one an earlier run created for original user `original_id`:
/// its first recorded event is that import's, or it still holds the original's hash (no
/// signup here can produce the same bcrypt salt and hash). Anything else is someone else's
/// account that happens to share the username and email.
async fn is_the_imported_account(
    target: &dyn Store,
    account: &User,
    original_id: i64,
    original_hash: &str,
) -> anyhow::Result<bool> {
    if account.password_hash == original_hash {
        return Ok(true);
    }
    let (_, total) = target.activities(Some(account.id), 0, 1).await?;
    if total == 0 {
        return Ok(false);
    }
    let (oldest, _) = target.activities(Some(account.id), total - 1, 1).await?;
    Ok(oldest.first().is_some_and(|first| {
        let details: serde_json::Value = serde_json::from_str(&first.details).unwrap_or_default();
        first.event == audit::REGISTER
            && details["imported_from"] == "fastapi"
            && details["original_id"] == original_id
    }))
}
