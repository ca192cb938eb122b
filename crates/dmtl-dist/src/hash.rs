//! A hash of all parameters, and the check that it is the same on every rank.

use dmtl_tensor::ParamStore;

use crate::{Collective, DistError};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The 64-bit FNV-1a hash of every parameter in name order: its name, its shape and its values'
/// little-endian bytes. Equal stores give equal hashes on every machine; a single changed bit
/// changes it.
pub fn param_hash(store: &ParamStore) -> u64 {
    let mut params: Vec<_> = store.iter().map(|(_, p)| p).collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    let mut h = FNV_OFFSET;
    for p in params {
        h = fnv1a(h, p.name.as_bytes());
        h = fnv1a(h, &[0]);
        for &d in p.value.shape() {
            h = fnv1a(h, &(d as u64).to_le_bytes());
        }
        for &x in p.value.iter() {
            h = fnv1a(h, &x.to_bits().to_le_bytes());
        }
    }
    h
}

/// The 64-bit FNV-1a hash of `bytes`.
pub fn bytes_hash(bytes: &[u8]) -> u64 {
    fnv1a(FNV_OFFSET, bytes)
}

/// The first rank whose `local` hash differs from rank 0's, with its hash and rank 0's (one
/// all-gather); `None` when every rank holds the same.
///
/// # Errors
/// What the collective returns.
pub fn first_differing<C: Collective + ?Sized>(
    coll: &C,
    local: u64,
) -> Result<Option<(usize, u64, u64)>, DistError> {
    let g = coll.all_gather_u32(&[local as u32, (local >> 32) as u32])?;
    let hashes: Vec<u64> = g
        .parts()
        .map(|p| u64::from(p[0]) | (u64::from(p[1]) << 32))
        .collect();
    Ok(hashes
        .iter()
        .position(|&x| x != hashes[0])
        .map(|r| (r, hashes[r], hashes[0])))
}

/// Checks that the parameters are the same on every rank (one all-gather of every rank's
/// [`param_hash`]); returns the hash.
///
/// # Errors
/// [`DistError::ParamsDiffer`] on every rank, naming the first rank whose hash differs from
/// rank 0's; what the collective returns.
pub fn check_same_params<C: Collective + ?Sized>(
    coll: &C,
    store: &ParamStore,
) -> Result<u64, DistError> {
    let h = param_hash(store);
    match first_differing(coll, h)? {
        Some((first, hash, expected)) => Err(DistError::ParamsDiffer {
            rank: coll.rank(),
            first,
            hash,
            expected,
        }),
        None => Ok(h),
    }
}
