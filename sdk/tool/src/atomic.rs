//! Writing output files safely: never over the input, always atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an output file was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The output path names one of the inputs.
    #[error("refusing to overwrite the input file {0}; choose another output path")]
    WouldOverwriteInput(PathBuf),
    /// The file system refused.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The output path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Fails if `output` names one of `inputs` (checked before any work, and again on write).
pub fn ensure_not_input(output: &Path, inputs: &[&Path]) -> Result<(), WriteError> {
    match inputs.iter().find(|i| same_file(i, output)) {
        Some(input) => Err(WriteError::WouldOverwriteInput(input.to_path_buf())),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
/// so a reader never sees a partial file and a failure leaves any old file intact.
/// Fails if `path` is one of `inputs`.
pub fn write_atomic(path: &Path, bytes: &[u8], inputs: &[&Path]) -> Result<(), WriteError> {
    ensure_not_input(path, inputs)?;
    let io = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "output path has no file name",
        ))
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_overwrite_input_and_replaces_atomically() {
        let dir = std::env::temp_dir().join(format!("prunus-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("in.onnx");
        std::fs::write(&input, b"original").unwrap();
        let err = write_atomic(&input, b"new", &[&input]).unwrap_err();
        assert!(matches!(err, WriteError::WouldOverwriteInput(_)), "{err}");
        assert_eq!(std::fs::read(&input).unwrap(), b"original");

        let out = dir.join("out.prunus");
        write_atomic(&out, b"first", &[&input]).unwrap();
        write_atomic(&out, b"second", &[&input]).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"second");
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 2, "no temporary files left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
