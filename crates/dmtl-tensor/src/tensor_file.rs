//! Safetensors files of f32 tensors: the one encoder and decoder of this crate, behind the
//! parameter files ([`crate::ParamStore::save`], [`crate::ParamStore::load`]) and the
//! optimizer states ([`crate::optim::Optimizer::state_to_safetensors`]).

use std::collections::HashMap;
use std::path::Path;

use ndarray::Array2;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::TensorError;

/// Safetensors bytes of `tensors`, each `(name, shape written to the file, value)` with the
/// value's entries in row-major order (f32, little-endian), and of `metadata` (the header's
/// `__metadata__`, absent when `None`).
///
/// # Panics
/// When a shape does not hold as many entries as its value.
pub(crate) fn encode<'a>(
    tensors: impl IntoIterator<Item = (String, Vec<usize>, &'a Array2<f32>)>,
    metadata: Option<HashMap<String, String>>,
) -> Vec<u8> {
    let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, value)| {
            let data: Vec<u8> = value.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name, shape, data)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bufs
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), d).expect("shape matches data"),
            )
        })
        .collect();
    safetensors::serialize(views, &metadata).expect("serializing in-memory tensors")
}

/// A safetensors file being read; every error names the file it came from.
pub(crate) struct TensorFile<'a> {
    tensors: SafeTensors<'a>,
    metadata: HashMap<String, String>,
    origin: &'a Path,
}

impl<'a> TensorFile<'a> {
    /// Parses the header of `bytes`, read from `origin`.
    pub(crate) fn parse(bytes: &'a [u8], origin: &'a Path) -> Result<Self, TensorError> {
        let format = |e: safetensors::SafeTensorError| TensorError::Format {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        };
        let tensors = SafeTensors::deserialize(bytes).map_err(format)?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(format)?;
        Ok(TensorFile {
            tensors,
            metadata: header.metadata().clone().unwrap_or_default(),
            origin,
        })
    }

    /// The tensors' names, sorted.
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .tensors
            .names()
            .into_iter()
            .map(|n| n.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Number of tensors.
    pub(crate) fn len(&self) -> usize {
        self.tensors.len()
    }

    /// The header's metadata entry `key`.
    pub(crate) fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// A [`TensorError::Mismatch`] naming this file.
    pub(crate) fn mismatch(&self, reason: String) -> TensorError {
        TensorError::Mismatch {
            path: self.origin.to_path_buf(),
            reason,
        }
    }

    /// Tensor `name` as a `dim` matrix (`None` when the file has no such tensor), after
    /// checking that it is f32 and has `file_shape` in the file (`[cols]` for a bias saved
    /// 1-d, `[rows, cols]` otherwise).
    ///
    /// # Panics
    /// When `file_shape` does not hold `dim.0 * dim.1` entries.
    pub(crate) fn matrix(
        &self,
        name: &str,
        file_shape: &[usize],
        dim: (usize, usize),
    ) -> Result<Option<Array2<f32>>, TensorError> {
        let Ok(t) = self.tensors.tensor(name) else {
            return Ok(None);
        };
        if t.dtype() != Dtype::F32 {
            return Err(self.mismatch(format!(
                "tensor `{name}` has dtype {:?}, expected F32",
                t.dtype()
            )));
        }
        if t.shape() != file_shape {
            return Err(self.mismatch(format!(
                "tensor `{name}` has shape {:?}, the model expects {:?}",
                t.shape(),
                file_shape
            )));
        }
        let vals: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Some(
            Array2::from_shape_vec(dim, vals).expect("file shape checked against dim"),
        ))
    }
}
