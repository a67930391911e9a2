//! Configuration: `redline.toml` at user level, then at workspace level,
//! then environment variables.
//!
//! A workspace file comes from the folder being worked on, which may be an
//! untrusted checkout: it may tune models and budgets but never set where
//! requests go or which key they carry (a hostile repo could otherwise send
//! the user's API key to its own server). Those settings are user-only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::model::retry::RetryPolicy;

pub const DEFAULT_FAST_MODEL: &str = "claude-sonnet-4-6";
pub const DEFAULT_DEEP_MODEL: &str = "claude-opus-4-6";
pub const ANTHROPIC_KEY_ENV: &str = "ANTHROPIC_API_KEY";
pub const OPENAI_KEY_ENV: &str = "OPENAI_API_KEY";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "workspace config {path} may not set `{key}` (only your user config may choose where requests and keys go)"
    )]
    Forbidden { path: PathBuf, key: String },
    #[error("invalid value {value:?} for {name}: {message}")]
    Env {
        name: String,
        value: String,
        message: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    Anthropic,
    /// OpenAI-compatible chat completions (OpenAI, Ollama, llama.cpp, vLLM).
    Openai,
}

/// The effective configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub provider: Provider,
    pub fast_model: String,
    pub deep_model: String,
    pub max_output_tokens: u32,
    pub anthropic_base_url: String,
    pub openai_base_url: String,
    /// Never logged or printed; `Debug` of `Secret` is redacted.
    pub api_key: Option<Secret>,
    pub api_key_source: Option<String>,
    pub max_turns: u32,
    /// Stop after this many input + output tokens for one task.
    pub max_task_tokens: u64,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    /// Sandbox backend: `auto`, `namespaces` or `none` (no `run_command`).
    pub sandbox: String,
    pub command_timeout: Duration,
    /// Whether `run_command` runs freely, asks first, or is not offered.
    pub command_policy: CommandPolicy,
    /// Config files that were read, in order.
    pub sources: Vec<PathBuf>,
}

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            provider: Provider::Anthropic,
            fast_model: DEFAULT_FAST_MODEL.to_owned(),
            deep_model: DEFAULT_DEEP_MODEL.to_owned(),
            max_output_tokens: 8192,
            anthropic_base_url: "https://api.anthropic.com".to_owned(),
            openai_base_url: "http://localhost:11434/v1".to_owned(),
            api_key: None,
            api_key_source: None,
            max_turns: 50,
            max_task_tokens: 2_000_000,
            concurrency: 4,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(90),
            sandbox: "auto".to_owned(),
            command_timeout: Duration::from_secs(120),
            command_policy: CommandPolicy::Allow,
            sources: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    model: Option<ModelSection>,
    anthropic: Option<EndpointSection>,
    openai: Option<EndpointSection>,
    engine: Option<EngineSection>,
    sandbox: Option<SandboxSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    provider: Option<Provider>,
    fast: Option<String>,
    deep: Option<String>,
    max_output_tokens: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointSection {
    base_url: Option<String>,
    api_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineSection {
    max_turns: Option<u32>,
    max_task_tokens: Option<u64>,
    concurrency: Option<usize>,
    max_retries: Option<u32>,
    request_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SandboxSection {
    backend: Option<String>,
    command_timeout_secs: Option<u64>,
    commands: Option<CommandPolicy>,
}

/// Policy for running commands in the sandbox. Ordered from least to most
/// strict: when several files set it, the strictest wins (deny wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandPolicy {
    Allow,
    Ask,
    Deny,
}

/// Where the user config lives: `$REDLINE_CONFIG_DIR/redline.toml`, else the
/// platform config dir (`~/.config/redline/redline.toml` on Linux).
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("REDLINE_CONFIG_DIR") {
        return Some(PathBuf::from(dir).join("redline.toml"));
    }
    dirs::config_dir().map(|dir| dir.join("redline").join("redline.toml"))
}

/// The workspace config of a granted folder.
pub fn workspace_config_path(root: &Path) -> PathBuf {
    root.join(".redline").join("redline.toml")
}

/// Process environment, injectable for tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Config {
    /// Loads user config, then each root's workspace config, then env.
    pub fn load(roots: &[PathBuf], env: &dyn Env) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(path) = user_config_path() {
            config.merge_file(&path, false)?;
        }
        for root in roots {
            config.merge_file(&workspace_config_path(root), true)?;
        }
        config.merge_env(env)?;
        Ok(config)
    }

    fn merge_file(&mut self, path: &Path, workspace: bool) -> Result<(), ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    message: e.to_string(),
                });
            }
        };
        self.merge_text(path, &text, workspace)?;
        self.sources.push(path.to_owned());
        Ok(())
    }

    /// Merges one file's text (split out so tests need no files).
    pub fn merge_text(
        &mut self,
        path: &Path,
        text: &str,
        workspace: bool,
    ) -> Result<(), ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        let forbid = |key: &str| ConfigError::Forbidden {
            path: path.to_owned(),
            key: key.to_owned(),
        };
        if let Some(model) = file.model {
            if workspace && model.provider.is_some() {
                return Err(forbid("model.provider"));
            }
            if let Some(provider) = model.provider {
                self.provider = provider;
            }
            if let Some(fast) = model.fast {
                self.fast_model = fast;
            }
            if let Some(deep) = model.deep {
                self.deep_model = deep;
            }
            if let Some(max) = model.max_output_tokens {
                self.max_output_tokens = max;
            }
        }
        for (section, endpoint, is_anthropic) in [
            ("anthropic", file.anthropic, true),
            ("openai", file.openai, false),
        ] {
            let Some(endpoint) = endpoint else { continue };
            if workspace && endpoint.base_url.is_some() {
                return Err(forbid(&format!("{section}.base_url")));
            }
            if workspace && endpoint.api_key.is_some() {
                return Err(forbid(&format!("{section}.api_key")));
            }
            if let Some(url) = endpoint.base_url {
                validate_url(path, &url)?;
                if is_anthropic {
                    self.anthropic_base_url = url;
                } else {
                    self.openai_base_url = url;
                }
            }
            if let Some(key) = endpoint.api_key {
                let provider = if is_anthropic {
                    Provider::Anthropic
                } else {
                    Provider::Openai
                };
                if provider == self.provider || self.api_key.is_none() {
                    self.api_key = Some(Secret::new(key));
                    self.api_key_source = Some(format!("{} [{section}]", path.display()));
                }
            }
        }
        if let Some(engine) = file.engine {
            if let Some(v) = engine.max_turns {
                self.max_turns = v.max(1);
            }
            if let Some(v) = engine.max_task_tokens {
                self.max_task_tokens = v;
            }
            if let Some(v) = engine.concurrency {
                self.concurrency = v.max(1);
            }
            if let Some(v) = engine.max_retries {
                self.retry.max_attempts = v + 1;
            }
            if let Some(v) = engine.request_timeout_secs {
                self.request_timeout = Duration::from_secs(v.max(1));
            }
            if let Some(v) = engine.idle_timeout_secs {
                self.idle_timeout = Duration::from_secs(v.max(1));
            }
        }
        if let Some(sandbox) = file.sandbox {
            if let Some(backend) = sandbox.backend {
                if !matches!(backend.as_str(), "auto" | "namespaces" | "none") {
                    return Err(ConfigError::Parse {
                        path: path.to_owned(),
                        message: format!(
                            "unknown sandbox backend `{backend}` (expected auto, namespaces or none)"
                        ),
                    });
                }
                self.sandbox = backend;
            }
            if let Some(v) = sandbox.command_timeout_secs {
                self.command_timeout = Duration::from_secs(v.max(1));
            }
            if let Some(policy) = sandbox.commands {
                self.command_policy = self.command_policy.max(policy);
            }
        }
        Ok(())
    }

    fn merge_env(&mut self, env: &dyn Env) -> Result<(), ConfigError> {
        if let Some(provider) = env.var("REDLINE_PROVIDER") {
            self.provider = match provider.as_str() {
                "anthropic" => Provider::Anthropic,
                "openai" => Provider::Openai,
                _ => {
                    return Err(ConfigError::Env {
                        name: "REDLINE_PROVIDER".into(),
                        value: provider,
                        message: "expected `anthropic` or `openai`".into(),
                    });
                }
            };
        }
        if let Some(url) = env.var("ANTHROPIC_BASE_URL") {
            validate_env_url("ANTHROPIC_BASE_URL", &url)?;
            self.anthropic_base_url = url;
        }
        if let Some(url) = env.var("OPENAI_BASE_URL") {
            validate_env_url("OPENAI_BASE_URL", &url)?;
            self.openai_base_url = url;
        }
        let key_env = self.key_env_var();
        if let Some(key) = env.var(key_env) {
            self.api_key = Some(Secret::new(key));
            self.api_key_source = Some(format!("${key_env}"));
        }
        Ok(())
    }

    /// The environment variable that carries the key for the provider.
    pub fn key_env_var(&self) -> &'static str {
        match self.provider {
            Provider::Anthropic => ANTHROPIC_KEY_ENV,
            Provider::Openai => OPENAI_KEY_ENV,
        }
    }

    pub fn base_url(&self) -> &str {
        match self.provider {
            Provider::Anthropic => &self.anthropic_base_url,
            Provider::Openai => &self.openai_base_url,
        }
    }

    /// Local OpenAI-compatible servers need no key; Anthropic always does.
    pub fn requires_key(&self) -> bool {
        self.provider == Provider::Anthropic
    }
}

fn validate_url(path: &Path, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::Parse {
            path: path.to_owned(),
            message: format!("base_url `{url}` must start with http:// or https://"),
        })
    }
}

fn validate_env_url(name: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::Env {
            name: name.to_owned(),
            value: url.to_owned(),
            message: "must start with http:// or https://".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeEnv(Vec<(&'static str, &'static str)>);
    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn merge(text: &str, workspace: bool) -> Result<Config, String> {
        let mut config = Config::default();
        config
            .merge_text(Path::new("redline.toml"), text, workspace)
            .map(|()| config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn workspace_config_cannot_redirect_requests_or_keys() {
        let err = merge("[anthropic]\nbase_url = \"https://evil.example\"\n", true).unwrap_err();
        assert_eq!(
            err,
            "workspace config redline.toml may not set `anthropic.base_url` (only your user config may choose where requests and keys go)"
        );
        assert!(merge("[openai]\napi_key = \"x\"\n", true).is_err());
        assert!(merge("[model]\nprovider = \"openai\"\n", true).is_err());
        let mut strict = Config::default();
        strict
            .merge_text(Path::new("user"), "[sandbox]\ncommands = \"ask\"\n", false)
            .unwrap();
        strict
            .merge_text(Path::new("ws"), "[sandbox]\ncommands = \"allow\"\n", true)
            .unwrap();
        assert_eq!(
            strict.command_policy,
            CommandPolicy::Ask,
            "the stricter policy wins"
        );
        let ok = merge(
            "[model]\nfast = \"claude-haiku-4-5\"\n[engine]\nmax_turns = 7\n",
            true,
        )
        .unwrap();
        assert_eq!(
            (ok.fast_model.as_str(), ok.max_turns),
            ("claude-haiku-4-5", 7)
        );
    }

    #[test]
    fn corrupt_config_names_the_file_and_problem() {
        let err = merge("[model\nfast=1", false).unwrap_err();
        assert!(err.starts_with("invalid config redline.toml: "), "{err}");
        let err = merge("[engine]\nmax_turnz = 3\n", false).unwrap_err();
        assert!(err.contains("unknown field `max_turnz`"), "{err}");
        let err = merge("[sandbox]\nbackend = \"docker\"\n", false).unwrap_err();
        assert!(err.contains("unknown sandbox backend `docker`"), "{err}");
    }

    #[test]
    fn env_overrides_and_key_is_never_debug_printed() {
        let mut config = Config::default();
        config
            .merge_env(&FakeEnv(vec![
                ("ANTHROPIC_API_KEY", "sk-ant-secret"),
                ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
            ]))
            .unwrap();
        assert_eq!(config.base_url(), "http://127.0.0.1:9");
        assert_eq!(
            config.api_key.as_ref().map(Secret::expose),
            Some("sk-ant-secret")
        );
        assert!(!format!("{config:?}").contains("sk-ant-secret"));
        let err = Config::default()
            .merge_env(&FakeEnv(vec![("REDLINE_PROVIDER", "gemini")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"gemini\" for REDLINE_PROVIDER: expected `anthropic` or `openai`"
        );
    }
}
