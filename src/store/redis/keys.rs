//! Key names for one deployment's prefix (the schema is in the module docs of [`super`]).

use crate::token::TokenId;

/// Key names for one prefix.
pub(super) struct Keys {
    pub(super) tag: String,
}

impl Keys {
    pub(super) fn token(&self, id: &TokenId) -> String {
        format!("{}{id}", self.token_prefix())
    }
    /// What every token hash key starts with (the principal deletion script derives token keys
    /// from the owner index with it; they carry the same hash tag, so the same slot).
    pub(super) fn token_prefix(&self) -> String {
        format!("{}:tok:", self.tag)
    }
    pub(super) fn index(&self) -> String {
        format!("{}:idx", self.tag)
    }
    pub(super) fn owner_index(&self, owner: &str) -> String {
        format!("{}:own:{owner}", self.tag)
    }
    pub(super) fn retired(&self) -> String {
        format!("{}:retired", self.tag)
    }
    pub(super) fn principal(&self, id: &str) -> String {
        format!("{}:pr:{id}", self.tag)
    }
    pub(super) fn audit(&self) -> String {
        format!("{}:audit", self.tag)
    }
    pub(super) fn channel(&self) -> String {
        format!("{}:inval", self.tag)
    }
    /// Written by the readiness check (expires after a minute).
    pub(super) fn probe(&self) -> String {
        format!("{}:probe", self.tag)
    }
    /// A token's rate-limit state and quota use (`take.lua`).
    pub(super) fn limiter(&self, id: &TokenId) -> String {
        format!("{}:lim:{id}", self.tag)
    }
}
