//! The portal's static assets, from the binary (`include_bytes!`, built by
//! `scripts/build-portal-assets.sh` from the pinned `nhsuk-frontend`).
//! Each name carries a digest of its content, so each is cached a year
//! (`immutable`): a new build is a new URL.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[path = "asset_files.rs"]
mod files;

pub use files::NHSUK_FRONTEND_VERSION;

/// Where the portal serves its assets.
pub(crate) const PREFIX: &str = "/portal/assets/";

/// Marks a response as an immutable asset: [`crate::middleware::observe`]
/// then gives it a year's caching instead of `no-store`.
#[derive(Clone, Copy)]
pub(crate) struct Immutable;

/// The URL of the asset built from `logical` (e.g. `nhsuk-frontend.css`).
/// Every name asked for is in the build (`every_shell_asset_is_built`).
pub(crate) fn url(logical: &str) -> String {
    let served = files::FILES
        .iter()
        .find(|(name, ..)| *name == logical)
        .map_or(logical, |(_, served, ..)| served);
    format!("{PREFIX}{served}")
}

/// `GET /portal/assets/{file}`: the file, or the portal's 404.
pub(crate) async fn asset(
    file: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(file)) = file else {
        return super::page::not_found();
    };
    let Some((_, _, content_type, bytes)) =
        files::FILES.iter().find(|(_, served, ..)| *served == file)
    else {
        return super::page::not_found();
    };
    let mut response = (StatusCode::OK, *bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.extensions_mut().insert(Immutable);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_asset_is_built() {
        for logical in [
            "nhsuk-frontend.css",
            "portal.js",
            "favicon.ico",
            "favicon.svg",
        ] {
            assert!(
                files::FILES.iter().any(|(name, ..)| *name == logical),
                "{logical}: run scripts/build-portal-assets.sh"
            );
        }
        // The starter imports the bundle by its built name.
        let bundle = url("nhsuk-frontend.js");
        let starter = files::FILES
            .iter()
            .find(|(name, ..)| *name == "portal.js")
            .unwrap();
        let starter = std::str::from_utf8(starter.3).unwrap();
        assert!(starter.contains(bundle.trim_start_matches(PREFIX)));
        // Nothing from another origin: the CSP would refuse it.
        let css = files::FILES
            .iter()
            .find(|(name, ..)| *name == "nhsuk-frontend.css")
            .unwrap();
        let css = std::str::from_utf8(css.3).unwrap();
        assert!(!css.contains("https://") && !css.contains("http://"));
    }
}
