//! XKD (Sarkar & Etemad, AAAI 2024): masked audio and video ViT autoencoders with cross-modal
//! teacher-student distillation and MMD domain alignment, after pritamqu/XKD at 806c75d.

pub mod refine;
