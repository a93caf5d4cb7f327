//! The shared conformance suite, run against the DynamoDB store on moto
//! server: every test on two tables of its own.

cpis_conformance::conformance_suite!(dynamodb, cpis_aws::moto::fresh_store());

// The portal's ports (sessions, sign-in tickets, check results, upload history).
cpis_conformance::portal_conformance_suite!(dynamodb_portal, cpis_aws::moto::fresh_store());
