//! Email: messages are rendered here, stored in the outbox in the same transaction as the
//! change that causes them, and delivered by the outbox worker (`worker.rs`).

mod worker;

use minijinja::{context, Environment};
use serde::Serialize;

pub use worker::{OutboxWorker, Transport};

use crate::store::OutgoingMail;

/// Validity of the links, shown in the messages; the token services use the same numbers.
pub const VERIFY_LINK_HOURS: i64 = 24;
pub const RESET_LINK_MINUTES: i64 = 30;

pub struct MailComposer {
    templates: Environment<'static>,
    frontend_url: String,
}

impl MailComposer {
    pub fn new(frontend_url: &str) -> anyhow::Result<Self> {
        let mut templates = Environment::new();
        // `.html` names switch on HTML auto-escaping; `.txt` ones stay raw.
        for (name, source) in [
            (
                "welcome.txt",
                include_str!("../../../templates/email/welcome.txt"),
            ),
            (
                "welcome.html",
                include_str!("../../../templates/email/welcome.html"),
            ),
            (
                "password_reset.txt",
                include_str!("../../../templates/email/password_reset.txt"),
            ),
            (
                "password_reset.html",
                include_str!("../../../templates/email/password_reset.html"),
            ),
            (
                "verify_new_email.txt",
                include_str!("../../../templates/email/verify_new_email.txt"),
            ),
            (
                "verify_new_email.html",
                include_str!("../../../templates/email/verify_new_email.html"),
            ),
            (
                "email_changed_notice.txt",
                include_str!("../../../templates/email/email_changed_notice.txt"),
            ),
            (
                "email_changed_notice.html",
                include_str!("../../../templates/email/email_changed_notice.html"),
            ),
            (
                "welcome_provider.txt",
                include_str!("../../../templates/email/welcome_provider.txt"),
            ),
            (
                "welcome_provider.html",
                include_str!("../../../templates/email/welcome_provider.html"),
            ),
            (
                "security_notice.txt",
                include_str!("../../../templates/email/security_notice.txt"),
            ),
            (
                "security_notice.html",
                include_str!("../../../templates/email/security_notice.html"),
            ),
        ] {
            templates.add_template(name, source)?;
        }
        Ok(Self {
            templates,
            frontend_url: frontend_url.to_owned(),
        })
    }

    pub fn verify_link(&self, token: &str) -> String {
        format!("{}/verify-email?token={token}", self.frontend_url)
    }

    pub fn reset_link(&self, token: &str) -> String {
        format!("{}/reset-password?token={token}", self.frontend_url)
    }

    pub fn welcome(&self, to: &str, username: &str, token: &str) -> anyhow::Result<OutgoingMail> {
        let ctx =
            context! { username, link => self.verify_link(token), hours => VERIFY_LINK_HOURS };
        self.render(
            "welcome",
            to,
            "Welcome! Please verify your email address",
            ctx,
        )
    }

    /// For an account created through a sign-in provider: verified already, so no
    /// verification link; it points to the reset flow for setting a password.
    pub fn welcome_from_provider(
        &self,
        to: &str,
        username: &str,
        provider: &str,
    ) -> anyhow::Result<OutgoingMail> {
        let ctx = context! { username, provider, link => format!("{}/forgot-password", self.frontend_url) };
        self.render("welcome_provider", to, "Welcome!", ctx)
    }

    pub fn password_reset(
        &self,
        to: &str,
        username: &str,
        token: &str,
    ) -> anyhow::Result<OutgoingMail> {
        let ctx =
            context! { username, link => self.reset_link(token), minutes => RESET_LINK_MINUTES };
        self.render("password_reset", to, "Reset your password", ctx)
    }

    pub fn verify_new_email(
        &self,
        to: &str,
        username: &str,
        token: &str,
    ) -> anyhow::Result<OutgoingMail> {
        let ctx = context! { username, email => to, link => self.verify_link(token), hours => VERIFY_LINK_HOURS };
        self.render(
            "verify_new_email",
            to,
            "Confirm your new email address",
            ctx,
        )
    }

    pub fn cancel_email_change_link(&self, token: &str) -> String {
        format!("{}/cancel-email-change?token={token}", self.frontend_url)
    }

    /// To the current address while a change is pending: the link cancels the change.
    pub fn email_changed_notice(
        &self,
        to: &str,
        username: &str,
        new_email: &str,
        cancel_token: &str,
    ) -> anyhow::Result<OutgoingMail> {
        let ctx = context! { username, old_email => to, new_email,
        cancel_link => self.cancel_email_change_link(cancel_token) };
        self.render(
            "email_changed_notice",
            to,
            "Your email address is about to be changed",
            ctx,
        )
    }

    /// A change to how the account signs in (a second factor added or removed, a recovery
    /// code used, an admin reset): `what` says which, in one sentence.
    pub fn security_notice(
        &self,
        to: &str,
        username: &str,
        subject: &str,
        what: &str,
    ) -> anyhow::Result<OutgoingMail> {
        let ctx = context! { username, subject, what,
        link => format!("{}/forgot-password", self.frontend_url) };
        self.render("security_notice", to, subject, ctx)
    }

    fn render(
        &self,
        name: &str,
        to: &str,
        subject: &str,
        ctx: impl Serialize,
    ) -> anyhow::Result<OutgoingMail> {
        let ctx = minijinja::Value::from_serialize(&ctx);
        let text_body = self
            .templates
            .get_template(&format!("{name}.txt"))?
            .render(&ctx)?;
        let html_body = self
            .templates
            .get_template(&format!("{name}.html"))?
            .render(&ctx)?;
        Ok(OutgoingMail {
            recipient: to.to_owned(),
            subject: subject.to_owned(),
            text_body,
            html_body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_use_the_frontend_url_and_html_is_escaped() {
        let composer = MailComposer::new("https://app.example.com").unwrap();
        let mail = composer
            .welcome("a@example.com", "<b>bob</b>", "TOKEN123")
            .unwrap();
        assert!(mail
            .text_body
            .contains("https://app.example.com/verify-email?token=TOKEN123"));
        assert!(mail
            .html_body
            .contains("https://app.example.com/verify-email?token=TOKEN123"));
        assert!(
            !mail.html_body.contains("<b>bob</b>"),
            "usernames are escaped in HTML"
        );
        let reset = composer
            .password_reset("a@example.com", "bob", "RESET9")
            .unwrap();
        assert!(reset
            .text_body
            .contains("https://app.example.com/reset-password?token=RESET9"));
        let notice = composer
            .email_changed_notice("old@example.com", "bob", "new@example.com", "CANCEL7")
            .unwrap();
        assert!(notice.text_body.contains("new@example.com"));
        assert!(notice
            .text_body
            .contains("https://app.example.com/cancel-email-change?token=CANCEL7"));
        assert_eq!(notice.recipient, "old@example.com");
    }
}
