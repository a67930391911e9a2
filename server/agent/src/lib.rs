//! Redline's engine: tasks, the agent loop, model clients and tools.
//!
//! Every front end (CLI, LSP, Office, ACP) drives the agent through
//! [`engine::Engine`]; the model and the sandbox are traits so every test runs
//! offline against the mock model server.

pub mod model;
