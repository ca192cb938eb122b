//! Export for serving: user and item vectors with their raw ids as `.npy`, the student's
//! parameters as safetensors, and the vocabularies, for an outside index such as Faiss.
//!
//! A directory written by [`export`] holds:
//!
//! | file | content | numpy |
//! |---|---|---|
//! | `user_vectors.npy` | `float32 (n_users, dim)`, row `r` the vector of `user_ids[r]` | `np.load(p)` |
//! | `user_ids.npy` | unicode `<U{longest}` `(n_users,)`, the raw ids in row order | `np.load(p)` |
//! | `item_vectors.npy`, `item_ids.npy` | the same for items | |
//! | `vectors.json` | dimension, counts, and the metric (inner product) | |
//! | `student.safetensors`, `student.toml` | the parameters and configuration ([`Student::save`]) | `safetensors.torch.load_file` |
//! | `vocab.json` | the vocabularies ([`Vocabularies::save`]) | |
//!
//! The id arrays are fixed-width UTF-32 unicode arrays, numpy's own string format, written by
//! this module (ndarray-npy writes numeric arrays only); `np.load` reads them without pickle.
//! Every file is written to a temporary file in the same directory and renamed into place.
//!
//! ```
//! use dmtl_student::export::{load_vectors, write_vectors, Vectors};
//! use ndarray::array;
//! let dir = tempfile::tempdir().unwrap();
//! let users = Vectors { ids: vec!["u1".into(), "ü2".into()], vectors: array![[1.0f32, 0.0], [0.5, 2.0]] };
//! let items = Vectors { ids: vec!["i9".into()], vectors: array![[3.0f32, -1.0]] };
//! write_vectors(dir.path(), &users, &items).unwrap();
//! let (u, i) = load_vectors(dir.path()).unwrap();
//! assert_eq!(u, users);
//! assert_eq!(i, items);
//! ```

use std::path::Path;

use dmtl_data::{Dataset, Vocabularies};
use dmtl_tensor::io::atomic_write;
use ndarray::Array2;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::error::{Result, StudentError};
use crate::two_tower::Student;

/// File of the user vectors.
pub const USER_VECTORS: &str = "user_vectors.npy";
/// File of the users' raw ids.
pub const USER_IDS: &str = "user_ids.npy";
/// File of the item vectors.
pub const ITEM_VECTORS: &str = "item_vectors.npy";
/// File of the items' raw ids.
pub const ITEM_IDS: &str = "item_ids.npy";
/// File describing the vectors.
pub const MANIFEST: &str = "vectors.json";
/// File of the vocabularies.
pub const VOCAB_FILE: &str = "vocab.json";

/// Vectors with the raw id of each row.
///
/// # Shapes
/// `vectors` is `(ids.len(), dim)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    /// Raw ids, one per row.
    pub ids: Vec<String>,
    /// One vector per id.
    pub vectors: Array2<f32>,
}

impl Vectors {
    /// The user vectors of every distinct user of `data` (its `user_ids`, in order of first
    /// appearance), each computed from the user's first row (so with that row's context).
    ///
    /// # Shapes
    /// -> `vectors` `(data.user_ids.len(), dim)`.
    pub fn users(student: &Student, data: &Dataset) -> Result<Vectors> {
        if data.user_group.is_empty() && data.n_rows > 0 {
            return Err(StudentError::Data(
                "the dataset has no user id column to group users by".into(),
            ));
        }
        let rows = data.first_row_per_user();
        Ok(Vectors {
            ids: data.user_ids.clone(),
            vectors: student.user_vectors(data, &rows)?,
        })
    }

    /// The item vectors of every distinct item of `data` (its `item_ids`, in order of first
    /// appearance), e.g. of an item table holding the whole corpus.
    ///
    /// # Shapes
    /// -> `vectors` `(data.item_ids.len(), dim)`.
    pub fn items(student: &Student, data: &Dataset) -> Result<Vectors> {
        if data.item_group.is_empty() && data.n_rows > 0 {
            return Err(StudentError::Data(
                "the dataset has no item id column to group items by".into(),
            ));
        }
        let rows = data.first_row_per_item();
        Ok(Vectors {
            ids: data.item_ids.clone(),
            vectors: student.item_vectors(data, &rows)?,
        })
    }

    fn check(&self, what: &str) -> Result<()> {
        if self.ids.len() == self.vectors.nrows() {
            Ok(())
        } else {
            Err(StudentError::Data(format!(
                "{what}: {} ids for {} vectors",
                self.ids.len(),
                self.vectors.nrows()
            )))
        }
    }
}

/// Writes the vectors, their ids and `vectors.json` into `dir` (created if needed).
///
/// Fails when ids and rows do not pair up, the dimensions differ, or a file cannot be written.
pub fn write_vectors(dir: &Path, users: &Vectors, items: &Vectors) -> Result<()> {
    users.check("users")?;
    items.check("items")?;
    if users.vectors.ncols() != items.vectors.ncols() {
        return Err(StudentError::Data(format!(
            "user vectors have {} columns, item vectors {}",
            users.vectors.ncols(),
            items.vectors.ncols()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| StudentError::io(dir, e))?;
    write_f32_npy(&dir.join(USER_VECTORS), &users.vectors)?;
    write_ids_npy(&dir.join(USER_IDS), &users.ids)?;
    write_f32_npy(&dir.join(ITEM_VECTORS), &items.vectors)?;
    write_ids_npy(&dir.join(ITEM_IDS), &items.ids)?;
    let manifest = serde_json::json!({
        "dim": users.vectors.ncols(),
        "n_users": users.ids.len(),
        "n_items": items.ids.len(),
        "metric": "inner_product",
        "files": {
            "user_vectors": USER_VECTORS, "user_ids": USER_IDS,
            "item_vectors": ITEM_VECTORS, "item_ids": ITEM_IDS,
        },
    });
    let text = serde_json::to_string_pretty(&manifest).expect("plain JSON");
    atomic_write(&dir.join(MANIFEST), text.as_bytes())?;
    Ok(())
}

/// Writes everything a serving system needs into `dir`: [`write_vectors`], the student
/// ([`Student::save`]) and the vocabularies.
pub fn export(
    dir: &Path,
    student: &Student,
    vocabs: &Vocabularies,
    users: &Vectors,
    items: &Vectors,
) -> Result<()> {
    write_vectors(dir, users, items)?;
    student.save(dir)?;
    vocabs.save(dir.join(VOCAB_FILE))?;
    Ok(())
}

/// Reads back the user and item vectors written by [`write_vectors`].
///
/// Fails naming the file when one is missing or malformed, or ids and rows do not pair up.
pub fn load_vectors(dir: &Path) -> Result<(Vectors, Vectors)> {
    let load = |vectors: &str, ids: &str| -> Result<Vectors> {
        let v = Vectors {
            vectors: read_f32_npy(&dir.join(vectors))?,
            ids: read_ids_npy(&dir.join(ids))?,
        };
        v.check(&dir.join(ids).display().to_string())?;
        Ok(v)
    };
    Ok((load(USER_VECTORS, USER_IDS)?, load(ITEM_VECTORS, ITEM_IDS)?))
}

/// Writes a `float32` matrix as `.npy`, atomically.
pub fn write_f32_npy(path: &Path, a: &Array2<f32>) -> Result<()> {
    let mut bytes = Vec::new();
    a.write_npy(&mut bytes)
        .map_err(|e| StudentError::io(path, e))?;
    atomic_write(path, &bytes)?;
    Ok(())
}

/// Reads a 2-d `float32` `.npy` file.
pub fn read_f32_npy(path: &Path) -> Result<Array2<f32>> {
    let f = std::fs::File::open(path).map_err(|e| StudentError::io(path, e))?;
    Array2::<f32>::read_npy(std::io::BufReader::new(f)).map_err(|e| StudentError::io(path, e))
}

/// The `.npy` bytes of a 1-d little-endian unicode array `<U{w}` holding `ids`, `w` the
/// longest id in characters (at least 1).
pub fn ids_npy_bytes(ids: &[String]) -> Vec<u8> {
    let width = ids
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(1);
    let header = format!(
        "{{'descr': '<U{width}', 'fortran_order': False, 'shape': ({},), }}",
        ids.len()
    );
    let mut out = npy_preamble(header);
    out.reserve(ids.len() * width * 4);
    for id in ids {
        let mut n = 0;
        for c in id.chars() {
            out.extend_from_slice(&(c as u32).to_le_bytes());
            n += 1;
        }
        out.resize(out.len() + (width - n) * 4, 0);
    }
    out
}

/// Magic, version 1.0, header length and the header padded with spaces and a newline so the
/// data starts on a 64-byte boundary (as numpy writes it).
fn npy_preamble(header: String) -> Vec<u8> {
    let mut h = header.into_bytes();
    let unpadded = 10 + h.len() + 1;
    h.resize(h.len() + (64 - unpadded % 64) % 64, b' ');
    h.push(b'\n');
    let mut out = Vec::with_capacity(10 + h.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(&h);
    out
}

/// Writes `ids` as a unicode `.npy` array (see [`ids_npy_bytes`]), atomically.
pub fn write_ids_npy(path: &Path, ids: &[String]) -> Result<()> {
    atomic_write(path, &ids_npy_bytes(ids))?;
    Ok(())
}

/// Reads a 1-d unicode `.npy` array (`<U{w}`, C order, as numpy and [`write_ids_npy`] write
/// it). Trailing NUL characters of each entry are dropped, as numpy does.
pub fn read_ids_npy(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| StudentError::io(path, e))?;
    parse_ids_npy(&bytes).map_err(|m| StudentError::io(path, m))
}

fn parse_ids_npy(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |key: &str| -> std::result::Result<&str, String> {
        let at = header
            .find(&format!("'{key}':"))
            .ok_or(format!("header lacks '{key}'"))?;
        Ok(header[at + key.len() + 3..].trim_start())
    };
    let descr = field("descr")?;
    let width: usize = descr
        .strip_prefix("'<U")
        .and_then(|r| r.split('\'').next())
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| {
            format!(
                "expected a little-endian unicode array ('<U..'), got descr {}",
                descr.split(',').next().unwrap_or("")
            )
        })?;
    if !field("fortran_order")?.starts_with("False") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let shape = field("shape")?;
    let n: usize = shape
        .strip_prefix('(')
        .and_then(|r| r.split([',', ')']).next())
        .and_then(|n| n.trim().parse().ok())
        .filter(|_| {
            shape
                .split(')')
                .next()
                .is_some_and(|s| s.matches(',').count() <= 1)
        })
        .ok_or_else(|| {
            format!(
                "expected a 1-d shape, got {}",
                shape.split(')').next().unwrap_or("")
            )
        })?;
    let data = &bytes[start + header_len..];
    if data.len() != n * width * 4 {
        return Err(format!(
            "{} data bytes for {n} entries of {width} characters",
            data.len()
        ));
    }
    if width == 0 {
        return Ok(vec![String::new(); n]);
    }
    let mut ids = Vec::with_capacity(n);
    for (k, entry) in data.chunks(width * 4).take(n).enumerate() {
        let mut s = String::with_capacity(width);
        let mut nul = 0;
        for cp in entry.chunks(4) {
            let c = u32::from_le_bytes([cp[0], cp[1], cp[2], cp[3]]);
            if c == 0 {
                nul += 1;
                continue;
            }
            // A NUL inside an id is kept; only the trailing padding is dropped.
            s.extend(std::iter::repeat_n('\0', nul));
            nul = 0;
            s.push(char::from_u32(c).ok_or(format!("entry {k}: invalid code point {c:#x}"))?);
        }
        ids.push(s);
    }
    Ok(ids)
}
