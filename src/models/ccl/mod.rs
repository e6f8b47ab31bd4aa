//! CCL (Chen et al., CVPR 2021): an R(2+1)D video student distilled from an ImageNet image teacher
//! (ResNet-34) and an AudioSet audio teacher (PANNs Cnn14_emb512) through learned compositional
//! embeddings and a class-level contrastive loss, after yanbeic/CCL at b590483.

pub mod audio_frontend;
pub mod cnn14;
pub mod composition;
pub mod r2plus1d;
pub mod resnet;
