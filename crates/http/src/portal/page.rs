//! The portal's page shell (NHS.UK header, navigation, footer), its error
//! pages, and how values are shown to people. Below every other portal
//! module: [`crate::dialect`] renders the portal's 404 and 405 with it.
//!
//! Templates are askama's (`crates/http/templates/portal/`): compiled into
//! the binary, and every value HTML-escaped (none of ours is marked safe).

use std::sync::OnceLock;

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cpis_domain::{NhsNumber, PortalSession, Principal};
use time::{Duration, OffsetDateTime};

use super::assets;

/// The URLs of the shell's assets (content-addressed names).
pub(crate) struct Assets {
    pub css: String,
    pub js: String,
    pub favicon: String,
    pub favicon_svg: String,
}

fn shell_assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| Assets {
        css: assets::url("nhsuk-frontend.css"),
        js: assets::url("portal.js"),
        favicon: assets::url("favicon.ico"),
        favicon_svg: assets::url("favicon.svg"),
    })
}

/// Who is signed in, and the session's CSRF token for the sign-out form.
pub(crate) struct Account {
    pub label: String,
    pub csrf: String,
}

pub(crate) struct NavItem {
    pub href: &'static str,
    pub text: &'static str,
    pub current: bool,
}

/// What every page's shell shows.
pub(crate) struct Layout {
    pub title: String,
    pub assets: &'static Assets,
    pub account: Option<Account>,
    pub nav: Vec<NavItem>,
}

impl Layout {
    /// A page for anyone (sign-in, errors): no account, no navigation.
    pub(crate) fn public(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            assets: shell_assets(),
            account: None,
            nav: Vec::new(),
        }
    }

    /// A page of a signed-in session: its account and its role's pages,
    /// `current` (a path) marked.
    pub(crate) fn signed_in(title: &str, session: &PortalSession, current: &str) -> Self {
        let pages: &[(&str, &str)] = match &session.principal {
            Principal::Council { .. } => &[
                ("/portal/notifications", "Notifications"),
                ("/portal/uploads", "Uploads"),
                ("/portal/authority", "Directory entry"),
            ],
            Principal::Clinician(_) => &[("/portal/check", "Check a child")],
        };
        Self {
            title: title.to_owned(),
            assets: shell_assets(),
            account: Some(Account {
                label: account_label(&session.principal),
                csrf: session.csrf_token.clone(),
            }),
            nav: pages
                .iter()
                .map(|&(href, text)| NavItem {
                    href,
                    text,
                    current: current == href || current.starts_with(&format!("{href}/")),
                })
                .collect(),
        }
    }
}

/// "Signed in as ..." in the header: the user and their organisation.
fn account_label(principal: &Principal) -> String {
    match principal {
        Principal::Council {
            authority,
            client_id,
        } => format!("{client_id}, council {authority}"),
        Principal::Clinician(c) => format!("{}, {}", c.user_id, c.organisation_name),
    }
}

/// One entry of a page's error summary: the field's id and what is wrong.
pub(crate) struct FormError {
    pub field: String,
    pub message: String,
}

impl FormError {
    pub(crate) fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// A rendered page with its status. A template that fails to render (it
/// cannot, with the values ours are given) is logged and answered with a
/// plain 500, never a panic.
pub(crate) fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "a portal page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sorry, there is a problem with the service.",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "portal/error.html")]
struct ErrorPage {
    layout: Layout,
    heading: &'static str,
    lines: &'static [&'static str],
}

/// The NHS-style page for an error status. A page the caller may not see
/// is answered with [`not_found`], exactly as one that does not exist.
pub(crate) fn error_page(status: StatusCode) -> Response {
    let (title, heading, lines): (&str, &str, &[&str]) = match status {
        StatusCode::NOT_FOUND => (
            "Page not found",
            "Page not found",
            &[
                "If you typed the web address, check it is correct.",
                "If you pasted the web address, check you copied the entire address.",
            ],
        ),
        StatusCode::FORBIDDEN => (
            "Form not sent",
            "Sorry, this form could not be sent",
            &[
                "It may have been open for too long, or it came from somewhere other than this service.",
                "Go back, reload the page and try again. Nothing was changed.",
            ],
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "Not available",
            "Sorry, that cannot be done here",
            &["Go back and use the page's own links and buttons."],
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "Too much to send",
            "Sorry, that was too much to send",
            &["Go back, shorten what you entered and try again. Nothing was changed."],
        ),
        status if status.is_client_error() => (
            "Request not understood",
            "Sorry, there is a problem with this request",
            &["Go back and try again. Nothing was changed."],
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "Service unavailable",
            "Sorry, there is a problem with the service",
            &[
                "Try again in a few minutes.",
                "If what you sent was not confirmed, it was not saved: send it again.",
            ],
        ),
        _ => (
            "Service error",
            "Sorry, there is a problem with the service",
            &["Try again later."],
        ),
    };
    html(
        status,
        &ErrorPage {
            layout: Layout::public(title),
            heading,
            lines,
        },
    )
}

/// 404: for what does not exist and for what the caller may not see.
pub(crate) fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND)
}

/// An instant as people in England read it: "2 March 2026 at 10:00"
/// (Europe/London, so GMT or BST as the date has it).
pub(crate) fn uk_datetime(at: OffsetDateTime) -> String {
    let local = cpis_domain::uk_time(at);
    format!(
        "{} {} {} at {:02}:{:02}",
        local.day(),
        local.month(),
        local.year(),
        local.hour(),
        local.minute()
    )
}

/// A date as people read it: "2 March 2026".
pub(crate) fn uk_date(date: time::Date) -> String {
    format!("{} {} {}", date.day(), date.month(), date.year())
}

/// "5 minutes ago", "3 hours ago", "2 days ago" (whole units, rounded down).
pub(crate) fn ago(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let elapsed = (now - at).max(Duration::ZERO);
    let (n, unit) = if elapsed < Duration::minutes(1) {
        return "just now".to_owned();
    } else if elapsed < Duration::hours(1) {
        (elapsed.whole_minutes(), "minute")
    } else if elapsed < Duration::days(1) {
        (elapsed.whole_hours(), "hour")
    } else {
        (elapsed.whole_days(), "day")
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// An NHS number as the NHS writes it for people: "999 000 0018".
pub(crate) fn spaced(nhs_number: &NhsNumber) -> String {
    let digits = nhs_number.expose();
    format!("{} {} {}", &digits[..3], &digits[3..6], &digits[6..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_are_shown_on_the_uk_wall_clock() {
        assert_eq!(
            uk_datetime(datetime!(2026-01-05 09:07 UTC)),
            "5 January 2026 at 09:07"
        );
        assert_eq!(
            uk_datetime(datetime!(2026-07-01 23:30 UTC)),
            "2 July 2026 at 00:30"
        );
        let now = datetime!(2026-07-01 12:00 UTC);
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now - Duration::minutes(1), now), "1 minute ago");
        assert_eq!(ago(now - Duration::minutes(150), now), "2 hours ago");
        assert_eq!(ago(now - Duration::days(3), now), "3 days ago");
        assert_eq!(ago(now + Duration::hours(1), now), "just now");
        let n = NhsNumber::parse("9990000018").unwrap();
        assert_eq!(spaced(&n), "999 000 0018");
    }

    #[test]
    fn every_error_status_has_a_page_and_values_are_escaped() {
        for status in [400, 403, 404, 405, 413, 500, 503] {
            let status = StatusCode::from_u16(status).unwrap();
            let response = error_page(status);
            assert_eq!(response.status(), status);
        }
        let page = ErrorPage {
            layout: Layout::public("<script>alert(1)</script>"),
            heading: "x",
            lines: &[],
        };
        let body = page.render().unwrap();
        assert!(!body.contains("<script>alert"));
        assert!(body.contains("&#60;script&#62;") || body.contains("&lt;script&gt;"));
    }
}
