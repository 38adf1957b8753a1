//! `check`: judge a change to an access repository — the engine's verdict
//! ([`crate::engine`]) under its historical name. The rules come from the
//! **base** (the merge-base with main), never from the head.

pub use crate::engine::verdict::*;
pub use crate::engine::{FileChange, changed_paths};

/// The verdict of a commit on main ([`crate::engine::landing`]).
pub mod landing {
    pub use crate::engine::landing::*;
}
