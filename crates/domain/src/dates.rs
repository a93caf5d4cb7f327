//! Calendar dates as text: `YYYY-MM-DD`, the one form a council sends, every
//! store keeps (it sorts as the dates do) and every page cursor carries.

use time::Date;

/// `YYYY-MM-DD`, nothing else.
pub fn parse_iso_date(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if text.len() != 10 {
        return None;
    }
    Date::parse(text, &format).ok()
}

/// `date` as `YYYY-MM-DD`, the form [`parse_iso_date`] reads back.
pub fn iso_date(date: Date) -> String {
    date.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn dates_round_trip_in_the_stored_form() {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        for day in [
            date!(0001 - 01 - 01),
            date!(0999 - 12 - 31),
            date!(2024 - 02 - 29),
            date!(9999 - 12 - 31),
        ] {
            let text = iso_date(day);
            assert_eq!(text, day.format(&format).unwrap());
            assert_eq!(parse_iso_date(&text), Some(day));
        }
    }

    #[test]
    fn only_the_ten_character_form_is_read() {
        for bad in [
            "2024-2-29",
            "2024-02-29T00:00",
            "20240229",
            "",
            "2024-02-30",
        ] {
            assert_eq!(parse_iso_date(bad), None, "{bad}");
        }
    }
}
