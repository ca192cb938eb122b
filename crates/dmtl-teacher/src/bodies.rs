//! The registry of teacher bodies: every body a configuration can name by its `structure`.
//! Adding a body is one line here (see docs/extending.md); the trait a body implements is in
//! [`crate::body`], which knows no body, so the bodies and the trait import nothing of this file.

use dmtl_loss::registry::{Registered, Registry};

use crate::body::{body, BuildBody};
use crate::mmoe::MmoeConfig;
use crate::ple::PleConfig;
use crate::shared_bottom::SharedBottomConfig;

/// Every body a configuration can name, by its `structure`: one line a body. A table without
/// `structure` is an MMoE.
pub static BODIES: Registry<dyn BuildBody> = Registry {
    tag: "structure",
    section: "",
    default: "mmoe",
    tag_optional: true,
    entries: &[
        body::<MmoeConfig>("mmoe")
            .with_examples(&["n_experts = 2\nexpert_hidden = [6]\ntower_hidden = [4]"]),
        body::<SharedBottomConfig>("shared_bottom")
            .with_examples(&["expert_hidden = [8, 6]\ntower_hidden = [4]"]),
        body::<PleConfig>("ple").with_examples(&[
            "shared_experts = 2\ntask_experts = 1\nlevels = 2\nexpert_hidden = [6]\ntower_hidden = [4]",
            "shared_experts = 1\ntask_experts = 2\nlevels = 1\nexpert_hidden = [6]\ntower_hidden = []",
        ]),
    ],
};

impl Registered for dyn BuildBody {
    fn registry() -> &'static Registry<dyn BuildBody> {
        &BODIES
    }

    fn invalid_key(value: &Self) -> Option<(&'static str, String)> {
        value.invalid_key()
    }
}
