//! Conversions from LSP types to Redline's: positions (in the negotiated
//! encoding), URIs to paths, the client's capabilities, command arguments.

use std::path::PathBuf;

use redline_core::document::{self, PositionEncoding};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower_lsp_server::ls_types::{
    ClientCapabilities, InitializeParams, PositionEncodingKind, ResourceOperationKind, Uri,
};

use crate::{Error, Result};

pub fn position(position: tower_lsp_server::ls_types::Position) -> document::Position {
    document::Position::new(position.line, position.character)
}

pub fn range(range: tower_lsp_server::ls_types::Range) -> document::Range {
    document::Range::new(position(range.start), position(range.end))
}

/// The file behind a `file:` URI.
pub fn file_path(uri: &Uri) -> Result<PathBuf> {
    if !uri.scheme().as_str().eq_ignore_ascii_case("file") {
        return Err(Error::NotAFile {
            uri: uri.as_str().to_owned(),
        });
    }
    uri.to_file_path()
        .map(|path| path.into_owned())
        .ok_or_else(|| Error::NotAFile {
            uri: uri.as_str().to_owned(),
        })
}

/// The position encoding to use: the client's first choice among those we
/// support (all three), UTF-16 when it offers none (LSP's default).
pub fn position_encoding(capabilities: &ClientCapabilities) -> PositionEncoding {
    let offered = capabilities
        .general
        .as_ref()
        .and_then(|general| general.position_encodings.as_ref());
    offered
        .into_iter()
        .flatten()
        .find_map(encoding_of)
        .unwrap_or(PositionEncoding::Utf16)
}

fn encoding_of(kind: &PositionEncodingKind) -> Option<PositionEncoding> {
    match kind.as_str() {
        "utf-8" => Some(PositionEncoding::Utf8),
        "utf-16" => Some(PositionEncoding::Utf16),
        "utf-32" => Some(PositionEncoding::Utf32),
        _ => None,
    }
}

/// What the client can do, as far as delivering proposals is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientFeatures {
    /// `workspace.workspaceEdit.changeAnnotationSupport` with
    /// `documentChanges`: proposals go out as one annotated edit.
    pub change_annotations: bool,
    pub document_changes: bool,
    pub create_files: bool,
    pub rename_files: bool,
    pub delete_files: bool,
    pub work_done_progress: bool,
    pub code_lens_refresh: bool,
    pub watched_files_dynamic: bool,
    pub show_message_actions: bool,
}

pub fn client_features(params: &InitializeParams) -> ClientFeatures {
    let capabilities = &params.capabilities;
    let workspace = capabilities.workspace.as_ref();
    let edit = workspace.and_then(|w| w.workspace_edit.as_ref());
    let operations = edit
        .and_then(|e| e.resource_operations.clone())
        .unwrap_or_default();
    // Neovim (0.7 to 0.11) applies `documentChanges` and advertises
    // `resourceOperations` without `documentChanges: true`; resource
    // operations only exist inside `documentChanges`, so either says yes.
    let document_changes =
        edit.and_then(|e| e.document_changes).unwrap_or(false) || !operations.is_empty();
    ClientFeatures {
        change_annotations: document_changes
            && edit
                .and_then(|e| e.change_annotation_support.as_ref())
                .is_some(),
        document_changes,
        create_files: document_changes && operations.contains(&ResourceOperationKind::Create),
        rename_files: document_changes && operations.contains(&ResourceOperationKind::Rename),
        delete_files: document_changes && operations.contains(&ResourceOperationKind::Delete),
        work_done_progress: capabilities
            .window
            .as_ref()
            .and_then(|w| w.work_done_progress)
            .unwrap_or(false),
        code_lens_refresh: workspace
            .and_then(|w| w.code_lens.as_ref())
            .and_then(|c| c.refresh_support)
            .unwrap_or(false),
        watched_files_dynamic: workspace
            .and_then(|w| w.did_change_watched_files.as_ref())
            .and_then(|c| c.dynamic_registration)
            .unwrap_or(false),
        show_message_actions: capabilities
            .window
            .as_ref()
            .and_then(|w| w.show_message.as_ref())
            .is_some()
            || capabilities.window.is_none(),
    }
}

/// The granted roots: the workspace folders, else the root URI.
pub fn workspace_roots(params: &InitializeParams) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = params
        .workspace_folders
        .iter()
        .flatten()
        .filter_map(|folder| file_path(&folder.uri).ok())
        .collect();
    #[allow(deprecated)]
    if roots.is_empty()
        && let Some(uri) = &params.root_uri
        && let Ok(path) = file_path(uri)
    {
        roots.push(path);
    }
    roots
}

/// The single object argument of a `redline.*` command.
pub fn command_argument<T: DeserializeOwned>(command: &str, arguments: Vec<Value>) -> Result<T> {
    let bad = |message: String| Error::BadArguments {
        command: command.to_owned(),
        message,
    };
    let first = arguments
        .into_iter()
        .next()
        .ok_or_else(|| bad("expected one object argument, got none".into()))?;
    serde_json::from_value(first).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_encoding_is_the_clients_first_supported_choice() {
        let check = |offered: Option<Vec<&str>>, expect: PositionEncoding| {
            let mut capabilities = ClientCapabilities::default();
            if let Some(offered) = offered {
                capabilities.general =
                    Some(tower_lsp_server::ls_types::GeneralClientCapabilities {
                        position_encodings: Some(
                            offered
                                .into_iter()
                                .map(|s| PositionEncodingKind::from(s.to_owned()))
                                .collect(),
                        ),
                        ..Default::default()
                    });
            }
            assert_eq!(position_encoding(&capabilities), expect);
        };
        check(None, PositionEncoding::Utf16);
        check(Some(vec![]), PositionEncoding::Utf16);
        check(Some(vec!["utf-8", "utf-16"]), PositionEncoding::Utf8);
        check(Some(vec!["utf-32"]), PositionEncoding::Utf32);
        check(Some(vec!["latin-1", "utf-16"]), PositionEncoding::Utf16);
    }

    #[test]
    fn only_file_uris_are_files() {
        let check = |uri: &str, expect: Option<&str>| {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(
                file_path(&uri)
                    .ok()
                    .map(|p| p.display().to_string())
                    .as_deref(),
                expect
            );
        };
        check("file:///tmp/a%20b.rs", Some("/tmp/a b.rs"));
        check("untitled:Untitled-1", None);
        check("https://example.com/a.rs", None);
    }
}
