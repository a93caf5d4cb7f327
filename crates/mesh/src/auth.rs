//! The `NHSMESH` Authorization header (MESH API specification,
//! `mesh-api.yaml`, "MESH Authorization header"):
//!
//! `NHSMESH <MAILBOX>:<nonce>:<nonce_count>:<timestamp>:<hash>` where
//! `hash` is the lower-case hex HMAC-SHA256, keyed with the environment's
//! shared secret, of `<MAILBOX>:<nonce>:<nonce_count>:<password>:<timestamp>`;
//! the mailbox is upper case and the timestamp `yyyyMMddHHmm` (UTC). Live
//! MESH takes each token once (a reuse is 403) and only within 2 hours of its
//! clock, so every request gets a fresh one: a new UUID v4 nonce, count 0.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

/// The `Authorization` header value for one request, made now (a new nonce,
/// the current minute). [`crate::MeshClient`] makes one per request; this is
/// public for tests and tools that speak to MESH directly.
pub fn fresh_token(mailbox: &str, password: &[u8], shared_key: &[u8]) -> String {
    let nonce = uuid::Uuid::new_v4().to_string();
    token(
        mailbox,
        password,
        shared_key,
        &nonce,
        0,
        &timestamp(OffsetDateTime::now_utc()),
    )
}

/// `yyyyMMddHHmm` of a UTC instant.
fn timestamp(now: OffsetDateTime) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    )
}

/// The header value for the given parts (`mailbox` is upper-cased here).
pub(crate) fn token(
    mailbox: &str,
    password: &[u8],
    shared_key: &[u8],
    nonce: &str,
    nonce_count: u32,
    timestamp: &str,
) -> String {
    let mailbox = mailbox.to_ascii_uppercase();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(shared_key).expect("HMAC-SHA256 takes a key of any length");
    for (i, part) in [
        mailbox.as_bytes(),
        nonce.as_bytes(),
        nonce_count.to_string().as_bytes(),
        password,
        timestamp.as_bytes(),
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            mac.update(b":");
        }
        mac.update(part);
    }
    let hash = hex::encode(mac.finalize().into_bytes());
    format!("NHSMESH {mailbox}:{nonce}:{nonce_count}:{timestamp}:{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    // Expected values made with NHS England's Python client, mesh-client
    // 5.0.2: `mesh_client.AuthTokenGenerator(key, mailbox, password)` with
    // its `_nonce` set to the nonce below, its clock (`mesh_client.dt`)
    // stubbed to 2026-11-29 18:30:59 UTC, then `generate_token()` (its first
    // token has nonce_count 0).
    #[test]
    fn matches_nhs_englands_mesh_client() {
        assert_eq!(
            token(
                "X26ABC1",
                b"password",
                b"TestKey",
                "3f2a1c9e-7b4d-4e8a-9c61-0d5e2b7a8f13",
                0,
                "202611291830"
            ),
            "NHSMESH X26ABC1:3f2a1c9e-7b4d-4e8a-9c61-0d5e2b7a8f13:0:202611291830:\
             42c13017ee2cb37a45a5eb7832d42a4573b0cb774c2608bb34c4c7164a96b6e1"
        );
        // A password holding the separator: the parts are joined, not escaped.
        assert_eq!(
            token(
                "X26HC005",
                b"p@ss:w0rd",
                b"BackupKey",
                "00000000-0000-4000-8000-000000000001",
                0,
                "202611291830"
            ),
            "NHSMESH X26HC005:00000000-0000-4000-8000-000000000001:0:202611291830:\
             5d9828235a8d0312749838875f17db9b18476e54e9669fadcb69092ba943df09"
        );
    }

    #[test]
    fn mailbox_is_upper_cased_in_header_and_hash() {
        let lower = token("x26abc1", b"password", b"TestKey", "n", 0, "202611291830");
        let upper = token("X26ABC1", b"password", b"TestKey", "n", 0, "202611291830");
        assert_eq!(lower, upper);
    }

    #[test]
    fn timestamp_is_utc_minutes() {
        assert_eq!(
            timestamp(datetime!(2026-01-02 03:04:59 UTC)),
            "202601020304"
        );
        // 00:30 in UTC+1 is 23:30 the day before in UTC.
        assert_eq!(timestamp(datetime!(2026-06-01 00:30 +1)), "202605312330");
    }

    #[test]
    fn every_token_has_a_new_nonce() {
        let a = fresh_token("X26ABC1", b"password", b"TestKey");
        let b = fresh_token("X26ABC1", b"password", b"TestKey");
        let nonce = |t: &str| t.split(':').nth(1).unwrap().to_owned();
        assert_ne!(nonce(&a), nonce(&b));
        assert!(a.starts_with("NHSMESH X26ABC1:"));
        assert_eq!(a.split(':').nth(2), Some("0"));
    }
}
