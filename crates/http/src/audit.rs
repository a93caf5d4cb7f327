//! The audit of every request: one event per use case, its outcome taken
//! from the use case's typed result ([`cpis_domain::Audited`]) or from the
//! edge that refused the request, never from a status code.

use cpis_domain::ports::AuditTrail;
use cpis_domain::{AuditAction, AuditEvent, AuditOutcome, Audited, NhsNumber, Principal};

use crate::request_id::RequestId;
use crate::state::AppState;

/// Why a request did not succeed, as the audit trail classes it, with the
/// answer in the route's dialect (`R`: a [`crate::Problem`] or a FHIR error).
pub(crate) struct Failure<R> {
    class: AuditOutcome,
    reply: R,
}

impl<R> Failure<R> {
    /// The request itself was refused (unreadable, malformed): `Invalid`.
    pub(crate) fn invalid(reply: impl Into<R>) -> Self {
        Self {
            class: AuditOutcome::Invalid,
            reply: reply.into(),
        }
    }

    /// A use case's typed error: classed by the domain, rendered by the
    /// dialect's one mapping of it.
    pub(crate) fn of<E: Audited + Into<R>>(error: E) -> Self {
        Self {
            class: error.audit_outcome(),
            reply: error.into(),
        }
    }
}

/// Who, what and on whose behalf one audited request was.
pub(crate) struct Audit<'a> {
    pub principal: &'a Principal,
    pub action: AuditAction,
    pub request_id: &'a RequestId,
}

impl<'a> Audit<'a> {
    pub(crate) fn new(
        principal: &'a Principal,
        action: AuditAction,
        request_id: &'a RequestId,
    ) -> Self {
        Self {
            principal,
            action,
            request_id,
        }
    }

    /// Writes the request's one audit event (`child` pseudonymised) and
    /// hands back the answer: the value, or the failure's reply.
    pub(crate) async fn record<S: AuditTrail, Q, T, R>(
        &self,
        state: &AppState<S, Q>,
        child: Option<&NhsNumber>,
        result: Result<T, Failure<R>>,
    ) -> Result<T, R> {
        let outcome = match &result {
            Ok(_) => AuditOutcome::Allowed,
            Err(failure) => failure.class,
        };
        self.record_outcome(state, child, outcome).await;
        result.map_err(|failure| failure.reply)
    }

    /// Audits a request refused before its use case ran (`Invalid`) and
    /// hands back the refusal.
    pub(crate) async fn invalid<S: AuditTrail, Q, R>(&self, state: &AppState<S, Q>, reply: R) -> R {
        self.record_outcome(state, None, AuditOutcome::Invalid)
            .await;
        reply
    }

    /// The request's event with `outcome` at `at` (`child` pseudonymised),
    /// for a use case that writes it with its own writes.
    pub(crate) fn event<S, Q>(
        &self,
        state: &AppState<S, Q>,
        child: Option<&NhsNumber>,
        outcome: AuditOutcome,
        at: time::OffsetDateTime,
    ) -> AuditEvent {
        state.audit_event(
            Some(self.principal),
            self.action,
            child,
            outcome,
            at,
            self.request_id,
        )
    }

    /// Writes the event with an outcome the use case decided itself.
    pub(crate) async fn record_outcome<S: AuditTrail, Q>(
        &self,
        state: &AppState<S, Q>,
        child: Option<&NhsNumber>,
        outcome: AuditOutcome,
    ) {
        state
            .audit(
                Some(self.principal),
                self.action,
                child,
                outcome,
                self.request_id,
            )
            .await;
    }
}

/// Writes one audit event; a failure is logged at error level (readiness
/// reports the store), never shown to the caller.
pub(crate) async fn write<S: AuditTrail>(store: &S, event: &AuditEvent) {
    if let Err(error) = store.append(event).await {
        let request_id = event.trace_id.as_str();
        tracing::error!(request_id, %error, action = ?event.action, "could not write the audit event");
    }
}

impl<S, Q> AppState<S, Q> {
    /// One request's event (`child` pseudonymised).
    pub(crate) fn audit_event(
        &self,
        principal: Option<&Principal>,
        action: AuditAction,
        child: Option<&NhsNumber>,
        outcome: AuditOutcome,
        at: time::OffsetDateTime,
        request_id: &RequestId,
    ) -> AuditEvent {
        let subject = child.map(|n| self.pseudonymiser.pseudonym(n));
        AuditEvent::new(principal, action, subject, outcome, at, &request_id.0)
    }
}

impl<S: AuditTrail, Q> AppState<S, Q> {
    /// Audits one request, now; `child` is pseudonymised.
    pub(crate) async fn audit(
        &self,
        principal: Option<&Principal>,
        action: AuditAction,
        child: Option<&NhsNumber>,
        outcome: AuditOutcome,
        request_id: &RequestId,
    ) {
        let event = self.audit_event(
            principal,
            action,
            child,
            outcome,
            self.clock.now(),
            request_id,
        );
        write(&self.store, &event).await;
    }
}
