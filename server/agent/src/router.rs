//! The model router: picks `fast` or `deep` for a task and says why.
//!
//! Like Cowork's 80/20 split, most tasks go to the fast tier; tasks that read
//! as broad or hard go deep. The reason is recorded with the task so the
//! choice is explainable, and any request may override it.

use redline_protocol::ModelTier;

use crate::config::{Config, Provider};

/// The model a task runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelChoice {
    pub model: String,
    pub tier: ModelTier,
    pub reason: String,
}

/// What the user asked for: a tier or an explicit model id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelRequestSpec {
    Tier(ModelTier),
    Id(String),
}

impl ModelRequestSpec {
    /// Parses `fast`, `deep`, `auto` or a model id.
    pub fn parse(text: &str) -> ModelRequestSpec {
        match text {
            "fast" => ModelRequestSpec::Tier(ModelTier::Fast),
            "deep" => ModelRequestSpec::Tier(ModelTier::Deep),
            "auto" | "" => ModelRequestSpec::Tier(ModelTier::Auto),
            id => ModelRequestSpec::Id(id.to_owned()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown model `{0}`: use fast, deep, auto or a claude-* model id (set provider = \"openai\" under [model] in redline.toml to use other ids with a local server)"
)]
pub struct UnknownModel(pub String);

/// Words that suggest a task needs the deep tier.
const DEEP_HINTS: &[&str] = &[
    "architecture",
    "architect",
    "redesign",
    "design",
    "refactor",
    "migrate",
    "migration",
    "debug",
    "race condition",
    "deadlock",
    "security",
    "vulnerab",
    "performance",
    "optimi",
    "whole project",
    "entire",
    "across",
    "every file",
    "concurrency",
];

pub struct RouteInput<'a> {
    pub prompt: &'a str,
    pub focus_lines: Option<usize>,
    pub folders: usize,
}

/// Chooses the model for a task.
pub fn route(
    config: &Config,
    requested: &ModelRequestSpec,
    input: &RouteInput<'_>,
) -> Result<ModelChoice, UnknownModel> {
    let choose = |tier: ModelTier, reason: String| {
        let model = match tier {
            ModelTier::Deep => config.deep_model.clone(),
            _ => config.fast_model.clone(),
        };
        ModelChoice {
            model,
            tier,
            reason,
        }
    };
    match requested {
        ModelRequestSpec::Id(id) => {
            let known = id == &config.fast_model || id == &config.deep_model;
            if config.provider == Provider::Anthropic && !known && !id.starts_with("claude-") {
                return Err(UnknownModel(id.clone()));
            }
            let tier = if id == &config.deep_model {
                ModelTier::Deep
            } else {
                ModelTier::Fast
            };
            Ok(ModelChoice {
                model: id.clone(),
                tier,
                reason: "model chosen by the request".into(),
            })
        }
        ModelRequestSpec::Tier(ModelTier::Fast) => {
            Ok(choose(ModelTier::Fast, "fast tier requested".into()))
        }
        ModelRequestSpec::Tier(ModelTier::Deep) => {
            Ok(choose(ModelTier::Deep, "deep tier requested".into()))
        }
        ModelRequestSpec::Tier(ModelTier::Auto) => {
            let lower = input.prompt.to_lowercase();
            if let Some(hint) = DEEP_HINTS.iter().find(|hint| lower.contains(*hint)) {
                return Ok(choose(
                    ModelTier::Deep,
                    format!("the request mentions `{hint}`"),
                ));
            }
            if input.prompt.split_whitespace().count() > 120 {
                return Ok(choose(
                    ModelTier::Deep,
                    "long, detailed request (> 120 words)".into(),
                ));
            }
            if input.focus_lines.is_some_and(|lines| lines > 400) {
                return Ok(choose(
                    ModelTier::Deep,
                    "large selection (> 400 lines)".into(),
                ));
            }
            if input.folders > 2 {
                return Ok(choose(
                    ModelTier::Deep,
                    "spans more than two folders".into(),
                ));
            }
            Ok(choose(
                ModelTier::Fast,
                "routine request: no sign it needs the deep tier".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(prompt: &str, requested: &str, expect: &str) {
        let input = RouteInput {
            prompt,
            focus_lines: None,
            folders: 1,
        };
        let got = match route(
            &Config::default(),
            &ModelRequestSpec::parse(requested),
            &input,
        ) {
            Ok(choice) => format!("{} ({})", choice.model, choice.reason),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn routes_explainably() {
        check(
            "fix the typo",
            "auto",
            "claude-sonnet-4-6 (routine request: no sign it needs the deep tier)",
        );
        check(
            "Refactor the parser",
            "auto",
            "claude-opus-4-6 (the request mentions `refactor`)",
        );
        check(
            "fix the typo",
            "deep",
            "claude-opus-4-6 (deep tier requested)",
        );
        check(
            "x",
            "claude-haiku-4-5",
            "claude-haiku-4-5 (model chosen by the request)",
        );
        check(
            "x",
            "gpt-9",
            "unknown model `gpt-9`: use fast, deep, auto or a claude-* model id (set provider = \"openai\" under [model] in redline.toml to use other ids with a local server)",
        );
    }
}
