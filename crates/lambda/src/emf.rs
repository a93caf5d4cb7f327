//! CloudWatch's embedded metric format: the operators' signals, printed to
//! stdout as one JSON line each, so no `LogLevel` silences an alarm.

use time::OffsetDateTime;

/// One embedded-metric-format line in namespace `CPIS` with the one
/// dimension `Service=cpis`, the shape every cpis metric shares (the
/// stack's alarms name exactly this namespace and dimension).
/// `metrics`: (name, CloudWatch unit, value).
pub fn emf_line(now: OffsetDateTime, metrics: &[(&str, &str, serde_json::Value)]) -> String {
    let millis = now.unix_timestamp_nanos() / 1_000_000;
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": "CPIS",
                "Dimensions": [["Service"]],
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit, _)| serde_json::json!({ "Name": name, "Unit": unit }))
                    .collect::<Vec<_>>(),
            }],
        },
        "Service": "cpis",
    });
    for (name, _, value) in metrics {
        line[*name] = value.clone();
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_line_declares_each_metric_and_carries_its_value() {
        let line = emf_line(
            datetime!(2026-06-10 10:00 UTC),
            &[("A", "Count", 2.into()), ("B", "Seconds", 7.into())],
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["_aws"]["Timestamp"], 1_781_085_600_000_i64);
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CPIS");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Service"]]));
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([{"Name": "A", "Unit": "Count"}, {"Name": "B", "Unit": "Seconds"}])
        );
        assert_eq!(
            (&value["Service"], &value["A"], &value["B"]),
            (&"cpis".into(), &2.into(), &7.into())
        );
        assert!(!line.contains('\n'), "one line");
    }
}
