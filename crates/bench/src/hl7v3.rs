//! Benchmark 5's input: the same council batch as [`crate::upload::batch`],
//! written as the LA Upload file (`REPC_MT000002GB01`) a council's case
//! system sends over MESH. Same plans, dates and local ids, so both paths
//! store the same rows; names and dates of birth are synthetic.

use std::fmt::Write;

use crate::{council_code, RECORDS_PER_UPLOAD};

/// The LA Upload file for batch `index` (council `index`, file id 1),
/// one record per child in `children`.
pub fn la_upload_file(index: usize, children: &[String]) -> Vec<u8> {
    let ods = council_code(index);
    let mut out = String::with_capacity(1_200 * children.len() + 800);
    // `write!` into a String cannot fail.
    let _ = write!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<File xmlns="urn:hl7-org:v3" xmlns:npfitlc="NPFIT:HL7:Localisation">
  <creationTime value="20260302020000+0000"/>
  <id extension="000001"/>
  <transmissionQuantity value="{}"/>
  <communicationFunctionSnd>
    <organisation>
      <id root="2.16.840.1.113883.2.1.3.2.4.19.1" extension="{ods}"/>
      <name>Benchmark Council {index}</name>
      <telecom use="WP" value="tel:+441632960001"/>
      <telecom use="EC" value="tel:+441632960002"/>
    </organisation>
  </communicationFunctionSnd>
"#,
        children.len()
    );
    for (i, nhs) in children.iter().enumerate() {
        let n = index * RECORDS_PER_UPLOAD + i;
        // As `crate::record`: the plan type and start date vary with n.
        let (kind, template) = match n % 4 {
            1 => ("lAC", "COCT_TP146100GB01#LACInformation"),
            _ => ("cPP", "COCT_TP146101GB01#CPPInformation"),
        };
        let element = template.replace('#', ".");
        let start = format!("2025{:02}{:02}0000", 1 + n % 12, 1 + n % 28);
        let _ = write!(
            out,
            r#"  <record>
    <CP-ISRecord>
      <pertinentInformation>
        <npfitlc:contentId root="2.16.840.1.113883.2.1.3.2.4.18.16" extension="{template}"/>
        <{element}>
          <component><{kind}StartDate><value value="{start}"/></{kind}StartDate></component>
        </{element}>
      </pertinentInformation>
      <subject>
        <npfitlc:contentId root="2.16.840.1.113883.2.1.3.2.4.18.16" extension="COCT_TP145101GB01#Child"/>
        <COCT_TP145101GB01.Child>
          <id root="2.16.840.1.113883.2.1.4.1" extension="{nhs}"/>
          <id root="2.16.840.1.113883.2.1.3.2.4.18.24" extension="CASE-{n}" assigningAuthorityName="{ods}:Benchmark Council {index}"/>
          <childPerson>
            <birthTime value="20180704"/>
            <name><given>Synthetic</given><family>Benchchild</family></name>
          </childPerson>
        </COCT_TP145101GB01.Child>
      </subject>
    </CP-ISRecord>
  </record>
"#
        );
    }
    out.push_str("</File>\n");
    out.into_bytes()
}
