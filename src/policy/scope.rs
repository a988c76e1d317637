//! Token scopes and their grammar.
//!
//! ```text
//! scope      = "account" | "env:" name | "deployment:" name "@" name
//! name       = [A-Za-z0-9] [A-Za-z0-9._-]{0,62}
//! ```
//!
//! Scopes nest: `account` covers every environment and deployment, `env:prod` covers
//! `env:prod` and every `deployment:<agent>@prod`, and a deployment scope covers only itself.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Account,
    Env(String),
    Deployment { agent: String, env: String },
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "invalid scope {0:?}: expected `account`, `env:<name>` or `deployment:<agent>@<env>` (names: letters, digits, `.`, `_`, `-`, up to 63 characters)"
)]
pub struct ScopeError(pub String);

fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ScopeError(s.to_string());
        if s == "account" {
            return Ok(Self::Account);
        }
        if let Some(name) = s.strip_prefix("env:") {
            return valid_name(name).then(|| Self::Env(name.to_string())).ok_or_else(err);
        }
        if let Some(rest) = s.strip_prefix("deployment:") {
            let (agent, env) = rest.split_once('@').ok_or_else(err)?;
            if valid_name(agent) && valid_name(env) {
                return Ok(Self::Deployment { agent: agent.to_string(), env: env.to_string() });
            }
        }
        Err(err())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Account => f.write_str("account"),
            Self::Env(e) => write!(f, "env:{e}"),
            Self::Deployment { agent, env } => write!(f, "deployment:{agent}@{env}"),
        }
    }
}

impl Scope {
    /// Whether holding `self` grants `required`.
    pub fn covers(&self, required: &Scope) -> bool {
        match (self, required) {
            (Self::Account, _) => true,
            (Self::Env(a), Self::Env(b)) => a == b,
            (Self::Env(a), Self::Deployment { env, .. }) => a == env,
            (Self::Deployment { .. }, Self::Deployment { .. }) => self == required,
            _ => false,
        }
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Scope {
        x.parse().unwrap()
    }

    #[test]
    fn grammar_accepts_the_three_forms_and_round_trips() {
        for ok in ["account", "env:prod", "env:eu-west_1.a", "deployment:billing@prod"] {
            assert_eq!(s(ok).to_string(), ok);
        }
    }

    #[test]
    fn grammar_rejects_everything_else() {
        for bad in [
            "",
            "Account",
            "env:",
            "env:-x",
            "env:a b",
            "env:prod\n",
            "deployment:a",
            "deployment:@prod",
            "deployment:a@",
            "deployment:a@b@c",
            "env:é",
            "envs:prod",
            &format!("env:{}", "a".repeat(64)),
        ] {
            assert!(bad.parse::<Scope>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn scopes_nest() {
        assert!(s("account").covers(&s("deployment:a@prod")));
        assert!(s("env:prod").covers(&s("env:prod")));
        assert!(s("env:prod").covers(&s("deployment:a@prod")));
        assert!(!s("env:prod").covers(&s("env:staging")));
        assert!(!s("env:prod").covers(&s("account")));
        assert!(s("deployment:a@prod").covers(&s("deployment:a@prod")));
        assert!(!s("deployment:a@prod").covers(&s("deployment:b@prod")));
        assert!(!s("deployment:a@prod").covers(&s("env:prod")));
    }
}
