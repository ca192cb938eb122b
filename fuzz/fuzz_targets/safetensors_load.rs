//! Arbitrary bytes as a checkpoint: loading them into a small fixed store must succeed or fail
//! with an error naming the file, never panic; a failed load leaves the store unchanged, and a
//! successful one round-trips through the store's own bytes.
#![no_main]

use std::path::Path;

use dmtl_tensor::{ParamKind, ParamStore};
use libfuzzer_sys::fuzz_target;
use ndarray::Array2;

fn store() -> ParamStore {
    let mut s = ParamStore::new();
    s.add(
        "a.weight",
        Array2::from_shape_fn((3, 2), |(i, j)| (i * 2 + j) as f32),
        ParamKind::Dense,
    );
    s.bias("a.bias", 2);
    s.add("emb", Array2::from_elem((4, 2), 0.5), ParamKind::Embedding);
    s
}

fuzz_target!(|data: &[u8]| {
    let mut s = store();
    match s.load_bytes(data, Path::new("fuzz.safetensors")) {
        Ok(()) => {
            let bytes = s.to_safetensors_bytes();
            let mut again = store();
            again
                .load_bytes(&bytes, Path::new("round trip"))
                .expect("a store's own bytes load");
            for ((_, p), (_, q)) in s.iter().zip(again.iter()) {
                // Bitwise: NaN payloads must survive too.
                let a: Vec<u32> = p.value.iter().map(|x| x.to_bits()).collect();
                let b: Vec<u32> = q.value.iter().map(|x| x.to_bits()).collect();
                assert_eq!(a, b, "{}", p.name);
            }
        }
        Err(e) => {
            assert!(e.to_string().contains("fuzz.safetensors"), "{e}");
            let fresh = store();
            for ((_, p), (_, q)) in s.iter().zip(fresh.iter()) {
                assert_eq!(p.value, q.value, "a failed load changed `{}`", p.name);
            }
        }
    }
});
