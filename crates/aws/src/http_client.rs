//! The one HTTPS client every SDK client uses: hyper 1 and rustls 0.23 over
//! `ring`. The SDK crates are compiled without their own clients (the
//! workspace `Cargo.toml` says why: binary size), so an `SdkConfig` without
//! this client has none and every call fails with "no HTTP client".

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// An HTTPS client trusting the platform's root certificates (the Lambda
/// image's), with the SDK's connection pool and its connect and read
/// timeouts as each `SdkConfig` sets them. Plain `http://` endpoints (moto,
/// the rehearsal's local stubs) go through the same client.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
