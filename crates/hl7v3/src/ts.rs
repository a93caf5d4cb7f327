//! HL7 v3 time stamps (`TS`) as CP-IS uses them.

use time::{Date, Month, OffsetDateTime, UtcOffset};

/// The `ts` pattern of the HL7 datatypes schema:
/// `[0-9]{1,8}|([0-9]{9,14}|[0-9]{14}\.[0-9]+)([+\-][0-9]{1,4})?`.
pub(crate) fn is_ts(value: &str) -> bool {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if value.len() <= 8 && all_digits(value) {
        return true;
    }
    let (main, offset) = match value.find(['+', '-']) {
        Some(i) => (&value[..i], Some(&value[i + 1..])),
        None => (value, None),
    };
    if let Some(offset) = offset {
        if !(1..=4).contains(&offset.len()) || !all_digits(offset) {
            return false;
        }
    }
    match main.split_once('.') {
        None => (9..=14).contains(&main.len()) && all_digits(main),
        Some((whole, fraction)) => whole.len() == 14 && all_digits(whole) && all_digits(fraction),
    }
}

/// A plan date read from a `TS`.
pub(crate) struct PlanDate {
    /// `YYYY-MM-DD`, as the JSON route takes it.
    pub iso: String,
    /// `YYYYMMDDHHmm` (`TS.NHS.DateType1`), for an echo.
    pub twelve: String,
}

/// A plan date: 8 (`YYYYMMDD`), 12 (`…HHmm`) or 14 (`…HHmmss`) digits, the
/// longer two optionally with a `+HHMM`/`-HHMM` offset. The calendar date is
/// the one written (time and offset do not move it). Years 1900 to 2099 (the
/// schema's pattern).
pub(crate) fn plan_date(raw: &str) -> Option<PlanDate> {
    let (main, offset) = match raw.find(['+', '-']) {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (raw, None),
    };
    if !main.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&main.len()) {
        return None;
    }
    if let Some(offset) = offset {
        let ok = main.len() > 8
            && offset.len() == 4
            && offset.bytes().all(|b| b.is_ascii_digit())
            && offset[..2].parse::<u8>().ok()? <= 14
            && offset[2..].parse::<u8>().ok()? <= 59;
        if !ok {
            return None;
        }
    }
    let number = |range: std::ops::Range<usize>| main.get(range)?.parse::<u16>().ok();
    let year = number(0..4)?;
    if !(1900..=2099).contains(&year) {
        return None;
    }
    let month = Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let day = u8::try_from(number(6..8)?).ok()?;
    let date = Date::from_calendar_date(i32::from(year), month, day).ok()?;
    if main.len() >= 12 && (number(8..10)? > 23 || number(10..12)? > 59) {
        return None;
    }
    if main.len() == 14 && number(12..14)? > 59 {
        return None;
    }
    let twelve = if main.len() >= 12 {
        main[..12].to_owned()
    } else {
        format!("{main}0000")
    };
    Some(PlanDate {
        iso: format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        ),
        twelve,
    })
}

/// A time as CP-IS emits it: 14 digits in UTC and `+0000`.
pub(crate) fn instant(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}+0000",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_pattern() {
        for ok in [
            "2018",
            "20180704",
            "202501150000",
            "20250301020000+0000",
            "20250301020000.5-01",
        ] {
            assert!(is_ts(ok), "{ok}");
        }
        for bad in [
            "",
            "2018-07-04",
            "20250301020000+",
            "2025030102000000000",
            "abc",
            "20250301020000+00000",
        ] {
            assert!(!is_ts(bad), "{bad}");
        }
    }

    #[test]
    fn plan_dates_of_8_12_and_14_digits() {
        assert_eq!(plan_date("20250115").unwrap().iso, "2025-01-15");
        assert_eq!(plan_date("20250115").unwrap().twelve, "202501150000");
        assert_eq!(plan_date("202501152359").unwrap().iso, "2025-01-15");
        assert_eq!(
            plan_date("20250115235959+0100").unwrap().twelve,
            "202501152359"
        );
        for bad in [
            "20250230",
            "2025011",
            "202501152460",
            "20250115+0000",
            "18990101",
            "2025-01-15",
            "202501150000+1",
        ] {
            assert!(plan_date(bad).is_none(), "{bad}");
        }
    }
}
