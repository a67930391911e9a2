//! Redline's engine: tasks, the agent loop, model clients and tools.
//!
//! Every front end (CLI, LSP, Office, ACP) drives the agent through
//! [`engine::Engine`]; the model and the sandbox are traits so every test runs
//! offline against the mock model server.

mod agent_loop;
mod commands;
pub mod config;
pub mod engine;
pub mod model;
pub mod prompt;
pub mod router;
mod sandbox_job;
pub mod task;
pub mod tools;
pub mod workspace;
