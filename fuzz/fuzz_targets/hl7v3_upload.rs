//! An HL7 v3 LA Upload file (`REPC_MT000002GB01`) through the parser, the
//! domain's `process_upload` on a fresh in-memory store, and back into an
//! acknowledgement: any bytes are either refused whole (CPF01, with a
//! location and an acknowledgement that renders, `-1` when the file id was
//! not read) or read into a batch the domain takes as it is, with one outcome
//! per plan, every CPR07 located by an XPath into the file, and the same
//! file again answered as a replay. No refusal names an NHS number.
#![no_main]

use std::sync::OnceLock;

use cpis_domain::{
    find_nhs_numbers, process_upload, AuthorityContact, OdsCode, UploadMode, VisibilityPolicy,
};
use cpis_hl7v3::{parse_upload, render_acknowledgement, render_file_rejection};
use cpis_store_memory::MemoryStore;
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|file: &[u8]| {
    let council = OdsCode::parse("E09000033").expect("a valid ODS code");
    let now = datetime!(2026-03-02 10:00 UTC);
    let parsed = match parse_upload(file) {
        Err(error) => {
            let text = error.to_string();
            assert!(find_nhs_numbers(&text).is_empty(), "an NHS number in: {text}");
            assert!(error.location.starts_with('/') || error.location.starts_with("byte offset"));
            let directory = AuthorityContact {
                ods_code: council,
                name: "Example Borough Council".to_owned(),
                office_hours_phone: "01632 960001".to_owned(),
                emergency_duty_phone: "01632 960002".to_owned(),
            };
            let xml = render_file_rejection(&error, &directory, now).expect("a CPF01 renders");
            assert!(xml.contains(r#"code="CPF01""#));
            if error.file_id.is_none() {
                assert!(xml.contains(r#"<id extension="-1"/>"#));
            }
            return;
        }
        Ok(parsed) => parsed,
    };
    let body = parsed.batch_json(UploadMode::Full);
    let store = MemoryStore::new();
    let policy = VisibilityPolicy::default();
    runtime().block_on(async {
        let first = process_upload(&store, &council, &body, now, &policy)
            .await
            .expect("the domain takes every batch the parser makes");
        let ack = &first.acknowledgement;
        assert_eq!(ack.records.len(), parsed.plan_count());
        let xml = render_acknowledgement(file, ack, now).expect("the acknowledgement renders");
        for location in xml.split("<location>").skip(1) {
            assert!(location.starts_with("/File/record["), "{location}");
        }
        let again = process_upload(&store, &council, &body, now, &policy)
            .await
            .expect("a replay");
        assert!(again.replayed);
        assert_eq!(&again.acknowledgement, ack);
    });
});
