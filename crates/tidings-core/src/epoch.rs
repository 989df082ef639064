//! Epochs: short ids that change whenever a topic's (or queue's) numbering restarts, so a
//! client holding an old offset learns its position means nothing any more.

use std::sync::Arc;

/// The epoch of the `generation`-th topic or queue created since a start with `seed`.
/// splitmix64: cheap, well spread, deterministic for tests, different across restarts as
/// long as the seed is (the start time).
pub(crate) fn epoch_for(seed: u64, generation: u64) -> Arc<str> {
    let mut z = seed.wrapping_add(generation.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    format!("{:08x}", z as u32).into()
}
