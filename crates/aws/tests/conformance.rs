//! The shared conformance suite, run against the DynamoDB store on moto
//! server: every test on two tables of its own.

cpis_conformance::conformance_suite!(dynamodb, cpis_aws::moto::fresh_store());
