//! Redline's core: documents, proposals and their diffs, apply with undo,
//! instruction discovery and the store.
//!
//! Core computes and touches the user's files only through `apply`; it opens
//! no sockets and spawns no async tasks, so every front end and the engine
//! can rely on the same behaviour (see `docs/architecture.md`).

pub mod apply;
pub mod diff;
pub mod document;
pub mod hash;
pub mod instructions;
pub mod path;
pub mod proposal;
pub mod store;
pub mod syntax;
