//! Delivering credit notes to the ledger: the reference use of [`gatehouse::upstream`].
//!
//! A void writes its credit note to the outbox in the void's own transaction
//! ([`crate::store::outbox`]), so neither exists without the other. Delivery happens after the
//! commit, in two ways, both keyed by the outbox row id (the ledger's `Idempotency-Key`), so the
//! ledger records each note exactly once however many times it is sent:
//!
//! 1. **Inline, as the user.** Right after the void commits, the tool posts the note through the
//!    [`CreditNoteDelivery::upstream`] upstream — typically `token_exchange`: the ledger gets a
//!    token minted for *its* audience, naming the user as `sub` and this server as actor
//!    (`act`), never the client's token. This is the normal path.
//! 2. **Later, as this server.** When the inline attempt fails (ledger down, authorization server
//!    refusing) or never happened (a crash between commit and send), the [`Courier`] retries
//!    with exponential backoff through [`CreditNoteDelivery::retry_upstream`], which must not
//!    need a user's token (`client_credentials` or `static`): no user's token is kept after the
//!    user's request ends. The user then travels as data (`onBehalfOf`), and the ledger records
//!    it as asserted by this server, not as proved by a token.
//!
//! Every body sent for a note is the same (it is built from the immutable outbox row), so a
//! retry after a lost answer is recognised by the ledger as the same request.

use std::sync::Arc;
use std::time::Duration;

use gatehouse::upstream::{UpstreamAccess, UpstreamError, Upstreams};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::store::outbox::{Attempt, OwedCreditNote};
use crate::store::{Store, StoreError};

/// How credit notes reach the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNoteDelivery {
    /// The upstream used inline, while the user's request is in flight (any mode; typically
    /// `token_exchange`).
    pub upstream: String,
    /// The upstream the courier uses for retries, as this server: `client_credentials` or
    /// `static` (a `token_exchange` upstream is refused at start-up).
    pub retry_upstream: String,
    /// The path of the credit-note collection under the upstream's base.
    pub path: String,
    /// How long a note is left to its inline attempt before the courier may take it.
    pub grace: Duration,
    /// First retry delay; each failure doubles it, up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How often the courier looks for due notes.
    pub poll_interval: Duration,
    /// Notes per courier round.
    pub batch: u32,
}

impl CreditNoteDelivery {
    /// Defaults for `upstream` and `retry_upstream`: path `credit-notes`, 30 s grace, backoff
    /// 1 s doubling to 5 min, polling every 2 s, 50 notes per round.
    pub fn new(upstream: impl Into<String>, retry_upstream: impl Into<String>) -> Self {
        Self {
            upstream: upstream.into(),
            retry_upstream: retry_upstream.into(),
            path: "credit-notes".into(),
            grace: Duration::from_secs(30),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            poll_interval: Duration::from_secs(2),
            batch: 50,
        }
    }

    /// The delay after the `attempts`-th failure.
    fn backoff(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        self.min_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// A delivery configuration [`CreditNotes::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditNotesError {
    /// The named upstream is not configured.
    #[error("credit notes: no upstream named {0:?} is configured")]
    UnknownUpstream(String),
    /// The retry upstream needs a user's token, which the courier never has.
    #[error(
        "credit notes: retry upstream {0:?} uses token_exchange; retries run after the user's request has ended and need client_credentials or static"
    )]
    RetryNeedsCaller(String),
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The ledger has the note, under this id.
    Delivered(String),
    /// Not yet; the courier will retry. The reason is a few fixed words.
    Pending(&'static str),
}

/// Credit-note delivery: the store, the upstreams and the configuration. Cheap to clone.
#[derive(Clone)]
pub struct CreditNotes {
    store: Store,
    upstreams: Upstreams,
    config: Arc<CreditNoteDelivery>,
}

impl std::fmt::Debug for CreditNotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreditNotes")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct LedgerAnswer {
    id: String,
}

impl CreditNotes {
    /// Checks that both upstreams exist and that the retry upstream can be used without a
    /// user's token. The store should have credit notes on ([`Store::with_credit_notes`]).
    pub fn new(
        store: Store,
        upstreams: &Upstreams,
        config: CreditNoteDelivery,
    ) -> Result<Self, CreditNotesError> {
        for name in [&config.upstream, &config.retry_upstream] {
            if upstreams.needs_caller(name).is_none() {
                return Err(CreditNotesError::UnknownUpstream(name.clone()));
            }
        }
        if upstreams.needs_caller(&config.retry_upstream) == Some(true) {
            return Err(CreditNotesError::RetryNeedsCaller(
                config.retry_upstream.clone(),
            ));
        }
        Ok(Self {
            store,
            upstreams: upstreams.clone(),
            config: Arc::new(config),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CreditNoteDelivery {
        &self.config
    }

    /// The inline attempt, with the caller's access (see the module docs). Records the result.
    pub async fn deliver_as_caller(
        &self,
        access: &UpstreamAccess,
        note: &OwedCreditNote,
    ) -> Result<Delivery, StoreError> {
        self.attempt(access, &self.config.upstream, note).await
    }

    /// One courier round: every due note, oldest first, sent as this server. Stops early when
    /// the ledger cannot be reached at all (the rest would fail the same way). Returns how many
    /// notes were delivered and how many are still pending.
    pub async fn deliver_due(&self) -> Result<(usize, usize), StoreError> {
        let grace = i64::try_from(self.config.grace.as_micros()).unwrap_or(i64::MAX);
        let due = self
            .store
            .due_credit_notes(now_micros(), grace, self.config.batch)
            .await?;
        let access = self.upstreams.service_access();
        let (mut delivered, mut pending) = (0, 0);
        for note in &due {
            match self
                .attempt(&access, &self.config.retry_upstream, note)
                .await?
            {
                Delivery::Delivered(_) => delivered += 1,
                Delivery::Pending(why) => {
                    pending += 1;
                    if why == UNREACHABLE {
                        break;
                    }
                }
            }
        }
        Ok((delivered, pending))
    }

    /// Runs the courier until `cancel`: a round every poll interval. Store errors are logged
    /// and the next round tries again.
    pub fn spawn_courier(&self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match this.deliver_due().await {
                    Ok((0, 0)) => {}
                    Ok((delivered, pending)) => {
                        tracing::info!(delivered, pending, "credit-note courier round");
                    }
                    Err(e) => tracing::warn!(error = %e, "credit-note courier: store error"),
                }
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(this.config.poll_interval) => {}
                }
            }
        })
    }

    async fn attempt(
        &self,
        access: &UpstreamAccess,
        upstream: &str,
        note: &OwedCreditNote,
    ) -> Result<Delivery, StoreError> {
        let outcome = send(access, upstream, &self.config.path, note).await;
        match &outcome {
            Delivery::Delivered(ledger_id) => {
                tracing::info!(note = %note.id, invoice = %note.invoice_id, %ledger_id, upstream, "credit note delivered");
                self.store
                    .record_credit_note_attempt(&note.id, Attempt::Delivered { ledger_id })
                    .await?;
            }
            Delivery::Pending(error) => {
                let delay = self.config.backoff(note.attempts + 1);
                tracing::warn!(note = %note.id, invoice = %note.invoice_id, upstream, %error,
                               retry_in_ms = delay.as_millis() as u64, "credit note not delivered");
                let retry_at =
                    now_micros().saturating_add(i64::try_from(delay.as_micros()).unwrap_or(0));
                self.store
                    .record_credit_note_attempt(&note.id, Attempt::Failed { error, retry_at })
                    .await?;
            }
        }
        Ok(outcome)
    }
}

const UNREACHABLE: &str = "ledger unreachable";

/// The body for a note: the same for every attempt (see the module docs).
fn body(note: &OwedCreditNote) -> serde_json::Value {
    json!({
        "invoiceId": note.invoice_id,
        "tenant": note.tenant,
        "amountMinor": note.amount_minor,
        "currency": note.currency,
        "reason": note.reason,
        "onBehalfOf": { "subject": note.subject, "clientId": note.client_id },
    })
}

async fn send(
    access: &UpstreamAccess,
    upstream: &str,
    path: &str,
    note: &OwedCreditNote,
) -> Delivery {
    let client = match access.client(upstream) {
        Ok(c) => c,
        Err(_) => return Delivery::Pending("upstream not configured"),
    };
    let sent = client
        .send(
            http::Method::POST,
            path,
            Some(&body(note)),
            &[("idempotency-key", note.id.as_str())],
        )
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            return Delivery::Pending(match e {
                UpstreamError::Refused { .. } => "authorization server refused the token",
                UpstreamError::Unavailable(_) => "authorization server unavailable",
                UpstreamError::NoSubjectToken => "no user token to exchange",
                UpstreamError::Unknown(_) => "upstream not configured",
                UpstreamError::OutsideBase => "ledger URL outside its base",
                UpstreamError::Request(_) => UNREACHABLE,
            });
        }
    };
    let status = response.status();
    if !status.is_success() {
        return Delivery::Pending(match status.as_u16() {
            401 | 403 => "ledger refused the credential",
            409 => "ledger: idempotency key conflict",
            400..=499 => "ledger refused the request",
            _ => "ledger unavailable",
        });
    }
    match response.json::<LedgerAnswer>().await {
        Ok(a) if !a.id.is_empty() => Delivery::Delivered(a.id.chars().take(100).collect()),
        _ => Delivery::Pending("ledger answered without an id"),
    }
}

fn now_micros() -> i64 {
    crate::store::now_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_to_the_maximum() {
        let c = CreditNoteDelivery::new("a", "b");
        let secs: Vec<u64> = [1, 2, 3, 4, 9, 10, 1000]
            .into_iter()
            .map(|n| c.backoff(n).as_secs())
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 256, 300, 300]);
    }
}
