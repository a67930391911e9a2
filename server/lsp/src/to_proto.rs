//! Conversions from Redline's types to LSP: positions, diagnostics for
//! pending hunks, code actions and lenses, workspace edits, progress, and
//! the mapping of our errors to JSON-RPC errors.

use std::collections::HashMap;
use std::path::Path;

use redline_core::document::{self, PositionEncoding};
use redline_core::proposal::{ChangeKind, HunkId};
use serde_json::{Value, json};
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::{
    self as lsp, AnnotatedTextEdit, ChangeAnnotation, CodeAction, CodeActionKind, CodeLens,
    Command, CreateFile, CreateFileOptions, DeleteFile, DeleteFileOptions, Diagnostic,
    DiagnosticSeverity, DocumentChangeOperation, DocumentChanges, NumberOrString, OneOf,
    OptionalVersionedTextDocumentIdentifier, PositionEncodingKind, RenameFile, ResourceOp,
    TextDocumentEdit, TextEdit, Uri, WorkspaceEdit,
};

use crate::Error;
use crate::review::PlacedHunk;

pub fn position(position: document::Position) -> lsp::Position {
    lsp::Position::new(position.line, position.character)
}

pub fn range(start: document::Position, end: document::Position) -> lsp::Range {
    lsp::Range::new(position(start), position(end))
}

pub fn encoding_kind(encoding: PositionEncoding) -> PositionEncodingKind {
    match encoding {
        PositionEncoding::Utf8 => PositionEncodingKind::UTF8,
        PositionEncoding::Utf16 => PositionEncodingKind::UTF16,
        PositionEncoding::Utf32 => PositionEncodingKind::UTF32,
    }
}

pub fn uri(path: &Path) -> Result<Uri, Error> {
    Uri::from_file_path(path).ok_or_else(|| Error::NotAFile {
        uri: path.display().to_string(),
    })
}

/// The source of every diagnostic Redline publishes.
pub const SOURCE: &str = "redline";

/// A pending hunk as a hint diagnostic; `data` names the task and hunk so
/// quick fixes can find it.
pub fn hunk_diagnostic(placed: &PlacedHunk) -> Diagnostic {
    let hunk = &placed.hunk;
    let what = match &placed.kind {
        ChangeKind::Create => format!("Redline proposes creating {}", placed.path),
        ChangeKind::Delete => format!("Redline proposes deleting {}", placed.path),
        ChangeKind::Rename { from } if hunk.kind == redline_core::proposal::HunkKind::Rename => {
            format!(
                "Redline proposes renaming {} to {}",
                from.as_str(),
                placed.path
            )
        }
        _ => format!(
            "Redline proposes: -{} +{} lines",
            hunk.old_lines, hunk.new_lines
        ),
    };
    let mut preview = String::new();
    for line in hunk.new_text.lines().take(12) {
        preview.push_str("\n+ ");
        preview.push_str(line);
    }
    if hunk.new_text.lines().count() > 12 {
        preview.push_str("\n+ …");
    }
    Diagnostic {
        range: range(placed.placement.start, placed.placement.display_end),
        severity: Some(DiagnosticSeverity::HINT),
        code: Some(NumberOrString::String("redline.hunk".into())),
        source: Some(SOURCE.into()),
        message: format!("{what}{preview}"),
        data: Some(json!({ "taskId": placed.task.0, "hunkId": hunk.id.0 })),
        ..Diagnostic::default()
    }
}

pub fn command(title: &str, command: &str, argument: Value) -> Command {
    Command {
        title: title.into(),
        command: command.into(),
        arguments: Some(vec![argument]),
    }
}

pub fn code_action(
    title: &str,
    kind: CodeActionKind,
    command: Command,
    diagnostics: Option<Vec<Diagnostic>>,
) -> CodeAction {
    CodeAction {
        title: title.into(),
        kind: Some(kind),
        diagnostics,
        command: Some(command),
        ..CodeAction::default()
    }
}

pub fn code_lens(placed: &PlacedHunk, title: &str, name: &str) -> CodeLens {
    let at = range(placed.placement.start, placed.placement.start);
    CodeLens {
        range: at,
        command: Some(command(
            title,
            name,
            json!({ "taskId": placed.task.0, "hunkId": placed.hunk.id.0 }),
        )),
        data: None,
    }
}

/// One piece of a workspace edit, for one hunk.
#[derive(Clone, Debug)]
pub enum EditOp {
    Text {
        uri: Uri,
        version: Option<i32>,
        start: document::Position,
        end: document::Position,
        new_text: String,
    },
    Create {
        uri: Uri,
    },
    Delete {
        uri: Uri,
    },
    Rename {
        from: Uri,
        to: Uri,
    },
}

#[derive(Clone, Debug)]
pub struct EditPart {
    pub hunk: HunkId,
    /// Shown in VS Code's refactor preview for the hunk.
    pub label: String,
    pub description: String,
    pub op: EditOp,
}

/// Assembles the parts, in order, into one workspace edit. With `annotate`
/// every part carries its hunk's change annotation, with
/// `needsConfirmation`, so the editor previews each hunk separately.
pub fn workspace_edit(parts: &[EditPart], annotate: bool, document_changes: bool) -> WorkspaceEdit {
    if !document_changes {
        let mut changes: HashMap<Uri, Vec<TextEdit>> = HashMap::new();
        for part in parts {
            if let EditOp::Text {
                uri,
                start,
                end,
                new_text,
                ..
            } = &part.op
            {
                changes
                    .entry(uri.clone())
                    .or_default()
                    .push(TextEdit::new(range(*start, *end), new_text.clone()));
            }
        }
        return WorkspaceEdit {
            changes: Some(changes),
            ..WorkspaceEdit::default()
        };
    }
    let annotation = |part: &EditPart| annotate.then(|| part.hunk.0.clone());
    let mut operations: Vec<DocumentChangeOperation> = Vec::new();
    for part in parts {
        match &part.op {
            EditOp::Text {
                uri,
                version,
                start,
                end,
                new_text,
            } => {
                let edit = TextEdit::new(range(*start, *end), new_text.clone());
                let edit = match annotation(part) {
                    Some(annotation_id) => OneOf::Right(AnnotatedTextEdit {
                        text_edit: edit,
                        annotation_id,
                    }),
                    None => OneOf::Left(edit),
                };
                // Edits of one document share one TextDocumentEdit: LSP
                // reads all of them against the same original text.
                if let Some(DocumentChangeOperation::Edit(last)) = operations.last_mut()
                    && &last.text_document.uri == uri
                {
                    last.edits.push(edit);
                    continue;
                }
                operations.push(DocumentChangeOperation::Edit(TextDocumentEdit {
                    text_document: OptionalVersionedTextDocumentIdentifier {
                        uri: uri.clone(),
                        version: *version,
                    },
                    edits: vec![edit],
                }));
            }
            EditOp::Create { uri } => operations.push(DocumentChangeOperation::Op(
                ResourceOp::Create(CreateFile {
                    uri: uri.clone(),
                    options: Some(CreateFileOptions {
                        overwrite: Some(false),
                        ignore_if_exists: Some(false),
                    }),
                    annotation_id: annotation(part),
                }),
            )),
            EditOp::Delete { uri } => operations.push(DocumentChangeOperation::Op(
                ResourceOp::Delete(DeleteFile {
                    uri: uri.clone(),
                    options: Some(DeleteFileOptions {
                        recursive: Some(false),
                        ignore_if_not_exists: Some(true),
                    }),
                    annotation_id: annotation(part),
                }),
            )),
            EditOp::Rename { from, to } => operations.push(DocumentChangeOperation::Op(
                ResourceOp::Rename(RenameFile {
                    old_uri: from.clone(),
                    new_uri: to.clone(),
                    options: None,
                    annotation_id: annotation(part),
                }),
            )),
        }
    }
    let change_annotations = annotate.then(|| {
        parts
            .iter()
            .map(|part| {
                (
                    part.hunk.0.clone(),
                    ChangeAnnotation {
                        label: part.label.clone(),
                        needs_confirmation: Some(true),
                        description: Some(part.description.clone()),
                    },
                )
            })
            .collect()
    });
    WorkspaceEdit {
        changes: None,
        document_changes: Some(DocumentChanges::Operations(operations)),
        change_annotations,
    }
}

/// Our errors as JSON-RPC errors: the one place codes are chosen.
pub fn jsonrpc_error(error: &Error) -> jsonrpc::Error {
    let code = match error {
        Error::UnknownDocument { .. }
        | Error::NotAFile { .. }
        | Error::Position { .. }
        | Error::BadArguments { .. }
        | Error::UnknownCommand(_)
        | Error::NoInstruction
        | Error::UnknownTask { .. }
        | Error::UnknownHunk { .. } => jsonrpc::ErrorCode::InvalidParams,
        // LSP's ContentModified: the text moved under the request.
        Error::OutOfSync { .. } | Error::StaleHunk { .. } => {
            jsonrpc::ErrorCode::ServerError(-32801)
        }
        Error::ClientCannot { .. }
        | Error::NotApplied { .. }
        | Error::Client { .. }
        | Error::Read { .. }
        | Error::Engine(_) => jsonrpc::ErrorCode::InternalError,
    };
    jsonrpc::Error {
        code,
        message: error.to_string().into(),
        data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotated_edits_group_by_document_and_carry_one_annotation_per_hunk() {
        let a: Uri = "file:///w/a.rs".parse().unwrap();
        let b: Uri = "file:///w/b.rs".parse().unwrap();
        let p = |line| document::Position::new(line, 0);
        let part = |hunk: &str, op: EditOp| EditPart {
            hunk: HunkId(hunk.into()),
            label: format!("hunk {hunk}"),
            description: "test".into(),
            op,
        };
        let parts = vec![
            part(
                "h1",
                EditOp::Text {
                    uri: a.clone(),
                    version: Some(3),
                    start: p(1),
                    end: p(2),
                    new_text: "x\n".into(),
                },
            ),
            part(
                "h2",
                EditOp::Text {
                    uri: a.clone(),
                    version: Some(3),
                    start: p(9),
                    end: p(9),
                    new_text: "y\n".into(),
                },
            ),
            part("h3", EditOp::Create { uri: b.clone() }),
            part(
                "h3",
                EditOp::Text {
                    uri: b,
                    version: None,
                    start: p(0),
                    end: p(0),
                    new_text: "new\n".into(),
                },
            ),
        ];
        let edit = serde_json::to_value(workspace_edit(&parts, true, true)).unwrap();
        let changes = edit["documentChanges"].as_array().unwrap();
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[0]["edits"].as_array().unwrap().len(), 2);
        assert_eq!(changes[0]["edits"][1]["annotationId"], "h2");
        assert_eq!(changes[1]["kind"], "create");
        assert_eq!(changes[1]["annotationId"], "h3");
        assert_eq!(edit["changeAnnotations"]["h1"]["needsConfirmation"], true);
        let plain = serde_json::to_value(workspace_edit(&parts[..2], false, true)).unwrap();
        assert!(plain.get("changeAnnotations").is_none());
        assert!(
            plain["documentChanges"][0]["edits"][0]
                .get("annotationId")
                .is_none()
        );
    }
}
