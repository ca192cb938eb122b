//! Which collective `world()` picks from the launcher's environment. One test: it changes
//! process-wide environment variables.

use dmtl_dist::launch::{launcher_rank, launcher_size};

#[test]
fn world_is_local_unless_a_launcher_started_several_ranks() {
    for k in [
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_RANK",
        "PMIX_SIZE",
        "PMIX_RANK",
    ] {
        std::env::remove_var(k);
    }
    assert_eq!((launcher_size(), launcher_rank()), (None, None));
    let w = dmtl_dist::world().unwrap();
    assert_eq!((w.rank(), w.size()), (0, 1));
    std::env::set_var("OMPI_COMM_WORLD_SIZE", "1");
    std::env::set_var("OMPI_COMM_WORLD_RANK", "0");
    assert_eq!(dmtl_dist::world().unwrap().size(), 1);
    #[cfg(not(feature = "mpi"))]
    {
        std::env::set_var("OMPI_COMM_WORLD_SIZE", "3");
        std::env::set_var("OMPI_COMM_WORLD_RANK", "2");
        let e = dmtl_dist::world()
            .err()
            .expect("several ranks need the mpi feature");
        assert!(
            matches!(
                e,
                dmtl_dist::DistError::NoMpi {
                    rank: Some(2),
                    size: 3
                }
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("rank 2: "), "{e}");
    }
}
