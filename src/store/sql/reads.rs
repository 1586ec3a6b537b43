//! Authenticated reads in one statement each (see `store/reads.rs`), SQL shared by both
//! backends. Each statement starts from one constant row and LEFT JOINs the caller's
//! session and user (`s_*`, `u_*` columns; NULL when no session was asked for or it does
//! not exist) and then the data, so it always answers and the rules stay in the services.

/// `t.a AS pa, t.b AS pb, ...` for the columns listed.
macro_rules! aliased {
    ($table:literal, $prefix:literal; $first:literal $(, $rest:literal)*) => {
        concat!(
            $table, ".", $first, " AS ", $prefix, $first
            $(, ", ", $table, ".", $rest, " AS ", $prefix, $rest)*
        )
    };
}

macro_rules! session_as {
    ($table:literal, $prefix:literal) => {
        aliased!($table, $prefix; "id", "user_id", "refresh_token_hash", "created_at",
            "expires_at", "last_seen_at", "revoked_at", "ip", "user_agent", "assurance",
            "second_factor_at")
    };
}

macro_rules! user_as {
    ($table:literal, $prefix:literal) => {
        aliased!($table, $prefix; "id", "username", "email", "password_hash", "is_admin",
            "is_active", "is_verified", "created_at", "updated_at")
    };
}

/// The caller's columns, and the joins that find them from `$1` (a session id or NULL).
macro_rules! caller_columns {
    () => {
        concat!(session_as!("s", "s_"), ", ", user_as!("u", "u_"))
    };
}
macro_rules! balance_columns {
    () => {
        "b.balance AS b_balance, b.updated_at AS b_updated_at, b.held AS b_held, \
         b.held_soonest AS b_held_soonest "
    };
}
macro_rules! caller_joins {
    () => {
        "FROM (SELECT 1 AS one) AS q \
         LEFT JOIN sessions s ON s.id = $1 \
         LEFT JOIN users u ON u.id = s.user_id "
    };
}

/// `$1` session id: the per-request session check of every other authenticated route.
pub(in crate::store) const SESSION_WITH_USER: &str = concat!(
    "SELECT ",
    caller_columns!(),
    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
);

/// `$1` session id, `$2` the user looked at.
pub(in crate::store) const READ_USER: &str = concat!(
    "SELECT ",
    caller_columns!(),
    ", ",
    user_as!("t", "t_"),
    " ",
    caller_joins!(),
    "LEFT JOIN users t ON t.id = $2"
);

/// `$1` session id or NULL, `$2` the account: its balance row with what its holds reserve
/// as the row carries it (migration 0013), `b_held` trusted while `b_held_soonest` is in
/// the future. No subquery: even one never evaluated costs PostgreSQL its executor set-up
/// on every read, and this is the hottest read there is.
pub(in crate::store) const READ_BALANCE: &str = concat!(
    "SELECT ",
    caller_columns!(),
    ", t.id AS t_id, t.created_at AS t_created_at, ",
    balance_columns!(),
    caller_joins!(),
    "LEFT JOIN users t ON t.id = $2 \
     LEFT JOIN credit_balances b ON b.user_id = t.id"
);

/// `$1` session id: READ_BALANCE for the session's own account (the common case), which
/// the caller's row already is, so one join fewer.
pub(in crate::store) const READ_OWN_BALANCE: &str = concat!(
    "SELECT ",
    caller_columns!(),
    ", u.id AS t_id, u.created_at AS t_created_at, ",
    balance_columns!(),
    caller_joins!(),
    "LEFT JOIN credit_balances b ON b.user_id = u.id"
);

/// `$1` session id or NULL, `$2` the account, `$3` limit, `$4` offset. The total is a scalar
/// subquery (evaluated once), so it is there even when the page is empty.
pub(in crate::store) const READ_TRANSACTIONS: &str = concat!(
    "SELECT ",
    caller_columns!(),
    ", t.id AS t_id, \
     (SELECT COUNT(*) FROM credit_transactions c WHERE c.user_id = $2) AS total_count, ",
    aliased!("x", "x_"; "id", "user_id", "amount", "transaction_type", "reference_id",
        "description", "balance_after", "created_at"),
    " ",
    caller_joins!(),
    "LEFT JOIN users t ON t.id = $2 \
     LEFT JOIN (SELECT id, user_id, amount, transaction_type, reference_id, description, \
     balance_after, created_at FROM credit_transactions WHERE user_id = $2 \
     ORDER BY id DESC LIMIT $3 OFFSET $4) AS x ON t.id IS NOT NULL \
     ORDER BY x.id DESC"
);

/// `$1` session id, `$2` now.
pub(in crate::store) const READ_LIVE_SESSIONS: &str = concat!(
    "SELECT ",
    caller_columns!(),
    ", ",
    session_as!("l", "l_"),
    " ",
    caller_joins!(),
    "LEFT JOIN sessions l ON l.user_id = u.id AND l.revoked_at IS NULL AND l.expires_at > $2 \
     ORDER BY l.created_at DESC"
);

/// `$1` a refresh token's hash: the session it is current for, or was retired from.
pub(in crate::store) const READ_REFRESH: &str = concat!(
    "SELECT r.retired_at AS retired_at, ",
    caller_columns!(),
    " FROM retired_refresh_tokens r JOIN sessions s ON s.id = r.session_id \
     JOIN users u ON u.id = s.user_id WHERE r.token_hash = $1 \
     UNION ALL SELECT NULL AS retired_at, ",
    caller_columns!(),
    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.refresh_token_hash = $1"
);

/// Implements `ReadStore` for a backend whose rows are `$row`.
macro_rules! impl_read_store {
    ($store:ty, $row:ty) => {
        /// The session whose columns carry `prefix`, if the row has one.
        fn session_in(
            row: &$row,
            prefix: &str,
        ) -> Result<Option<$crate::store::Session>, sqlx::Error> {
            use sqlx::Row;
            let column = |name: &str| format!("{prefix}{name}");
            let Some(id) = row.try_get::<Option<String>, _>(column("id").as_str())? else {
                return Ok(None);
            };
            Ok(Some($crate::store::Session {
                id,
                user_id: row.try_get(column("user_id").as_str())?,
                refresh_token_hash: row.try_get(column("refresh_token_hash").as_str())?,
                created_at: row.try_get(column("created_at").as_str())?,
                expires_at: row.try_get(column("expires_at").as_str())?,
                last_seen_at: row.try_get(column("last_seen_at").as_str())?,
                revoked_at: row.try_get(column("revoked_at").as_str())?,
                ip: row.try_get(column("ip").as_str())?,
                user_agent: row.try_get(column("user_agent").as_str())?,
                assurance: row.try_get(column("assurance").as_str())?,
                second_factor_at: row.try_get(column("second_factor_at").as_str())?,
            }))
        }

        /// The user whose columns carry `prefix`, if the row has one.
        fn user_in(row: &$row, prefix: &str) -> Result<Option<$crate::store::User>, sqlx::Error> {
            use sqlx::Row;
            let column = |name: &str| format!("{prefix}{name}");
            let Some(id) = row.try_get::<Option<i64>, _>(column("id").as_str())? else {
                return Ok(None);
            };
            Ok(Some($crate::store::User {
                id,
                username: row.try_get(column("username").as_str())?,
                email: row.try_get(column("email").as_str())?,
                password_hash: row.try_get(column("password_hash").as_str())?,
                is_admin: row.try_get(column("is_admin").as_str())?,
                is_active: row.try_get(column("is_active").as_str())?,
                is_verified: row.try_get(column("is_verified").as_str())?,
                created_at: row.try_get(column("created_at").as_str())?,
                updated_at: row.try_get(column("updated_at").as_str())?,
            }))
        }

        fn caller_in(row: &$row) -> Result<$crate::store::CallerRow, sqlx::Error> {
            Ok(match (session_in(row, "s_")?, user_in(row, "u_")?) {
                (Some(session), Some(user)) => Some((session, user)),
                _ => None,
            })
        }

        #[async_trait::async_trait]
        impl $crate::store::ReadStore for $store {
            async fn read_user(
                &self,
                session_id: &str,
                user_id: i64,
            ) -> StoreResult<$crate::store::UserRead> {
                let row = sqlx::query(super::sql::READ_USER)
                    .bind(session_id)
                    .bind(user_id)
                    .fetch_one(self.reader())
                    .await?;
                Ok($crate::store::UserRead {
                    caller: caller_in(&row)?,
                    user: user_in(&row, "t_")?,
                })
            }

            async fn read_balance(
                &self,
                session_id: Option<&str>,
                user_id: i64,
                own: bool,
            ) -> StoreResult<$crate::store::BalanceRead> {
                use sqlx::Row;
                let row = match (own, session_id) {
                    (true, Some(session_id)) => {
                        sqlx::query(super::sql::READ_OWN_BALANCE)
                            .bind(session_id)
                            .fetch_one(self.reader())
                            .await?
                    }
                    _ => {
                        sqlx::query(super::sql::READ_BALANCE)
                            .bind(session_id)
                            .bind(user_id)
                            .fetch_one(self.reader())
                            .await?
                    }
                };
                let account = match row.try_get::<Option<DateTime<Utc>>, _>("t_created_at")? {
                    Some(user_created_at) => {
                        let balance: Option<i64> = row.try_get("b_balance")?;
                        let updated_at: Option<DateTime<Utc>> = row.try_get("b_updated_at")?;
                        let on_row: Option<i64> = row.try_get("b_held")?;
                        let soonest: Option<DateTime<Utc>> = row.try_get("b_held_soonest")?;
                        let now = $crate::store::now();
                        let held = match soonest {
                            None => 0,
                            Some(soonest) if soonest > now => on_row.unwrap_or(0),
                            // A counted hold may have expired since the row was written:
                            // sum the holds (rare: until the account's next hold change).
                            Some(_) => {
                                let account: i64 = row.try_get("t_id")?;
                                sqlx::query_scalar(super::sql::holds::HELD_SUM)
                                    .bind(account)
                                    .bind(now)
                                    .fetch_one(self.reader())
                                    .await?
                            }
                        };
                        Some($crate::store::AccountBalance {
                            user_created_at,
                            balance: balance.zip(updated_at),
                            held,
                        })
                    }
                    None => None,
                };
                Ok($crate::store::BalanceRead {
                    caller: caller_in(&row)?,
                    account,
                })
            }

            async fn read_transactions(
                &self,
                session_id: Option<&str>,
                user_id: i64,
                skip: i64,
                limit: i64,
            ) -> StoreResult<$crate::store::HistoryRead> {
                use sqlx::Row;
                let rows = sqlx::query(super::sql::READ_TRANSACTIONS)
                    .bind(session_id)
                    .bind(user_id)
                    .bind(limit)
                    .bind(skip)
                    .fetch_all(self.reader())
                    .await?;
                // At least one row: the statement starts from a constant row.
                let Some(first) = rows.first() else {
                    return Err(sqlx::Error::RowNotFound.into());
                };
                let mut read = $crate::store::HistoryRead {
                    caller: caller_in(first)?,
                    account_exists: first.try_get::<Option<i64>, _>("t_id")?.is_some(),
                    transactions: Vec::with_capacity(rows.len()),
                    total_count: first.try_get("total_count")?,
                };
                for row in &rows {
                    let Some(id) = row.try_get::<Option<i64>, _>("x_id")? else {
                        continue;
                    };
                    read.transactions.push(CreditTransaction {
                        id,
                        user_id: row.try_get("x_user_id")?,
                        amount: row.try_get("x_amount")?,
                        transaction_type: row.try_get("x_transaction_type")?,
                        reference_id: row.try_get("x_reference_id")?,
                        description: row.try_get("x_description")?,
                        balance_after: row.try_get("x_balance_after")?,
                        created_at: row.try_get("x_created_at")?,
                    });
                }
                Ok(read)
            }

            async fn read_live_sessions(
                &self,
                session_id: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<$crate::store::SessionsRead> {
                let rows = sqlx::query(super::sql::READ_LIVE_SESSIONS)
                    .bind(session_id)
                    .bind(now)
                    .fetch_all(self.reader())
                    .await?;
                let Some(first) = rows.first() else {
                    return Err(sqlx::Error::RowNotFound.into());
                };
                let mut read = $crate::store::SessionsRead {
                    caller: caller_in(first)?,
                    sessions: Vec::with_capacity(rows.len()),
                };
                for row in &rows {
                    if let Some(session) = session_in(row, "l_")? {
                        read.sessions.push(session);
                    }
                }
                Ok(read)
            }

            async fn read_refresh(
                &self,
                token_hash: &str,
            ) -> StoreResult<Option<$crate::store::RefreshRead>> {
                use sqlx::Row;
                let rows = sqlx::query(super::sql::READ_REFRESH)
                    .bind(token_hash)
                    .fetch_all(self.reader())
                    .await?;
                // A hash is current for at most one session, or retired from one (tokens
                // are random); prefer the current one should both ever appear.
                let mut found = None;
                for row in &rows {
                    let retired_at: Option<DateTime<Utc>> = row.try_get("retired_at")?;
                    if let Some((session, user)) = caller_in(row)? {
                        let current = retired_at.is_none();
                        found = Some($crate::store::RefreshRead {
                            session,
                            user,
                            retired_at,
                        });
                        if current {
                            break;
                        }
                    }
                }
                Ok(found)
            }
        }
    };
}

pub(in crate::store) use impl_read_store;
