//! Reads one candidate NHS number a line on stdin and prints this crate's
//! verdict for each, one a line: `valid`, or the error's name
//! (`WrongShape`, `CheckDigit`, `Placeholder`). Used by
//! `tests/nhs_number_differential.py` to compare `NhsNumber::parse` with an
//! independent implementation; prints nothing of the input.

use std::io::{BufRead, Write};

use cpis_domain::NhsNumber;

fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let verdict = match NhsNumber::parse(&line?) {
            Ok(_) => "valid".to_owned(),
            Err(error) => format!("{error:?}"),
        };
        writeln!(out, "{verdict}")?;
    }
    out.flush()
}
