//! The AMX micro-kernel of the bf16 GEMM (`tdpbf16ps` on 16 x 16 f32 tiles), on CPUs with
//! AMX-BF16 whose kernel grants this process the tile data state.
//!
//! One call computes a 32 x 32 block of `C` from 32 rows of packed `A` and one 32-column block
//! of packed `B`, 16 k-pairs (32 values of k) per step: two A tiles, two B tiles, four C
//! tiles in tile registers 0-3. The packed layouts are those of [`crate::bf16_gemm`]: `A` row
//! major in k-pairs, `B` in 32-column blocks of k-pairs (AMX's own layout for B), with k
//! padded to a multiple of 16 pairs.

#![cfg(target_arch = "x86_64")]

use std::arch::asm;
use std::sync::OnceLock;

/// Rows of a C block (two 16-row tiles).
pub(crate) const MA: usize = 32;
/// k-pairs per step (a tile row of 64 bytes).
pub(crate) const KT: usize = 16;

/// `true` when the CPU has AMX-TILE and AMX-BF16 and the kernel granted this process the tile
/// data state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once).
pub(crate) fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        // SAFETY: CPUID leaf 7 exists on every x86_64 CPU that runs this code (the call is
        // safe on newer toolchains, hence the allowance).
        #[allow(unused_unsafe)]
        let leaf7 = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
        let (amx_bf16, amx_tile) = (leaf7.edx & (1 << 22) != 0, leaf7.edx & (1 << 24) != 0);
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain system call; it only changes this process's permissions.
        amx_bf16
            && amx_tile
            && unsafe {
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                )
            } == 0
    })
}

/// The tile configuration: palette 1, eight tiles of 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

fn config() -> TileConfig {
    let mut c = [0u8; 64];
    c[0] = 1;
    for t in 0..8 {
        c[16 + 2 * t] = 64;
        c[48 + t] = 16;
    }
    TileConfig(c)
}

/// Runs `f` with the tiles configured on this thread, releasing them after.
///
/// # Safety
/// [`available`] must hold.
pub(crate) unsafe fn with_tiles<R>(f: impl FnOnce() -> R) -> R {
    let cfg = config();
    asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
    let r = f();
    asm!("tilerelease", options(nostack, nomem));
    r
}

/// `C[0..32, 0..32] = A B` for one block: `a` points at 32 rows of `t_pad` k-pairs (row
/// stride `t_pad` words), `w` at one column block (`t_pad` rows of 32 pairs), `c` at the
/// block's first entry of an f32 matrix with `ldc` entries per row.
///
/// # Safety
/// Inside [`with_tiles`]; `t_pad` a multiple of [`KT`]; the pointers valid for the entries
/// described.
pub(crate) unsafe fn block(a: *const u32, w: *const u32, t_pad: usize, c: *mut f32, ldc: usize) {
    asm!(
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        options(nostack, nomem)
    );
    let sa = t_pad * 4;
    let a2 = a.add(16 * t_pad);
    for kc in 0..t_pad / KT {
        let wb = w.add(kc * KT * 32);
        asm!(
            "tileloadd tmm4, [{a0} + {sa}*1]",
            "tileloadd tmm5, [{a1} + {sa}*1]",
            "tileloadd tmm6, [{b0} + {sb}*1]",
            "tileloadd tmm7, [{b1} + {sb}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a0 = in(reg) a.add(kc * KT),
            a1 = in(reg) a2.add(kc * KT),
            b0 = in(reg) wb,
            b1 = in(reg) wb.add(16),
            sa = in(reg) sa,
            sb = in(reg) 128usize,
            options(nostack, readonly)
        );
    }
    let sc = ldc * 4;
    asm!(
        "tilestored [{c0} + {sc}*1], tmm0",
        "tilestored [{c1} + {sc}*1], tmm1",
        "tilestored [{c2} + {sc}*1], tmm2",
        "tilestored [{c3} + {sc}*1], tmm3",
        c0 = in(reg) c,
        c1 = in(reg) c.add(16),
        c2 = in(reg) c.add(16 * ldc),
        c3 = in(reg) c.add(16 * ldc + 16),
        sc = in(reg) sc,
        options(nostack)
    );
}
