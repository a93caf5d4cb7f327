//! The one strict JSON reader every request body goes through (both runtimes,
//! every route, uploads included).
//!
//! RFC 8259 §4 says member names "SHOULD be unique" and leaves the meaning of
//! a repeated name to the implementation; `serde_json::Value` keeps the last
//! one silently. In a safeguarding upload that changed what a batch meant
//! (`"mode":"delta"` then `"mode":"full"` ran as a full snapshot), so a
//! repeated name is refused here, at any depth, with a JSON pointer to it.
//!
//! Built on serde's own machinery (a [`DeserializeSeed`] that builds the
//! [`Value`] and tracks where it is), not a parser of our own: serde_json
//! still does all of the syntax, escapes, UTF-8 and its depth limit.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A member name given more than once in one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeated {
    /// Path to the repeated member (the object's path, then the name).
    pub path: Vec<Segment>,
}

impl Repeated {
    /// RFC 6901 pointer to the repeated member; see [`pointer`].
    pub fn pointer(&self) -> String {
        pointer(&self.path)
    }
}

/// Why a body is not strict JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all (or nested deeper than serde_json's limit of 128).
    /// Line and column only: serde_json's message can quote the input.
    #[error("the body is not valid JSON (line {line}, column {column})")]
    Syntax { line: usize, column: usize },
    /// A member name repeated in one object; `pointer` as [`pointer`] renders it.
    #[error("a member name is repeated in one object")]
    RepeatedMember { pointer: String },
}

/// A document read with every repeated member noted rather than refused;
/// each repeated member keeps its first value (the caller must refuse the
/// part of the document that holds it: which value was meant is unknowable).
#[derive(Debug, Clone, PartialEq)]
pub struct Lenient {
    pub value: Value,
    pub repeated: Vec<Repeated>,
}

/// Parses `bytes` as one JSON value, refusing any member name repeated in
/// one object, at any depth. Names are compared after unescaping
/// (`"a"` and `"\u0061"` are the same name).
///
/// Errors: [`JsonError::Syntax`] (line and column, never content) or
/// [`JsonError::RepeatedMember`] for the first repeat in document order.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    let Lenient { value, repeated } = parse_noting_repeats(bytes)?;
    match repeated.into_iter().next() {
        Some(first) => Err(JsonError::RepeatedMember {
            pointer: first.pointer(),
        }),
        None => Ok(value),
    }
}

/// Parses `bytes` as one JSON value, listing every repeated member (in
/// document order) instead of failing on it, for callers that refuse only the
/// part holding the repeat (an upload fails that one record). Syntax errors
/// still fail: [`JsonError::Syntax`].
pub fn parse_noting_repeats(bytes: &[u8]) -> Result<Lenient, JsonError> {
    let mut tracker = Tracker::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue {
        tracker: &mut tracker,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value))
    .map_err(|e| JsonError::Syntax {
        line: e.line(),
        column: e.column(),
    })?;
    Ok(Lenient {
        value,
        repeated: tracker.repeated,
    })
}

/// An RFC 6901 pointer for `path` that never echoes what a caller chose as a
/// name unless it is plain: a name could itself be personal data (an NHS
/// number or a child's name used as a key). See [`pointer_segment`].
///
/// Array indices are shown while the pointer holds fewer than ten digits in
/// all; past that an index is `_`, so that no pointer (say `/1/2/3/...` in
/// nested arrays) can read as an NHS number to a reader or a privacy scan.
pub fn pointer(path: &[Segment]) -> String {
    let mut out = String::new();
    let mut digits = 0;
    for segment in path {
        out.push('/');
        match segment {
            Segment::Key(name) => out.push_str(&pointer_segment(name)),
            Segment::Index(index) => {
                let index = index.to_string();
                digits += index.len();
                if digits < 10 {
                    out.push_str(&index);
                } else {
                    out.push('_');
                }
            }
        }
    }
    out
}

/// A member name as echoed in a pointer: itself when it is 1 to 64 of
/// `a-z` and `_` (every name the API defines), otherwise `_`.
pub fn pointer_segment(name: &str) -> String {
    let plain =
        (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain {
        name.to_owned()
    } else {
        "_".to_owned()
    }
}

#[derive(Default)]
struct Tracker {
    path: Vec<Segment>,
    repeated: Vec<Repeated>,
}

/// Builds a [`Value`], noting repeated member names on the way.
struct StrictValue<'a> {
    tracker: &'a mut Tracker,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never yields a non-finite float from text.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.tracker.path.push(Segment::Index(items.len()));
            let next = seq.next_element_seed(StrictValue {
                tracker: &mut *self.tracker,
            });
            self.tracker.path.pop();
            match next? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let repeat = object.contains_key(&name);
            self.tracker.path.push(Segment::Key(name));
            let value = map.next_value_seed(StrictValue {
                tracker: &mut *self.tracker,
            });
            if repeat {
                let path = self.tracker.path.clone();
                self.tracker.repeated.push(Repeated { path });
            }
            // The name comes back off the path: no copy per member.
            let popped = self.tracker.path.pop();
            let value = value?;
            if let (false, Some(Segment::Key(name))) = (repeat, popped) {
                object.insert(name, value);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn repeated_at(body: &str) -> Option<String> {
        match parse(body.as_bytes()) {
            Err(JsonError::RepeatedMember { pointer }) => Some(pointer),
            _ => None,
        }
    }

    #[test]
    fn repeated_member_names_are_refused_at_any_depth() {
        assert_eq!(
            repeated_at(r#"{"mode":"delta","mode":"full"}"#).as_deref(),
            Some("/mode")
        );
        assert_eq!(
            repeated_at(r#"{"records":[{"a":1},{"nhs_number":"x","nhs_number":"y"}]}"#).as_deref(),
            Some("/records/1/nhs_number")
        );
        assert_eq!(
            repeated_at(r#"{"a":{"b":[[{"c":1,"c":1}]]}}"#).as_deref(),
            Some("/a/b/0/0/c")
        );
        // Escapes are undone before comparing.
        assert_eq!(
            repeated_at(r#"{"mode":1,"\u006dode":2}"#).as_deref(),
            Some("/mode")
        );
    }

    #[test]
    fn repeated_member_pointer_never_echoes_a_chosen_name() {
        // A key that is an NHS number (or a name) is shown as `_`.
        assert_eq!(
            repeated_at(r#"{"9990000018":1,"9990000018":2}"#).as_deref(),
            Some("/_")
        );
        assert_eq!(
            repeated_at(r#"{"x":{"Ann Smith":1,"Ann Smith":2}}"#).as_deref(),
            Some("/x/_")
        );
    }

    #[test]
    fn a_pointer_never_holds_ten_digits() {
        // Ten nested arrays whose indices spell a valid synthetic number.
        let path: Vec<Segment> = "9990000018"
            .bytes()
            .map(|b| Segment::Index(usize::from(b - b'0')))
            .chain([Segment::Key("a".into())])
            .collect();
        let shown = pointer(&path);
        assert_eq!(shown, "/9/9/9/0/0/0/0/0/1/_/a");
        assert!(crate::find_nhs_numbers(&shown).is_empty());
        assert_eq!(
            pointer(&[Segment::Key("records".into()), Segment::Index(12345)]),
            "/records/12345"
        );
    }

    #[test]
    fn same_name_in_different_objects_is_not_a_repeat() {
        let body = r#"{"records":[{"nhs_number":"a"},{"nhs_number":"b"}],"n":{"nhs_number":1}}"#;
        assert_eq!(
            parse(body.as_bytes()).unwrap(),
            serde_json::from_str::<Value>(body).unwrap()
        );
    }

    #[test]
    fn strict_values_equal_serde_json_values_without_repeats() {
        let body = json!({
            "a": [1, -2, 3.5, 18446744073709551615u64, null, true, "\u{e9}"],
            "b": {"c": {}, "d": []},
        })
        .to_string();
        assert_eq!(
            parse(body.as_bytes()).unwrap(),
            serde_json::from_str::<Value>(&body).unwrap()
        );
    }

    #[test]
    fn every_repeat_is_noted_and_the_first_value_kept() {
        let lenient = parse_noting_repeats(br#"{"a":1,"a":2,"b":[{"c":1,"c":2,"c":3}]}"#).unwrap();
        assert_eq!(lenient.value, json!({"a": 1, "b": [{"c": 1}]}));
        let pointers: Vec<String> = lenient.repeated.iter().map(Repeated::pointer).collect();
        assert_eq!(pointers, ["/a", "/b/0/c", "/b/0/c"]);
    }

    #[test]
    fn syntax_errors_give_a_position_and_no_content() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\":9990000018,}",
            b"[1] [2]",
            b"\"\xff\"",
            b"{\"a\":1}x",
        ] {
            match parse(bad) {
                Err(error @ JsonError::Syntax { .. }) => {
                    assert!(!error.to_string().contains("9990000018"));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn deep_nesting_is_a_syntax_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(JsonError::Syntax { .. })
        ));
        let deep_objects = "{\"a\":".repeat(100_000);
        assert!(matches!(
            parse(deep_objects.as_bytes()),
            Err(JsonError::Syntax { .. })
        ));
    }
}
