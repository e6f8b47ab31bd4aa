//! The training objectives of XKD and CCL: losses only, tensors in and scalars out; no models, no
//! optimisers, no gradient routing.
//!
//! Below `models` (DESIGN.md §2 puts it above): the losses need no model, while the XKD net
//! (`models::xkd::net`, `models::xkd::mae`) computes its losses inside its forward, as the official
//! code does. CCL's step losses with the composition heads and its gradient routing live in
//! `jobs::distill_routing`. Imports `nn` and `util` only.

pub mod ccl;
pub mod contrastive;
pub mod dino;
pub mod divergence;
pub mod mae;
pub mod mmd;
pub mod smoothing;
