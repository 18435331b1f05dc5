//! `meter migrate`: rewrites a table of the previous layout (see `legacy`).

/// What a migration pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub users_visited: u64,
    pub users_changed: u64,
}
