//! Fixtures shared by the end-to-end tests.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Every file below `dir` as (relative path, bytes, permission bits), sorted,
/// so a test can assert a folder is byte- and mode-identical to before.
/// Panics on IO errors: it is for tests, where a panic is the report.
#[allow(clippy::expect_used)]
pub fn snapshot_dir(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read a fixture folder") {
            let path = entry.expect("read a fixture folder entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(dir)
                .expect("below the folder")
                .display()
                .to_string();
            let bytes = std::fs::read(&path).expect("read a fixture file");
            let mode = std::fs::metadata(&path)
                .expect("stat a fixture file")
                .permissions()
                .mode();
            files.push((relative, bytes, mode));
        }
    }
    files.sort();
    files
}
