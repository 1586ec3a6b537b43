//! A small typed client for the Stripe calls this service makes, over reqwest. Requests
//! are form-encoded (Stripe's wire format), carry the pinned `Stripe-Version` and, where a
//! retry must not duplicate, an `Idempotency-Key`. The secret key is only ever put in the
//! Authorization header; Stripe's answers are mapped to `StripeError` and never passed
//! through to clients verbatim.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::config::BillingConfig;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe could not be reached, timed out, or failed on its side.
    #[error("Stripe unavailable: {0}")]
    Unavailable(String),
    /// The object does not exist (or is not visible with this key).
    #[error("Stripe object not found")]
    NotFound,
    /// Stripe refused the request (bad key, bad parameters, card problems).
    #[error("Stripe rejected the request ({status}): {code}")]
    Rejected { status: u16, code: String },
}

/// Form fields in order; nested keys are written the Stripe way (`metadata[user_id]`).
pub type Form = Vec<(String, String)>;

fn field(form: &mut Form, key: &str, value: impl ToString) {
    form.push((key.to_owned(), value.to_string()));
}

#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub invoice_settings: Option<InvoiceSettings>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceSettings {
    pub default_payment_method: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PortalSession {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentMethod {
    pub id: String,
    pub customer: Option<String>,
    pub card: Option<Card>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Card {
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct List<T> {
    data: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// What a Checkout Session is made of (DESIGN §9).
pub struct CheckoutRequest<'a> {
    pub customer: &'a str,
    pub user_id: i64,
    pub plan_id: &'a str,
    pub price_id: &'a str,
    pub subscription: bool,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub idempotency_key: &'a str,
}

pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    key: Secret,
    version: String,
}

impl StripeClient {
    /// `None` when billing is off (no STRIPE_SECRET_KEY).
    pub fn from_config(config: &BillingConfig) -> anyhow::Result<Option<Self>> {
        let Some(key) = config.stripe_secret_key.clone() else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(config.request_timeout))
            .timeout(config.request_timeout)
            .user_agent(concat!("auth-service/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Self {
            http,
            base: config.api_base.clone(),
            key,
            version: config.api_version.clone(),
        }))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: &Form,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let url = format!("{}{}", self.base, path);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(self.key.expose())
            .header("Stripe-Version", &self.version);
        if method == Method::GET {
            request = request.query(form);
        } else {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter())
                .finish();
            request = request
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.map_err(|e| {
            // reqwest's error names the URL, never the Authorization header.
            tracing::warn!(error = %e, %path, "Stripe request failed");
            StripeError::Unavailable(if e.is_timeout() {
                "timeout".into()
            } else {
                "connection failed".into()
            })
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|_| StripeError::Unavailable("incomplete answer".into()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                tracing::warn!(error = %e, %path, "unexpected Stripe answer");
                StripeError::Unavailable("unexpected answer".into())
            });
        }
        let detail = serde_json::from_slice::<ErrorEnvelope>(&bytes)
            .map(|e| e.error)
            .ok();
        let code = detail
            .as_ref()
            .and_then(|d| d.code.clone().or_else(|| d.kind.clone()))
            .unwrap_or_else(|| "stripe_error".into());
        tracing::warn!(
            status = status.as_u16(),
            %path,
            code = %code,
            message = detail.as_ref().and_then(|d| d.message.as_deref()).unwrap_or(""),
            "Stripe refused a request"
        );
        match status {
            StatusCode::NOT_FOUND => Err(StripeError::NotFound),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                Err(StripeError::Unavailable(format!("status {}", s.as_u16())))
            }
            s => Err(StripeError::Rejected {
                status: s.as_u16(),
                code,
            }),
        }
    }

    /// One customer per user: the key makes concurrent first calls return the same customer.
    pub async fn create_customer(
        &self,
        user_id: i64,
        email: &str,
        idempotency_key: &str,
    ) -> Result<Customer, StripeError> {
        let mut form = Form::new();
        field(&mut form, "email", email);
        field(&mut form, "metadata[user_id]", user_id);
        self.call(Method::POST, "/v1/customers", &form, Some(idempotency_key))
            .await
    }

    pub async fn customer(&self, id: &str) -> Result<Customer, StripeError> {
        self.call(
            Method::GET,
            &format!("/v1/customers/{id}"),
            &Form::new(),
            None,
        )
        .await
    }

    /// Removes a customer this service created but did not keep (it lost a race).
    pub async fn delete_customer(&self, id: &str) -> Result<(), StripeError> {
        self.call::<serde_json::Value>(
            Method::DELETE,
            &format!("/v1/customers/{id}"),
            &Form::new(),
            None,
        )
        .await
        .map(|_| ())
    }

    pub async fn create_checkout_session(
        &self,
        r: &CheckoutRequest<'_>,
    ) -> Result<CheckoutSession, StripeError> {
        let mut form = Form::new();
        field(&mut form, "customer", r.customer);
        field(&mut form, "client_reference_id", r.user_id);
        field(
            &mut form,
            "mode",
            if r.subscription {
                "subscription"
            } else {
                "payment"
            },
        );
        field(&mut form, "line_items[0][price]", r.price_id);
        field(&mut form, "line_items[0][quantity]", 1);
        field(&mut form, "success_url", r.success_url);
        field(&mut form, "cancel_url", r.cancel_url);
        field(&mut form, "metadata[user_id]", r.user_id);
        field(&mut form, "metadata[plan_id]", r.plan_id);
        if r.subscription {
            field(&mut form, "subscription_data[metadata][user_id]", r.user_id);
            field(&mut form, "subscription_data[metadata][plan_id]", r.plan_id);
        } else {
            field(
                &mut form,
                "payment_intent_data[metadata][user_id]",
                r.user_id,
            );
            field(
                &mut form,
                "payment_intent_data[metadata][plan_id]",
                r.plan_id,
            );
        }
        self.call(
            Method::POST,
            "/v1/checkout/sessions",
            &form,
            Some(r.idempotency_key),
        )
        .await
    }

    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<PortalSession, StripeError> {
        let mut form = Form::new();
        field(&mut form, "customer", customer);
        field(&mut form, "return_url", return_url);
        self.call(Method::POST, "/v1/billing_portal/sessions", &form, None)
            .await
    }

    /// Sets the customer's email (receipts and invoices go there).
    pub async fn update_customer_email(
        &self,
        id: &str,
        email: &str,
    ) -> Result<Customer, StripeError> {
        let mut form = Form::new();
        field(&mut form, "email", email);
        self.call(Method::POST, &format!("/v1/customers/{id}"), &form, None)
            .await
    }

    /// Cancels at once (no further invoice); used when the account goes away.
    pub async fn cancel_now(&self, subscription: &str) -> Result<Subscription, StripeError> {
        self.call(
            Method::DELETE,
            &format!("/v1/subscriptions/{subscription}"),
            &Form::new(),
            None,
        )
        .await
    }

    pub async fn cancel_at_period_end(
        &self,
        subscription: &str,
        idempotency_key: &str,
    ) -> Result<Subscription, StripeError> {
        let mut form = Form::new();
        field(&mut form, "cancel_at_period_end", "true");
        self.call(
            Method::POST,
            &format!("/v1/subscriptions/{subscription}"),
            &form,
            Some(idempotency_key),
        )
        .await
    }

    pub async fn payment_methods(&self, customer: &str) -> Result<Vec<PaymentMethod>, StripeError> {
        let mut form = Form::new();
        field(&mut form, "customer", customer);
        field(&mut form, "type", "card");
        field(&mut form, "limit", 100);
        self.call::<List<PaymentMethod>>(Method::GET, "/v1/payment_methods", &form, None)
            .await
            .map(|list| list.data)
    }

    pub async fn payment_method(&self, id: &str) -> Result<PaymentMethod, StripeError> {
        self.call(
            Method::GET,
            &format!("/v1/payment_methods/{id}"),
            &Form::new(),
            None,
        )
        .await
    }

    pub async fn detach_payment_method(&self, id: &str) -> Result<PaymentMethod, StripeError> {
        self.call(
            Method::POST,
            &format!("/v1/payment_methods/{id}/detach"),
            &Form::new(),
            None,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TLS stack (rustls with ring, shared with sqlx and lettre) initialises, and a
    /// server that does not speak TLS is "unavailable", never a panic or a 500.
    #[tokio::test]
    async fn https_failures_are_unavailable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                drop(socket);
            }
        });
        let config = BillingConfig {
            stripe_secret_key: Some(Secret::new("sk_test_x")),
            webhook_secrets: Vec::new(),
            api_base: format!("https://127.0.0.1:{port}"),
            api_version: "2024-06-20".into(),
            success_url: None,
            cancel_url: None,
            request_timeout: Duration::from_secs(5),
            webhook_tolerance_secs: 300,
        };
        let client = StripeClient::from_config(&config).unwrap().unwrap();
        let err = client
            .create_customer(1, "a@example.com", "k")
            .await
            .unwrap_err();
        assert!(matches!(err, StripeError::Unavailable(_)), "{err:?}");
        assert!(!format!("{err:?}").contains("sk_test_x"));
    }
}
