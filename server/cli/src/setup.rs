//! Builds an `Engine` for the CLI from config, env and the store.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use futures::future::BoxFuture;
use redline_agent::config::{Config, ProcessEnv, Provider};
use redline_agent::engine::{Engine, EngineOptions};
use redline_agent::model::anthropic::{AnthropicClient, AnthropicConfig};
use redline_agent::model::openai::{OpenAiClient, OpenAiConfig};
use redline_agent::model::{ModelClient, ModelError, ModelRequest, ModelResponse, StreamSink};
use redline_core::store::{Store, default_store_path};
use tokio_util::sync::CancellationToken;

/// What a command needs of the engine.
pub enum Needs {
    /// Starting tasks: a model must be configured.
    Model,
    /// Reviewing, applying, listing: no model calls.
    StoreOnly,
}

pub struct Opened {
    pub engine: Engine,
    pub sandbox_note: String,
}

pub fn load_config(folders: &[PathBuf]) -> anyhow::Result<Config> {
    let canonical: Vec<PathBuf> = folders
        .iter()
        .filter_map(|f| f.canonicalize().ok())
        .collect();
    Ok(Config::load(&canonical, &ProcessEnv)?)
}

pub fn open_engine(folders: &[PathBuf], needs: Needs) -> anyhow::Result<Opened> {
    let config = load_config(folders)?;
    let store_path = default_store_path()?;
    let store = Store::open(&store_path)?;
    let journal_dir = store_path
        .parent()
        .map(|dir| dir.join("journal"))
        .context("the store path has no parent directory")?;
    let model: Arc<dyn ModelClient> = match needs {
        Needs::Model => model_client(&config)?,
        Needs::StoreOnly => Arc::new(NoModel),
    };
    let (sandbox, sandbox_note) = match needs {
        Needs::Model => open_sandbox(&config)?,
        Needs::StoreOnly => (None, String::new()),
    };
    let engine = Engine::new(EngineOptions {
        config,
        store,
        journal_dir,
        model,
        sandbox,
        global_instructions: redline_core::instructions::default_global_file(),
    })?;
    Ok(Opened {
        engine,
        sandbox_note,
    })
}

/// The model client the config asks for; a missing key is a one-line error
/// naming the env var and the config file.
pub fn model_client(config: &Config) -> anyhow::Result<Arc<dyn ModelClient>> {
    let key = config.api_key.as_ref().map(|k| k.expose().to_owned());
    if config.requires_key() && key.is_none() {
        let file = redline_agent::config::user_config_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "redline.toml".into());
        anyhow::bail!(
            "no API key: set {} or `api_key` under [anthropic] in {file}",
            config.key_env_var()
        );
    }
    Ok(match config.provider {
        Provider::Anthropic => Arc::new(AnthropicClient::new(AnthropicConfig {
            base_url: config.anthropic_base_url.clone(),
            api_key: key.unwrap_or_default(),
            retry: config.retry.clone(),
            request_timeout: config.request_timeout,
            idle_timeout: config.idle_timeout,
            ..AnthropicConfig::default()
        })?),
        Provider::Openai => Arc::new(OpenAiClient::new(OpenAiConfig {
            base_url: config.openai_base_url.clone(),
            api_key: key,
            retry: config.retry.clone(),
            request_timeout: config.request_timeout,
            idle_timeout: config.idle_timeout,
        })?),
    })
}

fn open_sandbox(config: &Config) -> anyhow::Result<(Option<Arc<dyn redline_vm::Sandbox>>, String)> {
    match config.sandbox.as_str() {
        "none" => Ok((
            None,
            "sandbox off ([sandbox] backend = \"none\"): run_command unavailable".into(),
        )),
        backend => {
            let wanted = (backend != "auto").then(|| backend.to_owned());
            match redline_vm::open(&redline_vm::SandboxConfig {
                backend: wanted.clone(),
                staging_dir: None,
            }) {
                Ok(sandbox) => {
                    let name = sandbox.name();
                    Ok((Some(Arc::from(sandbox)), format!("sandbox: {name}")))
                }
                Err(e) if wanted.is_none() => Ok((
                    None,
                    format!(
                        "no sandbox works here ({e}): run_command unavailable; see `redline doctor`"
                    ),
                )),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// The model of an engine opened only to review and apply.
struct NoModel;

impl ModelClient for NoModel {
    fn send<'a>(
        &'a self,
        _request: &'a ModelRequest,
        _sink: StreamSink<'a>,
        _cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async {
            Err(ModelError::Network {
                url: String::new(),
                message: "this command does not talk to a model".into(),
            })
        })
    }
}

/// Asks the configured endpoint for its model list: any answer but a
/// refused key counts as reachable. Sends the key only to the configured URL.
pub async fn probe_model(config: &Config) -> (bool, String) {
    let (url, request) = match config.provider {
        Provider::Anthropic => {
            let url = format!(
                "{}/v1/models",
                config.anthropic_base_url.trim_end_matches('/')
            );
            let client = reqwest::Client::new();
            let mut request = client.get(&url).header("anthropic-version", "2023-06-01");
            if let Some(key) = &config.api_key {
                request = request.header("x-api-key", key.expose());
            }
            (url, request)
        }
        Provider::Openai => {
            let url = format!("{}/models", config.openai_base_url.trim_end_matches('/'));
            let client = reqwest::Client::new();
            let mut request = client.get(&url);
            if let Some(key) = &config.api_key {
                request = request.bearer_auth(key.expose());
            }
            (url, request)
        }
    };
    match request
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
    {
        Ok(response) if response.status().as_u16() == 401 => (
            false,
            format!("{url} answered, but the API key was rejected (HTTP 401)"),
        ),
        Ok(response) => (
            true,
            format!("{url} answered HTTP {}", response.status().as_u16()),
        ),
        Err(e) => (false, format!("cannot reach {url}: {e}")),
    }
}
