//! Building audit-trail rows. The store writes each in the same transaction as the change
//! it records; this module only names the events and shapes their details.

use serde_json::{json, Value};

use crate::caller::ClientInfo;
use crate::store::{now, Activity};

pub const REGISTER: &str = "register";
pub const LOGIN_SUCCESS: &str = "login_success";
pub const LOGIN_FAILURE: &str = "login_failure";
pub const LOGOUT: &str = "logout";
pub const REFRESH_REUSE_DETECTED: &str = "refresh_reuse_detected";
pub const PASSWORD_CHANGE: &str = "password_change";
/// An old-kind password hash replaced by today's at a successful login.
pub const PASSWORD_HASH_UPGRADE: &str = "password_hash_upgrade";
pub const PASSWORD_RESET_REQUEST: &str = "password_reset_request";
pub const PASSWORD_RESET: &str = "password_reset";
pub const EMAIL_CHANGE: &str = "email_change";
pub const EMAIL_CHANGE_REQUEST: &str = "email_change_request";
pub const EMAIL_CHANGE_CANCEL: &str = "email_change_cancel";
pub const EMAIL_VERIFIED: &str = "email_verified";
pub const ACCOUNT_DELETE: &str = "account_delete";
pub const SESSION_REVOKE: &str = "session_revoke";
pub const CREDITS_ADD: &str = "credits_add";
pub const CREDITS_USE: &str = "credits_use";
pub const CREDITS_HOLD: &str = "credits_hold";
pub const CREDITS_HOLD_CAPTURE: &str = "credits_hold_capture";
pub const CREDITS_HOLD_RELEASE: &str = "credits_hold_release";
pub use crate::store::HOLD_EXPIRED_EVENT as CREDITS_HOLD_EXPIRED;
pub const ADMIN_UPDATE: &str = "admin_update";
pub const IDENTITY_LINKED: &str = "identity_linked";
pub const IDENTITY_UNLINKED: &str = "identity_unlinked";
pub const MFA_ENROLLED: &str = "mfa_enrolled";
pub const MFA_REMOVED: &str = "mfa_removed";
pub const MFA_VERIFIED: &str = "mfa_verified";
pub const MFA_FAILED: &str = "mfa_failed";
pub const RECOVERY_CODE_USED: &str = "recovery_code_used";

/// An event of `user_id` (when known) from `client`, happening now.
pub fn activity(
    event: &'static str,
    user_id: Option<i64>,
    client: &ClientInfo,
    details: Value,
) -> Activity {
    Activity {
        user_id,
        event,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        details: if details.is_null() {
            "{}".to_owned()
        } else {
            details.to_string()
        },
        created_at: now(),
    }
}

/// An event with no details.
pub fn plain(event: &'static str, user_id: Option<i64>, client: &ClientInfo) -> Activity {
    activity(event, user_id, client, json!({}))
}
