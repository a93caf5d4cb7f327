// Written by scripts/build-portal-assets.sh from nhsuk-frontend 10.6.1: do not edit.

/// The `nhsuk-frontend` version the assets were built from.
pub const NHSUK_FRONTEND_VERSION: &str = "10.6.1";

/// (logical name, served name, content type, bytes)
#[rustfmt::skip]
pub const FILES: &[(&str, &str, &str, &[u8])] = &[
    ("nhsuk-icon-arrow-down.svg", "nhsuk-icon-arrow-down.413e412e70e6.svg", "image/svg+xml", include_bytes!("../../assets/nhsuk-icon-arrow-down.413e412e70e6.svg")),
    ("nhsuk-icon-arrow-up-down.svg", "nhsuk-icon-arrow-up-down.e5b217ca77e1.svg", "image/svg+xml", include_bytes!("../../assets/nhsuk-icon-arrow-up-down.e5b217ca77e1.svg")),
    ("nhsuk-icon-arrow-up.svg", "nhsuk-icon-arrow-up.b8bee584537e.svg", "image/svg+xml", include_bytes!("../../assets/nhsuk-icon-arrow-up.b8bee584537e.svg")),
    ("nhsuk-icon-cross.svg", "nhsuk-icon-cross.694bdf45a657.svg", "image/svg+xml", include_bytes!("../../assets/nhsuk-icon-cross.694bdf45a657.svg")),
    ("nhsuk-frontend.css", "nhsuk-frontend.cc79629569aa.css", "text/css; charset=utf-8", include_bytes!("../../assets/nhsuk-frontend.cc79629569aa.css")),
    ("nhsuk-frontend.js", "nhsuk-frontend.ac4d3c251bdf.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/nhsuk-frontend.ac4d3c251bdf.js")),
    ("portal.js", "portal.05ad145f0c14.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/portal.05ad145f0c14.js")),
    ("favicon.ico", "favicon.b81a834019d2.ico", "image/x-icon", include_bytes!("../../assets/favicon.b81a834019d2.ico")),
    ("favicon.svg", "favicon.34cc838db72e.svg", "image/svg+xml", include_bytes!("../../assets/favicon.34cc838db72e.svg")),
];
