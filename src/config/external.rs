//! `[desk] external_trunk` and `number_allow`: the checks on `tel:` desk members (issue 15
//! item 3). A number is dialled only when the config names it, through a named trunk, and only
//! when the allow-list admits it (the toll-fraud guard: a typo or an edited config cannot make
//! the line ring premium-rate or foreign numbers at the firm's cost).

use super::{Config, ConfigError};
use crate::bridge::{Member, is_allow_pattern, number_allowed};

impl Config {
    pub(super) fn validate_external_members(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key, value: &str, reason: String| ConfigError::Value {
            origin: origin.to_string(),
            key,
            value: value.to_string(),
            reason,
        };
        let d = &self.desk;
        if let Some(p) = d.number_allow.iter().find(|p| !is_allow_pattern(p)) {
            return Err(bad(
                "desk.number_allow",
                p,
                "expected an E.164 number (\"+15551234567\") or a prefix of one with at least \
                 one digit then * (\"+1555*\")"
                    .into(),
            ));
        }
        if !d.external_trunk.is_empty() && !self.trunks.iter().any(|t| t.name == d.external_trunk) {
            return Err(bad(
                "desk.external_trunk",
                &d.external_trunk,
                "not the name of a [[trunks]] entry".into(),
            ));
        }
        // Groups were checked before this runs; a broken one is reported there.
        let Ok(groups) = self.desk_groups() else {
            return Ok(());
        };
        for name in groups.names() {
            for m in groups.get(name).unwrap_or_default() {
                let Member::Number(n) = m else { continue };
                if d.external_trunk.is_empty() {
                    return Err(bad(
                        "desk.external_trunk",
                        "",
                        format!(
                            "desk group {name:?} has the external number {n}: set \
                             desk.external_trunk to the [[trunks]] entry to dial it through"
                        ),
                    ));
                }
                if !number_allowed(n, &d.number_allow) {
                    return Err(bad(
                        "desk.groups.members",
                        &format!("tel:{n}"),
                        format!(
                            "in group {name:?}: the number is not in desk.number_allow ({}); \
                             add it or its prefix (\"+1555*\") there if the line may call it",
                            if d.number_allow.is_empty() {
                                "empty: no external numbers allowed".to_string()
                            } else {
                                d.number_allow.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const TRUNK: &str = r#"
[[trunks]]
name = "carrier"
registrar = "sip:192.0.2.10:5070"
username = "acct"
password = "hunter2"
register = false
"#;

    fn err(desk: &str) -> String {
        Config::from_str(&format!("{desk}\n{TRUNK}"), "t.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn an_allowed_tel_member_through_a_named_trunk_loads() {
        let c = Config::from_str(
            &format!(
                "[desk]\nexternal_trunk = \"carrier\"\nnumber_allow = [\"+1555*\"]\n\
                 [[desk.groups]]\nname = \"desk\"\nmembers = [\"tel:+15557654321\"]\n{TRUNK}"
            ),
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            c.desk_groups().unwrap().get("desk").unwrap(),
            &[crate::bridge::Member::Number("+15557654321".into())]
        );
    }

    #[test]
    fn a_number_table_member_reads_as_tel_and_is_held_to_the_allow_list() {
        let desk = "[desk]\nexternal_trunk = \"carrier\"\nnumber_allow = [\"+1555*\"]\n";
        let c = Config::from_str(
            &format!(
                "{desk}[[desk.groups]]\nname = \"desk\"\n\
                 members = [{{ number = \"+15557654321\" }}, \"tel:+15557654322\"]\n{TRUNK}"
            ),
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            c.desk_groups().unwrap().get("desk").unwrap(),
            &[
                crate::bridge::Member::Number("+15557654321".into()),
                crate::bridge::Member::Number("+15557654322".into())
            ]
        );
        let e = err(&format!(
            "{desk}[[desk.groups]]\nname = \"desk\"\nmembers = [{{ number = \"+19005550001\" }}]\n"
        ));
        assert!(
            e.contains("tel:+19005550001") && e.contains("desk.number_allow"),
            "{e}"
        );
        // A table with anything but `number` is refused, not ignored.
        let e = err(&format!(
            "{desk}[[desk.groups]]\nname = \"desk\"\nmembers = [{{ numbr = \"+15557654321\" }}]\n"
        ));
        assert!(e.contains("members"), "{e}");
    }

    #[test]
    fn a_tel_member_outside_the_allow_list_is_refused_naming_both_keys() {
        let groups = "[[desk.groups]]\nname = \"desk\"\nmembers = [\"tel:+19005550001\"]\n";
        let e = err(&format!(
            "[desk]\nexternal_trunk = \"carrier\"\nnumber_allow = [\"+1555*\"]\n{groups}"
        ));
        assert!(
            e.contains("desk.groups.members")
                && e.contains("tel:+19005550001")
                && e.contains("desk.number_allow"),
            "{e}"
        );
        // The default allow-list is empty: no external number at all.
        let e = err(&format!("[desk]\nexternal_trunk = \"carrier\"\n{groups}"));
        assert!(
            e.contains("desk.groups.members") && e.contains("empty"),
            "{e}"
        );
    }

    #[test]
    fn a_tel_member_needs_an_external_trunk_that_exists() {
        let groups = "[[desk.groups]]\nname = \"desk\"\nmembers = [\"tel:+15557654321\"]\n";
        let e = err(&format!("[desk]\nnumber_allow = [\"+1555*\"]\n{groups}"));
        assert!(e.contains("desk.external_trunk"), "{e}");
        let e = err("[desk]\nexternal_trunk = \"nope\"\n");
        assert!(
            e.contains("desk.external_trunk") && e.contains("[[trunks]]"),
            "{e}"
        );
        let e = err("[desk]\nnumber_allow = [\"+*\"]\n");
        assert!(e.contains("desk.number_allow"), "{e}");
        let e = err("[[desk.groups]]\nname = \"desk\"\nmembers = [\"tel:5557654321\"]\n");
        assert!(
            e.contains("desk.groups.members") && e.contains("E.164"),
            "{e}"
        );
    }
}
