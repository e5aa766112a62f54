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
///
/// An existing `path` that is not a regular file or a directory (`/dev/null`, a FIFO, a
/// terminal) is written in place: renaming over it would replace the device node with a
/// file. A symbolic link to a file is followed, so the file is replaced and the link kept.
pub fn write_atomic(path: &Path, bytes: &[u8], inputs: &[&Path]) -> Result<(), WriteError> {
    ensure_not_input(path, inputs)?;
    let io = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let resolved = match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io)?;
            return out.write_all(bytes).map_err(io);
        }
        Ok(_) => path.canonicalize().map_err(io)?,
        Err(_) => path.to_path_buf(),
    };
    let path = resolved.as_path();
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

    #[test]
    fn special_files_are_written_in_place_and_links_kept() {
        use std::os::unix::fs::FileTypeExt;
        let dir =
            std::env::temp_dir().join(format!("prunus-atomic-special-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        // A FIFO stays a FIFO, and its reader gets the bytes.
        let fifo = dir.join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo failed");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_atomic(&fifo, b"through the pipe", &[]).unwrap();
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "the FIFO was replaced: {kind:?}");
        assert_eq!(reader.join().unwrap(), b"through the pipe");

        // A link to a file: the file gets the bytes, the link stays a link.
        let target = dir.join("target.prunus");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.join("link.prunus");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new", &[]).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
