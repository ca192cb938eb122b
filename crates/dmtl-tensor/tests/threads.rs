//! The process-wide BLAS thread count under overlapping `with_blas_threads` scopes.

use std::sync::{Arc, Barrier};

use dmtl_tensor::threads::{blas_threads, set_blas_threads, with_blas_threads};

#[test]
fn overlapping_scopes_restore_the_count_from_before_the_first() {
    set_blas_threads(2);
    let before = blas_threads();
    // A opens, B opens, A closes, B closes: saving and restoring per scope would leave B's
    // saved value (A's 1) in force afterwards.
    let (a_in, b_in, a_out) = (
        Arc::new(Barrier::new(2)),
        Arc::new(Barrier::new(2)),
        Arc::new(Barrier::new(2)),
    );
    let a = {
        let (a_in, b_in, a_out) = (a_in.clone(), b_in.clone(), a_out.clone());
        std::thread::spawn(move || {
            with_blas_threads(1, || {
                a_in.wait();
                b_in.wait();
                assert_eq!(blas_threads(), 1);
            });
            a_out.wait();
        })
    };
    a_in.wait();
    with_blas_threads(1, || {
        b_in.wait();
        a_out.wait();
        // A has closed its scope; this one is still open.
        assert_eq!(blas_threads(), 1);
    });
    a.join().unwrap();
    assert_eq!(blas_threads(), before);
    // A panicking scope closes too.
    let r = std::panic::catch_unwind(|| with_blas_threads(1, || panic!("inside")));
    assert!(r.is_err());
    assert_eq!(blas_threads(), before);
}
