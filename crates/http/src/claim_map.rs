//! How an OpenID Connect issuer's verified claims become the claims
//! contract's [`CallerClaims`] (docs/claims.md), so that a portal sign-in
//! yields exactly the principal an API token with those claims yields.
//!
//! Each field of the contract is read from a source; by default each from
//! the claim of its own name (an issuer that mints the contract's claims,
//! like the stack's Cognito, needs no mapping). An issuer whose names
//! differ is mapped field by field, in one setting
//! (`--oidc-claims` / `CPIS_OIDC_CLAIMS`): comma-separated `FIELD=SOURCE`,
//! where SOURCE is
//! - `claim:NAME`: the top-level claim NAME (a string);
//! - `pointer:/a/0/b`: a JSON pointer (RFC 6901) into the claims;
//! - `value:TEXT`: this text for everyone who signs in (a council's own
//!   identity provider: `role=value:council,ods_code=value:E09000033`);
//! - `cis2-role:NAME`: NHS CIS2's selected role: the entry of
//!   `nhsid_nrbac_roles` (UserInfo, scope `nationalrbacaccess`) whose
//!   `person_roleid` is the ID token's `selected_roleid` (scope
//!   `selectedrole`), its field NAME (e.g. `org_code`, `activity_codes`).
//!
//! A source that gives a list gives, for `rbac`, the first of the contract's
//! activities found in it (`B0107` before `B0170`: plan details before the
//! bare fact of a plan); for any other field a list is refused. A field
//! whose source is missing is absent, and [`CallerClaims::principal`] then
//! refuses what the contract requires.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::auth::CallerClaims;

/// The contract's fields, in the order a mapping is written.
pub const FIELDS: &[&str] = &[
    "sub",
    "role",
    "ods_code",
    "rbac",
    "org_name",
    "setting",
    "job_role",
    "job_role_name",
];

/// The activities the contract knows, in the order a list is searched.
const RBAC_PREFERENCE: &[&str] = &["B0107", "B0170"];

/// Where one field comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Claim(String),
    Pointer(String),
    Value(String),
    Cis2Role(String),
}

/// The mapping of one issuer's claims: a source for each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMap {
    sources: BTreeMap<&'static str, Source>,
}

impl Default for ClaimMap {
    /// Each field from the claim of its own name.
    fn default() -> Self {
        Self {
            sources: FIELDS
                .iter()
                .map(|f| (*f, Source::Claim((*f).to_owned())))
                .collect(),
        }
    }
}

/// Why a mapping setting was refused (names the part, never a claim value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the claim mapping {0}")]
pub struct ClaimMapError(String);

impl ClaimMap {
    /// Parses `FIELD=SOURCE[,FIELD=SOURCE…]` over the default mapping.
    /// Empty means the default.
    pub fn parse(spec: &str) -> Result<Self, ClaimMapError> {
        let mut map = Self::default();
        let mut seen = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, source) = part
                .split_once('=')
                .ok_or_else(|| ClaimMapError(format!("part {part:?} is not FIELD=SOURCE")))?;
            let field = FIELDS.iter().find(|f| **f == field.trim()).ok_or_else(|| {
                ClaimMapError(format!(
                    "names {:?}, not one of {}",
                    field.trim(),
                    FIELDS.join(", ")
                ))
            })?;
            if seen.contains(field) {
                return Err(ClaimMapError(format!("gives {field} twice")));
            }
            seen.push(field);
            let source = match source.trim().split_once(':') {
                Some(("claim", name)) if !name.is_empty() => Source::Claim(name.to_owned()),
                Some(("pointer", p)) if p.starts_with('/') => Source::Pointer(p.to_owned()),
                Some(("value", text)) if !text.is_empty() => Source::Value(text.to_owned()),
                Some(("cis2-role", name)) if !name.is_empty() => Source::Cis2Role(name.to_owned()),
                _ => {
                    return Err(ClaimMapError(format!(
                        "source for {field} is not claim:NAME, pointer:/PATH, value:TEXT or cis2-role:NAME"
                    )))
                }
            };
            map.sources.insert(field, source);
        }
        Ok(map)
    }

    /// The contract's claims from an issuer's verified claims.
    pub fn caller(&self, claims: &serde_json::Map<String, Value>) -> CallerClaims {
        let field = |name: &str| -> Option<String> {
            let value = match self.sources.get(name)? {
                Source::Value(text) => return Some(text.clone()),
                Source::Claim(claim) => claims.get(claim)?,
                Source::Pointer(pointer) => {
                    let mut whole = Value::Object(claims.clone());
                    return one(name, whole.pointer_mut(pointer).map(Value::take).as_ref());
                }
                Source::Cis2Role(key) => cis2_selected_role(claims)?.get(key)?,
            };
            one(name, Some(value))
        };
        CallerClaims {
            sub: field("sub").unwrap_or_default(),
            role: field("role").unwrap_or_default(),
            ods_code: field("ods_code").unwrap_or_default(),
            rbac: field("rbac"),
            org_name: field("org_name"),
            setting: field("setting"),
            job_role: field("job_role"),
            job_role_name: field("job_role_name"),
        }
    }
}

/// A field's value: a string, or (rbac only) the preferred activity in a list.
fn one(field: &str, value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) if field == "rbac" => RBAC_PREFERENCE
            .iter()
            .find(|code| items.iter().any(|i| i.as_str() == Some(code)))
            .map(|code| (*code).to_owned()),
        _ => None,
    }
}

/// CIS2's selected role: the `nhsid_nrbac_roles` entry whose
/// `person_roleid` is `selected_roleid`.
fn cis2_selected_role(
    claims: &serde_json::Map<String, Value>,
) -> Option<&serde_json::Map<String, Value>> {
    let selected = claims.get("selected_roleid")?.as_str()?;
    claims
        .get("nhsid_nrbac_roles")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find(|role| role.get("person_roleid").and_then(Value::as_str) == Some(selected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_domain::Principal;
    use serde_json::json;

    fn map(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn by_default_the_contracts_own_names() {
        let claims = map(
            json!({"sub": "duty-1", "role": "council", "ods_code": "E09000033",
                                 "iss": "x", "extra": 1}),
        );
        let caller = ClaimMap::default().caller(&claims);
        assert!(matches!(caller.principal(), Ok(Principal::Council { .. })));
        assert_eq!(ClaimMap::parse("").unwrap(), ClaimMap::default());
    }

    #[test]
    fn a_councils_own_provider_with_fixed_role_and_code() {
        let m = ClaimMap::parse("role=value:council, ods_code=value:E09000033, sub=claim:email")
            .unwrap();
        let caller = m.caller(&map(json!({"sub": "abc", "email": "duty@council.example",
                                           "role": "clinician", "ods_code": "E06000001"})));
        let Ok(Principal::Council {
            authority,
            client_id,
        }) = caller.principal()
        else {
            panic!("{caller:?}");
        };
        assert_eq!(
            authority.as_str(),
            "E09000033",
            "the fixed value, not the token's"
        );
        assert_eq!(client_id, "duty@council.example");
    }

    #[test]
    fn cis2s_selected_role_from_userinfo() {
        let m = ClaimMap::parse(
            "sub=claim:uid,role=value:clinician,ods_code=cis2-role:org_code,\
             rbac=cis2-role:activity_codes,org_name=cis2-role:org_name,\
             setting=value:emergency-department,job_role=pointer:/job/code,\
             job_role_name=pointer:/job/name",
        )
        .unwrap();
        let claims = map(json!({
            "sub": "910000000001", "uid": "555001", "selected_roleid": "r2",
            "job": {"code": "R0110", "name": "Specialist Registrar"},
            "nhsid_nrbac_roles": [
                {"person_roleid": "r1", "org_code": "RX9", "org_name": "Elsewhere", "activity_codes": ["B0107"]},
                {"person_roleid": "r2", "org_code": "RJ1", "org_name": "St Example's Hospital",
                 "activity_codes": ["B0264", "B0170", "B0107"]}
            ]
        }));
        let caller = m.caller(&claims);
        assert_eq!(caller.ods_code, "RJ1", "the selected role's, not the first");
        assert_eq!(caller.rbac.as_deref(), Some("B0107"), "plan details first");
        let Ok(Principal::Clinician(c)) = caller.principal() else {
            panic!("{caller:?}");
        };
        assert_eq!(c.user_id, "555001");
        assert!(c.job_role.is_some());
        // No role selected, or one not among the roles: no organisation.
        let mut none = claims.clone();
        none.insert("selected_roleid".into(), json!("r9"));
        assert!(m.caller(&none).principal().is_err());
        none.remove("selected_roleid");
        assert!(m.caller(&none).principal().is_err());
    }

    #[test]
    fn lists_numbers_and_objects_are_not_text() {
        let claims = map(json!({"sub": ["a"], "role": 7, "ods_code": {"x": 1},
                                 "rbac": ["B0264"]}));
        let caller = ClaimMap::default().caller(&claims);
        assert_eq!(
            (
                caller.sub.as_str(),
                caller.role.as_str(),
                caller.ods_code.as_str()
            ),
            ("", "", "")
        );
        assert_eq!(
            caller.rbac, None,
            "no activity of the contract's in the list"
        );
    }

    #[test]
    fn bad_mappings_are_refused() {
        for bad in [
            "role",
            "colour=value:red",
            "role=value:",
            "role=council",
            "role=claim:",
            "ods_code=pointer:x",
            "role=value:council,role=value:clinician",
            "role=env:HOME",
        ] {
            assert!(ClaimMap::parse(bad).is_err(), "{bad}");
        }
    }
}
