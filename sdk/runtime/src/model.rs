//! A validated, immutable model backed by a memory map or a caller's bytes.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use prunus_format::{Encoding, Graph, ParsedFile, TensorInfo, WeightId};

use crate::error::Error;
use crate::options::Options;
use crate::session::Session;

/// Alignment a caller's buffer must have: weights are read in place as `f32`.
pub const BUFFER_ALIGN: usize = std::mem::align_of::<f32>();

/// An owned copy of model bytes aligned to [`BUFFER_ALIGN`], for bytes that are not
/// (a `Vec<u8>` read from a socket, an unaligned `include_bytes!`): copy once, then
/// [`Model::from_bytes`] on [`AlignedBytes::as_bytes`].
#[derive(Clone, Debug)]
pub struct AlignedBytes {
    words: Vec<f32>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into aligned storage.
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0f32; bytes.len().div_ceil(4)];
        bytemuck::cast_slice_mut::<f32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }

    /// The bytes, aligned to [`BUFFER_ALIGN`].
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<f32, u8>(&self.words)[..self.len]
    }
}

enum Storage<'a> {
    Mapped(memmap2::Mmap),
    Borrowed(&'a [u8]),
}

struct Inner<'a> {
    storage: Storage<'a>,
    parsed: ParsedFile,
}

/// A model file, opened and validated once; cheap to clone and share between threads.
///
/// Weights are never copied: kernels read `f32` slices of the mapping (or of the caller's
/// buffer) directly. `Model<'static>` comes from [`Model::open`]; [`Model::from_bytes`]
/// borrows the caller's bytes for `'a`.
#[derive(Clone)]
pub struct Model<'a> {
    inner: Arc<Inner<'a>>,
}

impl std::fmt::Debug for Model<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.graph().metadata.name)
            .field("bytes", &self.bytes().len())
            .finish()
    }
}

impl Model<'static> {
    /// Memory-maps and validates a model file. Only the header, section table and graph
    /// section are read; weight pages are touched when a session first runs. The file must
    /// not be modified or truncated while the model (or a session of it) is alive.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        // Metadata comes from positioned reads, not the mapping: opening makes no page of the
        // mapping resident (page-cache large folios would map megabytes per first touch).
        let parsed = prunus_format::parse_with(file_len, &mut |start, end| {
            let mut buf = vec![0u8; (end - start) as usize];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, start).map_err(io)?;
            Ok::<_, Error>(Cow::Owned(buf))
        })?;
        // SAFETY: the mapping is read-only and private to this process; the file must not be
        // truncated or modified while the model is alive (documented on `open`). Its length
        // was validated above against the section table.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        if map.len() as u64 != file_len {
            return Err(io(std::io::Error::other("file changed size while opening")));
        }
        Ok(Model {
            inner: Arc::new(Inner {
                storage: Storage::Mapped(map),
                parsed,
            }),
        })
    }
}

impl<'a> Model<'a> {
    /// Validates a model held in the caller's memory (flash, `include_bytes!`), without
    /// copying it. The buffer must be aligned to [`BUFFER_ALIGN`] bytes (else the error is
    /// `UnalignedBuffer`; [`AlignedBytes`] makes an aligned copy).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        let address = bytes.as_ptr() as usize;
        if !address.is_multiple_of(BUFFER_ALIGN) {
            return Err(prunus_format::FormatError::UnalignedBuffer {
                address,
                required: BUFFER_ALIGN,
            }
            .into());
        }
        let parsed = prunus_format::parse(bytes)?;
        Ok(Model {
            inner: Arc::new(Inner {
                storage: Storage::Borrowed(bytes),
                parsed,
            }),
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        match &self.inner.storage {
            Storage::Mapped(map) => map,
            Storage::Borrowed(bytes) => bytes,
        }
    }

    /// The validated graph.
    pub fn graph(&self) -> &Graph {
        &self.inner.parsed.graph
    }

    /// Checks the weights section's checksum: a full pass over every weight byte.
    pub fn verify(&self) -> Result<(), Error> {
        prunus_format::verify_weights(self.bytes(), &self.inner.parsed.sections)?;
        Ok(())
    }

    /// The graph inputs, in the order [`Session::run`] takes them.
    pub fn inputs(&self) -> impl Iterator<Item = &TensorInfo> {
        let g = self.graph();
        g.inputs.iter().map(|&id| &g.tensors[id as usize])
    }

    /// The graph outputs, in the order [`Session::output`] indexes them.
    pub fn outputs(&self) -> impl Iterator<Item = &TensorInfo> {
        let g = self.graph();
        g.outputs.iter().map(|&id| &g.tensors[id as usize])
    }

    /// Creates a session: plans activation memory, picks kernels and widens f16 weights.
    pub fn session(&self, options: Options) -> Result<Session<'a>, Error> {
        Session::new(self.clone(), options)
    }

    /// The stored bytes of weight `id` (range and alignment validated at load).
    pub(crate) fn weight_bytes(&self, id: WeightId) -> &[u8] {
        let info = &self.graph().weights[id as usize];
        self.inner.parsed.weight_bytes(self.bytes(), info)
    }

    /// The weight as `f32` values read in place, or `None` if it is not stored as f32.
    pub(crate) fn weight_f32(&self, id: WeightId) -> Option<&[f32]> {
        let info = &self.graph().weights[id as usize];
        if info.encoding != Encoding::F32 {
            return None;
        }
        bytemuck::try_cast_slice(self.weight_bytes(id)).ok()
    }
}

// A model is shared between threads (one session per thread): keep it Send + Sync.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model<'static>>();
};
